//! The admin's small, slow powers (DESIGN.md rule 5): initialize, add assets and markets, rotate
//! the operator, pause, announce fees; and the permissionless fee payout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod program_test;

use anchor_lang::error::ErrorCode as AnchorError;
use kestrel::constants::{MAX_ASSETS, MAX_FEE_BPS};
use kestrel::encoding::Side;
use kestrel::error::KestrelError;
use kestrel::instructions::CreateMarketArgs;
use kestrel::state::Market;
use program_test::*;
use solana_program_test::BanksClientError;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

const TOKEN_2022: Pubkey = Pubkey::from_str_const("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");

fn admin(t: &TestExchange) -> Keypair {
    t.admin.insecure_clone()
}

/// Sends `ix` with `stranger` standing in for the admin (signing and paying).
async fn send_as(
    t: &mut TestExchange,
    ix: solana_sdk::instruction::Instruction,
    stranger: &Keypair,
) -> Result<(), BanksClientError> {
    let admin_key = t.admin.pubkey();
    let ix = with_account(ix, &admin_key, &stranger.pubkey());
    t.send(&[ix], &[stranger]).await
}

/// Settles one fill: `maker` sells `lots` lots at 100 ticks to `taker` (notional 1,000 × lots
/// quote atoms with the default tick size).
async fn trade(
    t: &mut TestExchange,
    maker: &mut TestUser,
    taker: &mut TestUser,
    lots: u64,
) -> Result<(), BanksClientError> {
    let ask = t.order(maker, Side::Sell, 100, lots);
    let bid = t.order(taker, Side::Buy, 100, lots);
    let batch = Batch {
        batch_id: t.batch_id(),
        orders: vec![
            BatchOrder::new(&ask, &maker.wallet),
            BatchOrder::new(&bid, &taker.wallet),
        ],
        fills: vec![fill(t.fill_id(), 0, 1, 100, lots)],
    };
    t.settle(&batch).await
}

/// A maker with base and a taker with quote, both deposited.
async fn traders(t: &mut TestExchange) -> (TestUser, TestUser) {
    let maker = t.funded_user(1_000_000, 0).await;
    let taker = t.funded_user(0, 10_000_000).await;
    (maker, taker)
}

async fn market_exists(t: &mut TestExchange, index: u32) -> bool {
    let address = market_address(&t.exchange, index);
    t.account(&address).await.is_some()
}

// --- initialize_exchange ---

#[tokio::test]
async fn initialize_records_authorities_delays_and_starts_unpaused() {
    let mut t = TestExchange::new().await;
    let e = t.exchange_state().await;
    assert_eq!(e.admin, t.admin.pubkey());
    assert_eq!(e.operator, t.operator.pubkey());
    assert_eq!(e.fee_collector, t.fee_collector.pubkey());
    assert_eq!(e.domain_id, t.cfg.domain_id);
    assert_eq!(e.withdrawal_delay_slots, t.cfg.withdrawal_delay_slots);
    assert_eq!(e.fee_change_delay_slots, t.cfg.fee_change_delay_slots);
    assert_eq!((e.settlement_paused, e.deposits_paused), (0, 0));
    assert_eq!((e.num_assets, e.num_markets), (2, 1));
}

#[tokio::test]
async fn reinitializing_an_exchange_is_rejected_even_by_another_signer() {
    let mut t = TestExchange::new().await;
    let again = t.ix_initialize_exchange();
    let result = t.send(&[again], &[&admin(&t)]).await;
    assert_kestrel_error(result, KestrelError::AlreadyInitialized);

    let usurper = t.funded_keypair().await;
    let mut args = t.initialize_args();
    args.operator = usurper.pubkey();
    let takeover = t.ix_initialize_exchange_with(&usurper.pubkey(), args);
    let result = t.send(&[takeover], &[&usurper]).await;
    assert_kestrel_error(result, KestrelError::AlreadyInitialized);
    let e = t.exchange_state().await;
    assert_eq!(e.admin, t.admin.pubkey());
    assert_eq!(e.operator, t.operator.pubkey());
    assert_eq!(e.num_assets, 2);
}

