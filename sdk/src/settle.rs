//! Settlement transactions as the relayer sends them: `[Ed25519 precompile, settle]`, or
//! `[settle]` alone when every order is already recorded on-chain.
//!
//! The Ed25519 instruction carries one 64-byte signature per new order and points its public
//! key and message into the settle instruction's data, where each new order's 128 canonical
//! bytes already are (docs/protocol.md, "How settlement carries signatures"): no byte is sent
//! twice.

use crate::order::SignedOrder;
use crate::{Deployment, Error};
use anchor_lang::{InstructionData, ToAccountMetas};
use kestrel::constants::{MAX_FILLS_PER_BATCH, MAX_ORDERS_PER_BATCH};
use kestrel::ed25519::{SignatureOffsets, HEADER_LEN, OFFSETS_LEN, SELF_INDEX};
use kestrel::encoding::{ORDER_LEN, OWNER_OFFSET};
use kestrel::instructions::{SettleArgs, SettleFill, SettleOrder};
use solana_sdk::hash::Hash;
use solana_sdk::instruction::{AccountMeta, Instruction};
use solana_sdk::message::{v0, AddressLookupTableAccount, Message, VersionedMessage};
use solana_sdk::pubkey::Pubkey;

/// Solana's limit on a serialized transaction.
pub const PACKET_DATA_SIZE: usize = 1232;

/// One order of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOrder {
    /// New to the chain: its bytes and signature travel in the transaction.
    New(SignedOrder),
    /// Already recorded on-chain (its record stands for the signature).
    Recorded {
        /// Owner.
        owner: Pubkey,
        /// Nonce.
        nonce: u64,
    },
}

impl BatchOrder {
    /// The order's owner.
    pub fn owner(&self) -> Pubkey {
        match self {
            BatchOrder::New(s) => s.order.owner,
            BatchOrder::Recorded { owner, .. } => *owner,
        }
    }

    /// The order's nonce.
    pub fn nonce(&self) -> u64 {
        match self {
            BatchOrder::New(s) => s.order.nonce,
            BatchOrder::Recorded { nonce, .. } => *nonce,
        }
    }
}

/// A batch of fills of one market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Market index.
    pub market_index: u32,
    /// Strictly increasing per market.
    pub batch_id: u64,
    /// Orders referenced by the fills.
    pub orders: Vec<BatchOrder>,
    /// Fills, in increasing fill id.
    pub fills: Vec<SettleFill>,
}

impl Batch {
    fn owners(&self) -> Vec<Pubkey> {
        let mut owners: Vec<Pubkey> = Vec::new();
        for order in &self.orders {
            let owner = order.owner();
            if !owners.contains(&owner) {
                owners.push(owner);
            }
        }
        owners
    }

    fn check(&self) -> Result<(), Error> {
        if self.fills.is_empty() || self.fills.len() > MAX_FILLS_PER_BATCH {
            return Err(Error::InvalidBatch("fill count"));
        }
        if self.orders.len() < 2 || self.orders.len() > MAX_ORDERS_PER_BATCH {
            return Err(Error::InvalidBatch("order count"));
        }
        let n = self.orders.len();
        if self
            .fills
            .iter()
            .any(|f| usize::from(f.maker) >= n || usize::from(f.taker) >= n || f.maker == f.taker)
        {
            return Err(Error::InvalidBatch("fill references"));
        }
        Ok(())
    }
}

impl Deployment {
    /// The instructions settling `batch`, signed (as fee payer and operator) by `operator`.
    pub fn settle_instructions(
        &self,
        operator: &Pubkey,
        batch: &Batch,
    ) -> Result<Vec<Instruction>, Error> {
        batch.check()?;
        let owners = batch.owners();
        let signatures: Vec<[u8; 64]> = batch
            .orders
            .iter()
            .filter_map(|o| match o {
                BatchOrder::New(s) => Some(s.signature),
                BatchOrder::Recorded { .. } => None,
            })
            .collect();
        let ed25519_index = (!signatures.is_empty()).then_some(0u16);
        let args = SettleArgs {
            batch_id: batch.batch_id,
            ed25519_instruction: ed25519_index,
            orders: batch
                .orders
                .iter()
                .map(|o| SettleOrder {
                    user: owners
                        .iter()
                        .position(|k| *k == o.owner())
                        .and_then(|i| u8::try_from(i).ok())
                        .unwrap_or(u8::MAX),
                    signed: match o {
                        BatchOrder::New(s) => Some(s.bytes()),
                        BatchOrder::Recorded { .. } => None,
                    },
                })
                .collect(),
            fills: batch.fills.clone(),
        };
        if owners.len() > usize::from(u8::MAX) {
            return Err(Error::InvalidBatch("too many owners"));
        }
        let offsets = args.signed_order_offsets();
        let mut accounts = kestrel::accounts::Settle {
            operator: *operator,
            exchange: self.exchange,
            market: self.market_address(batch.market_index),
            instructions: solana_sdk_ids::sysvar::instructions::ID,
            system_program: solana_sdk_ids::system_program::ID,
        }
        .to_account_metas(None);
        accounts.extend(
            owners
                .iter()
                .map(|owner| AccountMeta::new(self.user_address(owner), false)),
        );
        accounts.extend(
            batch
                .orders
                .iter()
                .map(|o| AccountMeta::new(self.order_address(&o.owner(), o.nonce()), false)),
        );
        let settle = Instruction {
            program_id: kestrel::ID,
            accounts,
            data: kestrel::instruction::Settle { args }.data(),
        };
        if signatures.is_empty() {
            return Ok(vec![settle]);
        }
        Ok(vec![ed25519_instruction(&signatures, &offsets, 1)?, settle])
    }
}

