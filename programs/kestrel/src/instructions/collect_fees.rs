use super::pay_from_vault;
use crate::error::KestrelError;
use crate::math::SafeMath;
use crate::state::{Exchange, Market};
use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

#[derive(Accounts)]
pub struct CollectFees<'info> {
    pub exchange: AccountLoader<'info, Exchange>,
    #[account(mut, has_one = exchange)]
    pub market: AccountLoader<'info, Market>,
    #[account(mut)]
    pub vault: Account<'info, TokenAccount>,
    /// Must belong to the exchange's fee collector; anyone may crank the payout.
    #[account(
        mut,
        constraint = destination.owner == exchange.load()?.fee_collector @ KestrelError::Unauthorized
    )]
    pub destination: Account<'info, TokenAccount>,
    pub token_program: Program<'info, Token>,
}

/// Pays the market's accrued fees (quote atoms) to the fee collector's token account.
pub fn collect_fees(ctx: Context<CollectFees>) -> Result<()> {
    let quote_asset = ctx.accounts.market.load()?.quote_asset;
    super::check_vault_and_mint(
        &ctx.accounts.exchange,
        quote_asset,
        &ctx.accounts.vault,
        &ctx.accounts.destination,
    )?;
    let amount = {
        let mut market = ctx.accounts.market.load_mut()?;
        let amount = market.fees_accrued;
        require!(amount > 0, KestrelError::ZeroAmount);
        market.fees_accrued = 0;
        market.fees_collected = market.fees_collected.safe_add(amount)?;
        amount
    };
    pay_from_vault(
        &ctx.accounts.token_program,
        &ctx.accounts.exchange,
        &ctx.accounts.vault,
        &ctx.accounts.destination,
        amount,
    )
}
