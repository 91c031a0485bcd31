//! The rules `settle` checks besides signatures: who may call it, what an order may say, which
//! fills may pair which orders, the account layout, balances and arithmetic bounds. Every
//! refusal is checked to leave balances, records and watermarks as they were.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod program_test;
mod settle_security;

use anchor_lang::error::ErrorCode as AnchorError;
use kestrel::encoding::{Order, Side, CANCEL_TAG};
use kestrel::error::KestrelError;
use program_test::*;
use settle_security::*;
use solana_sdk::instruction::AccountMeta;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

/// The standard pair with `edit` applied to its orders (re-signed by their owners).
async fn pair_with_orders(edit: impl FnOnce(&mut Order, &mut Order)) -> Pair {
    let mut p = Pair::new().await;
    edit(&mut p.ask, &mut p.bid);
    p.batch.orders = vec![
        BatchOrder::new(&p.ask, &p.seller.wallet),
        BatchOrder::new(&p.bid, &p.buyer.wallet),
    ];
    p
}

/// Asserts the standard batch, as it now stands, is refused with `expected`.
async fn assert_pair_refused(p: &mut Pair, expected: KestrelError) {
    let ixs = p.ixs();
    p.assert_refused(&ixs, expected).await;
}

// --- who may settle ---

#[tokio::test]
async fn a_signer_other_than_the_operator_is_refused() {
    let mut p = Pair::new().await;
    let impostor = Keypair::new();
    let mut ixs = p.ixs();
    ixs[1].accounts[0] = AccountMeta::new(impostor.pubkey(), true);
    let before = p.snapshot().await;
    let result = p.t.send(&ixs, &[&impostor]).await;
    assert_kestrel_error(result, KestrelError::NotOperator);
    assert_unchanged(&mut p.t, &before).await;
}

#[tokio::test]
async fn the_operator_must_sign() {
    let mut p = Pair::new().await;
    let mut ixs = p.ixs();
    assert_eq!(ixs[1].accounts[0].pubkey, p.t.operator.pubkey());
    ixs[1].accounts[0].is_signer = false;
    let before = p.snapshot().await;
    let result = p.t.send(&ixs, &[]).await;
    assert_anchor_error(result, AnchorError::AccountNotSigner);
    assert_unchanged(&mut p.t, &before).await;
}

#[tokio::test]
async fn a_paused_exchange_settles_nothing() {
    let mut p = Pair::new().await;
    let pause = p.t.ix_set_pause(true, false);
    let admin = p.t.admin.insecure_clone();
    p.t.send(&[pause], &[&admin]).await.expect("pause");
    assert_pair_refused(&mut p, KestrelError::SettlementPaused).await;

    let resume = p.t.ix_set_pause(false, false);
    p.t.send(&[resume], &[&admin]).await.expect("resume");
    let ixs = p.ixs();
    p.send(&ixs).await.expect("settles once resumed");
    p.assert_settled().await;
}

// --- what the fills may do ---

#[tokio::test]
async fn a_fill_may_not_trade_through_either_limit() {
    let mut p = Pair::new().await;
    // Bid limit 105, ask limit 100.
    for price in [106, 99] {
        p.batch.fills = vec![fill(p.t.fill_id(), 0, 1, price, 4)];
        assert_pair_refused(&mut p, KestrelError::SettlementPriceThroughLimit).await;
    }
    // Anywhere between the limits is fine.
    p.batch.fills = vec![fill(p.t.fill_id(), 0, 1, 105, 4)];
    let ixs = p.ixs();
    p.send(&ixs).await.expect("at the bid's limit");
    p.t.assert_conservation().await;
}

#[tokio::test]
async fn two_orders_on_the_same_side_cannot_trade() {
    let mut p = pair_with_orders(|ask, _| ask.side = Side::Buy).await;
    assert_pair_refused(&mut p, KestrelError::SettlementSameSide).await;
}

