//! Helpers shared by the settle security suites (`signatures.rs`, `replay.rs`,
//! `settle_rules.rs`): a standard two-order batch, settle instructions built from raw arguments,
//! Ed25519 offsets surgery, the precompile's error codes and before/after state snapshots.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

use crate::program_test::*;
use kestrel::ed25519::{SignatureOffsets, HEADER_LEN, OFFSETS_LEN};
use kestrel::encoding::{Order, Side};
use kestrel::instructions::SettleArgs;
use solana_program_test::BanksClientError;
use solana_sdk::account::Account;
use solana_sdk::instruction::{AccountMeta, Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

/// Error codes of the Ed25519 precompile (`solana_precompile_error::PrecompileError` as
/// `InstructionError::Custom`). A failing precompile fails the whole transaction at its own
/// instruction index, before any program runs.
pub mod precompile {
    /// The 32 bytes at the public-key offset are not a valid curve point.
    pub const INVALID_PUBLIC_KEY: u32 = 0;
    /// The signature does not verify over the message (or is malformed).
    pub const INVALID_SIGNATURE: u32 = 2;
    /// An offset, length or instruction index points outside the transaction's data.
    pub const INVALID_DATA_OFFSETS: u32 = 3;
    /// The header or offsets table does not fit the instruction data.
    pub const INVALID_INSTRUCTION_DATA_SIZE: u32 = 4;
}

/// Asserts that the transaction failed in the precompile at instruction `index` with `code`.
#[track_caller]
pub fn assert_precompile_error(result: Result<(), BanksClientError>, index: u8, code: u32) {
    assert_eq!(
        instruction_error(result),
        (index, InstructionError::Custom(code)),
        "expected the precompile at instruction {index} to fail with code {code}"
    );
}

/// What the precompile answers when the key it reads is `key` and the signature does not
/// verify: a bad point is refused as a public key, a good one fails verification.
pub fn precompile_error_for_key(key: &[u8]) -> u32 {
    let bytes: [u8; 32] = key.try_into().expect("32 bytes");
    if ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_ok() {
        precompile::INVALID_SIGNATURE
    } else {
        precompile::INVALID_PUBLIC_KEY
    }
}

/// Reads offsets entry `entry` of an Ed25519 instruction.
pub fn offsets_of(ed25519: &Instruction, entry: usize) -> SignatureOffsets {
    SignatureOffsets::parse(&ed25519.data, entry).expect("offsets entry")
}

/// Rewrites offsets entry `entry` of an Ed25519 instruction.
pub fn edit_offsets(
    ed25519: &mut Instruction,
    entry: usize,
    edit: impl FnOnce(&mut SignatureOffsets),
) {
    let mut offsets = offsets_of(ed25519, entry);
    edit(&mut offsets);
    let start = HEADER_LEN + OFFSETS_LEN * entry;
    ed25519.data[start..start + OFFSETS_LEN].copy_from_slice(&offsets.to_bytes());
}

/// `[ed25519, settle]` for arbitrary settle arguments: each new order's bytes, exactly as they
/// stand in `args`, are signed by the next keypair of `signers`; the Ed25519 instruction points
/// into the settle instruction as the relayer's does. `[settle]` when no order is new.
pub fn settle_ixs_for(
    t: &TestExchange,
    args: SettleArgs,
    remaining: Vec<AccountMeta>,
    signers: &[&Keypair],
) -> Vec<Instruction> {
    let signed: Vec<[u8; 128]> = args.orders.iter().filter_map(|o| o.signed).collect();
    assert_eq!(signed.len(), signers.len(), "one signer per new order");
    let signatures: Vec<[u8; 64]> = signed
        .iter()
        .zip(signers)
        .map(|(bytes, kp)| sign(kp, bytes))
        .collect();
    let offsets = args.signed_order_offsets();
    let settle = t.ix_settle(args, remaining);
    if signatures.is_empty() {
        vec![settle]
    } else {
        vec![
            ed25519_pointing_into_settle(&signatures, &offsets, SETTLE_IX),
            settle,
        ]
    }
}

/// `keypair`'s signature of `message`.
pub fn sign(keypair: &Keypair, message: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(keypair.sign_message(message).as_ref());
    out
}

/// The record addresses of a batch's orders.
pub fn record_addresses(t: &TestExchange, batch: &Batch) -> Vec<Pubkey> {
    batch
        .orders
        .iter()
        .map(|o| order_address(&t.exchange, &o.owner, o.nonce))
        .collect()
}

/// Every account a settle could touch: exchange, market, vaults, every user, and `records`
/// (which may not exist yet).
pub struct Snapshot(Vec<(Pubkey, Option<Account>)>);

pub async fn snapshot(t: &mut TestExchange, records: &[Pubkey]) -> Snapshot {
    let mut keys = vec![t.exchange, t.market, t.base_vault, t.quote_vault];
    keys.extend(t.users.iter().copied());
    keys.extend_from_slice(records);
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let account = t.account(&key).await;
        out.push((key, account));
    }
    Snapshot(out)
}

