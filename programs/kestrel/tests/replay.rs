//! Order limits over time (DESIGN.md rule 2): nothing settles twice, nothing beyond the signed
//! size, nothing after an on-chain cancel or after expiry; a retried batch is harmless.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod program_test;
mod settle_security;

use kestrel::encoding::{Order, Side};
use kestrel::error::KestrelError;
use program_test::*;
use settle_security::*;

/// The standard pair, settled once (4 of the ask's 10 lots at 100).
async fn settled_pair() -> Pair {
    let mut p = Pair::new().await;
    let batch = p.batch.clone();
    p.t.settle(&batch).await.expect("first settle");
    p.assert_settled().await;
    p
}

/// A new buyer with a fresh bid of `size` lots at 100.
async fn new_bid(t: &mut TestExchange, size: u64) -> (TestUser, Order) {
    let mut buyer = t.funded_user(0, BUYER_QUOTE).await;
    let bid = t.order(&mut buyer, Side::Buy, 100, size);
    (buyer, bid)
}

#[tokio::test]
async fn the_same_batch_twice_is_refused_and_changes_nothing() {
    let mut p = settled_pair().await;
    let batch = p.batch.clone();
    assert_batch_refused(&mut p.t, &batch, KestrelError::SettlementBatchReplayed).await;
    p.assert_settled().await;
}

#[tokio::test]
async fn the_same_fills_under_a_new_batch_id_are_refused() {
    let mut p = settled_pair().await;
    let mut batch = p.batch.clone();
    batch.batch_id = p.t.batch_id();
    // Passed as recorded, or again as new with the same signed bytes: same answer.
    assert_batch_refused(&mut p.t, &batch, KestrelError::SettlementFillReplayed).await;
    batch.orders = vec![BatchOrder::recorded(&p.ask), BatchOrder::recorded(&p.bid)];
    assert_batch_refused(&mut p.t, &batch, KestrelError::SettlementFillReplayed).await;
    p.assert_settled().await;
}

#[tokio::test]
async fn fill_ids_that_do_not_increase_within_a_batch_are_refused() {
    let mut p = Pair::new().await;
    let (a, b) = (p.t.fill_id(), p.t.fill_id());
    for ids in [[b, a], [a, a]] {
        let mut batch = p.batch.clone();
        batch.fills = vec![fill(ids[0], 0, 1, 100, 2), fill(ids[1], 0, 1, 100, 2)];
        assert_batch_refused(&mut p.t, &batch, KestrelError::SettlementFillReplayed).await;
    }
    // In increasing order the same two fills settle.
    p.batch.fills = vec![fill(a, 0, 1, 100, 2), fill(b, 0, 1, 100, 2)];
    let batch = p.batch.clone();
    p.t.settle(&batch).await.expect("increasing fill ids");
    assert_eq!(filled(&mut p.t, &p.seller.key(), p.ask.nonce).await, 4);
    assert_eq!(p.t.market_state().await.last_fill_id, b);
    p.t.assert_conservation().await;
}

#[tokio::test]
async fn a_fill_beyond_the_signed_size_in_a_later_batch_is_refused() {
    let mut p = settled_pair().await;
    // 6 lots of the ask remain; a second taker wants 7.
    let (buyer2, bid2) = new_bid(&mut p.t, 7).await;
    let mut batch = Batch {
        batch_id: p.t.batch_id(),
        orders: vec![
            BatchOrder::recorded(&p.ask),
            BatchOrder::new(&bid2, &buyer2.wallet),
        ],
        fills: vec![fill(p.t.fill_id(), 0, 1, 100, 7)],
    };
    assert_batch_refused(&mut p.t, &batch, KestrelError::SettlementOverfill).await;
    p.assert_settled().await;

    // Exactly the remainder fills, and then the ask is done.
    batch.fills = vec![fill(p.t.fill_id(), 0, 1, 100, 6)];
    p.t.settle(&batch).await.expect("remaining 6 lots");
    assert_eq!(filled(&mut p.t, &p.seller.key(), p.ask.nonce).await, 10);
    p.t.assert_conservation().await;
}

#[tokio::test]
async fn fills_beyond_the_signed_size_within_one_batch_are_refused() {
    let mut p = Pair::new().await;
    // The bid signed 4 lots: 3 + 2 is one too many.
    p.batch.fills = vec![
        fill(p.t.fill_id(), 0, 1, 100, 3),
        fill(p.t.fill_id(), 0, 1, 100, 2),
    ];
    let batch = p.batch.clone();
    assert_batch_refused(&mut p.t, &batch, KestrelError::SettlementOverfill).await;
}

#[tokio::test]
async fn a_recorded_maker_below_its_cancel_floor_cannot_fill() {
    let mut p = settled_pair().await;
    let ix = p.t.ix_cancel_up_to(&p.seller, p.ask.nonce + 1);
    let wallet = p.seller.wallet.insecure_clone();
    p.t.send(&[ix], &[&wallet]).await.expect("cancel_up_to");
    let (buyer2, bid2) = new_bid(&mut p.t, 2).await;
    let batch = Batch {
        batch_id: p.t.batch_id(),
        orders: vec![
            BatchOrder::recorded(&p.ask),
            BatchOrder::new(&bid2, &buyer2.wallet),
        ],
        fills: vec![fill(p.t.fill_id(), 0, 1, 100, 2)],
    };
    assert_batch_refused(&mut p.t, &batch, KestrelError::InvalidOrderCancelled).await;
    assert!(p.t.order_record(&buyer2.key(), bid2.nonce).await.is_none());
    p.assert_settled().await;
}

