use super::create_pda;
use crate::constants::{MAX_ASSETS, VAULT_SEED};
use crate::error::KestrelError;
use crate::state::{AssetInfo, Exchange};
use anchor_lang::prelude::*;
use anchor_spl::token::{self, InitializeAccount3, Mint, Token, TokenAccount};

#[derive(Accounts)]
pub struct AddAsset<'info> {
    #[account(mut)]
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ KestrelError::Unauthorized)]
    pub exchange: AccountLoader<'info, Exchange>,
    pub mint: Account<'info, Mint>,
    /// Program-owned vault; its token authority is the exchange PDA. Created by the handler
    /// even if pre-funded (see `instructions::pda`).
    /// CHECK: canonical PDA, still the system program's; the handler creates the token account.
    #[account(
        mut,
        seeds = [VAULT_SEED, exchange.key().as_ref(), mint.key().as_ref()],
        bump,
        constraint = vault.owner == &System::id() @ KestrelError::AlreadyInitialized
    )]
    pub vault: UncheckedAccount<'info>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

pub fn add_asset(ctx: Context<AddAsset>) -> Result<()> {
    let accounts = &ctx.accounts;
    let (exchange_key, mint_key) = (accounts.exchange.key(), accounts.mint.key());
    {
        let mut exchange = accounts.exchange.load_mut()?;
        let index = usize::from(exchange.num_assets);
        require!(index < MAX_ASSETS, KestrelError::AssetTableFull);
        let slot = exchange
            .assets
            .get_mut(index)
            .ok_or(KestrelError::AssetTableFull)?;
        *slot = AssetInfo {
            mint: mint_key,
            vault: accounts.vault.key(),
            decimals: accounts.mint.decimals,
            vault_bump: ctx.bumps.vault,
            _padding: [0; 6],
        };
        exchange.num_assets = exchange.num_assets.saturating_add(1);
    }

    create_pda(
        &accounts.admin,
        &accounts.vault,
        &accounts.system_program,
        TokenAccount::LEN,
        &accounts.token_program.key(),
        &[
            VAULT_SEED,
            exchange_key.as_ref(),
            mint_key.as_ref(),
            &[ctx.bumps.vault],
        ],
    )?;
    token::initialize_account3(CpiContext::new(
        accounts.token_program.key(),
        InitializeAccount3 {
            account: accounts.vault.to_account_info(),
            mint: accounts.mint.to_account_info(),
            authority: accounts.exchange.to_account_info(),
        },
    ))
}
