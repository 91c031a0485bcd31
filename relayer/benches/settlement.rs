//! Settlement throughput and lag on the embedded chain, end to end through `RpcClient`:
//! fills are handed to the relayer at a fixed rate (open loop) or all at once (max), packed by
//! the batcher and landed by the submitter; prints fills settled per second, fills per
//! transaction and the lag from hand-over to confirmation (p50/p99/max).
//!
//! `cargo bench -p kestrel-relayer --bench settlement -- [--fills N] [--rate R] [--alt 1]`
//! (rate 0, the default: every fill handed over at once; `--alt 1`: v0 transactions over an
//! address lookup table holding the fixed accounts and every trader's user account and resting
//! order record, created before the clock starts; the takers' new order records stay static).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Chain, Exchange, LOT};
use hdrhistogram::Histogram;
use kestrel_relayer::batcher::{Limits, Packer, PendingFill};
use kestrel_relayer::lookup::{fixed_accounts, LookupTables};
use kestrel_relayer::submitter::{
    Attempt, Quarantined, SettlementReport, Submitter, SubmitterConfig,
};
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::OrderBuilder;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAKERS: usize = 8;
const MAX_FILLS_PER_BATCH: usize = kestrel::constants::MAX_FILLS_PER_BATCH;

#[derive(Default)]
struct Report {
    confirmed: Mutex<HashMap<u64, Instant>>,
    transactions: Mutex<u64>,
}