/// Asserts that no account of `before` changed (balances, records, watermarks, vaults) and that
/// conservation holds.
pub async fn assert_unchanged(t: &mut TestExchange, before: &Snapshot) {
    for (key, account) in &before.0 {
        let now = t.account(key).await;
        assert_eq!(
            &now, account,
            "account {key} changed after a rejected settle"
        );
    }
    t.assert_conservation().await;
}

/// The standard two-order batch: a new ask (seller, 100 ticks × 10 lots) and a new bid
/// (buyer, 105 ticks × 4 lots) filled 4 lots at 100.
pub struct Pair {
    pub t: TestExchange,
    pub seller: TestUser,
    pub buyer: TestUser,
    pub ask: Order,
    pub bid: Order,
    pub batch: Batch,
}

pub const SELLER_BASE: u64 = 50_000;
pub const BUYER_QUOTE: u64 = 1_000_000;

impl Pair {
    pub async fn new() -> Pair {
        Pair::build(Config::default(), SELLER_BASE, BUYER_QUOTE).await
    }

    /// The standard pair on an exchange made with `cfg`, the seller having deposited
    /// `seller_base` base atoms and the buyer `buyer_quote` quote atoms.
    pub async fn build(cfg: Config, seller_base: u64, buyer_quote: u64) -> Pair {
        let mut t = TestExchange::with(cfg).await;
        let mut seller = t.funded_user(seller_base, 0).await;
        let mut buyer = t.funded_user(0, buyer_quote).await;
        let ask = t.order(&mut seller, Side::Sell, 100, 10);
        let bid = t.order(&mut buyer, Side::Buy, 105, 4);
        let batch = Batch {
            batch_id: t.batch_id(),
            orders: vec![
                BatchOrder::new(&ask, &seller.wallet),
                BatchOrder::new(&bid, &buyer.wallet),
            ],
            fills: vec![fill(t.fill_id(), 0, 1, 100, 4)],
        };
        Pair {
            t,
            seller,
            buyer,
            ask,
            bid,
            batch,
        }
    }

    /// `[ed25519, settle]` for the batch's arguments after `edit`; both orders must stay new,
    /// and their bytes as edited are signed by their owners.
    pub fn ixs_with_args(&self, edit: impl FnOnce(&mut SettleArgs)) -> Vec<Instruction> {
        let mut args = self.batch.args();
        edit(&mut args);
        let remaining = self.batch.remaining_accounts(&self.t.exchange);
        settle_ixs_for(
            &self.t,
            args,
            remaining,
            &[&self.seller.wallet, &self.buyer.wallet],
        )
    }