#[tokio::test]
async fn zero_withdrawal_delay_is_rejected() {
    let mut t = TestExchange::new().await;
    let mut args = t.initialize_args();
    args.domain_id = 2;
    args.withdrawal_delay_slots = 0;
    let ix = t.ix_initialize_exchange_with(&t.admin.pubkey(), args);
    let result = t.send(&[ix], &[&admin(&t)]).await;
    assert_kestrel_error(result, KestrelError::InvalidWithdrawalDelay);
    assert!(t.account(&exchange_address(2)).await.is_none());
}

// --- add_asset ---

#[tokio::test]
async fn add_asset_registers_the_mint_and_creates_an_exchange_owned_vault() {
    let mut t = TestExchange::new().await;
    let mint = t.create_mint(3).await;
    let ix = t.ix_add_asset(&mint);
    t.send(&[ix], &[&admin(&t)]).await.expect("add asset");

    let e = t.exchange_state().await;
    assert_eq!(e.num_assets, 3);
    let vault = vault_address(&t.exchange, &mint);
    assert_eq!(e.assets[2].mint, mint);
    assert_eq!(e.assets[2].vault, vault);
    assert_eq!(e.assets[2].decimals, 3);
    let account = t.account(&vault).await.expect("vault");
    assert_eq!(account.owner, spl_token_interface::ID);
    use solana_sdk::program_pack::Pack;
    let token = spl_token_interface::state::Account::unpack(&account.data).expect("token");
    assert_eq!(token.mint, mint);
    assert_eq!(token.owner, t.exchange);
    assert_eq!(token.amount, 0);
}

#[tokio::test]
async fn add_asset_by_a_non_admin_is_unauthorized() {
    let mut t = TestExchange::new().await;
    let mint = t.create_mint(6).await;
    let stranger = t.funded_keypair().await;
    let ix = t.ix_add_asset(&mint);
    let result = send_as(&mut t, ix, &stranger).await;
    assert_kestrel_error(result, KestrelError::Unauthorized);
    assert_eq!(t.exchange_state().await.num_assets, 2);
}

#[tokio::test]
async fn add_asset_without_the_admin_signature_is_rejected() {
    let mut t = TestExchange::new().await;
    let mint = t.create_mint(6).await;
    let ix = without_signer(t.ix_add_asset(&mint), &t.admin.pubkey());
    let result = t.send(&[ix], &[]).await;
    assert_anchor_error(result, AnchorError::AccountNotSigner);
    assert_eq!(t.exchange_state().await.num_assets, 2);
}

#[tokio::test]
async fn re_adding_a_registered_mint_fails_because_its_vault_exists() {
    let mut t = TestExchange::new().await;
    let base_mint = t.base_mint;
    let ix = t.ix_add_asset(&base_mint);
    let result = t.send(&[ix], &[&admin(&t)]).await;
    assert_kestrel_error(result, KestrelError::AlreadyInitialized);
    assert_eq!(t.exchange_state().await.num_assets, 2);
}

#[tokio::test]
async fn the_asset_table_holds_sixteen_mints_and_no_more() {
    let mut t = TestExchange::new().await;
    for _ in 2..MAX_ASSETS {
        let mint = t.create_mint(6).await;
        let ix = t.ix_add_asset(&mint);
        t.send(&[ix], &[&admin(&t)]).await.expect("add asset");
    }
    assert_eq!(usize::from(t.exchange_state().await.num_assets), MAX_ASSETS);
    let mint = t.create_mint(6).await;
    let ix = t.ix_add_asset(&mint);
    let result = t.send(&[ix], &[&admin(&t)]).await;
    assert_kestrel_error(result, KestrelError::AssetTableFull);
    assert_eq!(usize::from(t.exchange_state().await.num_assets), MAX_ASSETS);
}

#[tokio::test]
async fn add_asset_with_another_token_program_is_rejected() {
    let mut t = TestExchange::new().await;
    let mint = t.create_mint(6).await;
    let ix = with_account(t.ix_add_asset(&mint), &spl_token_interface::ID, &TOKEN_2022);
    let result = t.send(&[ix], &[&admin(&t)]).await;
    assert_anchor_error(result, AnchorError::InvalidProgramId);
    assert_eq!(t.exchange_state().await.num_assets, 2);
}

// --- create_market ---

