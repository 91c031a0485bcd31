//! The wallet's private updates as typed values (the router's events; wallets as hex). A
//! private update of a kind this SDK does not know arrives as [`Data::Private`](super::Data).

use serde::{Deserialize, Serialize};

/// An update on the `orders` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderUpdate {
    /// An order entered the engine.
    OrderAccepted {
        /// Router-assigned order id.
        order_id: u64,
        /// Market index.
        market: u32,
        /// 0 buy, 1 sell.
        side: u8,
        /// Limit price in ticks.
        price_ticks: u64,
        /// Size in lots.
        size_lots: u64,
        /// Signed nonce.
        nonce: u64,
        /// Client order id as signed.
        client_order_id: u64,
    },
    /// A resting order took new signed terms (same order id).
    OrderReplaced {
        /// Order id.
        order_id: u64,
        /// Market index.
        market: u32,
        /// Nonce of the terms replaced.
        old_nonce: u64,
        /// New nonce.
        nonce: u64,
        /// New limit price in ticks.
        price_ticks: u64,
        /// New remaining size in lots.
        size_lots: u64,
    },
    /// An order left the book or never rested.
    OrderDone {
        /// Order id.
        order_id: u64,
        /// Market index.
        market: u32,
        /// Why: `filled`, `cancelled`, `expired`, `self_trade` or `unmatched`.
        reason: String,
        /// Lots that did not fill.
        remaining_lots: u64,
    },
    /// A command of the wallet was refused; nothing changed.
    Rejected {
        /// The refusal as the router reports it.
        reason: serde_json::Value,
    },
    /// The wallet's on-chain cancel floor rose.
    NonceFloor {
        /// Orders with a nonce below it are dead.
        floor: u64,
    },
}

/// A ledger entry on the `balances` channel: one balance change and the balance after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceUpdate {
    /// Asset index.
    pub asset: u8,
    /// Why (`deposit`, `order_hold`, `fill_pay`, ...).
    pub business: String,
    /// Business id (order id, `market:fill`, deposit key, withdrawal id).
    pub business_id: String,
    /// Change of available atoms.
    pub available_delta: i128,
    /// Change of frozen atoms.
    pub frozen_delta: i128,
    /// Available atoms after.
    pub available: u64,
    /// Frozen atoms after.
    pub frozen: u64,
    /// Version of the balance after (one per change).
    pub version: u64,
}

/// A credited deposit on the `deposits` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositUpdate {
    /// Asset index.
    pub asset: u8,
    /// Atoms.
    pub amount: u64,
    /// Transaction signature.
    pub tx: String,
    /// Instruction index within it.
    pub ix_index: u16,
}

/// A withdrawal's state change on the `withdrawals` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalUpdate {
    /// Withdrawal id.
    pub id: u64,
    /// Asset index.
    pub asset: u8,
    /// Atoms.
    pub amount: u64,
    /// `pending`, `broadcasting`, `confirmed` or `failed`.
    pub status: String,
}

/// A fill's settlement state change on the `settlement` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementUpdate {
    /// Market index.
    pub market: u32,
    /// Fill id.
    pub fill_id: u64,
    /// `pending`, `submitted`, `confirmed` or `quarantined`.
    pub status: String,
}
