//! `cancel_up_to`: the owner raises the on-chain nonce floor, only ever upwards, on their own
//! signature and their own account. (Its effect on settlement is covered by the settle tests.)
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
use solana_sdk::signature::Keypair;

async fn cancel_up_to(t: &mut TestExchange, user: &TestUser, floor: u64) {
    let ix = t.ix_cancel_up_to(user, floor);
    t.send(&[ix], &[&user.wallet]).await.expect("cancel_up_to");
}

async fn floor(t: &mut TestExchange, user: &TestUser) -> u64 {
    t.user_state(user).await.nonce_floor
}

/// Sends `ix` with `signers` and asserts that it failed with `check` and changed nothing.
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
        "a rejected cancel changed state"
    );
}

#[tokio::test]
async fn cancel_up_to_raises_the_floor_and_touches_nothing_else() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 700).await;
    assert_eq!(floor(&mut t, &user).await, 0);
    let balances = t.user_state(&user).await.balances;
    cancel_up_to(&mut t, &user, 10).await;
    assert_eq!(floor(&mut t, &user).await, 10);
    cancel_up_to(&mut t, &user, u64::MAX).await;
    assert_eq!(floor(&mut t, &user).await, u64::MAX);
    let after = t.user_state(&user).await.balances;
    assert_eq!(
        after.map(|b| (b.available, b.deposited)),
        balances.map(|b| (b.available, b.deposited))
    );
    t.assert_conservation().await;
}

#[tokio::test]
async fn a_floor_equal_to_or_below_the_current_one_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(0, 0).await;
    let ix = t.ix_cancel_up_to(&user, 0);
    assert_rejected(&mut t, ix, &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::CancelFloorNotIncreasing)
    })
    .await;

    cancel_up_to(&mut t, &user, 10).await;
    for lower_or_equal in [10, 9, 0] {
        let ix = t.ix_cancel_up_to(&user, lower_or_equal);
        assert_rejected(&mut t, ix, &[&user.wallet], |r| {
            assert_kestrel_error(r, KestrelError::CancelFloorNotIncreasing)
        })
        .await;
    }
    assert_eq!(floor(&mut t, &user).await, 10);
}

#[tokio::test]
async fn cancel_up_to_without_the_owner_signature_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(0, 0).await;
    let ix = without_signer(t.ix_cancel_up_to(&user, 10), &user.key());
    assert_rejected(&mut t, ix, &[], |r| {
        assert_anchor_error(r, AnchorError::AccountNotSigner)
    })
    .await;
    assert_eq!(floor(&mut t, &user).await, 0);
}

#[tokio::test]
async fn cancel_up_to_on_someone_elses_account_is_rejected() {
    let mut t = TestExchange::new().await;
    let victim = t.wallet(0, 0).await;
    let griefer = t.wallet(0, 0).await;
    let ix = with_account(t.ix_cancel_up_to(&griefer, 10), &griefer.user, &victim.user);
    assert_rejected(&mut t, ix, &[&griefer.wallet], |r| {
        assert_anchor_error(r, AnchorError::ConstraintSeeds)
    })
    .await;
    assert_eq!(floor(&mut t, &victim).await, 0);
}

#[tokio::test]
async fn cancel_up_to_works_while_the_exchange_is_paused() {
    let mut t = TestExchange::new().await;
    let user = t.wallet(0, 0).await;
    let ix = t.ix_set_pause(true, true);
    let admin = t.admin.insecure_clone();
    t.send(&[ix], &[&admin]).await.expect("pause");
    cancel_up_to(&mut t, &user, 7).await;
    assert_eq!(floor(&mut t, &user).await, 7);
}