#[tokio::test]
async fn create_market_records_its_parameters_and_advances_the_index() {
    let mut t = TestExchange::new().await;
    let args = CreateMarketArgs {
        index: 1,
        base_asset: QUOTE,
        quote_asset: BASE,
        base_lot_size: 7,
        tick_size: 3,
        min_size_lots: 2,
        maker_fee_bps: 0,
        taker_fee_bps: MAX_FEE_BPS,
    };
    let ix = t.ix_create_market(args);
    t.send(&[ix], &[&admin(&t)]).await.expect("create market");
    assert_eq!(t.exchange_state().await.num_markets, 2);
    let address = market_address(&t.exchange, 1);
    let m = t.load::<Market>(&address).await;
    assert_eq!(m.exchange, t.exchange);
    assert_eq!((m.index, m.base_asset, m.quote_asset), (1, QUOTE, BASE));
    assert_eq!((m.base_lot_size, m.tick_size, m.min_size_lots), (7, 3, 2));
    assert_eq!((m.maker_fee_bps, m.taker_fee_bps), (0, MAX_FEE_BPS));
    assert_eq!((m.last_fill_id, m.last_batch_id, m.fees_accrued), (0, 0, 0));
}

#[tokio::test]
async fn create_market_by_a_non_admin_is_unauthorized() {
    let mut t = TestExchange::new().await;
    let stranger = t.funded_keypair().await;
    let ix = t.ix_create_market(t.default_market_args(1));
    let result = send_as(&mut t, ix, &stranger).await;
    assert_kestrel_error(result, KestrelError::Unauthorized);
    assert_eq!(t.exchange_state().await.num_markets, 1);
    assert!(!market_exists(&mut t, 1).await);
}

/// Sends `create_market` with `args` and asserts `expected`, leaving no market behind.
async fn assert_market_rejected(
    t: &mut TestExchange,
    args: CreateMarketArgs,
    expected: KestrelError,
) {
    let index = args.index;
    let ix = t.ix_create_market(args);
    let result = t.send(&[ix], &[&admin(t)]).await;
    assert_kestrel_error(result, expected);
    assert_eq!(t.exchange_state().await.num_markets, 1);
    assert!(!market_exists(t, index).await);
}

#[tokio::test]
async fn create_market_with_an_index_other_than_the_next_is_rejected() {
    let mut t = TestExchange::new().await;
    let args = t.default_market_args(2);
    assert_market_rejected(&mut t, args, KestrelError::MarketIndexMismatch).await;
}

#[tokio::test]
async fn create_market_with_the_same_base_and_quote_is_rejected() {
    let mut t = TestExchange::new().await;
    let args = CreateMarketArgs {
        quote_asset: BASE,
        ..t.default_market_args(1)
    };
    assert_market_rejected(&mut t, args, KestrelError::MarketSameAsset).await;
}

#[tokio::test]
async fn create_market_with_a_zero_lot_tick_or_min_size_is_rejected() {
    let mut t = TestExchange::new().await;
    let valid = t.default_market_args(1);
    for args in [
        CreateMarketArgs {
            base_lot_size: 0,
            ..valid.clone()
        },
        CreateMarketArgs {
            tick_size: 0,
            ..valid.clone()
        },
        CreateMarketArgs {
            min_size_lots: 0,
            ..valid.clone()
        },
    ] {
        assert_market_rejected(&mut t, args, KestrelError::InvalidMarketParams).await;
    }
}

#[tokio::test]
async fn create_market_with_a_fee_above_the_cap_is_rejected() {
    let mut t = TestExchange::new().await;
    let valid = t.default_market_args(1);
    for args in [
        CreateMarketArgs {
            maker_fee_bps: MAX_FEE_BPS + 1,
            ..valid.clone()
        },
        CreateMarketArgs {
            taker_fee_bps: MAX_FEE_BPS + 1,
            ..valid.clone()
        },
    ] {
        assert_market_rejected(&mut t, args, KestrelError::FeeAboveCap).await;
    }
}

#[tokio::test]
async fn create_market_with_an_unregistered_asset_is_rejected() {
    let mut t = TestExchange::new().await;
    let valid = t.default_market_args(1);
    for args in [
        CreateMarketArgs {
            base_asset: 2,
            ..valid.clone()
        },
        CreateMarketArgs {
            quote_asset: 2,
            ..valid.clone()
        },
    ] {
        assert_market_rejected(&mut t, args, KestrelError::AssetMismatch).await;
    }
}

// --- set_operator ---