impl SettlementReport for Report {
    fn submitted(&self, _: &Attempt) {
        *self.transactions.lock().unwrap() += 1;
    }
    fn finished(&self, _: &Attempt) {}
    fn confirmed(&self, _: u32, fill_id: u64, _: Option<Signature>) {
        self.confirmed
            .lock()
            .unwrap()
            .insert(fill_id, Instant::now());
    }
    fn quarantined(&self, fill: &Quarantined) {
        panic!("unexpected quarantine {fill:?}");
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Market {
    ex: Exchange,
    makers: Vec<(Keypair, SignedOrder)>,
    taker: Keypair,
    next_nonce: u64,
    next_fill: u64,
}

impl Market {
    async fn open(c: &Chain, fills: u64) -> Market {
        let ex = Exchange::deploy(c).await;
        let (taker, _) = ex.user(c, 1, 100_000_000_000, 0).await;
        let mut makers = Vec::new();
        for _ in 0..MAKERS {
            let (maker, _) = ex.user(c, 0, fills * LOT, 0).await;
            let ask = OrderBuilder::limit(0)
                .sell()
                .price(100)
                .size(fills)
                .sign(ex.d.exchange, &maker, 1)
                .unwrap();
            makers.push((maker, ask));
        }
        Market {
            ex,
            makers,
            taker,
            next_nonce: 1_000,
            next_fill: 1,
        }
    }

    /// The next fill. Every `MAKERS` fills share one new taker order that buys one lot from
    /// each maker's resting ask in turn: a taker sweeping the book, the common case of a
    /// market maker quoting and takers arriving.
    fn fill(&mut self) -> PendingFill {
        let slot = (self.next_fill as usize - 1) % MAKERS;
        if slot == 0 {
            self.next_nonce += 1;
        }
        let bid = OrderBuilder::limit(0)
            .buy()
            .price(100)
            .size(MAKERS as u64)
            .sign(self.ex.d.exchange, &self.taker, self.next_nonce)
            .unwrap();
        let (_, ask) = &self.makers[slot];
        let fill = PendingFill {
            market: 0,
            fill_id: self.next_fill,
            maker: *ask,
            taker: bid,
            price_ticks: 100,
            size_lots: 1,
        };
        self.next_fill += 1;
        fill
    }
}

/// Hands `total` fills to the relayer at `rate` per second (0: all at once) and settles them;
/// returns (elapsed, transactions, lag histogram in µs).
async fn run(c: &Chain, total: u64, rate: u64, alt: bool) -> (Duration, u64, Histogram<u64>) {
    let mut m = Market::open(c, total).await;
    let mut tables = LookupTables::new(Duration::from_millis(20));
    if alt {
        let d = &m.ex.d;
        let mut wanted = fixed_accounts(d, 0);
        wanted.push(d.user_address(&m.taker.pubkey()));
        for (maker, ask) in &m.makers {
            wanted.push(d.user_address(&maker.pubkey()));
            wanted.push(d.order_address(&maker.pubkey(), ask.order.nonce));
        }
        tables.add(&c.rpc, &m.ex.operator, &wanted).await.unwrap();
    }
    let config = SubmitterConfig {
        poll_interval: Duration::from_millis(5),
        ..SubmitterConfig::default()
    };
    let report = Report::default();
    let (deployment, operator) = (m.ex.d.clone(), m.ex.operator.insecure_clone());
    let mut submitter = Submitter::new(&c.rpc, &deployment, &operator, &report, config);
    let packer = Packer {
        deployment: &deployment,
        operator: operator.pubkey(),
        limits: Limits::default(),
    };
    let mut recorded: HashSet<(Pubkey, u64)> = HashSet::new();
    let mut handed: HashMap<u64, Instant> = HashMap::new();
    let mut next_batch = 1;
    let start = Instant::now();
    let mut produced = 0u64;
    while (report.confirmed.lock().unwrap().len() as u64) < total {
        // Hand over every fill that is due by now.
        let due = if rate == 0 {
            total
        } else {
            (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1
        };
        let mut pending = Vec::new();
        while produced < due.min(total) {
            let fill = m.fill();
            handed.insert(fill.fill_id, Instant::now());
            pending.push(fill);
            produced += 1;
        }
        if pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        // Pack, land the first transaction, learn which orders it recorded, pack the rest
        // again: later transactions then carry those orders by reference (as the node does).
        while !pending.is_empty() {
            // Only the head of the queue can go into the next transaction.
            let head = &pending[..pending.len().min(MAX_FILLS_PER_BATCH)];
            let packed = packer
                .pack_with_tables(head, &recorded, &mut next_batch, tables.tables())
                .unwrap();
            let first = &packed[0];
            submitter.settle(std::slice::from_ref(first)).await.unwrap();
            let landed: HashSet<u64> = first.batch.fills.iter().map(|f| f.fill_id).collect();
            for fill in pending.iter().filter(|f| landed.contains(&f.fill_id)) {
                recorded.insert((fill.maker.order.owner, fill.maker.order.nonce));
                recorded.insert((fill.taker.order.owner, fill.taker.order.nonce));
            }
            pending.retain(|f| !landed.contains(&f.fill_id));
            next_batch = first.batch.batch_id + 1;
        }
    }
    let elapsed = start.elapsed();
    let mut lag = Histogram::<u64>::new(3).unwrap();
    for (fill_id, at) in report.confirmed.lock().unwrap().iter() {
        lag.record(at.duration_since(handed[fill_id]).as_micros() as u64)
            .unwrap();
    }
    let transactions = *report.transactions.lock().unwrap();
    (elapsed, transactions, lag)
}

fn print(label: &str, total: u64, (elapsed, transactions, lag): (Duration, u64, Histogram<u64>)) {
    println!(
        "{label:<36} fills {total:>5}  settled/s {:>8.1}  transactions {transactions:>4}  fills/tx {:>5.2}  lag p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        total as f64 / elapsed.as_secs_f64(),
        total as f64 / transactions.max(1) as f64,
        lag.value_at_quantile(0.5) as f64 / 1000.0,
        lag.value_at_quantile(0.99) as f64 / 1000.0,
        lag.max() as f64 / 1000.0,
    );
}

fn main() {
    let fills = arg("--fills", 600);
    let rate = arg("--rate", 0);
    let alt = arg("--alt", 0) == 1;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let label = match rate {
            0 => "max (all handed at once)".to_owned(),
            r => format!("open loop at {r} fills/s"),
        };
        let label = format!("{label}, {}", if alt { "v0+ALT" } else { "legacy" });
        print(
            &label,
            fills,
            run(&Chain::start().await, fills, rate, alt).await,
        );
    });
}