#[tokio::test]
async fn an_owner_cannot_trade_with_itself() {
    let mut t = TestExchange::new().await;
    let mut trader = t.funded_user(SELLER_BASE, BUYER_QUOTE).await;
    let ask = t.order(&mut trader, Side::Sell, 100, 10);
    let bid = t.order(&mut trader, Side::Buy, 105, 4);
    let batch = Batch {
        batch_id: t.batch_id(),
        orders: vec![
            BatchOrder::new(&ask, &trader.wallet),
            BatchOrder::new(&bid, &trader.wallet),
        ],
        fills: vec![fill(t.fill_id(), 0, 1, 100, 4)],
    };
    assert_batch_refused(&mut t, &batch, KestrelError::SettlementSelfTrade).await;
}

#[tokio::test]
async fn a_zero_fill_size_or_price_is_refused() {
    let mut p = Pair::new().await;
    for (price, size) in [(100, 0), (0, 4)] {
        p.batch.fills = vec![fill(p.t.fill_id(), 0, 1, price, size)];
        assert_pair_refused(&mut p, KestrelError::SettlementZeroFill).await;
    }
}

#[tokio::test]
async fn a_fill_must_name_two_distinct_orders_of_the_batch() {
    let mut p = Pair::new().await;
    for (maker, taker) in [(2, 1), (0, 2), (0, 0), (1, 1), (255, 0)] {
        p.batch.fills = vec![fill(p.t.fill_id(), maker, taker, 100, 4)];
        assert_pair_refused(&mut p, KestrelError::SettlementBadOrderRef).await;
    }
}

#[tokio::test]
async fn a_buyer_without_enough_quote_is_refused() {
    // 4,000 notional + 2 taker fee; one atom short.
    let mut p = Pair::build(Config::default(), SELLER_BASE, 4_001).await;
    assert_pair_refused(&mut p, KestrelError::SettlementInsufficientBalance).await;
}

#[tokio::test]
async fn a_seller_without_enough_base_is_refused() {
    let mut p = Pair::build(Config::default(), 3_999, BUYER_QUOTE).await;
    assert_pair_refused(&mut p, KestrelError::SettlementInsufficientBalance).await;
}

// --- what an order may say ---

#[tokio::test]
async fn an_order_for_another_market_is_refused() {
    let mut p = pair_with_orders(|_, bid| bid.market_index = 1).await;
    assert_pair_refused(&mut p, KestrelError::InvalidOrderMarket).await;
}

#[tokio::test]
async fn an_order_for_another_exchange_is_refused() {
    let other = exchange_address(2);
    let mut p = pair_with_orders(|ask, _| ask.exchange = other).await;
    assert_pair_refused(&mut p, KestrelError::InvalidOrderExchange).await;
}

#[tokio::test]
async fn an_order_with_an_out_of_range_field_is_refused() {
    let mut p = Pair::new().await;
    // side, order type, self-trade mode, reserved flags
    for (at, value) in [(84, 2u8), (85, 6), (86, 4), (87, 1)] {
        let ixs = p.ixs_with_args(|args| args.orders[1].signed.as_mut().unwrap()[at] = value);
        p.assert_refused(&ixs, KestrelError::InvalidOrderField)
            .await;
    }
}

#[tokio::test]
async fn an_order_with_a_wrong_domain_tag_is_refused() {
    let mut p = Pair::new().await;
    let ixs = p.ixs_with_args(|args| args.orders[0].signed.as_mut().unwrap()[5] ^= 0x20);
    p.assert_refused(&ixs, KestrelError::InvalidOrderEncoding)
        .await;
    // A cancel's tag on order bytes: a signed cancel can never pass for an order.
    let ixs = p.ixs_with_args(|args| {
        args.orders[0].signed.as_mut().unwrap()[..16].copy_from_slice(&CANCEL_TAG)
    });
    p.assert_refused(&ixs, KestrelError::InvalidOrderEncoding)
        .await;
}

