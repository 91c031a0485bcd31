//! The router's inputs (commands, journaled in sequence) and outputs (events, projected).

use crate::reject::Reject;
use kestrel::encoding::{Cancel, CancelAll, Order, WithdrawRequest};
use serde::{Deserialize, Serialize};

/// Global sequence number assigned by the sequencer; starts at 1.
pub type Seq = u64;
/// A wallet's ed25519 public key.
pub type Owner = [u8; 32];
/// An ed25519 signature.
pub type Sig = [u8; 64];

/// Lower-case hex of `bytes`: how events and the API carry keys, signed bytes and signatures.
/// A quarter of the time of `hex::encode` (which builds the string through a char iterator);
/// it runs on the sequencer's thread for every order.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A command after signature verification, as journaled and replayed. Verification is not
/// repeated on replay: only commands that passed it are ever journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A signed order.
    Place {
        /// The order as signed.
        order: Order,
        /// Its signature (kept for settlement).
        signature: Sig,
    },
    /// A signed cancel of one order.
    Cancel(Cancel),
    /// Atomically replace a resting order: the owner's signed cancel names the old order, the
    /// signed order gives the new terms (same market, side, type, self-trade mode and client
    /// id; a new nonce). Same price and a size not larger keeps time priority.
    Replace {
        /// The cancel of the old order.
        cancel: Cancel,
        /// The new order.
        order: Order,
        /// The new order's signature (kept for settlement).
        signature: Sig,
    },
    /// A signed cancel-all below a nonce bound.
    CancelAll(CancelAll),
    /// A signed request for an operator co-signed withdrawal.
    Withdraw(WithdrawRequest),
    /// A deposit seen on-chain (finalized), keyed by (transaction signature, instruction index).
    DepositObserved {
        /// Wallet credited.
        owner: Owner,
        /// Asset index.
        asset: u8,
        /// Atoms credited on-chain.
        amount: u64,
        /// Transaction signature.
        tx: Sig,
        /// Instruction index within the transaction.
        ix_index: u16,
    },
    /// The owner raised the on-chain cancel floor.
    NonceFloorObserved {
        /// Wallet.
        owner: Owner,
        /// New floor.
        floor: u64,
    },
    /// The operator co-signed a pending withdrawal's `withdraw` transaction and handed it to
    /// the owner: Pending → Broadcasting. The transaction can land only until its blockhash
    /// expires, at block height `last_valid_block_height`.
    WithdrawalBroadcast {
        /// The withdrawal's id.
        id: Seq,
        /// The transaction's signature (the fee payer's, i.e. the owner's, first signature).
        tx: Sig,
        /// Last block height at which the transaction can land.
        last_valid_block_height: u64,
    },
    /// A kestrel withdrawal instruction seen in a successful on-chain transaction, keyed by
    /// (transaction signature, instruction index) and applied at most once per key.
    ChainWithdrawal {
        /// Wallet.
        owner: Owner,
        /// Asset index.
        asset: u8,
        /// Transaction signature.
        tx: Sig,
        /// Instruction index within the transaction.
        ix_index: u16,
        /// Which instruction, and its amount.
        kind: ChainWithdrawalKind,
    },
    /// A withdrawal reached a final state on-chain, or its transaction expired.
    WithdrawalFinished {
        /// The withdrawal's id (sequence number of its request).
        id: Seq,
        /// True when the tokens left the vault; false releases the funds.
        confirmed: bool,
    },
    /// A fill's settlement changed state.
    SettlementUpdate {
        /// Market index.
        market: u32,
        /// Fill id within the market.
        fill_id: u64,
        /// New state.
        status: SettlementStatus,
    },
    /// Advance the clock only: expire due orders.
    Tick,
}

/// The kestrel withdrawal instructions the listener follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainWithdrawalKind {
    /// The operator co-signed `withdraw`: `amount` atoms left the vault.
    Immediate {
        /// Atoms paid out.
        amount: u64,
        /// The operator's signature in the transaction, which identifies the co-signed
        /// transaction handed out (its id, the owner's signature, is unknown until then).
        cosignature: Sig,
    },
    /// The exit hatch's `request_withdrawal`: `amount` atoms moved from available to pending
    /// on-chain.
    Requested {
        /// Atoms set aside.
        amount: u64,
    },
    /// The exit hatch's `execute_withdrawal`: the whole pending amount left the vault (the
    /// router pays out what it held for the requests).
    Executed,
}

