//! Match → confirmed lag through the whole devnet composition: the embedded chain, the router
//! (sequencer, journal, SQLite projection, market data) and the node's settlement loop, all
//! in this process.
//!
//! Per offered rate: a fresh devnet; wallet 1 rests one large signed ask; wallet 2 sends
//! signed IOC bids of one lot at `rate` per second (0: as fast as the router acknowledges,
//! 64 in flight) for `--secs`, straight into the router's sequencer (the REST API admits 50
//! requests/s per IP, below the rates measured). Each bid matches once. A fill's lag runs from
//! the acknowledgement of the bid that made it (durable in the journal) to the router's
//! `settlement` feed reporting it confirmed on-chain (what a WebSocket client sees).
//!
//! ```text
//! CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 RUST_LOG=error \
//!   cargo bench -p kestrel-node --bench settle_lag -- --rates 50,200,0 --secs 10
//! ```
//! Flags: `--rates` (fills/s offered, 0 = max), `--secs` (placing time per rate), `--slot-ms`
//! (embedded chain slot time, 400), `--linger-ms` (settlement linger, 5), `--lookup-tables`
//! (true/false), `--drain-secs` (longest wait for the last confirmation, 120).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects, clippy::cast_precision_loss)]

use kestrel_node::devnet::DEPOSITED;
use kestrel_node::{Devnet, DevnetConfig};
use kestrel_router::marketdata::{Item, PrivateChannel, Topic};
use kestrel_router::model::{Command, Event};
use kestrel_router::sequencer::Handle;
use kestrel_sdk::OrderBuilder;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Semaphore};

const PRICE: u64 = 500;
const ASK_LOTS: u64 = 10_000_000;
const MAX_IN_FLIGHT: usize = 64;

struct Args {
    rates: Vec<u64>,
    secs: u64,
    slot_ms: u64,
    linger_ms: u64,
    lookup_tables: bool,
    drain_secs: u64,
}

