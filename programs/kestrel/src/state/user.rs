use crate::constants::MAX_ASSETS;
use crate::error::KestrelError;
use anchor_lang::prelude::*;

/// One user's holdings of one asset. The cumulative counters only ever grow, so anyone can
/// reconcile from account state alone:
/// `available + pending_withdrawal == deposited + settled_in - settled_out - fees_paid - withdrawn`.
#[zero_copy]
#[derive(Debug, Default)]
pub struct AssetBalance {
    /// Atoms free to trade or withdraw.
    pub available: u64,
    /// Atoms set aside by `request_withdrawal`, awaiting `execute_withdrawal`.
    pub pending_withdrawal: u64,
    /// Slot from which the pending withdrawal may execute.
    pub withdrawal_ready_slot: u64,
    /// Atoms ever credited by deposits.
    pub deposited: u64,
    /// Atoms ever paid out by withdrawals (immediate and delayed).
    pub withdrawn: u64,
    /// Atoms ever received from fills (before fees).
    pub settled_in: u64,
    /// Atoms ever paid into fills.
    pub settled_out: u64,
    /// Atoms ever paid as fees.
    pub fees_paid: u64,
}

/// A user's account on one exchange: the on-chain cancel floor and one balance per asset.
/// PDA `[USER_SEED, exchange, owner]`.
#[account(zero_copy)]
#[derive(Debug)]
pub struct UserAccount {
    /// Wallet that owns the balances and signs orders.
    pub owner: Pubkey,
    /// Exchange this account belongs to.
    pub exchange: Pubkey,
    /// Orders with a nonce strictly below this are dead.
    pub nonce_floor: u64,
    /// Bump of the PDA.
    pub bump: u8,
    /// Reserved.
    pub _padding: [u8; 7],
    /// Balances indexed by the exchange's asset index.
    pub balances: [AssetBalance; MAX_ASSETS],
    /// Reserved for upgrades.
    pub _reserved: [u8; 128],
}

const _: () = assert!(core::mem::size_of::<UserAccount>() == 64 + 16 + 64 * MAX_ASSETS + 128);

impl UserAccount {
    /// Account size including the discriminator.
    pub const SPACE: usize = 8 + core::mem::size_of::<UserAccount>();

    /// Balance slot of an asset index.
    pub fn balance_mut(&mut self, asset: u8) -> Result<&mut AssetBalance> {
        self.balances
            .get_mut(usize::from(asset))
            .ok_or_else(|| error!(KestrelError::AssetMismatch))
    }

    /// Balance slot of an asset index.
    pub fn balance(&self, asset: u8) -> Result<&AssetBalance> {
        self.balances
            .get(usize::from(asset))
            .ok_or_else(|| error!(KestrelError::AssetMismatch))
    }
}
