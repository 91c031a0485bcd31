//! Events, with the unit of every field. On a real cluster they reach the transaction logs;
//! listeners may read them, but everything they say is also derivable from the instruction and
//! the account state (natively run programs do not log events).

use anchor_lang::prelude::*;

/// Tokens arrived in a vault and were credited to a user.
#[event]
pub struct Deposited {
    /// Wallet credited.
    pub owner: Pubkey,
    /// Asset index.
    pub asset: u8,
    /// Atoms the vault actually received and the user was credited.
    pub amount: u64,
    /// User's cumulative deposited atoms after this deposit.
    pub deposited_total: u64,
}

/// Tokens left a vault (immediate co-signed withdrawal or executed delayed withdrawal).
#[event]
pub struct Withdrawn {
    /// Wallet debited.
    pub owner: Pubkey,
    /// Asset index.
    pub asset: u8,
    /// Atoms paid out.
    pub amount: u64,
    /// True for the delayed, owner-only path.
    pub delayed: bool,
}

/// A user set funds aside for the delayed exit.
#[event]
pub struct WithdrawalRequested {
    /// Wallet.
    pub owner: Pubkey,
    /// Asset index.
    pub asset: u8,
    /// Atoms now pending (all requests so far).
    pub pending: u64,
    /// Slot from which `execute_withdrawal` succeeds.
    pub ready_slot: u64,
}

/// A user raised the on-chain cancel floor.
#[event]
pub struct NonceFloorRaised {
    /// Wallet.
    pub owner: Pubkey,
    /// Orders with a nonce strictly below this are dead.
    pub nonce_floor: u64,
}

/// One fill moved balances.
#[event]
pub struct FillSettled {
    /// Market index.
    pub market: u32,
    /// Off-chain fill id (strictly increasing per market).
    pub fill_id: u64,
    /// Maker wallet.
    pub maker: Pubkey,
    /// Maker order nonce.
    pub maker_nonce: u64,
    /// Taker wallet.
    pub taker: Pubkey,
    /// Taker order nonce.
    pub taker_nonce: u64,
    /// Execution price in ticks.
    pub price_ticks: u64,
    /// Size in base lots.
    pub size_lots: u64,
    /// Maker fee in quote atoms.
    pub maker_fee: u64,
    /// Taker fee in quote atoms.
    pub taker_fee: u64,
}

/// An announced fee change.
#[event]
pub struct FeesAnnounced {
    /// Market index.
    pub market: u32,
    /// New maker fee in basis points.
    pub maker_fee_bps: u16,
    /// New taker fee in basis points.
    pub taker_fee_bps: u16,
    /// Slot from which they apply.
    pub effective_slot: u64,
}