#[tokio::test]
async fn set_operator_rotates_the_key_and_the_old_operator_can_no_longer_settle() {
    let mut t = TestExchange::new().await;
    let (mut maker, mut taker) = traders(&mut t).await;
    let new_operator = t.funded_keypair().await;
    let ix = t.ix_set_operator(&new_operator.pubkey());
    t.send(&[ix], &[&admin(&t)]).await.expect("set operator");
    assert_eq!(t.exchange_state().await.operator, new_operator.pubkey());

    // The fixture still signs with the old operator.
    let result = trade(&mut t, &mut maker, &mut taker, 1).await;
    assert_kestrel_error(result, KestrelError::NotOperator);
    assert_eq!(t.market_state().await.last_batch_id, 0);

    t.operator = new_operator;
    trade(&mut t, &mut maker, &mut taker, 1)
        .await
        .expect("the new operator settles");
    t.assert_conservation().await;
}

#[tokio::test]
async fn set_operator_by_a_non_admin_is_unauthorized() {
    let mut t = TestExchange::new().await;
    let stranger = t.funded_keypair().await;
    let ix = t.ix_set_operator(&stranger.pubkey());
    let result = send_as(&mut t, ix, &stranger).await;
    assert_kestrel_error(result, KestrelError::Unauthorized);
    assert_eq!(t.exchange_state().await.operator, t.operator.pubkey());
}

#[tokio::test]
async fn set_operator_without_the_admin_signature_is_rejected() {
    let mut t = TestExchange::new().await;
    let ix = without_signer(t.ix_set_operator(&Pubkey::new_unique()), &t.admin.pubkey());
    let result = t.send(&[ix], &[]).await;
    assert_anchor_error(result, AnchorError::AccountNotSigner);
    assert_eq!(t.exchange_state().await.operator, t.operator.pubkey());
}

#[tokio::test]
async fn set_operator_to_the_current_operator_is_rejected() {
    let mut t = TestExchange::new().await;
    let ix = t.ix_set_operator(&t.operator.pubkey());
    let result = t.send(&[ix], &[&admin(&t)]).await;
    assert_kestrel_error(result, KestrelError::OperatorUnchanged);
}

// --- set_pause ---

#[tokio::test]
async fn set_pause_by_a_non_admin_is_unauthorized() {
    let mut t = TestExchange::new().await;
    let stranger = t.funded_keypair().await;
    let ix = t.ix_set_pause(true, true);
    let result = send_as(&mut t, ix, &stranger).await;
    assert_kestrel_error(result, KestrelError::Unauthorized);
    let e = t.exchange_state().await;
    assert_eq!((e.settlement_paused, e.deposits_paused), (0, 0));
}

#[tokio::test]
async fn paused_deposits_are_rejected_while_settlement_goes_on() {
    let mut t = TestExchange::new().await;
    let (mut maker, mut taker) = traders(&mut t).await;
    let late = t.wallet(1_000, 0).await;
    let ix = t.ix_set_pause(false, true);
    t.send(&[ix], &[&admin(&t)]).await.expect("pause deposits");

    let deposit = t.ix_deposit(&late, BASE, 1_000);
    let result = t
        .send(std::slice::from_ref(&deposit), &[&late.wallet])
        .await;
    assert_kestrel_error(result, KestrelError::DepositsPaused);
    assert_eq!(t.user_state(&late).await.balances[0].deposited, 0);
    assert_eq!(t.token_balance(&late.base_ata).await, 1_000);
    trade(&mut t, &mut maker, &mut taker, 1)
        .await
        .expect("settlement is not paused");

    let ix = t.ix_set_pause(false, false);
    t.send(&[ix], &[&admin(&t)]).await.expect("resume");
    t.send(&[deposit], &[&late.wallet])
        .await
        .expect("deposit after resume");
    t.assert_conservation().await;
}

