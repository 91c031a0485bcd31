use crate::constants::MAX_ASSETS;
use crate::error::KestrelError;
use anchor_lang::prelude::*;

/// One registered mint and its program-owned vault.
#[zero_copy]
#[derive(Debug, Default)]
pub struct AssetInfo {
    /// SPL Token mint.
    pub mint: Pubkey,
    /// Token account holding every deposit of this mint; PDA `[VAULT_SEED, exchange, mint]`.
    pub vault: Pubkey,
    /// Mint decimals, copied at registration for the API edge.
    pub decimals: u8,
    /// Bump of the vault PDA.
    pub vault_bump: u8,
    /// Reserved.
    pub _padding: [u8; 6],
}

/// A deployment of the exchange: authorities, delays, pause flags and the asset table.
#[account(zero_copy)]
#[derive(Debug)]
pub struct Exchange {
    /// May add assets and markets, rotate the operator, change fees and pause. Never moves funds.
    pub admin: Pubkey,
    /// Co-signs immediate withdrawals and is the only account allowed to settle.
    pub operator: Pubkey,
    /// Owner of the token accounts that collected fees are paid to.
    pub fee_collector: Pubkey,
    /// Deployment id; part of the exchange PDA seeds.
    pub domain_id: u64,
    /// Slots between `request_withdrawal` and `execute_withdrawal`.
    pub withdrawal_delay_slots: u64,
    /// Slots between announcing a fee change and its taking effect.
    pub fee_change_delay_slots: u64,
    /// Number of markets created; the next market's index.
    pub num_markets: u32,
    /// Number of registered assets.
    pub num_assets: u8,
    /// 1 when settlement is paused.
    pub settlement_paused: u8,
    /// 1 when deposits are paused.
    pub deposits_paused: u8,
    /// Bump of the exchange PDA.
    pub bump: u8,
    /// Registered assets; index = asset id used by markets and user balances.
    pub assets: [AssetInfo; MAX_ASSETS],
    /// Reserved for upgrades.
    pub _reserved: [u8; 128],
}

const _: () = assert!(core::mem::size_of::<Exchange>() == 96 + 24 + 8 + 72 * MAX_ASSETS + 128);

impl Exchange {
    /// Account size including the discriminator.
    pub const SPACE: usize = 8 + core::mem::size_of::<Exchange>();

    /// The registered asset at `index` with this mint, or `AssetMismatch`.
    pub fn asset(&self, index: u8, mint: &Pubkey) -> Result<&AssetInfo> {
        let asset = self.asset_at(index)?;
        require_keys_eq!(asset.mint, *mint, KestrelError::AssetMismatch);
        Ok(asset)
    }

    /// The registered asset at `index`, or `AssetMismatch`.
    pub fn asset_at(&self, index: u8) -> Result<&AssetInfo> {
        if index >= self.num_assets {
            return err!(KestrelError::AssetMismatch);
        }
        self.assets
            .get(usize::from(index))
            .ok_or_else(|| error!(KestrelError::AssetMismatch))
    }
}
