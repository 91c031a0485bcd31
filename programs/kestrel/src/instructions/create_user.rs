use super::create_zero_copy;
use crate::constants::USER_SEED;
use crate::error::KestrelError;
use crate::state::{Exchange, UserAccount};
use anchor_lang::prelude::*;

#[derive(Accounts)]
pub struct CreateUser<'info> {
    #[account(mut)]
    pub owner: Signer<'info>,
    pub exchange: AccountLoader<'info, Exchange>,
    /// The new user account; created by the handler even if pre-funded (see `instructions::pda`).
    /// CHECK: canonical PDA, still the system program's; the handler creates the `UserAccount`.
    #[account(
        mut,
        seeds = [USER_SEED, exchange.key().as_ref(), owner.key().as_ref()],
        bump,
        constraint = user.owner == &System::id() @ KestrelError::AlreadyInitialized
    )]
    pub user: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

pub fn create_user<'info>(ctx: Context<'info, CreateUser<'info>>) -> Result<()> {
    let accounts: &'info CreateUser<'info> = ctx.accounts;
    let bump = ctx.bumps.user;
    let (exchange, owner) = (accounts.exchange.key(), accounts.owner.key());
    let loader = create_zero_copy::<UserAccount>(
        &accounts.owner,
        accounts.user.as_ref(),
        &accounts.system_program,
        &[USER_SEED, exchange.as_ref(), owner.as_ref(), &[bump]],
    )?;
    let mut user = loader.load_mut()?;
    user.owner = owner;
    user.exchange = exchange;
    user.bump = bump;
    Ok(())
}
