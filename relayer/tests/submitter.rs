//! The submitter end to end on the embedded chain, through `RpcClient` only: packed batches
//! land and every attempt is recorded; a batch with invalid fills is bisected until each bad
//! fill is isolated and quarantined with the program's error, the others settle; submitters
//! racing over the same batches settle every fill exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use common::{Chain, Exchange, LOT, TICK};
use kestrel::error::KestrelError;
use kestrel::state::{Market, UserAccount};
use kestrel_relayer::batcher::{Limits, Packed, Packer, PendingFill};
use kestrel_relayer::submitter::{
    Attempt, Outcome, Quarantined, SettlementReport, Submitter, SubmitterConfig,
};
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::OrderBuilder;
use solana_sdk::signature::{Keypair, Signature, Signer};
use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
struct Report {
    submitted: Mutex<Vec<Attempt>>,
    finished: Mutex<Vec<Attempt>>,
    confirmed: Mutex<Vec<(u32, u64, Option<Signature>)>>,
    quarantined: Mutex<Vec<Quarantined>>,
}

impl SettlementReport for Report {
    fn submitted(&self, attempt: &Attempt) {
        self.submitted.lock().unwrap().push(attempt.clone());
    }
    fn finished(&self, attempt: &Attempt) {
        self.finished.lock().unwrap().push(attempt.clone());
    }
    fn confirmed(&self, market: u32, fill_id: u64, signature: Option<Signature>) {
        self.confirmed
            .lock()
            .unwrap()
            .push((market, fill_id, signature));
    }
    fn quarantined(&self, fill: &Quarantined) {
        self.quarantined.lock().unwrap().push(fill.clone());
    }
}

impl Report {
    fn confirmed_ids(&self) -> BTreeSet<u64> {
        self.confirmed.lock().unwrap().iter().map(|c| c.1).collect()
    }
}

fn config() -> SubmitterConfig {
    SubmitterConfig {
        poll_interval: Duration::from_millis(20),
        rebroadcast_interval: Duration::from_millis(500),
        ..SubmitterConfig::default()
    }
}

fn sell(ex: &Exchange, maker: &Keypair, size: u64, nonce: u64) -> SignedOrder {
    OrderBuilder::limit(0)
        .sell()
        .price(100)
        .size(size)
        .sign(ex.d.exchange, maker, nonce)
        .unwrap()
}

fn buy(ex: &Exchange, taker: &Keypair, size: u64, nonce: u64) -> SignedOrder {
    OrderBuilder::limit(0)
        .buy()
        .price(101)
        .size(size)
        .sign(ex.d.exchange, taker, nonce)
        .unwrap()
}

fn fill(fill_id: u64, maker: SignedOrder, taker: SignedOrder, size_lots: u64) -> PendingFill {
    PendingFill {
        market: 0,
        fill_id,
        maker,
        taker,
        price_ticks: 100,
        size_lots,
    }
}

fn pack(ex: &Exchange, fills: &[PendingFill]) -> Vec<Packed> {
    let packer = Packer {
        deployment: &ex.d,
        operator: ex.operator.pubkey(),
        limits: Limits::default(),
    };
    packer.pack(fills, &HashSet::new(), &mut 1).unwrap()
}

