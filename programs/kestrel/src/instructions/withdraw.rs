use super::pay_from_vault;
use crate::constants::USER_SEED;
use crate::error::KestrelError;
use crate::events::Withdrawn;
use crate::math::SafeMath;
use crate::state::{Exchange, UserAccount};
use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

#[derive(Accounts)]
pub struct Withdraw<'info> {
    pub owner: Signer<'info>,
    /// The operator co-signs only what the off-chain ledger can release.
    pub operator: Signer<'info>,
    #[account(has_one = operator @ KestrelError::NotOperator)]
    pub exchange: AccountLoader<'info, Exchange>,
    #[account(
        mut,
        seeds = [USER_SEED, exchange.key().as_ref(), owner.key().as_ref()],
        bump = user.load()?.bump,
        has_one = owner @ KestrelError::NotOwner,
        has_one = exchange,
    )]
    pub user: AccountLoader<'info, UserAccount>,
    #[account(mut)]
    pub vault: Account<'info, TokenAccount>,
    #[account(mut, constraint = destination.key() != vault.key() @ KestrelError::WrongVault)]
    pub destination: Account<'info, TokenAccount>,
    pub token_program: Program<'info, Token>,
}

/// Immediate withdrawal with the operator's co-signature. Not blocked by pause.
pub fn withdraw(ctx: Context<Withdraw>, asset: u8, amount: u64) -> Result<()> {
    require!(amount > 0, KestrelError::ZeroAmount);
    super::check_vault_and_mint(
        &ctx.accounts.exchange,
        asset,
        &ctx.accounts.vault,
        &ctx.accounts.destination,
    )?;
    {
        let mut user = ctx.accounts.user.load_mut()?;
        let balance = user.balance_mut(asset)?;
        balance.available = balance
            .available
            .checked_sub(amount)
            .ok_or(KestrelError::InsufficientBalance)?;
        balance.withdrawn = balance.withdrawn.safe_add(amount)?;
    }
    pay_from_vault(
        &ctx.accounts.token_program,
        &ctx.accounts.exchange,
        &ctx.accounts.vault,
        &ctx.accounts.destination,
        amount,
    )?;
    emit!(Withdrawn {
        owner: ctx.accounts.owner.key(),
        asset,
        amount,
        delayed: false,
    });
    Ok(())
}
