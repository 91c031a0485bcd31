//! Batches: the signed orders, the Ed25519 precompile instruction and the settle instruction.

use super::*;
use kestrel::ed25519::{SignatureOffsets, HEADER_LEN, OFFSETS_LEN, SELF_INDEX};
use kestrel::encoding::{ORDER_LEN, OWNER_OFFSET};
use kestrel::instructions::{SettleArgs, SettleFill, SettleOrder};
use solana_sdk::instruction::AccountMeta;

/// One order of a batch: new (with its signature) or already recorded on-chain.
#[derive(Clone, Debug)]
pub struct BatchOrder {
    pub owner: Pubkey,
    pub nonce: u64,
    pub signed: Option<(Order, [u8; 64])>,
}

impl BatchOrder {
    /// A new order signed by `wallet`.
    pub fn new(order: &Order, wallet: &Keypair) -> Self {
        let signature = wallet.sign_message(&order.encode());
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(signature.as_ref());
        BatchOrder {
            owner: order.owner,
            nonce: order.nonce,
            signed: Some((*order, bytes)),
        }
    }

    /// An order whose record already stands for it.
    pub fn recorded(order: &Order) -> Self {
        BatchOrder {
            owner: order.owner,
            nonce: order.nonce,
            signed: None,
        }
    }
}

/// A fill between orders `maker` and `taker` (indices into the batch's orders).
pub fn fill(fill_id: u64, maker: u8, taker: u8, price_ticks: u64, size_lots: u64) -> SettleFill {
    SettleFill {
        fill_id,
        maker,
        taker,
        price_ticks,
        size_lots,
    }
}

#[derive(Clone, Debug)]
pub struct Batch {
    pub batch_id: u64,
    pub orders: Vec<BatchOrder>,
    pub fills: Vec<SettleFill>,
}

/// Index of the Ed25519 instruction in a batch transaction built here.
pub const ED25519_IX: u16 = 0;
/// Index of the settle instruction when an Ed25519 instruction precedes it.
pub const SETTLE_IX: u16 = 1;

impl Batch {
    /// Distinct owners in order of first appearance.
    pub fn owners(&self) -> Vec<Pubkey> {
        let mut owners: Vec<Pubkey> = Vec::new();
        for o in &self.orders {
            if !owners.contains(&o.owner) {
                owners.push(o.owner);
            }
        }
        owners
    }

    pub fn args(&self) -> SettleArgs {
        let owners = self.owners();
        let has_new = self.orders.iter().any(|o| o.signed.is_some());
        SettleArgs {
            batch_id: self.batch_id,
            ed25519_instruction: has_new.then_some(ED25519_IX),
            orders: self
                .orders
                .iter()
                .map(|o| SettleOrder {
                    user: owners.iter().position(|k| *k == o.owner).unwrap() as u8,
                    signed: o.signed.map(|(order, _)| order.encode()),
                })
                .collect(),
            fills: self.fills.clone(),
        }
    }

    pub fn remaining_accounts(&self, exchange: &Pubkey) -> Vec<AccountMeta> {
        let mut metas: Vec<AccountMeta> = self
            .owners()
            .iter()
            .map(|owner| AccountMeta::new(user_address(exchange, owner), false))
            .collect();
        metas.extend(
            self.orders
                .iter()
                .map(|o| AccountMeta::new(order_address(exchange, &o.owner, o.nonce), false)),
        );
        metas
    }

    pub fn signatures(&self) -> Vec<[u8; 64]> {
        self.orders
            .iter()
            .filter_map(|o| o.signed.map(|(_, s)| s))
            .collect()
    }
}

/// The Ed25519 instruction the relayer builds: signatures inside it, public keys and messages
/// pointing into the settle instruction (index `settle_ix`) at `offsets`.
pub fn ed25519_pointing_into_settle(
    signatures: &[[u8; 64]],
    message_offsets: &[usize],
    settle_ix: u16,
) -> Instruction {
    let n = signatures.len();
    let mut data = vec![n as u8, 0];
    let sig_start = HEADER_LEN + OFFSETS_LEN * n;
    for (j, offset) in message_offsets.iter().enumerate() {
        let entry = SignatureOffsets {
            signature_offset: (sig_start + 64 * j) as u16,
            signature_instruction_index: SELF_INDEX,
            public_key_offset: (offset + OWNER_OFFSET) as u16,
            public_key_instruction_index: settle_ix,
            message_data_offset: *offset as u16,
            message_data_size: ORDER_LEN as u16,
            message_instruction_index: settle_ix,
        };
        data.extend_from_slice(&entry.to_bytes());
    }
    for s in signatures {
        data.extend_from_slice(s);
    }
    Instruction {
        program_id: solana_sdk_ids::ed25519_program::ID,
        accounts: vec![],
        data,
    }
}

/// An Ed25519 instruction that carries everything itself (the layout of the SDK's helper):
/// per signature `[signature | pubkey | message]`.
pub fn ed25519_self_contained(entries: &[([u8; 64], Pubkey, Vec<u8>)]) -> Instruction {
    let n = entries.len();
    let mut data = vec![n as u8, 0];
    let mut body = Vec::new();
    let body_start = HEADER_LEN + OFFSETS_LEN * n;
    for (signature, key, message) in entries {
        let at = body_start + body.len();
        let entry = SignatureOffsets {
            signature_offset: at as u16,
            signature_instruction_index: SELF_INDEX,
            public_key_offset: (at + 64) as u16,
            public_key_instruction_index: SELF_INDEX,
            message_data_offset: (at + 96) as u16,
            message_data_size: message.len() as u16,
            message_instruction_index: SELF_INDEX,
        };
        data.extend_from_slice(&entry.to_bytes());
        body.extend_from_slice(signature);
        body.extend_from_slice(key.as_ref());
        body.extend_from_slice(message);
    }
    data.extend_from_slice(&body);
    Instruction {
        program_id: solana_sdk_ids::ed25519_program::ID,
        accounts: vec![],
        data,
    }
}

impl TestExchange {
    /// `[ed25519, settle]`, or `[settle]` when every order is already recorded.
    pub fn settle_instructions(&self, batch: &Batch) -> Vec<Instruction> {
        let args = batch.args();
        let offsets = args.signed_order_offsets();
        let settle = self.ix_settle(args, batch.remaining_accounts(&self.exchange));
        let signatures = batch.signatures();
        if signatures.is_empty() {
            vec![settle]
        } else {
            vec![
                ed25519_pointing_into_settle(&signatures, &offsets, SETTLE_IX),
                settle,
            ]
        }
    }

    /// Sends settle instructions signed by the operator.
    pub async fn send_settle(&mut self, ixs: &[Instruction]) -> Result<(), BanksClientError> {
        let operator = self.operator.insecure_clone();
        self.send(ixs, &[&operator]).await
    }

    pub async fn settle(&mut self, batch: &Batch) -> Result<(), BanksClientError> {
        let ixs = self.settle_instructions(batch);
        self.send_settle(&ixs).await
    }
}
