//! Immediate withdrawals: the owner's intent plus the operator's co-signature. Neither alone can
//! move funds, and nothing but the owner's available balance can leave.
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
use solana_sdk::instruction::Instruction;
use solana_sdk::signature::{Keypair, Signer};

fn operator(t: &TestExchange) -> Keypair {
    t.operator.insecure_clone()
}

/// Sends `ix` signed by the user and the operator.
async fn send_cosigned(
    t: &mut TestExchange,
    ix: Instruction,
    user: &TestUser,
) -> Result<(), BanksClientError> {
    let operator = operator(t);
    t.send(&[ix], &[&user.wallet, &operator]).await
}

/// Sends `ix` with `signers` and asserts that it failed with `check` and moved nothing.
async fn assert_rejected(
    t: &mut TestExchange,
    ix: Instruction,
    signers: &[&Keypair],
    check: impl FnOnce(Result<(), BanksClientError>),
) {
    let before = t.holdings().await;
    check(t.send(&[ix], signers).await);
    assert_eq!(
        t.holdings().await,
        before,
        "a rejected withdrawal moved funds"
    );
    t.assert_conservation().await;
}

#[tokio::test]
async fn withdraw_cosigned_by_the_operator_pays_out_and_counts_it() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 700).await;
    let ix = t.ix_withdraw(&user, BASE, 2_000);
    send_cosigned(&mut t, ix, &user)
        .await
        .expect("withdraw base");
    let ix = t.ix_withdraw(&user, QUOTE, 700);
    send_cosigned(&mut t, ix, &user)
        .await
        .expect("withdraw quote");

    let (base_vault, quote_vault) = (t.base_vault, t.quote_vault);
    assert_eq!(t.token_balance(&user.base_ata).await, 2_000);
    assert_eq!(t.token_balance(&user.quote_ata).await, 700);
    assert_eq!(t.token_balance(&base_vault).await, 3_000);
    assert_eq!(t.token_balance(&quote_vault).await, 0);
    let state = t.user_state(&user).await;
    let (base, quote) = (state.balances[0], state.balances[1]);
    assert_eq!(
        (base.available, base.withdrawn, base.deposited),
        (3_000, 2_000, 5_000)
    );
    assert_eq!((quote.available, quote.withdrawn), (0, 700));
    t.assert_conservation().await;
}

#[tokio::test]
async fn withdraw_without_the_operator_signature_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    let ix = without_signer(t.ix_withdraw(&user, BASE, 1_000), &t.operator.pubkey());
    assert_rejected(&mut t, ix, &[&user.wallet], |r| {
        assert_anchor_error(r, AnchorError::AccountNotSigner)
    })
    .await;
}

#[tokio::test]
async fn the_operator_alone_cannot_withdraw_a_users_funds() {
    let mut t = TestExchange::new().await;
    let op = operator(&t);
    let user = t.funded_user(5_000, 0).await;
    let (base_mint, operator_key) = (t.base_mint, t.operator.pubkey());
    let loot = t.create_token_account(&base_mint, &operator_key).await;
    let ix = with_account(t.ix_withdraw(&user, BASE, 1_000), &user.base_ata, &loot);
    let ix = without_signer(ix, &user.key());
    assert_rejected(&mut t, ix, &[&op], |r| {
        assert_anchor_error(r, AnchorError::AccountNotSigner)
    })
    .await;
    assert_eq!(t.token_balance(&loot).await, 0);
}

#[tokio::test]
async fn a_cosigner_other_than_the_operator_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    let impostor = t.funded_keypair().await;
    let ix = with_account(
        t.ix_withdraw(&user, BASE, 1_000),
        &t.operator.pubkey(),
        &impostor.pubkey(),
    );
    assert_rejected(&mut t, ix, &[&user.wallet, &impostor], |r| {
        assert_kestrel_error(r, KestrelError::NotOperator)
    })
    .await;
}