#[tokio::test]
async fn paused_settlement_is_rejected_while_deposits_go_on() {
    let mut t = TestExchange::new().await;
    let (mut maker, mut taker) = traders(&mut t).await;
    let late = t.wallet(1_000, 0).await;
    let ix = t.ix_set_pause(true, false);
    t.send(&[ix], &[&admin(&t)])
        .await
        .expect("pause settlement");

    let result = trade(&mut t, &mut maker, &mut taker, 1).await;
    assert_kestrel_error(result, KestrelError::SettlementPaused);
    let m = t.market_state().await;
    assert_eq!((m.last_batch_id, m.last_fill_id, m.volume_lots), (0, 0, 0));
    let deposit = t.ix_deposit(&late, BASE, 1_000);
    t.send(&[deposit], &[&late.wallet])
        .await
        .expect("deposits are not paused");

    let ix = t.ix_set_pause(false, false);
    t.send(&[ix], &[&admin(&t)]).await.expect("resume");
    trade(&mut t, &mut maker, &mut taker, 1)
        .await
        .expect("settle after resume");
    t.assert_conservation().await;
}

// --- set_fees ---

#[tokio::test]
async fn set_fees_above_the_cap_is_rejected_and_the_cap_itself_is_accepted() {
    let mut t = TestExchange::new().await;
    for (maker, taker) in [(MAX_FEE_BPS + 1, 0), (0, MAX_FEE_BPS + 1)] {
        let ix = t.ix_set_fees(maker, taker);
        let result = t.send(&[ix], &[&admin(&t)]).await;
        assert_kestrel_error(result, KestrelError::FeeAboveCap);
    }
    assert_eq!(t.market_state().await.fee_effective_slot, 0);
    let ix = t.ix_set_fees(MAX_FEE_BPS, MAX_FEE_BPS);
    t.send(&[ix], &[&admin(&t)]).await.expect("fees at the cap");
    let m = t.market_state().await;
    assert_eq!(
        (m.pending_maker_fee_bps, m.pending_taker_fee_bps),
        (MAX_FEE_BPS, MAX_FEE_BPS)
    );
}

#[tokio::test]
async fn set_fees_by_a_non_admin_is_unauthorized() {
    let mut t = TestExchange::new().await;
    let stranger = t.funded_keypair().await;
    let ix = t.ix_set_fees(0, 0);
    let result = send_as(&mut t, ix, &stranger).await;
    assert_kestrel_error(result, KestrelError::Unauthorized);
    assert_eq!(t.market_state().await.fee_effective_slot, 0);
}

#[tokio::test]
async fn new_fees_apply_only_after_the_fee_change_delay() {
    let mut t = TestExchange::new().await;
    let (mut maker, mut taker) = traders(&mut t).await;
    let slot = t.slot().await;
    let ix = t.ix_set_fees(10, 20);
    t.send(&[ix], &[&admin(&t)]).await.expect("set fees");
    let m = t.market_state().await;
    assert_eq!((m.maker_fee_bps, m.taker_fee_bps), (2, 5));
    assert_eq!((m.pending_maker_fee_bps, m.pending_taker_fee_bps), (10, 20));
    assert_eq!(m.fee_effective_slot, slot + t.cfg.fee_change_delay_slots);

    // Notional 10 lots × 100 ticks × 10 = 10,000 quote atoms: the old 2 / 5 bps.
    trade(&mut t, &mut maker, &mut taker, 10)
        .await
        .expect("trade before");
    assert_eq!(t.market_state().await.fees_accrued, 2 + 5);
    assert_eq!(t.user_state(&maker).await.balances[1].fees_paid, 2);
    assert_eq!(t.user_state(&taker).await.balances[1].fees_paid, 5);

    t.warp_slots(t.cfg.fee_change_delay_slots).await;
    trade(&mut t, &mut maker, &mut taker, 10)
        .await
        .expect("trade after");
    assert_eq!(t.user_state(&maker).await.balances[1].fees_paid, 2 + 10);
    assert_eq!(t.user_state(&taker).await.balances[1].fees_paid, 5 + 20);
    let m = t.market_state().await;
    assert_eq!(m.fees_accrued, 7 + 30);
    assert_eq!((m.maker_fee_bps, m.taker_fee_bps), (10, 20));
    assert_eq!(m.fee_effective_slot, 0);
    t.assert_conservation().await;
}

// --- collect_fees ---

/// A market with accrued fees and the fee collector's quote token account.
async fn with_accrued_fees(t: &mut TestExchange) -> (u64, Pubkey) {
    let (mut maker, mut taker) = traders(t).await;
    trade(t, &mut maker, &mut taker, 10).await.expect("trade");
    let accrued = t.market_state().await.fees_accrued;
    assert!(accrued > 0);
    let (quote_mint, collector) = (t.quote_mint, t.fee_collector.pubkey());
    let destination = t.create_token_account(&quote_mint, &collector).await;
    (accrued, destination)
}