    /// `[ed25519, settle]` with the settle's remaining accounts after `edit`.
    pub fn ixs_with_accounts(&self, edit: impl FnOnce(&mut Vec<AccountMeta>)) -> Vec<Instruction> {
        let mut remaining = self.batch.remaining_accounts(&self.t.exchange);
        edit(&mut remaining);
        let args = self.batch.args();
        settle_ixs_for(
            &self.t,
            args,
            remaining,
            &[&self.seller.wallet, &self.buyer.wallet],
        )
    }

    /// Sends `ixs` and asserts they fail with `expected` and change nothing.
    pub async fn assert_refused(
        &mut self,
        ixs: &[Instruction],
        expected: kestrel::error::KestrelError,
    ) {
        let records = self.records();
        assert_refused(&mut self.t, ixs, &records, expected).await;
    }

    /// The batch's `[ed25519, settle]`.
    pub fn ixs(&self) -> Vec<Instruction> {
        self.t.settle_instructions(&self.batch)
    }

    pub fn records(&self) -> Vec<Pubkey> {
        record_addresses(&self.t, &self.batch)
    }

    pub async fn snapshot(&mut self) -> Snapshot {
        let records = self.records();
        snapshot(&mut self.t, &records).await
    }

    pub async fn send(&mut self, ixs: &[Instruction]) -> Result<(), BanksClientError> {
        self.t.send_settle(ixs).await
    }

    /// Asserts the 4-lot fill at 100 went through exactly once (fees 2 and 5 bps).
    pub async fn assert_settled(&mut self) {
        let s = self.t.user_state(&self.seller).await;
        let b = self.t.user_state(&self.buyer).await;
        assert_eq!(s.balances[BASE as usize].available, SELLER_BASE - 4_000);
        assert_eq!(s.balances[QUOTE as usize].available, 4_000 - 1);
        assert_eq!(b.balances[BASE as usize].available, 4_000);
        assert_eq!(
            b.balances[QUOTE as usize].available,
            BUYER_QUOTE - 4_000 - 2
        );
        let seller_key = self.seller.key();
        let record = self
            .t
            .order_record(&seller_key, self.ask.nonce)
            .await
            .expect("ask record");
        assert_eq!(record.filled_lots, 4);
        self.t.assert_conservation().await;
    }
}

/// Sends `ixs` signed by the operator under the context's current blockhash, without waiting
/// for a new one: for many distinct attempts in a row (each transaction differs, so none is a
/// duplicate).
pub async fn send_settle_now(
    t: &mut TestExchange,
    ixs: &[Instruction],
) -> Result<(), BanksClientError> {
    let payer = t.ctx.payer.insecure_clone();
    let operator = t.operator.insecure_clone();
    let tx = solana_sdk::transaction::Transaction::new_signed_with_payer(
        ixs,
        Some(&payer.pubkey()),
        &[&payer, &operator],
        t.ctx.last_blockhash,
    );
    t.ctx.banks_client.process_transaction(tx).await
}

/// Sends `ixs` (operator-signed) and asserts they fail with `expected` and change nothing
/// among the exchange, market, vaults, users and `records`.
pub async fn assert_refused(
    t: &mut TestExchange,
    ixs: &[Instruction],
    records: &[Pubkey],
    expected: kestrel::error::KestrelError,
) {
    let before = snapshot(t, records).await;
    let result = t.send_settle(ixs).await;
    assert_kestrel_error(result, expected);
    assert_unchanged(t, &before).await;
}

/// [`assert_refused`] for a batch as the relayer builds it.
pub async fn assert_batch_refused(
    t: &mut TestExchange,
    batch: &Batch,
    expected: kestrel::error::KestrelError,
) {
    let ixs = t.settle_instructions(batch);
    let records = record_addresses(t, batch);
    assert_refused(t, &ixs, &records, expected).await;
}

/// Filled lots recorded for `owner`'s order `nonce` (panics if there is no record).
pub async fn filled(t: &mut TestExchange, owner: &Pubkey, nonce: u64) -> u64 {
    t.order_record(owner, nonce)
        .await
        .expect("order record")
        .filled_lots
}
