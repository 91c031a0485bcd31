//! The exit without the operator (DESIGN.md rule 4): `request_withdrawal` sets funds aside and,
//! after the exchange's delay, `execute_withdrawal` pays them out on the owner's signature alone,
//! whatever the pause flags and whoever holds the operator key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod program_test;

use anchor_lang::error::ErrorCode as AnchorError;
use kestrel::error::KestrelError;
use kestrel::state::AssetBalance;
use program_test::*;
use solana_program_test::BanksClientError;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;

async fn request(t: &mut TestExchange, user: &TestUser, asset: u8, amount: u64) {
    let ix = t.ix_request_withdrawal(user, asset, amount);
    t.send(&[ix], &[&user.wallet]).await.expect("request");
    t.assert_conservation().await;
}

async fn execute(t: &mut TestExchange, user: &TestUser, asset: u8) -> Result<(), BanksClientError> {
    let ix = t.ix_execute_withdrawal(user, asset);
    t.send(&[ix], &[&user.wallet]).await
}

async fn balance(t: &mut TestExchange, user: &TestUser, asset: u8) -> AssetBalance {
    t.user_state(user).await.balances[usize::from(asset)]
}

async fn warp_to(t: &mut TestExchange, slot: u64) {
    t.ctx.warp_to_slot(slot).expect("warp");
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
        "a rejected instruction changed state"
    );
    t.assert_conservation().await;
}

#[tokio::test]
async fn request_sets_funds_aside_until_now_plus_the_delay() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    let slot = t.slot().await;
    request(&mut t, &user, BASE, 2_000).await;
    let b = balance(&mut t, &user, BASE).await;
    assert_eq!((b.available, b.pending_withdrawal), (3_000, 2_000));
    assert_eq!(b.withdrawal_ready_slot, slot + t.cfg.withdrawal_delay_slots);
    assert_eq!(b.withdrawn, 0);
    let base_vault = t.base_vault;
    assert_eq!(t.token_balance(&base_vault).await, 5_000);
}

#[tokio::test]
async fn execute_waits_for_the_delay_then_pays_out_the_pending_amount() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    request(&mut t, &user, BASE, 2_000).await;
    let ready = balance(&mut t, &user, BASE).await.withdrawal_ready_slot;

    let ix = t.ix_execute_withdrawal(&user, BASE);
    assert_rejected(&mut t, ix.clone(), &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::WithdrawalNotReady)
    })
    .await;
    warp_to(&mut t, ready - 1).await;
    assert_rejected(&mut t, ix, &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::WithdrawalNotReady)
    })
    .await;

    warp_to(&mut t, ready).await;
    execute(&mut t, &user, BASE).await.expect("execute");
    assert_eq!(t.token_balance(&user.base_ata).await, 2_000);
    let b = balance(&mut t, &user, BASE).await;
    assert_eq!((b.available, b.pending_withdrawal), (3_000, 0));
    assert_eq!((b.withdrawal_ready_slot, b.withdrawn), (0, 2_000));
    let base_vault = t.base_vault;
    assert_eq!(t.token_balance(&base_vault).await, 3_000);
    t.assert_conservation().await;
}

#[tokio::test]
async fn execute_with_nothing_pending_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    let ix = t.ix_execute_withdrawal(&user, BASE);
    assert_rejected(&mut t, ix.clone(), &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::NoPendingWithdrawal)
    })
    .await;

    // Nor can a completed withdrawal be executed twice.
    request(&mut t, &user, BASE, 1_000).await;
    t.warp_slots(t.cfg.withdrawal_delay_slots).await;
    execute(&mut t, &user, BASE).await.expect("execute");
    t.warp_slots(1).await;
    assert_rejected(&mut t, ix, &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::NoPendingWithdrawal)
    })
    .await;
    assert_eq!(t.token_balance(&user.base_ata).await, 1_000);
}

#[tokio::test]
async fn request_of_more_than_available_zero_or_an_unknown_asset_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    for (asset, amount, expected) in [
        (BASE, 5_001, KestrelError::InsufficientBalance),
        (QUOTE, 1, KestrelError::InsufficientBalance),
        (BASE, 0, KestrelError::ZeroAmount),
        (2, 1, KestrelError::AssetMismatch),
    ] {
        let ix = t.ix_request_withdrawal(&user, asset, amount);
        assert_rejected(&mut t, ix, &[&user.wallet], |r| {
            assert_kestrel_error(r, expected)
        })
        .await;
    }
    // Pending funds are no longer available to a second request.
    request(&mut t, &user, BASE, 5_000).await;
    let ix = t.ix_request_withdrawal(&user, BASE, 1);
    assert_rejected(&mut t, ix, &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::InsufficientBalance)
    })
    .await;
}

