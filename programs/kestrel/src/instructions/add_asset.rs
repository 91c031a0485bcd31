use crate::constants::{MAX_ASSETS, VAULT_SEED};
use crate::error::KestrelError;
use crate::state::{AssetInfo, Exchange};
use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

#[derive(Accounts)]
pub struct AddAsset<'info> {
    #[account(mut)]
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ KestrelError::Unauthorized)]
    pub exchange: AccountLoader<'info, Exchange>,
    pub mint: Account<'info, Mint>,
    /// Program-owned vault; its token authority is the exchange PDA.
    #[account(
        init,
        payer = admin,
        seeds = [VAULT_SEED, exchange.key().as_ref(), mint.key().as_ref()],
        bump,
        token::mint = mint,
        token::authority = exchange,
        token::token_program = token_program
    )]
    pub vault: Account<'info, TokenAccount>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

pub fn add_asset(ctx: Context<AddAsset>) -> Result<()> {
    let mut exchange = ctx.accounts.exchange.load_mut()?;
    let index = usize::from(exchange.num_assets);
    require!(index < MAX_ASSETS, KestrelError::AssetTableFull);
    let slot = exchange
        .assets
        .get_mut(index)
        .ok_or(KestrelError::AssetTableFull)?;
    *slot = AssetInfo {
        mint: ctx.accounts.mint.key(),
        vault: ctx.accounts.vault.key(),
        decimals: ctx.accounts.mint.decimals,
        vault_bump: ctx.bumps.vault,
        _padding: [0; 6],
    };
    exchange.num_assets = exchange.num_assets.saturating_add(1);
    Ok(())
}
