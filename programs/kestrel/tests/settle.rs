//! Settlement: the happy paths.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod program_test;

use kestrel::encoding::Side;
use program_test::*;

#[tokio::test]
async fn a_new_maker_and_taker_settle_and_balances_move_with_fees() {
    let mut t = TestExchange::new().await;
    let mut seller = t.funded_user(50_000, 0).await;
    let mut buyer = t.funded_user(0, 1_000_000).await;
    let ask = t.order(&mut seller, Side::Sell, 100, 10);
    let bid = t.order(&mut buyer, Side::Buy, 105, 4);
    let batch = Batch {
        batch_id: t.batch_id(),
        orders: vec![
            BatchOrder::new(&ask, &seller.wallet),
            BatchOrder::new(&bid, &buyer.wallet),
        ],
        fills: vec![fill(t.fill_id(), 0, 1, 100, 4)],
    };
    t.settle(&batch).await.expect("settle");

    // 4 lots × 1,000 base atoms; notional = 100 ticks × 10 × 4 = 4,000 quote atoms.
    let s = t.user_state(&seller).await;
    let b = t.user_state(&buyer).await;
    assert_eq!(s.balances[BASE as usize].available, 50_000 - 4_000);
    assert_eq!(s.balances[QUOTE as usize].available, 4_000 - 1); // maker 2 bps, rounded up
    assert_eq!(b.balances[BASE as usize].available, 4_000);
    assert_eq!(b.balances[QUOTE as usize].available, 1_000_000 - 4_000 - 2); // taker 5 bps
    let market = t.market_state().await;
    assert_eq!(market.fees_accrued, 3);
    assert_eq!(market.last_fill_id, 1);
    let record = t
        .order_record(&seller.key(), ask.nonce)
        .await
        .expect("record");
    assert_eq!(record.filled_lots, 4);
    t.assert_conservation().await;

    // The maker's record now stands for its signature: a second taker fills the rest.
    let mut buyer2 = t.funded_user(0, 1_000_000).await;
    let bid2 = t.order(&mut buyer2, Side::Buy, 100, 6);
    let batch = Batch {
        batch_id: t.batch_id(),
        orders: vec![
            BatchOrder::recorded(&ask),
            BatchOrder::new(&bid2, &buyer2.wallet),
        ],
        fills: vec![fill(t.fill_id(), 0, 1, 100, 6)],
    };
    let ixs = t.settle_instructions(&batch);
    assert_eq!(ixs[0].data[0], 1, "only the new order carries a signature");
    t.send_settle(&ixs).await.expect("second settle");
    let record = t
        .order_record(&seller.key(), ask.nonce)
        .await
        .expect("record");
    assert_eq!(record.filled_lots, 10);
    t.assert_conservation().await;
}

#[tokio::test]
async fn signed_order_offsets_match_the_serialized_instruction() {
    let mut t = TestExchange::new().await;
    let mut a = t.wallet(0, 0).await;
    let mut b = t.wallet(0, 0).await;
    let o1 = t.order(&mut a, Side::Sell, 1, 1);
    let o2 = t.order(&mut b, Side::Buy, 1, 1);
    let batch = Batch {
        batch_id: 1,
        orders: vec![
            BatchOrder::recorded(&o1),
            BatchOrder::new(&o2, &b.wallet),
            BatchOrder::new(&o1, &a.wallet),
        ],
        fills: vec![fill(1, 0, 1, 1, 1)],
    };
    let args = batch.args();
    let offsets = args.signed_order_offsets();
    let ix = t.ix_settle(args, vec![]);
    assert_eq!(offsets.len(), 2);
    assert_eq!(&ix.data[offsets[0]..offsets[0] + 128], &o2.encode()[..]);
    assert_eq!(&ix.data[offsets[1]..offsets[1] + 128], &o1.encode()[..]);
}
