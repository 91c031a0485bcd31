use crate::constants::USER_SEED;
use crate::error::KestrelError;
use crate::events::Deposited;
use crate::math::SafeMath;
use crate::state::{Exchange, UserAccount};
use anchor_lang::prelude::*;
use anchor_spl::token::{self, Token, TokenAccount, Transfer};

#[derive(Accounts)]
pub struct Deposit<'info> {
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
    #[account(mut, constraint = source.key() != vault.key() @ KestrelError::WrongVault)]
    pub source: Account<'info, TokenAccount>,
    pub token_program: Program<'info, Token>,
}

/// Moves `amount` atoms from the owner's token account into the vault of asset `asset` and
/// credits what the vault actually received.
pub fn deposit(ctx: Context<Deposit>, asset: u8, amount: u64) -> Result<()> {
    require!(amount > 0, KestrelError::ZeroAmount);
    require!(
        ctx.accounts.exchange.load()?.deposits_paused == 0,
        KestrelError::DepositsPaused
    );
    super::check_vault_and_mint(
        &ctx.accounts.exchange,
        asset,
        &ctx.accounts.vault,
        &ctx.accounts.source,
    )?;
    let before = ctx.accounts.vault.amount;
    token::transfer(
        CpiContext::new(
            ctx.accounts.token_program.key(),
            Transfer {
                from: ctx.accounts.source.to_account_info(),
                to: ctx.accounts.vault.to_account_info(),
                authority: ctx.accounts.owner.to_account_info(),
            },
        ),
        amount,
    )?;
    ctx.accounts.vault.reload()?;
    let received = ctx.accounts.vault.amount.safe_sub(before)?;
    require!(received > 0, KestrelError::NothingReceived);

    let mut user = ctx.accounts.user.load_mut()?;
    let balance = user.balance_mut(asset)?;
    balance.available = balance.available.safe_add(received)?;
    balance.deposited = balance.deposited.safe_add(received)?;
    emit!(Deposited {
        owner: ctx.accounts.owner.key(),
        asset,
        amount: received,
        deposited_total: balance.deposited,
    });
    Ok(())
}