#[tokio::test]
async fn an_order_below_the_minimum_size_or_at_price_zero_is_refused() {
    let cfg = Config {
        min_size_lots: 5,
        ..Config::default()
    };
    let mut p = Pair::build(cfg, SELLER_BASE, BUYER_QUOTE).await;
    // The bid signed 4 lots, one below the market minimum.
    assert_pair_refused(&mut p, KestrelError::InvalidOrderSize).await;

    let mut p = pair_with_orders(|ask, _| ask.price_ticks = 0).await;
    assert_pair_refused(&mut p, KestrelError::InvalidOrderSize).await;
    let mut p = pair_with_orders(|ask, _| ask.size_lots = 0).await;
    assert_pair_refused(&mut p, KestrelError::InvalidOrderSize).await;
}

// --- the account layout ---

#[tokio::test]
async fn another_users_account_at_an_orders_user_index_is_refused() {
    let mut p = Pair::new().await;
    // The bid claims the seller's account.
    let ixs = p.ixs_with_args(|args| args.orders[1].user = 0);
    p.assert_refused(&ixs, KestrelError::InvalidOrderOwner)
        .await;

    // The buyer's account swapped for a third user's.
    let stranger = p.t.funded_user(0, BUYER_QUOTE).await;
    let ixs = p.ixs_with_accounts(|metas| metas[1] = AccountMeta::new(stranger.user, false));
    p.assert_refused(&ixs, KestrelError::InvalidOrderOwner)
        .await;
}

#[tokio::test]
async fn a_recorded_order_under_another_users_account_is_refused() {
    let mut p = Pair::new().await;
    let ixs = p.ixs();
    p.send(&ixs).await.expect("first settle");
    let mut buyer2 = p.t.funded_user(0, BUYER_QUOTE).await;
    let bid2 = p.t.order(&mut buyer2, Side::Buy, 100, 2);
    let batch = Batch {
        batch_id: p.t.batch_id(),
        orders: vec![
            BatchOrder::recorded(&p.ask),
            BatchOrder::new(&bid2, &buyer2.wallet),
        ],
        fills: vec![fill(p.t.fill_id(), 0, 1, 100, 2)],
    };
    // The seller's user account replaced by the first buyer's: the ask's record names the seller.
    let mut remaining = batch.remaining_accounts(&p.t.exchange);
    remaining[0] = AccountMeta::new(p.buyer.user, false);
    let ixs = settle_ixs_for(&p.t, batch.args(), remaining, &[&buyer2.wallet]);
    let records = record_addresses(&p.t, &batch);
    assert_refused(&mut p.t, &ixs, &records, KestrelError::InvalidOrderOwner).await;
}

#[tokio::test]
async fn an_account_listed_twice_is_refused() {
    let mut p = Pair::new().await;
    // The ask's record given for the bid as well.
    let ixs = p.ixs_with_accounts(|metas| metas[3] = metas[2].clone());
    p.assert_refused(&ixs, KestrelError::SettlementDuplicateAccount)
        .await;
    // A user account given twice.
    let ixs = p.ixs_with_accounts(|metas| metas.insert(2, metas[1].clone()));
    p.assert_refused(&ixs, KestrelError::SettlementDuplicateAccount)
        .await;
}

#[tokio::test]
async fn a_read_only_remaining_account_is_refused() {
    let mut p = Pair::new().await;
    for index in 0..4 {
        let ixs = p.ixs_with_accounts(|metas| metas[index].is_writable = false);
        p.assert_refused(&ixs, KestrelError::SettlementAccountsMismatch)
            .await;
    }
}

#[tokio::test]
async fn a_wrong_number_of_remaining_accounts_is_refused() {
    let mut p = Pair::new().await;
    // Users only: no room for the records.
    let ixs = p.ixs_with_accounts(|metas| metas.truncate(2));
    p.assert_refused(&ixs, KestrelError::SettlementAccountsMismatch)
        .await;
    // No accounts at all.
    let ixs = p.ixs_with_accounts(|metas| metas.clear());
    p.assert_refused(&ixs, KestrelError::SettlementAccountsMismatch)
        .await;
    // One record missing: the layout shifts and the buyer's account stands where the ask's
    // record should.
    let ixs = p.ixs_with_accounts(|metas| {
        metas.pop();
    });
    p.assert_refused(&ixs, KestrelError::SettlementBadOrderRecord)
        .await;
    // One account too many: the ask's (not yet created) record stands among the users.
    let extra = p.t.funded_user(0, 0).await;
    let ixs = p.ixs_with_accounts(|metas| metas.push(AccountMeta::new(extra.user, false)));
    let records = p.records();
    let before = snapshot(&mut p.t, &records).await;
    let result = p.t.send_settle(&ixs).await;
    assert_anchor_error(result, AnchorError::AccountOwnedByWrongProgram);
    assert_unchanged(&mut p.t, &before).await;
}

