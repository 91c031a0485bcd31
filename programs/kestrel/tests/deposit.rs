//! Deposits: the owner moves SPL tokens into the asset's vault and is credited exactly what the
//! vault received; every substituted account is rejected with its own error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod program_test;

use anchor_lang::error::ErrorCode as AnchorError;
use kestrel::error::KestrelError;
use program_test::*;
use solana_program_test::BanksClientError;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use spl_token_interface::error::TokenError;

const TOKEN_2022: Pubkey = Pubkey::from_str_const("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");

/// Sends `ix` signed by `user` and asserts that it failed with `check` and moved nothing.
async fn assert_rejected(
    t: &mut TestExchange,
    ix: Instruction,
    user: &TestUser,
    check: impl FnOnce(Result<(), BanksClientError>),
) {
    let before = t.holdings().await;
    let wallet_tokens = (
        t.token_balance(&user.base_ata).await,
        t.token_balance(&user.quote_ata).await,
    );
    check(t.send(&[ix], &[&user.wallet]).await);
    assert_eq!(
        t.holdings().await,
        before,
        "a rejected deposit changed state"
    );
    assert_eq!(
        (
            t.token_balance(&user.base_ata).await,
            t.token_balance(&user.quote_ata).await,
        ),
        wallet_tokens
    );
    t.assert_conservation().await;
}

async fn deposit(t: &mut TestExchange, user: &TestUser, asset: u8, amount: u64) {
    let ix = t.ix_deposit(user, asset, amount);
    t.send(&[ix], &[&user.wallet]).await.expect("deposit");
}

#[tokio::test]
async fn deposit_credits_what_the_vault_received_and_counts_every_deposit() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(5_000, 300).await;
    deposit(&mut t, &user, BASE, 2_000).await;
    deposit(&mut t, &user, BASE, 1_000).await;
    deposit(&mut t, &user, QUOTE, 300).await;

    let (base_vault, quote_vault) = (t.base_vault, t.quote_vault);
    assert_eq!(t.token_balance(&base_vault).await, 3_000);
    assert_eq!(t.token_balance(&quote_vault).await, 300);
    assert_eq!(t.token_balance(&user.base_ata).await, 2_000);
    assert_eq!(t.token_balance(&user.quote_ata).await, 0);
    let state = t.user_state(&user).await;
    let (base, quote) = (state.balances[0], state.balances[1]);
    assert_eq!((base.available, base.deposited), (3_000, 3_000));
    assert_eq!((quote.available, quote.deposited), (300, 300));
    assert_eq!((base.pending_withdrawal, base.withdrawn), (0, 0));
    t.assert_conservation().await;
}

#[tokio::test]
async fn deposit_without_the_owner_signature_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(1_000, 0).await;
    let ix = without_signer(t.ix_deposit(&user, BASE, 1_000), &user.key());
    let before = t.holdings().await;
    let result = t.send(&[ix], &[]).await;
    assert_anchor_error(result, AnchorError::AccountNotSigner);
    assert_eq!(t.holdings().await, before);
    assert_eq!(t.token_balance(&user.base_ata).await, 1_000);
}

#[tokio::test]
async fn deposit_into_someone_elses_user_account_is_rejected() {
    let mut t = TestExchange::new().await;
    let victim = t.wallet(0, 0).await;
    let attacker = t.wallet(1_000, 0).await;
    let ix = with_account(
        t.ix_deposit(&attacker, BASE, 1_000),
        &attacker.user,
        &victim.user,
    );
    // The user PDA is derived from the signer, so the victim's account fails the seeds check.
    assert_rejected(&mut t, ix, &attacker, |r| {
        assert_anchor_error(r, AnchorError::ConstraintSeeds)
    })
    .await;
}

#[tokio::test]
async fn deposit_into_a_vault_other_than_the_assets_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(1_000, 1_000).await;
    let base_vault = t.base_vault;
    let own_mint = t.base_mint;

    // Another token account of the right mint (the attacker's own).
    let decoy = t.create_token_account(&own_mint, &user.key()).await;
    let ix = with_account(t.ix_deposit(&user, BASE, 1_000), &base_vault, &decoy);
    assert_rejected(&mut t, ix, &user, |r| {
        assert_kestrel_error(r, KestrelError::WrongVault)
    })
    .await;

    // The other asset's vault.
    let quote_vault = t.quote_vault;
    let ix = with_account(t.ix_deposit(&user, BASE, 1_000), &base_vault, &quote_vault);
    assert_rejected(&mut t, ix, &user, |r| {
        assert_kestrel_error(r, KestrelError::WrongVault)
    })
    .await;

    // The other asset's vault, with its own mint as the source and the wrong asset index.
    let ix = t.ix_deposit(&user, QUOTE, 1_000);
    let ix = with_account(ix, &quote_vault, &base_vault);
    let ix = with_account(ix, &user.quote_ata, &user.base_ata);
    assert_rejected(&mut t, ix, &user, |r| {
        assert_kestrel_error(r, KestrelError::WrongVault)
    })
    .await;

    // The vault as its own source: Anchor refuses the same mutable account twice.
    let ix = with_account(
        t.ix_deposit(&user, BASE, 1_000),
        &user.base_ata,
        &base_vault,
    );
    assert_rejected(&mut t, ix, &user, |r| {
        assert_anchor_error(r, AnchorError::ConstraintDuplicateMutableAccount)
    })
    .await;
}