/// Quote a maker receives for `lots` at price 100, after the 2 bps maker fee.
fn maker_proceeds(lots: u64) -> u64 {
    let notional = 100 * TICK * lots;
    notional - (notional * 2).div_ceil(10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_settle_and_every_attempt_is_recorded() {
    let c = Chain::start().await;
    let ex = Exchange::deploy(&c).await;
    let (taker, _) = ex.user(&c, 1, 10_000_000, 0).await;
    let mut makers = Vec::new();
    for _ in 0..4 {
        makers.push(ex.user(&c, 0, 5 * LOT, 0).await.0);
    }
    let bid = buy(&ex, &taker, 20, 100);
    let fills: Vec<PendingFill> = makers
        .iter()
        .enumerate()
        .map(|(i, m)| fill(i as u64 + 1, sell(&ex, m, 5, 1), bid, 5))
        .collect();
    let packed = pack(&ex, &fills);
    let report = Report::default();
    let mut submitter = Submitter::new(&c.rpc, &ex.d, &ex.operator, &report, config());
    let settled = submitter.settle(&packed).await.unwrap();

    assert_eq!(
        settled.confirmed,
        vec![(0, 1), (0, 2), (0, 3), (0, 4)],
        "{:?}",
        submitter.attempts()
    );
    assert!(settled.quarantined.is_empty());
    let attempts = submitter.attempts();
    assert_eq!(attempts.len(), packed.len());
    for (attempt, p) in attempts.iter().zip(&packed) {
        assert_eq!(attempt.outcome, Outcome::Confirmed);
        assert_eq!(attempt.batch_id, p.batch.batch_id);
        assert_eq!(
            attempt.fills,
            p.batch.fills.iter().map(|f| f.fill_id).collect::<Vec<_>>()
        );
        let status = c
            .rpc
            .get_signature_statuses(&[attempt.signature])
            .await
            .unwrap();
        assert_eq!(status.value[0].as_ref().unwrap().err, None);
    }
    assert_eq!(report.submitted.lock().unwrap().len(), attempts.len());
    assert_eq!(report.finished.lock().unwrap().as_slice(), attempts);
    assert!(report
        .confirmed
        .lock()
        .unwrap()
        .iter()
        .all(|(_, _, s)| s.is_some()));

    let market: Market = c.load(&ex.d.market_address(0)).await;
    assert_eq!(market.last_fill_id, 4);
    for m in &makers {
        let u: UserAccount = c.load(&ex.d.user_address(&m.pubkey())).await;
        assert_eq!(
            (u.balances[0].available, u.balances[1].available),
            (0, maker_proceeds(5))
        );
    }
    let t: UserAccount = c.load(&ex.d.user_address(&taker.pubkey())).await;
    assert_eq!(t.balances[0].available, 20 * LOT);

    // Submitting the same batches again settles nothing twice: each is refused as a replay
    // and, its fills being at or below the market's last fill id, counts as settled.
    let again = Report::default();
    let mut second = Submitter::new(&c.rpc, &ex.d, &ex.operator, &again, config());
    let settled = second.settle(&packed).await.unwrap();
    assert_eq!(settled.confirmed.len(), 4);
    assert!(second
        .attempts()
        .iter()
        .all(|a| a.outcome == Outcome::AlreadySettled));
    assert!(again
        .confirmed
        .lock()
        .unwrap()
        .iter()
        .all(|(_, _, s)| s.is_none()));
    let t2: UserAccount = c.load(&ex.d.user_address(&taker.pubkey())).await;
    assert_eq!(t2.balances[0].available, 20 * LOT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fills_are_bisected_out_and_quarantined_while_the_rest_settle() {
    let c = Chain::start().await;
    let ex = Exchange::deploy(&c).await;
    let (taker, _) = ex.user(&c, 1, 10_000_000, 0).await;
    let (alice, _) = ex.user(&c, 0, 20 * LOT, 0).await;
    let (bob, _) = ex.user(&c, 0, 5 * LOT, 0).await;
    let (carol, _) = ex.user(&c, 0, 5 * LOT, 0).await;
    let bid = buy(&ex, &taker, 100, 100);
    let ask = sell(&ex, &alice, 6, 1);
    // Bob cancels every order below nonce 5 on-chain after his order 1 was matched.
    let bob_ask = sell(&ex, &bob, 5, 1);
    c.send(&[ex.d.cancel_up_to(&bob.pubkey(), 5)], &bob, &[])
        .await;
    let fills = vec![
        fill(1, ask, bid, 2),
        fill(2, ask, bid, 2),
        fill(3, ask, bid, 5), // only 2 lots of Alice's order remain: an overfill
        fill(4, ask, bid, 2),
        fill(5, bob_ask, bid, 5), // cancelled on-chain
        fill(6, sell(&ex, &carol, 5, 1), bid, 5),
    ];
    let packed = pack(&ex, &fills);
    assert!(
        packed
            .iter()
            .any(|p| p.batch.fills.len() > 1 && p.batch.fills.iter().any(|f| f.fill_id == 3)),
        "the overfill shares its batch with valid fills"
    );
    let report = Report::default();
    let mut submitter = Submitter::new(&c.rpc, &ex.d, &ex.operator, &report, config());
    let settled = submitter.settle(&packed).await.unwrap();

    let quarantined: Vec<(u64, Option<u32>)> = settled
        .quarantined
        .iter()
        .map(|q| (q.fill_id, q.code))
        .collect();
    assert_eq!(
        quarantined,
        vec![
            (3, Some(u32::from(KestrelError::SettlementOverfill))),
            (5, Some(u32::from(KestrelError::InvalidOrderCancelled))),
        ]
    );
    assert_eq!(*report.quarantined.lock().unwrap(), settled.quarantined);
    assert_eq!(
        report.confirmed_ids(),
        BTreeSet::from([1, 2, 4, 6]),
        "{:?}",
        submitter.attempts()
    );
    // The bisection shows in the attempts: failed batches, then smaller ones with fresh ids.
    let attempts = submitter.attempts();
    assert!(attempts
        .iter()
        .any(|a| matches!(a.outcome, Outcome::Failed { .. }) && a.fills.len() > 1));
    let ids: Vec<u64> = attempts.iter().map(|a| a.batch_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let market: Market = c.load(&ex.d.market_address(0)).await;
    assert_eq!(market.last_fill_id, 6);
    let a: UserAccount = c.load(&ex.d.user_address(&alice.pubkey())).await;
    assert_eq!(a.balances[0].available, 14 * LOT);
    assert_eq!(a.balances[1].available, 3 * maker_proceeds(2));
    let b: UserAccount = c.load(&ex.d.user_address(&bob.pubkey())).await;
    assert_eq!(
        (b.balances[0].available, b.balances[1].available),
        (5 * LOT, 0)
    );
    let k: UserAccount = c.load(&ex.d.user_address(&carol.pubkey())).await;
    assert_eq!(k.balances[1].available, maker_proceeds(5));
    let t: UserAccount = c.load(&ex.d.user_address(&taker.pubkey())).await;
    assert_eq!(t.balances[0].available, 11 * LOT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submitters_settle_every_fill_exactly_once() {
    let c = Chain::start().await;
    let ex = Exchange::deploy(&c).await;
    let (taker, _) = ex.user(&c, 1, 10_000_000, 0).await;
    let mut makers = Vec::new();
    for _ in 0..6 {
        makers.push(ex.user(&c, 0, 5 * LOT, 0).await.0);
    }
    let bids = [buy(&ex, &taker, 15, 100), buy(&ex, &taker, 15, 101)];
    let fills: Vec<PendingFill> = makers
        .iter()
        .enumerate()
        .map(|(i, m)| fill(i as u64 + 1, sell(&ex, m, 5, 1), bids[i / 3], 5))
        .collect();
    let packed = pack(&ex, &fills);
    assert!(packed.len() > 1);

    let rpc_b = c.client();
    let (report_a, report_b) = (Report::default(), Report::default());
    let mut a = Submitter::new(&c.rpc, &ex.d, &ex.operator, &report_a, config());
    let mut b = Submitter::new(&rpc_b, &ex.d, &ex.operator, &report_b, config());
    let (settled_a, settled_b) = tokio::join!(a.settle(&packed), b.settle(&packed));
    let all: BTreeSet<u64> = (1..=6).collect();
    assert_eq!(report_a.confirmed_ids(), all, "{:?}", a.attempts());
    assert_eq!(report_b.confirmed_ids(), all, "{:?}", b.attempts());
    assert!(settled_a.unwrap().quarantined.is_empty());
    assert!(settled_b.unwrap().quarantined.is_empty());

    // Exactly once: each maker sold 5 lots once, the taker bought 30 lots.
    let market: Market = c.load(&ex.d.market_address(0)).await;
    assert_eq!((market.last_fill_id, market.volume_lots), (6, 30));
    for m in &makers {
        let u: UserAccount = c.load(&ex.d.user_address(&m.pubkey())).await;
        assert_eq!(
            (u.balances[0].available, u.balances[1].available),
            (0, maker_proceeds(5))
        );
    }
    let t: UserAccount = c.load(&ex.d.user_address(&taker.pubkey())).await;
    assert_eq!(t.balances[0].available, 30 * LOT);
}