#[tokio::test]
async fn an_order_record_at_a_non_canonical_address_is_refused() {
    let mut p = Pair::new().await;
    let (seller, nonce) = (p.seller.key(), p.ask.nonce);
    // The same seeds under a smaller, non-canonical bump: a valid PDA, but not the one.
    let nonce_bytes = nonce.to_le_bytes();
    let seeds: [&[u8]; 4] = [
        kestrel::constants::ORDER_SEED,
        p.t.exchange.as_ref(),
        seller.as_ref(),
        &nonce_bytes,
    ];
    let (_, canonical) = Pubkey::find_program_address(&seeds, &kestrel::ID);
    let non_canonical = (0..canonical)
        .rev()
        .find_map(|bump| {
            let mut with_bump = seeds.to_vec();
            let b = [bump];
            with_bump.push(&b);
            Pubkey::create_program_address(&with_bump, &kestrel::ID).ok()
        })
        .expect("some smaller bump is off the curve");
    for wrong in [
        non_canonical,
        order_address(&p.t.exchange, &seller, nonce + 1),
        order_address(&p.t.exchange, &p.buyer.key(), nonce + 7),
        Keypair::new().pubkey(),
    ] {
        let ixs = p.ixs_with_accounts(|metas| metas[2] = AccountMeta::new(wrong, false));
        p.assert_refused(&ixs, KestrelError::SettlementBadOrderRecord)
            .await;
    }
}

#[tokio::test]
async fn an_order_passed_as_recorded_without_a_record_is_refused() {
    let mut p = Pair::new().await;
    p.batch.orders[0] = BatchOrder::recorded(&p.ask);
    assert_pair_refused(&mut p, KestrelError::SettlementOrderNotRecorded).await;
}

#[tokio::test]
async fn an_order_record_address_pre_funded_by_an_attacker_is_still_created() {
    // The least a system account may hold (far below a record's rent), and far above it.
    for lamports in [None, Some(5_000_000_000)] {
        let mut p = Pair::new().await;
        let rent = p.t.ctx.banks_client.get_rent().await.expect("rent");
        let lamports = lamports.unwrap_or(rent.minimum_balance(0));
        let record = order_address(&p.t.exchange, &p.seller.key(), p.ask.nonce);
        p.t.airdrop(&record, lamports).await;
        let ixs = p.ixs();
        p.send(&ixs)
            .await
            .expect("settles despite the pre-funded record address");
        p.assert_settled().await;
        let account = p.t.account(&record).await.expect("record");
        assert_eq!(account.owner, kestrel::ID);
        assert!(account.lamports >= lamports);
        assert!(rent.is_exempt(account.lamports, account.data.len()));
    }
}

// --- arithmetic and batch bounds ---

#[tokio::test]
async fn a_notional_beyond_u64_is_refused_as_overflow() {
    // u64::MAX ticks × tick size 10 × 1 lot does not fit in u64 quote atoms.
    let mut p = pair_with_orders(|ask, bid| {
        ask.price_ticks = 1;
        bid.price_ticks = u64::MAX;
    })
    .await;
    p.batch.fills = vec![fill(p.t.fill_id(), 0, 1, u64::MAX, 1)];
    assert_pair_refused(&mut p, KestrelError::MathOverflow).await;
}

#[tokio::test]
async fn a_size_beyond_u64_base_atoms_is_refused_as_overflow() {
    // u64::MAX / 100 lots × 1,000 base atoms per lot does not fit in u64.
    let size = u64::MAX / 100;
    let mut p = pair_with_orders(|ask, bid| {
        ask.size_lots = size;
        bid.size_lots = size;
    })
    .await;
    p.batch.fills = vec![fill(p.t.fill_id(), 0, 1, 100, size)];
    assert_pair_refused(&mut p, KestrelError::MathOverflow).await;
}