/// How a withdrawal leaves the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalKind {
    /// A signed request, paid by an operator co-signed `withdraw` transaction.
    Cosigned,
    /// The owner's on-chain `request_withdrawal`, paid by `execute_withdrawal` after the delay.
    ExitHatch,
}

/// Where a fill stands on-chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    /// Matched, not yet in a submitted batch.
    Pending,
    /// In a submitted transaction.
    Submitted,
    /// Settled at the configured commitment.
    Confirmed,
    /// Isolated as failing; will not settle.
    Quarantined,
}

/// Why a balance changed: the business type of a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Business {
    /// Deposit credited (id: transaction signature and instruction index).
    Deposit,
    /// Funds held for an order (id: order id).
    OrderHold,
    /// Hold released by cancel, expiry or completion (id: order id).
    OrderRelease,
    /// Paid into a fill (id: market and fill id).
    FillPay,
    /// Received from a fill (id: market and fill id).
    FillReceive,
    /// Fee paid on a fill (id: market and fill id).
    FillFee,
    /// Reserved for a withdrawal (id: withdrawal id).
    WithdrawalHold,
    /// Withdrawal left the exchange (id: withdrawal id).
    WithdrawalPaid,
    /// Withdrawal failed, funds back (id: withdrawal id).
    WithdrawalRelease,
}

/// Why an order left the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneReason {
    /// Completely filled.
    Filled,
    /// Cancelled by its owner.
    Cancelled,
    /// Expired.
    Expired,
    /// Removed by self-trade prevention.
    SelfTrade,
    /// Remainder of an IOC/FOK/market order.
    Unmatched,
}

