use crate::constants::USER_SEED;
use crate::state::{Exchange, UserAccount};
use anchor_lang::prelude::*;

#[derive(Accounts)]
pub struct CreateUser<'info> {
    #[account(mut)]
    pub owner: Signer<'info>,
    pub exchange: AccountLoader<'info, Exchange>,
    #[account(
        init,
        payer = owner,
        space = UserAccount::SPACE,
        seeds = [USER_SEED, exchange.key().as_ref(), owner.key().as_ref()],
        bump
    )]
    pub user: AccountLoader<'info, UserAccount>,
    pub system_program: Program<'info, System>,
}

pub fn create_user(ctx: Context<CreateUser>) -> Result<()> {
    let mut user = ctx.accounts.user.load_init()?;
    user.owner = ctx.accounts.owner.key();
    user.exchange = ctx.accounts.exchange.key();
    user.bump = ctx.bumps.user;
    Ok(())
}
