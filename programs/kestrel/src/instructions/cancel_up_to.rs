use crate::constants::USER_SEED;
use crate::error::KestrelError;
use crate::events::NonceFloorRaised;
use crate::state::{Exchange, UserAccount};
use anchor_lang::prelude::*;

#[derive(Accounts)]
pub struct CancelUpTo<'info> {
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

/// Kills, on-chain, every order of the owner with a nonce strictly below `nonce_floor`.
pub fn cancel_up_to(ctx: Context<CancelUpTo>, nonce_floor: u64) -> Result<()> {
    let mut user = ctx.accounts.user.load_mut()?;
    require!(
        nonce_floor > user.nonce_floor,
        KestrelError::CancelFloorNotIncreasing
    );
    user.nonce_floor = nonce_floor;
    emit!(NonceFloorRaised {
        owner: ctx.accounts.owner.key(),
        nonce_floor,
    });
    Ok(())
}