#[tokio::test]
async fn withdraw_of_more_than_the_available_balance_is_rejected() {
    let mut t = TestExchange::new().await;
    let op = operator(&t);
    let user = t.funded_user(5_000, 0).await;
    let ix = t.ix_withdraw(&user, BASE, 5_001);
    assert_rejected(&mut t, ix, &[&user.wallet, &op], |r| {
        assert_kestrel_error(r, KestrelError::InsufficientBalance)
    })
    .await;

    // Funds set aside for the exit hatch are not available either.
    let ix = t.ix_request_withdrawal(&user, BASE, 4_000);
    t.send(&[ix], &[&user.wallet]).await.expect("request");
    let ix = t.ix_withdraw(&user, BASE, 1_001);
    assert_rejected(&mut t, ix, &[&user.wallet, &op], |r| {
        assert_kestrel_error(r, KestrelError::InsufficientBalance)
    })
    .await;
}

#[tokio::test]
async fn withdraw_of_zero_is_rejected() {
    let mut t = TestExchange::new().await;
    let op = operator(&t);
    let user = t.funded_user(5_000, 0).await;
    let ix = t.ix_withdraw(&user, BASE, 0);
    assert_rejected(&mut t, ix, &[&user.wallet, &op], |r| {
        assert_kestrel_error(r, KestrelError::ZeroAmount)
    })
    .await;
}

#[tokio::test]
async fn withdraw_to_a_token_account_of_another_mint_is_rejected() {
    let mut t = TestExchange::new().await;
    let op = operator(&t);
    let user = t.funded_user(5_000, 0).await;
    let ix = with_account(
        t.ix_withdraw(&user, BASE, 1_000),
        &user.base_ata,
        &user.quote_ata,
    );
    assert_rejected(&mut t, ix, &[&user.wallet, &op], |r| {
        assert_kestrel_error(r, KestrelError::WrongMint)
    })
    .await;
}

#[tokio::test]
async fn withdraw_from_a_vault_other_than_the_assets_is_rejected() {
    let mut t = TestExchange::new().await;
    let op = operator(&t);
    let user = t.funded_user(5_000, 5_000).await;
    let (base_vault, quote_vault) = (t.base_vault, t.quote_vault);
    // Base balance, paid out of the quote vault into a quote account.
    let ix = with_account(t.ix_withdraw(&user, BASE, 1_000), &base_vault, &quote_vault);
    let ix = with_account(ix, &user.base_ata, &user.quote_ata);
    assert_rejected(&mut t, ix, &[&user.wallet, &op], |r| {
        assert_kestrel_error(r, KestrelError::WrongVault)
    })
    .await;
}

#[tokio::test]
async fn withdraw_into_the_vault_itself_is_rejected() {
    let mut t = TestExchange::new().await;
    let op = operator(&t);
    let user = t.funded_user(5_000, 0).await;
    let base_vault = t.base_vault;
    let ix = with_account(
        t.ix_withdraw(&user, BASE, 1_000),
        &user.base_ata,
        &base_vault,
    );
    // Anchor refuses the same mutable account twice before the program's own check.
    assert_rejected(&mut t, ix, &[&user.wallet, &op], |r| {
        assert_anchor_error(r, AnchorError::ConstraintDuplicateMutableAccount)
    })
    .await;
}

#[tokio::test]
async fn another_users_balance_cannot_be_withdrawn_even_with_the_operator() {
    let mut t = TestExchange::new().await;
    let op = operator(&t);
    let victim = t.funded_user(5_000, 0).await;
    let thief = t.wallet(0, 0).await;
    let ix = with_account(
        t.ix_withdraw(&thief, BASE, 1_000),
        &thief.user,
        &victim.user,
    );
    assert_rejected(&mut t, ix, &[&thief.wallet, &op], |r| {
        assert_anchor_error(r, AnchorError::ConstraintSeeds)
    })
    .await;
    assert_eq!(t.token_balance(&thief.base_ata).await, 0);
}

#[tokio::test]
async fn withdraw_works_while_settlement_and_deposits_are_paused() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    let ix = t.ix_set_pause(true, true);
    let admin = t.admin.insecure_clone();
    t.send(&[ix], &[&admin]).await.expect("pause");
    let ix = t.ix_withdraw(&user, BASE, 5_000);
    send_cosigned(&mut t, ix, &user)
        .await
        .expect("withdraw while paused");
    assert_eq!(t.token_balance(&user.base_ata).await, 5_000);
    assert_eq!(t.user_state(&user).await.balances[0].withdrawn, 5_000);
    t.assert_conservation().await;
}