#[tokio::test]
async fn the_exit_works_while_paused_and_after_the_operator_key_is_gone() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 700).await;
    let admin = t.admin.insecure_clone();
    let pause = t.ix_set_pause(true, true);
    let rotate = t.ix_set_operator(&Pubkey::new_unique()); // a key nobody holds
    t.send(&[pause, rotate], &[&admin])
        .await
        .expect("lock down");

    // The operator's path is closed...
    let ix = t.ix_withdraw(&user, BASE, 1);
    let old_operator = t.operator.insecure_clone();
    assert_rejected(&mut t, ix, &[&user.wallet, &old_operator], |r| {
        assert_kestrel_error(r, KestrelError::NotOperator)
    })
    .await;

    // ...and the user leaves with everything anyway.
    request(&mut t, &user, BASE, 5_000).await;
    request(&mut t, &user, QUOTE, 700).await;
    t.warp_slots(t.cfg.withdrawal_delay_slots).await;
    execute(&mut t, &user, BASE).await.expect("execute base");
    t.assert_conservation().await;
    execute(&mut t, &user, QUOTE).await.expect("execute quote");
    t.assert_conservation().await;
    assert_eq!(t.token_balance(&user.base_ata).await, 5_000);
    assert_eq!(t.token_balance(&user.quote_ata).await, 700);
    let (base_vault, quote_vault) = (t.base_vault, t.quote_vault);
    assert_eq!(t.token_balance(&base_vault).await, 0);
    assert_eq!(t.token_balance(&quote_vault).await, 0);
}

#[tokio::test]
async fn a_second_request_adds_to_the_pending_amount_and_restarts_the_delay() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    let delay = t.cfg.withdrawal_delay_slots;
    request(&mut t, &user, BASE, 1_000).await;
    let first_ready = balance(&mut t, &user, BASE).await.withdrawal_ready_slot;

    warp_to(&mut t, first_ready - delay / 2).await;
    let slot = t.slot().await;
    request(&mut t, &user, BASE, 500).await;
    let b = balance(&mut t, &user, BASE).await;
    assert_eq!((b.available, b.pending_withdrawal), (3_500, 1_500));
    assert_eq!(b.withdrawal_ready_slot, slot + delay);

    warp_to(&mut t, first_ready).await;
    let ix = t.ix_execute_withdrawal(&user, BASE);
    assert_rejected(&mut t, ix, &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::WithdrawalNotReady)
    })
    .await;
    warp_to(&mut t, slot + delay).await;
    execute(&mut t, &user, BASE).await.expect("execute");
    assert_eq!(t.token_balance(&user.base_ata).await, 1_500);
    let b = balance(&mut t, &user, BASE).await;
    assert_eq!(
        (b.available, b.pending_withdrawal, b.withdrawn),
        (3_500, 0, 1_500)
    );
    t.assert_conservation().await;
}

#[tokio::test]
async fn another_wallet_can_neither_request_nor_execute_someones_withdrawal() {
    let mut t = TestExchange::new().await;
    let victim = t.funded_user(5_000, 0).await;
    let thief = t.wallet(0, 0).await;
    let ix = with_account(
        t.ix_request_withdrawal(&thief, BASE, 5_000),
        &thief.user,
        &victim.user,
    );
    assert_rejected(&mut t, ix, &[&thief.wallet], |r| {
        assert_anchor_error(r, AnchorError::ConstraintSeeds)
    })
    .await;

    request(&mut t, &victim, BASE, 5_000).await;
    t.warp_slots(t.cfg.withdrawal_delay_slots).await;
    let ix = with_account(
        t.ix_execute_withdrawal(&thief, BASE),
        &thief.user,
        &victim.user,
    );
    assert_rejected(&mut t, ix, &[&thief.wallet], |r| {
        assert_anchor_error(r, AnchorError::ConstraintSeeds)
    })
    .await;
    assert_eq!(t.token_balance(&thief.base_ata).await, 0);

    execute(&mut t, &victim, BASE)
        .await
        .expect("the owner executes");
    assert_eq!(t.token_balance(&victim.base_ata).await, 5_000);
}

#[tokio::test]
async fn request_and_execute_need_the_owner_signature() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 0).await;
    let ix = without_signer(t.ix_request_withdrawal(&user, BASE, 1_000), &user.key());
    assert_rejected(&mut t, ix, &[], |r| {
        assert_anchor_error(r, AnchorError::AccountNotSigner)
    })
    .await;

    request(&mut t, &user, BASE, 1_000).await;
    t.warp_slots(t.cfg.withdrawal_delay_slots).await;
    let ix = without_signer(t.ix_execute_withdrawal(&user, BASE), &user.key());
    assert_rejected(&mut t, ix, &[], |r| {
        assert_anchor_error(r, AnchorError::AccountNotSigner)
    })
    .await;
}

#[tokio::test]
async fn execute_into_the_wrong_mint_or_from_the_wrong_vault_is_rejected() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(5_000, 5_000).await;
    request(&mut t, &user, BASE, 1_000).await;
    t.warp_slots(t.cfg.withdrawal_delay_slots).await;

    let ix = with_account(
        t.ix_execute_withdrawal(&user, BASE),
        &user.base_ata,
        &user.quote_ata,
    );
    assert_rejected(&mut t, ix, &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::WrongMint)
    })
    .await;

    let (base_vault, quote_vault) = (t.base_vault, t.quote_vault);
    let ix = with_account(
        t.ix_execute_withdrawal(&user, BASE),
        &base_vault,
        &quote_vault,
    );
    let ix = with_account(ix, &user.base_ata, &user.quote_ata);
    assert_rejected(&mut t, ix, &[&user.wallet], |r| {
        assert_kestrel_error(r, KestrelError::WrongVault)
    })
    .await;
}