#[tokio::test]
async fn an_empty_or_oversized_batch_is_refused() {
    let mut p = Pair::new().await;
    p.batch.fills.clear();
    assert_pair_refused(&mut p, KestrelError::SettlementBadBatch).await;

    // 65 one-lot fills of recorded orders (no signatures, to fit the instruction).
    let mut p = Pair::new().await;
    p.batch.orders = vec![BatchOrder::recorded(&p.ask), BatchOrder::recorded(&p.bid)];
    p.batch.fills = (0..65).map(|_| fill(p.t.fill_id(), 0, 1, 100, 1)).collect();
    assert_pair_refused(&mut p, KestrelError::SettlementBadBatch).await;

    // A single order, filled against itself.
    let mut p = Pair::new().await;
    let mut args = p.batch.args();
    args.orders.truncate(1);
    args.fills = vec![fill(p.t.fill_id(), 0, 0, 100, 1)];
    let metas = p.batch.remaining_accounts(&p.t.exchange);
    let remaining = vec![metas[0].clone(), metas[2].clone()];
    let ixs = settle_ixs_for(&p.t, args, remaining, &[&p.seller.wallet]);
    p.assert_refused(&ixs, KestrelError::SettlementBadBatch)
        .await;
}

// --- a batch that settles ---

#[tokio::test]
async fn one_taker_sweeps_three_makers_in_one_batch() {
    let mut t = TestExchange::new().await;
    let mut makers = Vec::new();
    for _ in 0..3 {
        makers.push(t.funded_user(20_000, 0).await);
    }
    let mut taker = t.funded_user(0, 1_000_000).await;
    let asks: Vec<Order> = [100, 101, 103]
        .into_iter()
        .zip(makers.iter_mut())
        .map(|(price, maker)| t.order(maker, Side::Sell, price, 5))
        .collect();
    let bid = t.order(&mut taker, Side::Buy, 103, 12);
    let mut orders: Vec<BatchOrder> = asks
        .iter()
        .zip(&makers)
        .map(|(ask, maker)| BatchOrder::new(ask, &maker.wallet))
        .collect();
    orders.push(BatchOrder::new(&bid, &taker.wallet));
    let batch = Batch {
        batch_id: t.batch_id(),
        orders,
        fills: vec![
            fill(t.fill_id(), 0, 3, 100, 5),
            fill(t.fill_id(), 1, 3, 101, 5),
            fill(t.fill_id(), 2, 3, 103, 2),
        ],
    };
    t.settle(&batch).await.expect("sweep");

    // Notionals (× tick size 10): 5,000, 5,050, 2,060. Maker fee 2 bps and taker fee 5 bps,
    // each rounded up per fill: maker 1, 2, 1; taker 3, 3, 2.
    let expected = [(5, 5_000, 1), (5, 5_050, 2), (2, 2_060, 1)];
    for (maker, (lots, notional, fee)) in makers.iter().zip(expected) {
        let state = t.user_state(maker).await;
        assert_eq!(
            state.balances[BASE as usize].available,
            20_000 - lots * 1_000
        );
        assert_eq!(state.balances[QUOTE as usize].available, notional - fee);
    }
    let state = t.user_state(&taker).await;
    assert_eq!(state.balances[BASE as usize].available, 12_000);
    assert_eq!(
        state.balances[QUOTE as usize].available,
        1_000_000 - (5_000 + 5_050 + 2_060) - (3 + 3 + 2)
    );
    let market = t.market_state().await;
    assert_eq!(market.fees_accrued, 1 + 2 + 1 + 3 + 3 + 2);
    assert_eq!(market.volume_lots, 12);
    assert_eq!(market.last_fill_id, batch.fills[2].fill_id);
    assert_eq!(market.last_batch_id, batch.batch_id);
    assert_eq!(filled(&mut t, &taker.key(), bid.nonce).await, 12);
    assert_eq!(filled(&mut t, &makers[2].key(), asks[2].nonce).await, 2);
    t.assert_conservation().await;
}