/// The Ed25519 precompile instruction for `signatures` (in order), whose public keys and
/// messages are the orders at `message_offsets` in the data of instruction `settle_index`.
pub fn ed25519_instruction(
    signatures: &[[u8; 64]],
    message_offsets: &[usize],
    settle_index: u16,
) -> Result<Instruction, Error> {
    if signatures.len() != message_offsets.len() || signatures.len() > usize::from(u8::MAX) {
        return Err(Error::InvalidBatch("signature count"));
    }
    let n = signatures.len();
    let table = n
        .checked_mul(OFFSETS_LEN)
        .and_then(|t| t.checked_add(HEADER_LEN))
        .ok_or(Error::InvalidBatch("signature count"))?;
    let field = |v: usize| u16::try_from(v).map_err(|_| Error::InvalidBatch("offset beyond u16"));
    let mut data = Vec::with_capacity(table.saturating_add(n.saturating_mul(64)));
    data.push(u8::try_from(n).map_err(|_| Error::InvalidBatch("signature count"))?);
    data.push(0);
    for (j, offset) in message_offsets.iter().enumerate() {
        let signature_at = j.checked_mul(64).and_then(|s| s.checked_add(table));
        let entry = SignatureOffsets {
            signature_offset: field(signature_at.ok_or(Error::InvalidBatch("offset"))?)?,
            signature_instruction_index: SELF_INDEX,
            public_key_offset: field(offset.saturating_add(OWNER_OFFSET))?,
            public_key_instruction_index: settle_index,
            message_data_offset: field(*offset)?,
            message_data_size: field(ORDER_LEN)?,
            message_instruction_index: settle_index,
        };
        data.extend_from_slice(&entry.to_bytes());
    }
    for signature in signatures {
        data.extend_from_slice(signature);
    }
    Ok(Instruction {
        program_id: solana_sdk_ids::ed25519_program::ID,
        accounts: vec![],
        data,
    })
}

/// Exact wire size of a legacy transaction of `instructions` paid by `payer`, once signed:
/// signature count, signatures, message.
pub fn transaction_size(instructions: &[Instruction], payer: &Pubkey) -> usize {
    let message = Message::new(instructions, Some(payer));
    let signers = usize::from(message.header.num_required_signatures);
    short_vec_len(signers)
        .saturating_add(signers.saturating_mul(64))
        .saturating_add(message.serialize().len())
}

/// The message of a transaction of `instructions` paid by `payer`: legacy when `tables` is
/// empty, otherwise v0, taking from the tables every account they hold that a lookup may carry
/// (writable or readonly non-signers that no instruction invokes).
pub fn versioned_message(
    instructions: &[Instruction],
    payer: &Pubkey,
    tables: &[AddressLookupTableAccount],
    blockhash: Hash,
) -> Result<VersionedMessage, Error> {
    if tables.is_empty() {
        return Ok(VersionedMessage::Legacy(Message::new_with_blockhash(
            instructions,
            Some(payer),
            &blockhash,
        )));
    }
    v0::Message::try_compile(payer, instructions, tables, blockhash)
        .map(VersionedMessage::V0)
        .map_err(|err| Error::Instruction(format!("v0 message: {err}")))
}

/// Exact wire size of a transaction carrying `message`, once signed: signature count,
/// signatures, then the message as serialized (with its version prefix for v0).
pub fn versioned_transaction_size(message: &VersionedMessage) -> usize {
    let signers = usize::from(message.header().num_required_signatures);
    short_vec_len(signers)
        .saturating_add(signers.saturating_mul(64))
        .saturating_add(message.serialize().len())
}

/// Accounts a transaction carrying `message` locks: its static keys and every address its
/// lookup tables load.
pub fn locked_accounts(message: &VersionedMessage) -> usize {
    let loaded: usize = message
        .address_table_lookups()
        .unwrap_or_default()
        .iter()
        .map(|lookup| {
            lookup
                .writable_indexes
                .len()
                .saturating_add(lookup.readonly_indexes.len())
        })
        .sum();
    message.static_account_keys().len().saturating_add(loaded)
}

fn short_vec_len(n: usize) -> usize {
    match n {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        _ => 3,
    }
}