fn args() -> Args {
    let mut args = Args {
        rates: vec![50, 200, 0],
        secs: 10,
        slot_ms: 400,
        linger_ms: 5,
        lookup_tables: true,
        drain_secs: 120,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rates" => {
                args.rates = value().split(',').map(|r| r.parse().unwrap()).collect();
            }
            "--secs" => args.secs = value().parse().unwrap(),
            "--slot-ms" => args.slot_ms = value().parse().unwrap(),
            "--linger-ms" => args.linger_ms = value().parse().unwrap(),
            "--lookup-tables" => args.lookup_tables = value().parse().unwrap(),
            "--drain-secs" => args.drain_secs = value().parse().unwrap(),
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// Fill id → instant, shared between the placing tasks and the feed reader.
type Times = Arc<Mutex<HashMap<u64, Instant>>>;

/// Records when each fill is reported confirmed on the router's settlement feed.
fn follow_confirmations(mut feed: broadcast::Receiver<Arc<[Item]>>, confirmed: Times) {
    tokio::spawn(async move {
        loop {
            let items = match feed.recv().await {
                Ok(items) => items,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("warning: the feed reader lagged {n} batches");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let now = Instant::now();
            for item in items.iter() {
                if !matches!(item.topic, Topic::Private(PrivateChannel::Settlement, _)) {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(item.text()).unwrap();
                let data = &value["data"];
                if data["status"] == "confirmed" {
                    let fill_id = data["fill_id"].as_u64().unwrap();
                    confirmed.lock().unwrap().entry(fill_id).or_insert(now);
                }
            }
        }
    });
}

async fn wait_for_deposits(net: &Devnet) {
    let wallets: Vec<Pubkey> = net.wallets().iter().map(|w| w.keypair.pubkey()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for owner in wallets {
        loop {
            let rows = net.api().store().balances(&owner.to_bytes()).await.unwrap();
            if rows.iter().filter(|r| r.available == DEPOSITED).count() == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "the deposits were not credited");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Successful transactions that touched `market`.
async fn transactions(rpc: &RpcClient, market: &Pubkey) -> usize {
    let mut count = 0;
    let mut before = None;
    loop {
        let config = solana_client::rpc_client::GetConfirmedSignaturesForAddress2Config {
            before,
            ..Default::default()
        };
        let page = rpc
            .get_signatures_for_address_with_config(market, config)
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return count;
        };
        before = Some(last.signature.parse().unwrap());
        count += page.iter().filter(|s| s.err.is_none()).count();
    }
}

/// Places one IOC bid of one lot; records when the fill it made was acknowledged.
async fn bid(sequencer: Handle, taker: Arc<Keypair>, exchange: Pubkey, nonce: u64, acks: Times) {
    let signed = OrderBuilder::limit(0)
        .buy()
        .price(PRICE)
        .size(1)
        .ioc()
        .sign(exchange, taker.as_ref(), nonce)
        .unwrap();
    let ack = sequencer
        .submit(Command::Place {
            order: signed.order,
            signature: signed.signature,
        })
        .await
        .unwrap();
    let now = Instant::now();
    for event in &ack.events {
        if let Event::Fill { fill_id, .. } = event {
            acks.lock().unwrap().insert(*fill_id, now);
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1_000.0
}

async fn run(args: &Args, rate: u64) {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig {
        slot_interval: Duration::from_millis(args.slot_ms),
        settle_linger: Duration::from_millis(args.linger_ms),
        lookup_tables: args.lookup_tables,
        ..DevnetConfig::ephemeral(dir.path())
    })
    .await
    .unwrap();
    wait_for_deposits(&net).await;
    let rpc = RpcClient::new(net.rpc_url());
    let market = net.deployment().market_address(0);
    let exchange = net.deployment().exchange;
    let baseline = transactions(&rpc, &market).await;
    let (acks, confirmed): (Times, Times) = Default::default();
    follow_confirmations(net.api().market_data().receiver(), confirmed.clone());
    let sequencer = net.api().sequencer();
    let [maker, taker] = net.wallets() else {
        panic!("two demo wallets")
    };
    let ask = OrderBuilder::limit(0)
        .sell()
        .price(PRICE)
        .size(ASK_LOTS)
        .sign(exchange, &maker.keypair, 1)
        .unwrap();
    sequencer
        .submit(Command::Place {
            order: ask.order,
            signature: ask.signature,
        })
        .await
        .unwrap();
    let taker = Arc::new(taker.keypair.insecure_clone());
    let load_before = load_average();

    let start = Instant::now();
    let until = start + Duration::from_secs(args.secs);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = Vec::new();
    let mut nonce = 1u64;
    let mut every = (rate > 0).then(|| tokio::time::interval(Duration::from_secs(1) / rate as u32));
    while Instant::now() < until {
        let permit = match &mut every {
            Some(every) => {
                every.tick().await;
                None
            }
            None => Some(in_flight.clone().acquire_owned().await.unwrap()),
        };
        let task = bid(
            sequencer.clone(),
            taker.clone(),
            exchange,
            nonce,
            acks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            task.await;
            drop(permit);
        }));
        nonce += 1;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let placed = start.elapsed();
    let acked = acks.lock().unwrap().len();
    let drain = Instant::now() + Duration::from_secs(args.drain_secs);
    while confirmed.lock().unwrap().len() < acked && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load_after = load_average();
    let settle_txs = transactions(&rpc, &market).await - baseline;

    let acks = acks.lock().unwrap().clone();
    let confirmed = confirmed.lock().unwrap().clone();
    let mut lags: Vec<Duration> = acks
        .iter()
        .filter_map(|(id, acked)| confirmed.get(id).map(|c| c.duration_since(*acked)))
        .collect();
    lags.sort_unstable();
    let first_ack = acks.values().min().copied().unwrap_or(start);
    let last_confirm = confirmed.values().max().copied().unwrap_or(first_ack);
    let span = last_confirm
        .duration_since(first_ack)
        .as_secs_f64()
        .max(f64::EPSILON);
    let status = net.status();
    let offered = if rate == 0 {
        "max".to_owned()
    } else {
        rate.to_string()
    };
    println!(
        "rate {offered:>4}/s | bids {} in {:.1} s ({:.0}/s) | fills acked {acked} confirmed {} \
         quarantined {} | settle txs {settle_txs} ({:.1} fills/tx) | settled {:.0} fills/s | \
         lag ms p50 {:.0} p99 {:.0} p99.9 {:.0} max {:.0} | load {load_before} -> {load_after}",
        nonce - 1,
        placed.as_secs_f64(),
        (nonce - 1) as f64 / placed.as_secs_f64(),
        lags.len(),
        status.quarantined,
        lags.len() as f64 / settle_txs.max(1) as f64,
        lags.len() as f64 / span,
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        percentile(&lags, 0.999),
        lags.last().map_or(0.0, |d| d.as_secs_f64() * 1_000.0),
    );
    // The router's shutdown waits for every sequencer handle to be dropped.
    drop(sequencer);
    net.shutdown().await.unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    println!(
        "settle_lag: slot {} ms, linger {} ms, lookup tables {}, {} s per rate",
        args.slot_ms, args.linger_ms, args.lookup_tables, args.secs
    );
    for rate in args.rates.clone() {
        run(&args, rate).await;
    }
}
