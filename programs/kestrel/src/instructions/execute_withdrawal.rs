use super::pay_from_vault;
use crate::constants::USER_SEED;
use crate::error::KestrelError;
use crate::events::Withdrawn;
use crate::math::SafeMath;
use crate::state::{Exchange, UserAccount};
use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

#[derive(Accounts)]
pub struct ExecuteWithdrawal<'info> {
    pub owner: Signer<'info>,
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

/// Second half of the exit without the operator: pays out the whole pending amount once the
/// delay has passed. Needs only the owner's signature; works while paused.
pub fn execute_withdrawal(ctx: Context<ExecuteWithdrawal>, asset: u8) -> Result<()> {
    super::check_vault_and_mint(
        &ctx.accounts.exchange,
        asset,
        &ctx.accounts.vault,
        &ctx.accounts.destination,
    )?;
    let slot = Clock::get()?.slot;
    let amount = {
        let mut user = ctx.accounts.user.load_mut()?;
        let balance = user.balance_mut(asset)?;
        require!(
            balance.pending_withdrawal > 0,
            KestrelError::NoPendingWithdrawal
        );
        require!(
            slot >= balance.withdrawal_ready_slot,
            KestrelError::WithdrawalNotReady
        );
        let amount = balance.pending_withdrawal;
        balance.pending_withdrawal = 0;
        balance.withdrawal_ready_slot = 0;
        balance.withdrawn = balance.withdrawn.safe_add(amount)?;
        amount
    };
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
        delayed: true,
    });
    Ok(())
}
