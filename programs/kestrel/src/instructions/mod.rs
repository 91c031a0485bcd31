//! One file per instruction: its accounts struct and its handler.

pub mod add_asset;
pub mod admin;
pub mod cancel_up_to;
pub mod collect_fees;
pub mod create_market;
pub mod create_user;
pub mod deposit;
pub mod execute_withdrawal;
pub mod initialize_exchange;
mod pda;
pub mod request_withdrawal;
pub mod settle;
pub mod withdraw;

pub use add_asset::*;
pub use admin::*;
pub use cancel_up_to::*;
pub use collect_fees::*;
pub use create_market::*;
pub use create_user::*;
pub use deposit::*;
pub use execute_withdrawal::*;
pub use initialize_exchange::*;
pub use request_withdrawal::*;
pub use settle::*;
pub use withdraw::*;

pub(crate) use pda::{create_pda, create_zero_copy};

use crate::constants::EXCHANGE_SEED;
use crate::state::Exchange;
use anchor_lang::prelude::*;
use anchor_spl::token::{self, Token, TokenAccount, Transfer};

/// Pays `amount` atoms out of a vault, signed by the exchange PDA (the vaults' authority).
pub(crate) fn pay_from_vault<'info>(
    token_program: &Program<'info, Token>,
    exchange: &AccountLoader<'info, Exchange>,
    vault: &Account<'info, TokenAccount>,
    to: &Account<'info, TokenAccount>,
    amount: u64,
) -> Result<()> {
    let (domain, bump) = {
        let exchange = exchange.load()?;
        (exchange.domain_id.to_le_bytes(), exchange.bump)
    };
    let seeds: &[&[u8]] = &[EXCHANGE_SEED, &domain, &[bump]];
    token::transfer(
        CpiContext::new_with_signer(
            token_program.key(),
            Transfer {
                from: vault.to_account_info(),
                to: to.to_account_info(),
                authority: exchange.to_account_info(),
            },
            &[seeds],
        ),
        amount,
    )
}

/// Checks that `vault` is the registered vault of `asset` and that `counterparty` holds its mint.
pub(crate) fn check_vault_and_mint(
    exchange: &AccountLoader<Exchange>,
    asset: u8,
    vault: &Account<TokenAccount>,
    counterparty: &Account<TokenAccount>,
) -> Result<()> {
    let exchange = exchange.load()?;
    let info = exchange.asset_at(asset)?;
    require_keys_eq!(
        vault.key(),
        info.vault,
        crate::error::KestrelError::WrongVault
    );
    require_keys_eq!(
        counterparty.mint,
        info.mint,
        crate::error::KestrelError::WrongMint
    );
    Ok(())
}
