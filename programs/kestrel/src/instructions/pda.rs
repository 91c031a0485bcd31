//! Creating the program's PDAs so that nobody can block them by sending lamports first.
//!
//! Anchor's `init` fails on an address that already holds lamports (it falls back to the
//! system program's `CreateAccountAllowPrefund`, which not every cluster knows), and a plain
//! `create_account` fails with `AccountAlreadyInUse`. Anyone can pre-fund a PDA address, so
//! both would let a stranger block an exchange, a market, a vault or a user account for ever.

use anchor_lang::prelude::*;
use anchor_lang::system_program::{self, Allocate, Assign, CreateAccount, Transfer};
use anchor_lang::{Discriminator, Owner, ZeroCopy};

use crate::error::KestrelError;

/// Creates the account at the PDA `account`, `space` bytes owned by `owner`, with `payer`
/// topping it up to rent exemption; `signer` is the PDA's seeds with its bump. An address that
/// already holds lamports (but is still the system program's) is allocated and assigned in
/// place instead of created.
pub(crate) fn create_pda<'info>(
    payer: &AccountInfo<'info>,
    account: &AccountInfo<'info>,
    system_program: &Program<'info, System>,
    space: usize,
    owner: &Pubkey,
    signer: &[&[u8]],
) -> Result<()> {
    let rent = Rent::get()?.minimum_balance(space);
    let system = system_program.key();
    let space_u64 = u64::try_from(space).map_err(|_| error!(KestrelError::MathOverflow))?;
    if account.lamports() == 0 {
        return system_program::create_account(
            CpiContext::new_with_signer(
                system,
                CreateAccount {
                    from: payer.clone(),
                    to: account.clone(),
                },
                &[signer],
            ),
            rent,
            space_u64,
            owner,
        );
    }
    let shortfall = rent.saturating_sub(account.lamports());
    if shortfall > 0 {
        system_program::transfer(
            CpiContext::new(
                system,
                Transfer {
                    from: payer.clone(),
                    to: account.clone(),
                },
            ),
            shortfall,
        )?;
    }
    system_program::allocate(
        CpiContext::new_with_signer(
            system,
            Allocate {
                account_to_allocate: account.clone(),
            },
            &[signer],
        ),
        space_u64,
    )?;
    system_program::assign(
        CpiContext::new_with_signer(
            system,
            Assign {
                account_to_assign: account.clone(),
            },
            &[signer],
        ),
        owner,
    )
}

/// Creates a zero-copy account of type `T` (owned by this program) at the PDA `account`, as
/// [`create_pda`] does, writes its discriminator and returns its loader for filling in.
pub(crate) fn create_zero_copy<'info, T: ZeroCopy + Owner + Discriminator>(
    payer: &AccountInfo<'info>,
    account: &'info AccountInfo<'info>,
    system_program: &Program<'info, System>,
    signer: &[&[u8]],
) -> Result<AccountLoader<'info, T>> {
    let space = T::DISCRIMINATOR
        .len()
        .checked_add(core::mem::size_of::<T>())
        .ok_or(KestrelError::MathOverflow)?;
    create_pda(payer, account, system_program, space, &T::owner(), signer)?;
    account
        .try_borrow_mut_data()?
        .get_mut(..T::DISCRIMINATOR.len())
        .ok_or(ErrorCode::AccountDidNotSerialize)?
        .copy_from_slice(T::DISCRIMINATOR);
    AccountLoader::try_from(account)
}
