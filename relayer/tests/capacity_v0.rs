//! Fills per settle transaction, legacy against v0 with an address lookup table, for the
//! workloads of the capacity table in docs/benchmarks.md: (a) new + new orders, (b) a new
//! taker sweeping recorded makers, (c) recorded + recorded, each with distinct or shared
//! wallets. For each row the batcher packs the same candidate fills both ways (more candidates
//! than fit); the largest v0 transaction is then landed on the embedded chain and checked.
//!
//! `cargo test -p kestrel-relayer --test capacity_v0 -- --nocapture` prints one `capacity-v0`
//! line per row.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use common::{Chain, Exchange, LOT};
use kestrel::state::Market;
use kestrel_relayer::batcher::{Limits, Packed, Packer, PendingFill};
use kestrel_relayer::lookup::{fixed_accounts, frequent_accounts, LookupTables};
use kestrel_relayer::submitter::{
    Attempt, Quarantined, SettlementReport, Submitter, SubmitterConfig,
};
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::settle::PACKET_DATA_SIZE;
use kestrel_sdk::OrderBuilder;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use std::collections::HashSet;
use std::time::Duration;

struct Quiet;

impl SettlementReport for Quiet {
    fn submitted(&self, _: &Attempt) {}
    fn finished(&self, _: &Attempt) {}
    fn confirmed(&self, _: u32, _: u64, _: Option<Signature>) {}
    fn quarantined(&self, fill: &Quarantined) {
        panic!("unexpected quarantine {fill:?}");
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    NewNew,
    NewTakerRecordedMakers,
    RecordedRecorded,
}

/// The market's fill and batch ids, shared by every row.
struct Ids {
    fill: u64,
    batch: u64,
}

struct Row {
    legacy: usize,
    v0: usize,
    bytes: usize,
    accounts: usize,
}

fn order(
    d: &kestrel_sdk::Deployment,
    wallet: &Keypair,
    buy: bool,
    size: u64,
    nonce: u64,
) -> SignedOrder {
    let builder = OrderBuilder::limit(0).price(100).size(size);
    let builder = if buy { builder.buy() } else { builder.sell() };
    builder.sign(d.exchange, wallet, nonce).unwrap()
}

fn fills(pairs: &[(SignedOrder, SignedOrder)], ids: &mut Ids) -> Vec<PendingFill> {
    pairs
        .iter()
        .map(|(maker, taker)| {
            ids.fill += 1;
            PendingFill {
                market: 0,
                fill_id: ids.fill,
                maker: *maker,
                taker: *taker,
                price_ticks: 100,
                size_lots: 1,
            }
        })
        .collect()
}

/// Lands `packed` and moves the batch ids past what it used.
async fn land(c: &Chain, ex: &Exchange, packed: &[Packed], ids: &mut Ids) -> usize {
    let config = SubmitterConfig {
        poll_interval: Duration::from_millis(10),
        ..SubmitterConfig::default()
    };
    let mut submitter = Submitter::new(&c.rpc, &ex.d, &ex.operator, &Quiet, config);
    let settled = submitter.settle(packed).await.unwrap();
    for attempt in submitter.attempts() {
        ids.batch = ids.batch.max(attempt.batch_id + 1);
    }
    settled.confirmed.len()
}

async fn row(c: &Chain, ex: &Exchange, kind: Kind, shared: bool, n: usize, ids: &mut Ids) -> Row {
    let d = &ex.d;
    let wallets = if shared { 1 } else { n };
    let mut makers = Vec::new();
    let mut takers = Vec::new();
    for _ in 0..wallets {
        makers.push(ex.user(c, 0, 4 * n as u64 * LOT, 0).await.0);
        if kind != Kind::NewTakerRecordedMakers {
            takers.push(ex.user(c, 1, 10_000_000, 0).await.0);
        }
    }
    if kind == Kind::NewTakerRecordedMakers {
        takers.push(ex.user(c, 1, 10_000_000, 0).await.0);
    }
    let asks: Vec<SignedOrder> = (0..n)
        .map(|i| order(d, &makers[i % wallets], false, 2, 10 + i as u64))
        .collect();
    let bids: Vec<SignedOrder> = (0..n)
        .map(|i| order(d, &takers[i % takers.len()], true, 2, 10 + i as u64))
        .collect();
    let sweeper = |nonce| order(d, &takers[0], true, n as u64, nonce);

    // What is recorded before the measured fills, and the measured fills themselves.
    let (setup, measured): (Vec<PendingFill>, Vec<PendingFill>) = match kind {
        Kind::NewNew => (Vec::new(), {
            let pairs: Vec<_> = asks.iter().copied().zip(bids.iter().copied()).collect();
            fills(&pairs, ids)
        }),
        Kind::NewTakerRecordedMakers => {
            let record: Vec<_> = asks.iter().map(|a| (*a, sweeper(1))).collect();
            let sweep: Vec<_> = asks.iter().map(|a| (*a, sweeper(2))).collect();
            (fills(&record, ids), fills(&sweep, ids))
        }
        Kind::RecordedRecorded => {
            let pairs: Vec<_> = asks.iter().copied().zip(bids.iter().copied()).collect();
            (fills(&pairs, ids), fills(&pairs, ids))
        }
    };
    let all: Vec<PendingFill> = setup.iter().chain(&measured).copied().collect();
    let mut tables = LookupTables::new(Duration::from_millis(10));
    let mut wanted = fixed_accounts(d, 0);
    wanted.extend(frequent_accounts(d, &all));
    tables.add(&c.rpc, &ex.operator, &wanted).await.unwrap();
    let packer = Packer {
        deployment: d,
        operator: ex.operator.pubkey(),
        limits: Limits::default(),
    };
    if !setup.is_empty() {
        let mut next = ids.batch;
        let packed = packer
            .pack_with_tables(&setup, &HashSet::new(), &mut next, tables.tables())
            .unwrap();
        assert_eq!(land(c, ex, &packed, ids).await, setup.len());
    }
    let recorded: HashSet<(Pubkey, u64)> = setup
        .iter()
        .flat_map(|f| [f.maker.order, f.taker.order])
        .map(|o| (o.owner, o.nonce))
        .collect();

    let legacy = packer
        .pack(&measured, &recorded, &mut ids.batch.clone())
        .unwrap();
    let mut next = ids.batch;
    let v0 = packer
        .pack_with_tables(&measured, &recorded, &mut next, tables.tables())
        .unwrap();
    let first = v0[0].clone();
    assert!(
        first.batch.fills.len() < measured.len(),
        "{kind:?}: offer more candidates than fit"
    );
    assert!(first.bytes <= PACKET_DATA_SIZE && first.accounts <= 64);
    let before: Market = c.load(&d.market_address(0)).await;
    let landed = land(c, ex, std::slice::from_ref(&first), ids).await;
    assert_eq!(landed, first.batch.fills.len());
    let after: Market = c.load(&d.market_address(0)).await;
    assert_eq!(after.volume_lots - before.volume_lots, landed as u64);
    Row {
        legacy: legacy[0].batch.fills.len(),
        v0: landed,
        bytes: first.bytes,
        accounts: first.accounts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_with_a_lookup_table_carries_more_fills_than_legacy() {
    let c = Chain::start_fast(Duration::from_millis(10)).await;
    let ex = Exchange::deploy(&c).await;
    let mut ids = Ids { fill: 0, batch: 1 };
    let rows = [
        (Kind::NewNew, false, 4, "(a) new + new"),
        (Kind::NewNew, true, 4, "(a) new + new"),
        (
            Kind::NewTakerRecordedMakers,
            false,
            40,
            "(b) new taker, recorded makers",
        ),
        (
            Kind::NewTakerRecordedMakers,
            true,
            40,
            "(b) new taker, recorded makers",
        ),
        (Kind::RecordedRecorded, false, 24, "(c) recorded + recorded"),
        (Kind::RecordedRecorded, true, 40, "(c) recorded + recorded"),
    ];
    for (kind, shared, n, label) in rows {
        let r = row(&c, &ex, kind, shared, n, &mut ids).await;
        let wallets = if shared { "shared" } else { "distinct" };
        println!(
            "capacity-v0 | {label} | {wallets} | legacy {} | v0 {} | v0 bytes {} | v0 accounts {} |",
            r.legacy, r.v0, r.bytes, r.accounts
        );
        if kind == Kind::NewNew {
            assert!(r.v0 >= r.legacy);
        } else {
            assert!(
                r.v0 > r.legacy,
                "{label} {wallets}: {} vs {}",
                r.v0,
                r.legacy
            );
        }
    }
}
