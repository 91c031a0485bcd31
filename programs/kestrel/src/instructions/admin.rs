//! The admin's small, slow powers: rotate the operator, announce fees, pause. None moves funds.

use crate::constants::MAX_FEE_BPS;
use crate::error::KestrelError;
use crate::events::FeesAnnounced;
use crate::math::SafeMath;
use crate::state::{Exchange, Market};
use anchor_lang::prelude::*;

#[derive(Accounts)]
pub struct AdminOnly<'info> {
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ KestrelError::Unauthorized)]
    pub exchange: AccountLoader<'info, Exchange>,
}

#[derive(Accounts)]
pub struct AdminMarket<'info> {
    pub admin: Signer<'info>,
    #[account(has_one = admin @ KestrelError::Unauthorized)]
    pub exchange: AccountLoader<'info, Exchange>,
    #[account(mut, has_one = exchange)]
    pub market: AccountLoader<'info, Market>,
}

/// Replaces the operator key, effective immediately (the operator can delay users, never rob
/// them, so a compromised operator must be replaceable at once).
pub fn set_operator(ctx: Context<AdminOnly>, new_operator: Pubkey) -> Result<()> {
    let mut exchange = ctx.accounts.exchange.load_mut()?;
    require_keys_neq!(
        exchange.operator,
        new_operator,
        KestrelError::OperatorUnchanged
    );
    exchange.operator = new_operator;
    Ok(())
}

/// Pauses or resumes settlement and deposits. The exit hatch ignores both flags.
pub fn set_pause(ctx: Context<AdminOnly>, settlement: bool, deposits: bool) -> Result<()> {
    let mut exchange = ctx.accounts.exchange.load_mut()?;
    exchange.settlement_paused = u8::from(settlement);
    exchange.deposits_paused = u8::from(deposits);
    Ok(())
}

/// Announces new fees (capped), effective after the exchange's fee-change delay.
pub fn set_fees(ctx: Context<AdminMarket>, maker_fee_bps: u16, taker_fee_bps: u16) -> Result<()> {
    require!(
        maker_fee_bps <= MAX_FEE_BPS && taker_fee_bps <= MAX_FEE_BPS,
        KestrelError::FeeAboveCap
    );
    let delay = ctx.accounts.exchange.load()?.fee_change_delay_slots;
    let slot = Clock::get()?.slot;
    let effective_slot = slot.safe_add(delay)?.max(1);
    let mut market = ctx.accounts.market.load_mut()?;
    market.apply_due_fee_change(slot);
    market.pending_maker_fee_bps = maker_fee_bps;
    market.pending_taker_fee_bps = taker_fee_bps;
    market.fee_effective_slot = effective_slot;
    emit!(FeesAnnounced {
        market: market.index,
        maker_fee_bps,
        taker_fee_bps,
        effective_slot,
    });
    Ok(())
}
