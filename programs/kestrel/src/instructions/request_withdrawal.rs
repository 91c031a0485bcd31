use crate::constants::USER_SEED;
use crate::error::KestrelError;
use crate::events::WithdrawalRequested;
use crate::math::SafeMath;
use crate::state::{Exchange, UserAccount};
use anchor_lang::prelude::*;

#[derive(Accounts)]
pub struct RequestWithdrawal<'info> {
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
}

/// First half of the exit without the operator: sets `amount` aside; executable after the
/// exchange's withdrawal delay. A further request adds to the pending amount and restarts the
/// delay. Works while paused.
pub fn request_withdrawal(ctx: Context<RequestWithdrawal>, asset: u8, amount: u64) -> Result<()> {
    require!(amount > 0, KestrelError::ZeroAmount);
    let delay = {
        let exchange = ctx.accounts.exchange.load()?;
        exchange.asset_at(asset)?;
        exchange.withdrawal_delay_slots
    };
    let ready_slot = Clock::get()?.slot.safe_add(delay)?;
    let mut user = ctx.accounts.user.load_mut()?;
    let balance = user.balance_mut(asset)?;
    balance.available = balance
        .available
        .checked_sub(amount)
        .ok_or(KestrelError::InsufficientBalance)?;
    balance.pending_withdrawal = balance.pending_withdrawal.safe_add(amount)?;
    balance.withdrawal_ready_slot = ready_slot;
    emit!(WithdrawalRequested {
        owner: ctx.accounts.owner.key(),
        asset,
        pending: balance.pending_withdrawal,
        ready_slot,
    });
    Ok(())
}