#[tokio::test]
async fn a_new_order_below_its_owners_cancel_floor_cannot_fill_or_be_recorded() {
    let mut p = Pair::new().await;
    let ix = p.t.ix_cancel_up_to(&p.buyer, p.bid.nonce + 1);
    let wallet = p.buyer.wallet.insecure_clone();
    p.t.send(&[ix], &[&wallet]).await.expect("cancel_up_to");
    let batch = p.batch.clone();
    assert_batch_refused(&mut p.t, &batch, KestrelError::InvalidOrderCancelled).await;
    assert!(p
        .t
        .order_record(&p.buyer.key(), p.bid.nonce)
        .await
        .is_none());
    assert!(p
        .t
        .order_record(&p.seller.key(), p.ask.nonce)
        .await
        .is_none());
}

#[tokio::test]
async fn an_order_whose_nonce_equals_the_floor_still_fills() {
    let mut p = Pair::new().await;
    for (user, nonce) in [(&p.seller, p.ask.nonce), (&p.buyer, p.bid.nonce)] {
        let ix = p.t.ix_cancel_up_to(user, nonce);
        let wallet = user.wallet.insecure_clone();
        p.t.send(&[ix], &[&wallet]).await.expect("cancel_up_to");
    }
    let batch = p.batch.clone();
    p.t.settle(&batch).await.expect("nonce == floor is live");
    p.assert_settled().await;
}

/// The standard pair with an ask that expires 1,000 s from now; returns the expiry.
async fn pair_with_expiring_ask() -> (Pair, i64) {
    let mut p = Pair::new().await;
    let expiry = p.t.now().await + 1_000;
    p.ask.expiry = expiry;
    p.batch.orders[0] = BatchOrder::new(&p.ask, &p.seller.wallet);
    (p, expiry)
}

#[tokio::test]
async fn a_new_order_after_its_expiry_is_refused_and_exactly_at_it_fills() {
    let (mut p, expiry) = pair_with_expiring_ask().await;
    p.t.set_clock(expiry + 1).await;
    let batch = p.batch.clone();
    assert_batch_refused(&mut p.t, &batch, KestrelError::InvalidOrderExpired).await;

    p.t.set_clock(expiry).await;
    p.t.settle(&batch)
        .await
        .expect("fills at its expiry second");
    p.assert_settled().await;
}

#[tokio::test]
async fn a_recorded_order_after_its_expiry_is_refused() {
    let (mut p, expiry) = pair_with_expiring_ask().await;
    let batch = p.batch.clone();
    p.t.settle(&batch).await.expect("before expiry");
    p.assert_settled().await;

    p.t.set_clock(expiry + 1).await;
    let (buyer2, bid2) = new_bid(&mut p.t, 2).await;
    let batch = Batch {
        batch_id: p.t.batch_id(),
        orders: vec![
            BatchOrder::recorded(&p.ask),
            BatchOrder::new(&bid2, &buyer2.wallet),
        ],
        fills: vec![fill(p.t.fill_id(), 0, 1, 100, 2)],
    };
    assert_batch_refused(&mut p.t, &batch, KestrelError::InvalidOrderExpired).await;
    p.assert_settled().await;
}

#[tokio::test]
async fn a_retried_batch_passing_recorded_orders_as_new_again_is_accepted() {
    let mut p = settled_pair().await;
    // The relayer lost track and sends the orders with their signatures again, for new fills.
    let (buyer2, bid2) = new_bid(&mut p.t, 3).await;
    let batch = Batch {
        batch_id: p.t.batch_id(),
        orders: vec![
            BatchOrder::new(&p.ask, &p.seller.wallet),
            BatchOrder::new(&bid2, &buyer2.wallet),
        ],
        fills: vec![fill(p.t.fill_id(), 0, 1, 100, 3)],
    };
    p.t.settle(&batch)
        .await
        .expect("identical bytes re-recorded");
    // The existing record kept its filled size and grew; it was not reset.
    assert_eq!(filled(&mut p.t, &p.seller.key(), p.ask.nonce).await, 7);
    assert_eq!(filled(&mut p.t, &buyer2.key(), bid2.nonce).await, 3);
    p.t.assert_conservation().await;
}

#[tokio::test]
async fn different_terms_under_a_recorded_owner_and_nonce_are_refused() {
    let mut p = settled_pair().await;
    let (buyer2, bid2) = new_bid(&mut p.t, 3).await;
    // Validly signed by the seller, but the nonce already names the 100-tick ask.
    let lower = Order {
        price_ticks: 90,
        ..p.ask
    };
    let batch = Batch {
        batch_id: p.t.batch_id(),
        orders: vec![
            BatchOrder::new(&lower, &p.seller.wallet),
            BatchOrder::new(&bid2, &buyer2.wallet),
        ],
        fills: vec![fill(p.t.fill_id(), 0, 1, 95, 3)],
    };
    assert_batch_refused(
        &mut p.t,
        &batch,
        KestrelError::SettlementOrderRecordMismatch,
    )
    .await;
    let record =
        p.t.order_record(&p.seller.key(), p.ask.nonce)
            .await
            .expect("record");
    assert_eq!(record.price_ticks, 100);
    p.assert_settled().await;
}