#[tokio::test]
async fn deposit_from_a_token_account_of_another_mint_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(1_000, 1_000).await;
    let ix = with_account(
        t.ix_deposit(&user, BASE, 1_000),
        &user.base_ata,
        &user.quote_ata,
    );
    assert_rejected(&mut t, ix, &user, |r| {
        assert_kestrel_error(r, KestrelError::WrongMint)
    })
    .await;
}

#[tokio::test]
async fn deposit_of_an_unregistered_asset_index_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(1_000, 0).await;
    let ix = t.ix_deposit(&user, 2, 1_000);
    assert_rejected(&mut t, ix, &user, |r| {
        assert_kestrel_error(r, KestrelError::AssetMismatch)
    })
    .await;
}

#[tokio::test]
async fn deposit_of_zero_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(1_000, 0).await;
    let ix = t.ix_deposit(&user, BASE, 0);
    assert_rejected(&mut t, ix, &user, |r| {
        assert_kestrel_error(r, KestrelError::ZeroAmount)
    })
    .await;
}

#[tokio::test]
async fn another_program_account_cannot_pose_as_a_user_account() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(1_000, 0).await;
    let (market, exchange) = (t.market, t.exchange);
    for cosplay in [market, exchange] {
        let ix = with_account(t.ix_deposit(&user, BASE, 1_000), &user.user, &cosplay);
        assert_rejected(&mut t, ix, &user, |r| {
            assert_anchor_error(r, AnchorError::AccountDiscriminatorMismatch)
        })
        .await;
    }
    // A token account is not even owned by the program.
    let ix = with_account(
        t.ix_deposit(&user, BASE, 1_000),
        &user.user,
        &user.quote_ata,
    );
    assert_rejected(&mut t, ix, &user, |r| {
        assert_anchor_error(r, AnchorError::AccountOwnedByWrongProgram)
    })
    .await;
}

#[tokio::test]
async fn a_user_account_or_vault_of_another_deployment_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(3_000, 0).await;
    let other = t.second_exchange(2).await;
    let other_user = user_address(&other, &user.key());
    let create = t.ix_create_user(&user.key());
    let create = with_account(create, &t.exchange.clone(), &other);
    let create = with_account(create, &user.user, &other_user);
    t.send(&[create], &[&user.wallet])
        .await
        .expect("user on the second exchange");

    // The second deployment's user account, with this exchange.
    let ix = with_account(t.ix_deposit(&user, BASE, 1_000), &user.user, &other_user);
    assert_rejected(&mut t, ix, &user, |r| {
        assert_anchor_error(r, AnchorError::ConstraintSeeds)
    })
    .await;

    // The second deployment and its user account, paying into this exchange's vault.
    let exchange = t.exchange;
    let ix = with_account(t.ix_deposit(&user, BASE, 1_000), &user.user, &other_user);
    let ix = with_account(ix, &exchange, &other);
    assert_rejected(&mut t, ix.clone(), &user, |r| {
        assert_kestrel_error(r, KestrelError::WrongVault)
    })
    .await;

    // With its own vault the second deployment accepts the deposit.
    let base_mint = t.base_mint;
    let ix = with_account(
        ix,
        &vault_address(&exchange, &base_mint),
        &vault_address(&other, &base_mint),
    );
    t.send(&[ix], &[&user.wallet])
        .await
        .expect("deposit on the second exchange");
    let state = t.load::<kestrel::state::UserAccount>(&other_user).await;
    assert_eq!(state.balances[0].deposited, 1_000);
    assert_eq!(t.user_state(&user).await.balances[0].deposited, 0);
}

#[tokio::test]
async fn deposit_of_more_tokens_than_the_source_holds_fails_in_spl_token() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(999, 0).await;
    let ix = t.ix_deposit(&user, BASE, 1_000);
    assert_rejected(&mut t, ix, &user, |r| {
        assert_instruction_error(
            r,
            InstructionError::Custom(TokenError::InsufficientFunds as u32),
        )
    })
    .await;
}

#[tokio::test]
async fn deposit_through_another_token_program_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(1_000, 0).await;
    let ix = with_account(
        t.ix_deposit(&user, BASE, 1_000),
        &spl_token_interface::ID,
        &TOKEN_2022,
    );
    assert_rejected(&mut t, ix, &user, |r| {
        assert_anchor_error(r, AnchorError::InvalidProgramId)
    })
    .await;
}

/// A balance cannot overflow: it is bounded by the vault, which the mint's supply bounds. The
/// cumulative `deposited` counter can, once a user has cycled more than `u64::MAX` atoms
/// through the exchange; the deposit is then refused with `MathOverflow`, never wrapped.
#[tokio::test]
async fn balances_reach_u64_max_and_the_deposit_counter_refuses_to_wrap() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(u64::MAX, 0).await;
    deposit(&mut t, &user, BASE, u64::MAX - 1).await;
    deposit(&mut t, &user, BASE, 1).await;
    let base = t.user_state(&user).await.balances[0];
    assert_eq!((base.available, base.deposited), (u64::MAX, u64::MAX));
    t.assert_conservation().await;

    let withdraw = t.ix_withdraw(&user, BASE, u64::MAX);
    let operator = t.operator.insecure_clone();
    t.send(&[withdraw], &[&user.wallet, &operator])
        .await
        .expect("withdraw all");
    assert_eq!(t.token_balance(&user.base_ata).await, u64::MAX);
    let ix = t.ix_deposit(&user, BASE, 1);
    assert_rejected(&mut t, ix, &user, |r| {
        assert_kestrel_error(r, KestrelError::MathOverflow)
    })
    .await;
}