#[tokio::test]
async fn collect_fees_pays_the_fee_collector_and_anyone_may_crank_it() {
    let mut t = TestExchange::new().await;
    let (accrued, destination) = with_accrued_fees(&mut t).await;
    let ix = t.ix_collect_fees(&destination);
    t.send(&[ix], &[]).await.expect("collect");
    assert_eq!(t.token_balance(&destination).await, accrued);
    let m = t.market_state().await;
    assert_eq!((m.fees_accrued, m.fees_collected), (0, accrued));
    t.assert_conservation().await;

    let ix = t.ix_collect_fees(&destination);
    let result = t.send(&[ix], &[]).await;
    assert_kestrel_error(result, KestrelError::ZeroAmount);
}

#[tokio::test]
async fn collect_fees_to_an_account_not_owned_by_the_fee_collector_is_unauthorized() {
    let mut t = TestExchange::new().await;
    let (accrued, _) = with_accrued_fees(&mut t).await;
    let thief = Keypair::new();
    let quote_mint = t.quote_mint;
    let destination = t.create_token_account(&quote_mint, &thief.pubkey()).await;
    let ix = t.ix_collect_fees(&destination);
    let result = t.send(&[ix], &[]).await;
    assert_kestrel_error(result, KestrelError::Unauthorized);
    assert_eq!(t.token_balance(&destination).await, 0);
    assert_eq!(t.market_state().await.fees_accrued, accrued);
}

#[tokio::test]
async fn collect_fees_from_the_wrong_vault_or_into_the_wrong_mint_is_rejected() {
    let mut t = TestExchange::new().await;
    let (accrued, destination) = with_accrued_fees(&mut t).await;
    let (quote_vault, base_vault) = (t.quote_vault, t.base_vault);
    let ix = with_account(t.ix_collect_fees(&destination), &quote_vault, &base_vault);
    let result = t.send(&[ix], &[]).await;
    assert_kestrel_error(result, KestrelError::WrongVault);

    let (base_mint, collector) = (t.base_mint, t.fee_collector.pubkey());
    let base_destination = t.create_token_account(&base_mint, &collector).await;
    let ix = t.ix_collect_fees(&base_destination);
    let result = t.send(&[ix], &[]).await;
    assert_kestrel_error(result, KestrelError::WrongMint);
    assert_eq!(t.market_state().await.fees_accrued, accrued);
    t.assert_conservation().await;
}

#[tokio::test]
async fn collect_fees_with_nothing_accrued_is_rejected() {
    let mut t = TestExchange::new().await;
    let (quote_mint, collector) = (t.quote_mint, t.fee_collector.pubkey());
    let destination = t.create_token_account(&quote_mint, &collector).await;
    let ix = t.ix_collect_fees(&destination);
    let result = t.send(&[ix], &[]).await;
    assert_kestrel_error(result, KestrelError::ZeroAmount);
}

// --- deployments stay apart ---

#[tokio::test]
async fn a_market_of_another_deployment_is_rejected_by_set_fees_and_collect_fees() {
    let mut t = TestExchange::new().await;
    let other = t.second_exchange(2).await;
    let other_market = market_address(&other, 0);
    let (exchange, market) = (t.exchange, t.market);
    let create = with_account(
        t.ix_create_market(t.default_market_args(0)),
        &exchange,
        &other,
    );
    let create = with_account(create, &market, &other_market);
    t.send(&[create], &[&admin(&t)])
        .await
        .expect("market on the second exchange");

    let ix = with_account(t.ix_set_fees(0, 0), &market, &other_market);
    let result = t.send(&[ix], &[&admin(&t)]).await;
    assert_anchor_error(result, AnchorError::ConstraintHasOne);
    assert_eq!(t.load::<Market>(&other_market).await.fee_effective_slot, 0);

    let (quote_mint, collector) = (t.quote_mint, t.fee_collector.pubkey());
    let destination = t.create_token_account(&quote_mint, &collector).await;
    let ix = with_account(t.ix_collect_fees(&destination), &market, &other_market);
    let result = t.send(&[ix], &[]).await;
    assert_anchor_error(result, AnchorError::ConstraintHasOne);
}