/// Everything the router emits, in sequence. Projections consume only these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A command was refused; nothing changed.
    Rejected {
        /// Wallet that sent it (zero for unsigned inputs).
        owner: Owner,
        /// Refusal.
        reason: Reject,
    },
    /// An order entered the engine.
    OrderAccepted {
        /// Router-assigned order id (the command's sequence number).
        order_id: u64,
        /// Market index.
        market: u32,
        /// Wallet.
        owner: Owner,
        /// 0 buy, 1 sell.
        side: u8,
        /// Limit price in ticks.
        price_ticks: u64,
        /// Size in lots.
        size_lots: u64,
        /// Signed nonce.
        nonce: u64,
        /// Signed expiry (unix seconds, 0 = none).
        expiry: i64,
        /// Client order id as signed.
        client_order_id: u64,
        /// Order type byte as signed.
        order_type: u8,
        /// Canonical signed bytes (hex), for settlement.
        signed: String,
        /// Signature (hex).
        signature: String,
    },
    /// A resting order took new signed terms (same order id; fills from here on settle under
    /// the new nonce and bytes).
    OrderReplaced {
        /// Order id.
        order_id: u64,
        /// Market index.
        market: u32,
        /// Wallet.
        owner: Owner,
        /// Nonce of the terms replaced.
        old_nonce: u64,
        /// New nonce.
        nonce: u64,
        /// New limit price in ticks (a post-only slide may rest it at a better price).
        price_ticks: u64,
        /// New remaining size in lots.
        size_lots: u64,
        /// New expiry.
        expiry: i64,
        /// Whether the order kept its place in the queue.
        kept_priority: bool,
        /// Canonical signed bytes of the new terms (hex).
        signed: String,
        /// Their signature (hex).
        signature: String,
    },
    /// An order left the book or never rested.
    OrderDone {
        /// Order id.
        order_id: u64,
        /// Market index.
        market: u32,
        /// Wallet.
        owner: Owner,
        /// Why.
        reason: DoneReason,
        /// Lots that did not fill.
        remaining_lots: u64,
    },
    /// A match between a resting maker and an incoming taker.
    Fill {
        /// Market index.
        market: u32,
        /// Per-market fill id (strictly increasing; the chain requires it).
        fill_id: u64,
        /// Maker order id.
        maker_order_id: u64,
        /// Taker order id.
        taker_order_id: u64,
        /// Maker wallet.
        maker: Owner,
        /// Taker wallet.
        taker: Owner,
        /// Nonce of the maker's signed terms this fill settles under.
        maker_nonce: u64,
        /// Nonce of the taker's signed terms this fill settles under.
        taker_nonce: u64,
        /// 0 taker bought, 1 taker sold.
        taker_side: u8,
        /// Execution price in ticks.
        price_ticks: u64,
        /// Size in lots.
        size_lots: u64,
        /// Quote atoms exchanged.
        notional: u64,
        /// Maker fee in quote atoms.
        maker_fee: u64,
        /// Taker fee in quote atoms.
        taker_fee: u64,
    },
    /// Aggregate size at one price level after a change (per-market sequence).
    BookLevel {
        /// Market index.
        market: u32,
        /// Per-market book sequence.
        market_seq: u64,
        /// 0 bids, 1 asks.
        side: u8,
        /// Price in ticks.
        price_ticks: u64,
        /// Total lots resting at the level (0 = level gone).
        size_lots: u64,
        /// Orders at the level.
        orders: u32,
    },
    /// One balance change, with the balance after it.
    Ledger {
        /// Wallet.
        owner: Owner,
        /// Asset index.
        asset: u8,
        /// Why.
        business: Business,
        /// Business id (order id, "market:fill", deposit key, withdrawal id).
        business_id: String,
        /// Change of available atoms.
        available_delta: i128,
        /// Change of frozen atoms.
        frozen_delta: i128,
        /// Available after.
        available: u64,
        /// Frozen after.
        frozen: u64,
        /// Version of the balance after (one per change).
        version: u64,
    },
    /// A deposit was credited.
    DepositCredited {
        /// Wallet.
        owner: Owner,
        /// Asset index.
        asset: u8,
        /// Atoms.
        amount: u64,
        /// Transaction signature (base58 on the API; hex here).
        tx: String,
        /// Instruction index.
        ix_index: u16,
    },
    /// A withdrawal changed state.
    Withdrawal {
        /// Withdrawal id (sequence of the request).
        id: Seq,
        /// Wallet.
        owner: Owner,
        /// Asset index.
        asset: u8,
        /// Atoms.
        amount: u64,
        /// New state.
        status: WithdrawalStatus,
        /// How it is paid out.
        kind: WithdrawalKind,
        /// A signature (hex): while Broadcasting, the operator's signature of the co-signed
        /// transaction; once Confirmed, the landed transaction's id; for the exit hatch, the
        /// `request_withdrawal` and then the `execute_withdrawal` transaction.
        tx: Option<String>,
        /// Last block height at which a co-signed transaction can land.
        last_valid_block_height: Option<u64>,
    },
    /// A fill's settlement state changed.
    Settlement {
        /// Market.
        market: u32,
        /// Fill id.
        fill_id: u64,
        /// New state.
        status: SettlementStatus,
    },
    /// The on-chain cancel floor of a wallet rose.
    NonceFloor {
        /// Wallet.
        owner: Owner,
        /// Floor.
        floor: u64,
    },
}

/// Withdrawal states: Pending → Broadcasting → Confirmed, or Failed (funds released).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalStatus {
    /// Funds held, awaiting the co-signed transaction (or, for the exit hatch, its execution).
    Pending,
    /// The co-signed transaction was handed to the owner; it lands or expires.
    Broadcasting,
    /// Tokens left the vault.
    Confirmed,
    /// Failed; funds released.
    Failed,
}

/// An event with its place in the global sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequenced {
    /// Sequence number of the command that produced the event.
    pub seq: Seq,
    /// Index of the event among that command's events.
    pub index: u32,
    /// Command timestamp, unix milliseconds.
    pub timestamp_ms: u64,
    /// The event.
    pub event: Event,
}

#[cfg(test)]
mod tests {
    #[test]
    fn to_hex_is_the_lower_case_hex_of_every_byte() {
        let every: Vec<u8> = (0..=255u8).collect();
        assert_eq!(super::to_hex(&every), hex::encode(&every));
        assert_eq!(super::to_hex(&[0x0a, 0xf0]), "0af0");
        assert_eq!(super::to_hex(&[]), "");
    }
}
