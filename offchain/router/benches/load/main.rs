//! Router load generator: signed order intake over HTTP and WebSocket, and WebSocket fan-out.
//!
//! Starts the real API in-process (127.0.0.1:0, tempdir journal, SQLite store, limits raised),
//! funds N wallets through `DepositObserved`, then runs, each bounded in time:
//! - `verify`: raw ed25519 `verify_strict` verifications/s on this machine (1 thread and all
//!   cores), measured first in the same process;
//! - `http-open` / `ws-open`: open loop at a fixed offered rate (each client sends on its own
//!   schedule, whether or not earlier answers came back); latency from the *intended* send time
//!   (coordinated omission corrected) and from the actual send time;
//! - `http-max` / `ws-max`: closed loop, each client keeps a window of requests in flight;
//! - `fanout`: S WebSocket subscribers to `book:1` in a child process (the file-descriptor limit
//!   is per process), then a stream of book-changing orders; delivery latency from each order's
//!   send and from its acknowledgement to every subscriber's receipt, against a reference
//!   server that only writes pre-framed messages, measured in the same run (`fanout.rs`).
//!
//! Orders are signed before the clock starts (the load generator shares the cores with the
//! server; signing is the client's cost, not the router's). The mix per client cycle of 10:
//! 5 resting limit orders around the mid, 2 crossing immediate-or-cancel orders, 3 cancels;
//! with `--mix quotes` (a market maker moving its quotes) the 3 cancels are replacements of
//! the newest resting order to a new price and size (two signed messages each).
//!
//! The intake load generator runs in the server's process on its own runtime, or with
//! `--client-process` in a child process (the bench re-executes itself), so that client and
//! server do not share one scheduler; every report line says which.
//!
//! Run: `cargo bench -p kestrel-router --bench load` (defaults finish in under a minute);
//! flags: `--clients N --rate R --secs S --window W --subs S --fanout-orders N
//! --fanout-rate R --verify-threads T (0 = inline) --group-window-us U --projector-delay-ms D
//! --projector-batch N --database-url URL (default: SQLite in a temporary directory)
//! --client-process --mix standard|quotes
//! --only http-open,http-max,ws-open,ws-max,fanout`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use kestrel::encoding::{Cancel, Order, OrderType, SelfTrade, Side};
use kestrel_router::api::{self, ApiConfig};
use kestrel_router::market::MarketSpec;
use kestrel_router::model::Command;
use kestrel_router::state::Rules;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

mod fanout;

/// The allocator of the `kestrel` binary, so that the bench measures what the node runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BASE: u8 = 0;
const QUOTE: u8 = 1;
const MID: u64 = 100_000;

fn exchange() -> Pubkey {
    Pubkey::new_from_array([9; 32])
}

fn mint(asset: u8) -> Pubkey {
    Pubkey::new_from_array([asset + 1; 32])
}

fn spec(index: u32) -> MarketSpec {
    MarketSpec {
        index,
        base_asset: BASE,
        quote_asset: QUOTE,
        base_lot_size: 1_000,
        tick_size: 10,
        min_size_lots: 1,
        max_size_lots: 1_000_000,
        min_price_ticks: 1,
        max_price_ticks: 10_000_000,
        maker_fee_bps: 2,
        taker_fee_bps: 5,
        max_orders: 65_536,
    }
}

#[derive(Clone, Debug)]
struct Args {
    clients: usize,
    rate: u64,
    secs: u64,
    window: usize,
    subs: usize,
    fanout_orders: usize,
    fanout_rate: u64,
    /// `None`: the router's default (`ApiConfig::embedded`).
    verify_threads: Option<usize>,
    /// Journal group-commit window in µs (`None`: the router's default).
    group_window_us: Option<u64>,
    projector_delay_ms: Option<u64>,
    projector_batch: Option<usize>,
    database_url: Option<String>,
    /// Run the intake load generator in a child process.
    client_process: bool,
    /// Replacements instead of cancels in the mix.
    quotes: bool,
    only: Vec<String>,
}

impl Args {
    fn parse(argv: impl IntoIterator<Item = String>) -> Args {
        let mut a = Args {
            clients: 64,
            rate: 20_000,
            secs: 5,
            window: 8,
            subs: 10_000,
            fanout_orders: 100,
            fanout_rate: 20,
            verify_threads: None,
            group_window_us: None,
            projector_delay_ms: None,
            projector_batch: None,
            database_url: None,
            client_process: false,
            quotes: false,
            only: ["http-open", "http-max", "ws-open", "ws-max", "fanout"]
                .map(String::from)
                .to_vec(),
        };
        let mut it = argv.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--clients" => a.clients = value().parse().unwrap(),
                "--rate" => a.rate = value().parse().unwrap(),
                "--secs" => a.secs = value().parse().unwrap(),
                "--window" => a.window = value().parse().unwrap(),
                "--subs" => a.subs = value().parse().unwrap(),
                "--fanout-orders" => a.fanout_orders = value().parse().unwrap(),
                "--fanout-rate" => a.fanout_rate = value().parse().unwrap(),
                "--verify-threads" => a.verify_threads = Some(value().parse().unwrap()),
                "--group-window-us" => a.group_window_us = Some(value().parse().unwrap()),
                "--projector-delay-ms" => a.projector_delay_ms = Some(value().parse().unwrap()),
                "--projector-batch" => a.projector_batch = Some(value().parse().unwrap()),
                "--database-url" => a.database_url = Some(value()),
                "--client-process" => a.client_process = true,
                "--mix" => {
                    a.quotes = match value().as_str() {
                        "standard" => false,
                        "quotes" => true,
                        other => panic!("unknown mix {other}"),
                    }
                }
                "--only" => a.only = value().split(',').map(String::from).collect(),
                "--bench" => {}
                other => panic!("unknown flag {other}"),
            }
        }
        a.clients = a.clients.max(1);
        a.rate = a.rate.max(1);
        a.secs = a.secs.clamp(1, 60);
        a
    }

    fn runs(&self, phase: &str) -> bool {
        self.only.iter().any(|p| p == phase)
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The load clients' WebSocket settings: a small read buffer, as the SDK's, since tungstenite
/// zero-fills the buffer's free space before every read (128 KiB by default, which made the
/// clients, not the server, the larger part of the machine's time).
fn client_ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap()
}

fn us(d: Duration) -> u64 {
    d.as_micros().max(1) as u64
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn percentiles(h: &Histogram<u64>) -> String {
    format!(
        "p50 {}  p99 {}  p99.9 {}  max {}  (n={})",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

// ---------------------------------------------------------------- wallets and orders

struct Wallet {
    key: SigningKey,
    owner: [u8; 32],
    nonce: u64,
    /// Resting orders of the previous cycles (nonce, side, client order id), cancelled or
    /// replaced in this one.
    resting: Vec<(u64, Side, u64)>,
    cycle: u64,
}

impl Wallet {
    fn new(i: usize) -> Wallet {
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let key = SigningKey::from_bytes(&seed);
        Wallet {
            owner: key.verifying_key().to_bytes(),
            key,
            nonce: 0,
            resting: Vec::new(),
            cycle: 0,
        }
    }

    /// An order under the next nonce, with `client_order_id` (`None`: the nonce).
    fn order(
        &mut self,
        market: u32,
        side: Side,
        kind: OrderType,
        price: u64,
        size: u64,
        client_order_id: Option<u64>,
    ) -> Vec<u8> {
        self.nonce += 1;
        Order {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner),
            market_index: market,
            side,
            order_type: kind,
            self_trade: SelfTrade::CancelTaker,
            price_ticks: price,
            size_lots: size,
            nonce: self.nonce,
            expiry: 0,
            client_order_id: client_order_id.unwrap_or(self.nonce),
        }
        .encode()
        .to_vec()
    }

    /// The next message of the mix: (kind path, its JSON body).
    fn next(&mut self, k: u64, quotes: bool) -> (&'static str, String) {
        let slot = k % 10;
        if slot == 0 {
            self.cycle += 1;
        }
        let buy_side = (self.cycle + slot).is_multiple_of(2);
        let r = (k.wrapping_mul(2_654_435_761) >> 7) % 20;
        match slot {
            0..=4 => {
                let (side, price) = if buy_side {
                    (Side::Buy, MID - 1 - r)
                } else {
                    (Side::Sell, MID + 1 + r)
                };
                let bytes = self.order(0, side, OrderType::Limit, price, 1 + r % 3, None);
                self.resting.push((self.nonce, side, self.nonce));
                ("orders", self.signed_json(&bytes))
            }
            5 | 6 => {
                let (side, price) = if buy_side {
                    (Side::Buy, MID + 25)
                } else {
                    (Side::Sell, MID - 25)
                };
                let bytes = self.order(0, side, OrderType::ImmediateOrCancel, price, 1, None);
                ("orders", self.signed_json(&bytes))
            }
            _ => {
                // Cancel or move the newest resting order (it may have filled meanwhile).
                let (nonce, side, client) =
                    self.resting
                        .pop()
                        .unwrap_or((self.nonce, Side::Buy, self.nonce));
                let cancel = Cancel {
                    exchange: exchange(),
                    owner: Pubkey::new_from_array(self.owner),
                    market_index: 0,
                    order_nonce: nonce,
                    expiry: 0,
                }
                .encode();
                if !quotes {
                    return ("cancel", self.signed_json(&cancel));
                }
                let price = match side {
                    Side::Buy => MID - 1 - r,
                    Side::Sell => MID + 1 + r,
                };
                let order = self.order(0, side, OrderType::Limit, price, 1 + r % 3, Some(client));
                self.resting.push((self.nonce, side, client));
                let body = format!(
                    r#"{{"cancel":{},"order":{}}}"#,
                    self.signed_json(&cancel),
                    self.signed_json(&order)
                );
                ("replace", body)
            }
        }
    }

    fn signed_json(&self, bytes: &[u8]) -> String {
        format!(
            r#"{{"message":"{}","signature":"{}"}}"#,
            hex::encode(bytes),
            hex::encode(self.key.sign(bytes).to_bytes())
        )
    }
}

/// One pre-signed message: REST path and body, or WebSocket text (the id is its index).
struct Op {
    path: &'static str,
    json: String,
}

/// Signs `per_client` messages for every wallet, on all cores.
fn presign(wallets: &mut [Wallet], per_client: usize, start_k: u64, quotes: bool) -> Vec<Vec<Op>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = wallets.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = wallets
            .chunks_mut(chunk)
            .map(|ws| {
                s.spawn(move || {
                    ws.iter_mut()
                        .map(|w| {
                            (0..per_client as u64)
                                .map(|k| {
                                    let (path, json) = w.next(start_k + k, quotes);
                                    Op { path, json }
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn ws_text(op: &Op, id: usize) -> String {
    let kind = match op.path {
        "orders" => "place",
        path => path,
    };
    // `{"message":..,"signature":..}` → `{"op":..,"id":..,"message":..,"signature":..}`
    format!(r#"{{"op":"{kind}","id":{id},{}"#, &op.json[1..])
}

// ---------------------------------------------------------------- raw verification

fn verify_rate(threads: usize, dur: Duration) -> f64 {
    let sets: Vec<_> = (0..256u64)
        .map(|i| {
            let mut w = Wallet::new(1_000_000 + i as usize);
            let bytes = w.order(0, Side::Buy, OrderType::Limit, MID, 1, None);
            let sig = w.key.sign(&bytes);
            (w.key.verifying_key(), bytes, sig)
        })
        .collect();
    let sets = &sets;
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let start = Instant::now();
                    let mut n = 0u64;
                    let mut i = t;
                    while start.elapsed() < dur {
                        for _ in 0..64 {
                            let (key, msg, sig) = &sets[i % sets.len()];
                            assert!(key.verify_strict(msg, sig).is_ok());
                            i += 1;
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / dur.as_secs_f64()
}

// ---------------------------------------------------------------- intake phases

#[derive(Default)]
struct Counts {
    accepted: u64,
    rejected: u64,
    limited: u64,
    errors: u64,
    /// Refusals by error code.
    codes: std::collections::BTreeMap<String, u64>,
}

/// The `"error":"<code>"` of a refusal.
fn error_code(text: &str) -> Option<&str> {
    let at = text.find(r#""error":""#)? + 9;
    text[at..].split('"').next()
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.limited += o.limited;
        self.errors += o.errors;
        for (code, n) in &o.codes {
            *self.codes.entry(code.clone()).or_default() += n;
        }
    }
    fn refusal(&mut self, text: &str) {
        if let Some(code) = error_code(text) {
            *self.codes.entry(code.to_owned()).or_default() += 1;
        }
    }
    fn status(&mut self, code: u16) {
        match code {
            200 => self.accepted += 1,
            429 => self.limited += 1,
            400..=499 => self.rejected += 1,
            _ => self.errors += 1,
        }
    }
    fn acked(&self) -> u64 {
        self.accepted + self.rejected
    }
}

struct Stats {
    intended: Histogram<u64>,
    actual: Histogram<u64>,
    counts: Counts,
    /// When the last answer arrived.
    last: Option<Instant>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            intended: histogram(),
            actual: histogram(),
            counts: Counts::default(),
            last: None,
        }
    }
    fn done(&mut self) {
        self.last = Some(Instant::now());
    }
    fn merge(&mut self, o: &Stats) {
        self.last = self.last.max(o.last);
        self.intended.add(&o.intended).unwrap();
        self.actual.add(&o.actual).unwrap();
        self.counts.add(&o.counts);
    }
}

fn report(name: &str, stats: &Stats, elapsed: Duration, open: bool, vps: f64) -> f64 {
    let c = &stats.counts;
    let rate = c.acked() as f64 / elapsed.as_secs_f64();
    println!(
        "{name}: {:.0} acknowledged orders/s over {:.2} s ({} accepted, {} rejected by the rules, {} rate-limited, {} errors); orders/s ÷ verify_strict/s (all cores) = {:.3}",
        rate,
        elapsed.as_secs_f64(),
        c.accepted,
        c.rejected,
        c.limited,
        c.errors,
        rate / vps
    );
    if !c.codes.is_empty() {
        println!("  refusals: {:?}", c.codes);
    }
    if open {
        println!(
            "  ack latency from intended send: {}",
            percentiles(&stats.intended)
        );
    }
    println!(
        "  ack latency from actual send:   {}",
        percentiles(&stats.actual)
    );
    rate
}

/// CPU time of the router's threads and of the load generator's, from `/proc/<pid>/task`
/// (user + system, in clock ticks of 10 ms): how much of the machine each acknowledged order
/// costs on each side, which the orders/s of a shared 2-core machine cannot show.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    /// Every router thread: runtime workers ("server"), verification pool, sequencer,
    /// snapshot writer, SQLite workers.
    router: u64,
    /// Of which the verification pool.
    verify: u64,
    /// Of which the SQLite workers (the SQL projection and the API's reads).
    sql: u64,
    /// Of which the sequencer thread: the one serial stage, so its time per order bounds
    /// the throughput of any machine.
    sequencer: u64,
    /// The load generator (the rest of this process, or all of it as the child).
    generator: u64,
}

impl Cpu {
    /// Ticks so far. `router` is "self" when the load generator shares the router's process,
    /// else the router's process id (the generator is then this whole process).
    fn now(router: &str) -> Cpu {
        let mut cpu = Cpu::default();
        for (name, ticks) in thread_ticks(router) {
            let is_router =
                name == "server" || name.starts_with("kestrel-") || name.starts_with("sqlx-");
            if !is_router {
                cpu.generator += ticks;
                continue;
            }
            cpu.router += ticks;
            if name.starts_with("kestrel-verify") {
                cpu.verify += ticks;
            }
            if name.starts_with("sqlx-") {
                cpu.sql += ticks;
            }
            // Thread names are cut to 15 bytes: "kestrel-sequenc".
            if name.starts_with("kestrel-sequenc") {
                cpu.sequencer += ticks;
            }
        }
        if router != "self" {
            cpu.generator = thread_ticks("self").iter().map(|(_, t)| t).sum();
        }
        cpu
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            router: self.router.saturating_sub(before.router),
            verify: self.verify.saturating_sub(before.verify),
            sql: self.sql.saturating_sub(before.sql),
            sequencer: self.sequencer.saturating_sub(before.sequencer),
            generator: self.generator.saturating_sub(before.generator),
        }
    }

    fn report(&self, orders: u64) {
        let per = |ticks: u64| ticks as f64 * 10_000.0 / orders.max(1) as f64;
        println!(
            "  CPU per acknowledged order: router {:.0} µs (verification {:.0}, SQLite {:.0}, sequencer thread {:.1}), load generator {:.0} µs; the router alone would use {:.2} cores at 20,000 orders/s, and its serial stage caps it at ~{:.0} orders/s",
            per(self.router),
            per(self.verify),
            per(self.sql),
            per(self.sequencer),
            per(self.generator),
            per(self.router) * 20_000.0 / 1_000_000.0,
            1_000_000.0 / per(self.sequencer).max(0.1)
        );
    }
}

/// (thread name, user + system clock ticks) of every thread of process `pid`.
fn thread_ticks(pid: &str) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            // Fields after the parenthesised name: state is the 3rd field, utime the 14th.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((name.trim().to_owned(), ticks))
        })
        .collect()
}

/// The open-loop schedule, kept by an OS thread: send `j` (client `j % n`, its `j / n`-th
/// request) is due at `start + step * j`, and the thread hands that client a ticket then, never
/// earlier. tokio's timer rounds every sleep up to its 1 ms tick, which made each send up to a
/// millisecond late and added that to every latency measured from the intended time;
/// `std::thread::sleep` is late by the kernel's timer slack (~50 µs) instead. The thread
/// sleeps at least [`PACER_MIN_SLEEP`] and then releases every send that has come due: at
/// 20,000/s a wake-up per send (every 50 µs) preempted the server's threads on 2 cores and
/// doubled the p99.
struct Pacer {
    tickets: Vec<Arc<tokio::sync::Semaphore>>,
    thread: std::thread::JoinHandle<()>,
}

const PACER_MIN_SLEEP: Duration = Duration::from_micros(250);

impl Pacer {
    fn start(start: Instant, step: Duration, sends: &[usize]) -> Pacer {
        let n = sends.len();
        let tickets: Vec<_> = (0..n)
            .map(|_| Arc::new(tokio::sync::Semaphore::new(0)))
            .collect();
        let handed = tickets.clone();
        let total = sends.iter().copied().max().unwrap_or(0) * n;
        let sends = sends.to_vec();
        let thread = std::thread::spawn(move || {
            let mut j = 0;
            while j < total {
                let now = Instant::now();
                while j < total && start + step * j as u32 <= now {
                    let (i, k) = (j % n, j / n);
                    if k < sends[i] {
                        handed[i].add_permits(1);
                    }
                    j += 1;
                }
                if j < total {
                    let next = start + step * j as u32;
                    std::thread::sleep(next.saturating_duration_since(now).max(PACER_MIN_SLEEP));
                }
            }
        });
        Pacer { tickets, thread }
    }

    /// Client `i`'s tickets, one per scheduled send.
    fn tickets(&self, i: usize) -> Arc<tokio::sync::Semaphore> {
        self.tickets[i].clone()
    }

    fn join(self) {
        self.thread.join().unwrap();
    }
}

/// Open loop over HTTP: client `i` sends op `k` at `start + (i + k·N)/R`.
async fn http_open(base: &str, ops: Vec<Vec<Op>>, rate: u64, window: usize) -> (Stats, Duration) {
    let n = ops.len() as u64;
    let start = Instant::now() + Duration::from_millis(50);
    let step = Duration::from_nanos(1_000_000_000 / rate);
    let pacer = Pacer::start(start, step, &ops.iter().map(Vec::len).collect::<Vec<_>>());
    let mut tasks = Vec::new();
    for (i, client_ops) in ops.into_iter().enumerate() {
        let tickets = pacer.tickets(i);
        let client = reqwest::Client::new();
        let base = base.to_owned();
        // HTTP/1.1 keep-alive: at most `window` connections (requests in flight) per client;
        // a request waits for one, and that wait counts in its latency from the intended time.
        let conns = Arc::new(tokio::sync::Semaphore::new(window));
        tasks.push(tokio::spawn(async move {
            let stats = Arc::new(Mutex::new(Stats::new()));
            let mut inflight = Vec::with_capacity(client_ops.len());
            for (k, op) in client_ops.into_iter().enumerate() {
                let at = start + step * (i as u32 + k as u32 * n as u32);
                tickets.acquire().await.unwrap().forget();
                let req = client
                    .post(format!("{base}/v1/{}", op.path))
                    .header("content-type", "application/json")
                    .body(op.json);
                let stats = stats.clone();
                let conns = conns.clone();
                inflight.push(tokio::spawn(async move {
                    let _conn = conns.acquire().await.unwrap();
                    let sent = Instant::now();
                    let (code, body) = match req.send().await {
                        Ok(r) => (r.status().as_u16(), r.bytes().await.unwrap_or_default()),
                        Err(_) => (0, Default::default()),
                    };
                    let done = Instant::now();
                    let mut s = stats.lock().unwrap();
                    s.done();
                    s.counts.status(code);
                    if code != 200 {
                        s.counts.refusal(&String::from_utf8_lossy(&body));
                    }
                    s.intended.saturating_record(us(done - at));
                    s.actual.saturating_record(us(done - sent));
                }));
            }
            for t in inflight {
                t.await.unwrap();
            }
            Arc::try_unwrap(stats).ok().unwrap().into_inner().unwrap()
        }));
    }
    let collected = collect(tasks, start).await;
    pacer.join();
    collected
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Stats>>, start: Instant) -> (Stats, Duration) {
    let mut all = Stats::new();
    for t in tasks {
        all.merge(&t.await.unwrap());
    }
    let end = all.last.unwrap_or_else(Instant::now);
    (all, end.saturating_duration_since(start))
}

/// Closed loop over HTTP: each client keeps `window` requests in flight for `secs`.
async fn http_max(base: &str, ops: Vec<Vec<Op>>, window: usize, secs: u64) -> (Stats, Duration) {
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for client_ops in ops {
        let client = reqwest::Client::new();
        let base = base.to_owned();
        let queue = Arc::new(Mutex::new(client_ops.into_iter()));
        tasks.push(tokio::spawn(async move {
            let mut workers = Vec::new();
            for _ in 0..window {
                let (client, base, queue) = (client.clone(), base.clone(), queue.clone());
                workers.push(tokio::spawn(async move {
                    let mut s = Stats::new();
                    while Instant::now() < end {
                        let Some(op) = queue.lock().unwrap().next() else {
                            break;
                        };
                        let sent = Instant::now();
                        let code = match client
                            .post(format!("{base}/v1/{}", op.path))
                            .header("content-type", "application/json")
                            .body(op.json)
                            .send()
                            .await
                        {
                            Ok(r) => (r.status().as_u16(), r.bytes().await.unwrap_or_default()),
                            Err(_) => (0, Default::default()),
                        };
                        let (code, body) = code;
                        s.done();
                        s.counts.status(code);
                        if code != 200 {
                            s.counts.refusal(&String::from_utf8_lossy(&body));
                        }
                        s.actual.saturating_record(us(sent.elapsed()));
                    }
                    s
                }));
            }
            let mut s = Stats::new();
            for w in workers {
                s.merge(&w.await.unwrap());
            }
            s
        }));
    }
    collect(tasks, start).await
}

/// Parses `"id":<n>` and `"ok":<bool>` out of a result message.
fn ws_result(text: &str) -> Option<(usize, bool, u16)> {
    if !text.contains(r#""type":"result""#) {
        return None;
    }
    let at = text.find(r#""id":"#)? + 5;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let id = digits.parse().ok()?;
    if text.contains(r#""ok":true"#) {
        return Some((id, true, 200));
    }
    let status = if text.contains("rate_limited") {
        429
    } else {
        422
    };
    Some((id, false, status))
}

/// WebSocket order entry: one connection per client. Open loop when `rate` is set (op `k` of
/// client `i` at `start + (i + k·N)/R`), otherwise a window of `window` requests in flight
/// for `secs`.
async fn ws_phase(
    url: &str,
    ops: Vec<Vec<Op>>,
    rate: Option<u64>,
    window: usize,
    secs: u64,
) -> (Stats, Duration) {
    let n = ops.len() as u64;
    let mut conns = Vec::new();
    for _ in 0..ops.len() {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(client_ws_config()), true)
                .await
                .unwrap();
        conns.push(ws);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs(secs);
    let step = rate.map(|r| Duration::from_nanos(1_000_000_000 / r));
    let pacer =
        step.map(|step| Pacer::start(start, step, &ops.iter().map(Vec::len).collect::<Vec<_>>()));
    let mut tasks = Vec::new();
    for (i, (client_ops, ws)) in ops.into_iter().zip(conns).enumerate() {
        let tickets = pacer.as_ref().map(|p| p.tickets(i));
        let (mut sink, mut stream) = ws.split();
        let total = client_ops.len();
        let sent_at: Arc<Vec<AtomicU64>> =
            Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
        let permits = Arc::new(tokio::sync::Semaphore::new(window));
        let sent_count = Arc::new(AtomicU64::new(0));
        let (s2, p2, c2) = (sent_at.clone(), permits.clone(), sent_count.clone());
        let writer = tokio::spawn(async move {
            for (k, op) in client_ops.into_iter().enumerate() {
                let text = ws_text(&op, k);
                match &tickets {
                    Some(tickets) => tickets.acquire().await.unwrap().forget(),
                    None => {
                        if Instant::now() >= end {
                            break;
                        }
                        p2.acquire().await.unwrap().forget();
                    }
                }
                s2[k].store(us(Instant::now() - start), Ordering::Relaxed);
                c2.fetch_add(1, Ordering::Relaxed);
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            sink
        });
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::new();
            let mut got = 0u64;
            loop {
                let done_sending = writer.is_finished();
                if done_sending && got >= sent_count.load(Ordering::Relaxed) {
                    break;
                }
                let text = match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => text,
                    Ok(Some(Ok(_))) => continue,
                    _ => break,
                };
                let Some((id, ok, code)) = ws_result(text.as_str()) else {
                    continue;
                };
                s.done();
                if !ok {
                    s.counts.refusal(text.as_str());
                }
                got += 1;
                permits.add_permits(1);
                let now = us(Instant::now() - start);
                let sent = sent_at[id].load(Ordering::Relaxed);
                s.counts.status(code);
                s.actual.saturating_record(now.saturating_sub(sent).max(1));
                if let Some(step) = step {
                    let at = us(step * (i as u32 + id as u32 * n as u32));
                    s.intended.saturating_record(now.saturating_sub(at).max(1));
                }
            }
            if let Ok(mut sink) = writer.await {
                let _ = sink.close().await;
            }
            s
        }));
    }
    let collected = collect(tasks, start).await;
    if let Some(pacer) = pacer {
        pacer.join();
    }
    collected
}

/// more command is sequenced, then the store's cursor is polled until it reaches it.
fn projection_lag(rt: &tokio::runtime::Runtime, api: &api::Api, maker: &Wallet) {
    let stopped = Instant::now();
    rt.block_on(async {
        let store = api.store();
        let behind = store.cursor().await.unwrap().seq;
        let ack = api
            .sequencer()
            .submit(Command::DepositObserved {
                owner: maker.owner,
                asset: BASE,
                amount: 1,
                tx: [0xee; 64],
                ix_index: 0,
            })
            .await
            .unwrap();
        while store.cursor().await.unwrap().seq < ack.seq {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!(
            "projection: {} commands behind when intake stopped, caught up {:.2} s later",
            ack.seq.saturating_sub(behind),
            stopped.elapsed().as_secs_f64()
        );
    });
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--fanout-child") {
        fanout::child(
            &argv[2],
            argv[3].parse().unwrap(),
            argv[4].parse().unwrap(),
            &argv[5],
        );
        return;
    }
    if argv.get(1).map(String::as_str) == Some("--load-child") {
        load_child(
            &argv[2],
            argv[3].parse().unwrap(),
            &Args::parse(argv[4..].to_vec()),
        );
        return;
    }
    run(&Args::parse(argv[1..].to_vec()));
}

fn config(dir: &std::path::Path, args: &Args) -> ApiConfig {
    let limits = api::limits::LimitsConfig {
        per_ip_per_sec: 10_000_000,
        per_ip_burst: 10_000_000,
        per_key_per_sec: 10_000_000,
        per_key_burst: 10_000_000,
        ws_per_ip: 1_000_000,
        ws_messages_per_sec: 10_000_000,
        // The bench measures intake; how far the store trails is reported apart (a real node
        // would shed new orders past the default bound in a long max phase).
        max_projection_lag: u64::MAX,
        ..Default::default()
    };
    let rules = Rules {
        exchange: exchange(),
        assets: vec![mint(BASE), mint(QUOTE)],
        markets: vec![spec(0), spec(1)],
        max_expiry_horizon_secs: 86_400 * 365,
        expiry_margin_secs: 30,
        max_open_orders: 100_000,
    };
    let mut embedded = ApiConfig::embedded(rules, dir, "127.0.0.1:0".parse().unwrap());
    if let Some(us) = args.group_window_us {
        embedded.sequencer.journal.group_window = Duration::from_micros(us);
    }
    if let Some(ms) = args.projector_delay_ms {
        embedded.projector.max_delay = Duration::from_millis(ms);
    }
    if let Some(n) = args.projector_batch {
        embedded.projector.max_batch = n;
    }
    if let Some(url) = &args.database_url {
        embedded.database_url = url.clone();
    }
    ApiConfig {
        verify_threads: args.verify_threads.unwrap_or(embedded.verify_threads),
        limits,
        ws: api::ws::WsConfig {
            ping_interval: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
            ..Default::default()
        },
        ..embedded
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {model}")
}

fn run(args: &Args) {
    println!("machine: {}", machine());
    println!("config: {args:?}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let v1 = verify_rate(1, Duration::from_secs(1));
    let vn = verify_rate(cores, Duration::from_secs(1));
    println!(
        "raw ed25519 verify_strict: {v1:.0}/s on 1 thread, {vn:.0}/s on {cores} threads (this machine, this process)"
    );

    let server_rt = runtime("server", cores);
    let client_rt = runtime("client", cores);
    let dir = tempfile::tempdir().unwrap();
    let api = server_rt
        .block_on(api::start(config(dir.path(), args)))
        .unwrap();
    let addr = api.local_addr();
    let base = format!("http://{addr}");
    let server = config(dir.path(), args);
    println!(
        "server: {cores} runtime workers, signatures verified {}, group commit window {} µs",
        match server.verify_threads {
            0 => "inline on the runtime workers".to_owned(),
            n => format!("on a pool of {n} threads"),
        },
        server.sequencer.journal.group_window.as_micros()
    );

    // The intake wallets are rebuilt from the same seeds wherever the load generator runs.
    let mut maker = Wallet::new(9_999_999);
    let sequencer = api.sequencer();
    let owners: Vec<[u8; 32]> = (0..args.clients)
        .map(|i| Wallet::new(i).owner)
        .chain([maker.owner])
        .collect();
    client_rt.block_on(async {
        let deposits = owners.iter().enumerate().flat_map(|(i, owner)| {
            [BASE, QUOTE].map(|asset| {
                let mut tx = [0u8; 64];
                tx[..8].copy_from_slice(&(i as u64).to_le_bytes());
                tx[8] = asset;
                sequencer.submit(Command::DepositObserved {
                    owner: *owner,
                    asset,
                    amount: 1_000_000_000_000_000,
                    tx,
                    ix_index: 0,
                })
            })
        });
        for ack in futures_util::future::join_all(deposits).await {
            assert!(!ack.unwrap().events.is_empty());
        }
    });
    println!("funded {} wallets", owners.len());
    // The API's shutdown waits for every sequencer handle to be dropped.
    drop(sequencer);

    if args.client_process {
        // The load generator in its own process: its runtime no longer shares a scheduler
        // with the server's (both still share the machine's cores).
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--load-child", &addr.to_string(), &vn.to_string()])
            .args(std::env::args().skip(1))
            .status()
            .unwrap();
        assert!(status.success(), "load child failed: {status}");
    } else {
        println!("load generator: in the server's process (own runtime, {cores} workers)");
        intake_phases(args, &client_rt, &addr.to_string(), vn, "self");
    }
    let metrics = api.metrics().render();
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    println!(
        "engine threads: {} orders, cancels, replacements and cancel-alls went to their engines ahead of their turn, {} engine commands matched on their market's engine thread, {} commands waited for every command in flight (all phases)",
        counter("kestrel_api_sequencer_ahead_total "),
        counter("kestrel_api_sequencer_engine_thread_total "),
        counter("kestrel_api_sequencer_waited_total ")
    );
    projection_lag(&server_rt, &api, &maker);
    if args.runs("fanout") {
        fanout::fanout(args, &client_rt, &addr.to_string(), &base, &mut maker);
    }
    drop(client_rt);
    let started = Instant::now();
    server_rt.block_on(api.shutdown()).unwrap();
    println!("shutdown in {:.2} s", started.elapsed().as_secs_f64());
}

fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// The intake child: drives the phases against the server at `addr` from its own process.
fn load_child(addr: &str, vps: f64, args: &Args) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let client_rt = runtime("client", cores);
    println!("load generator: in a child process (own runtime, {cores} workers)");
    let router = std::os::unix::process::parent_id().to_string();
    intake_phases(args, &client_rt, addr, vps, &router);
}

/// The intake phases `args` selects, from wallets `0..clients` (funded by the server side).
fn intake_phases(
    args: &Args,
    client_rt: &tokio::runtime::Runtime,
    addr: &str,
    vn: f64,
    router: &str,
) {
    let base = format!("http://{addr}");
    let ws_url = format!("ws://{addr}/v1/ws");
    let mut wallets: Vec<Wallet> = (0..args.clients).map(Wallet::new).collect();
    let mut k = 0u64;
    let mut next_ops = |wallets: &mut [Wallet], per_client: usize| {
        let ops = presign(wallets, per_client, k, args.quotes);
        k += per_client as u64;
        ops
    };
    let open_per_client = (args.rate * args.secs) as usize / args.clients;
    let max_per_client = (60_000 * args.secs) as usize / args.clients;
    if args.runs("http-open") {
        let ops = next_ops(&mut wallets, open_per_client);
        let cpu = Cpu::now(router);
        let (stats, elapsed) = client_rt.block_on(http_open(&base, ops, args.rate, args.window));
        let cpu = Cpu::now(router).since(&cpu);
        let name = format!(
            "http-open (offered {}/s, {} clients)",
            args.rate, args.clients
        );
        report(&name, &stats, elapsed, true, vn);
        cpu.report(stats.counts.acked());
    }
    if args.runs("http-max") {
        let ops = next_ops(&mut wallets, max_per_client);
        let cpu = Cpu::now(router);
        let (stats, elapsed) = client_rt.block_on(http_max(&base, ops, args.window, args.secs));
        let cpu = Cpu::now(router).since(&cpu);
        let name = format!(
            "http-max ({} clients x {} in flight)",
            args.clients, args.window
        );
        report(&name, &stats, elapsed, false, vn);
        cpu.report(stats.counts.acked());
    }
    if args.runs("ws-open") {
        let ops = next_ops(&mut wallets, open_per_client);
        let cpu = Cpu::now(router);
        let (stats, elapsed) = client_rt.block_on(ws_phase(
            &ws_url,
            ops,
            Some(args.rate),
            args.window,
            args.secs,
        ));
        let cpu = Cpu::now(router).since(&cpu);
        let name = format!(
            "ws-open (offered {}/s, {} connections)",
            args.rate, args.clients
        );
        report(&name, &stats, elapsed, true, vn);
        cpu.report(stats.counts.acked());
    }
    if args.runs("ws-max") {
        let ops = next_ops(&mut wallets, max_per_client);
        let cpu = Cpu::now(router);
        let (stats, elapsed) =
            client_rt.block_on(ws_phase(&ws_url, ops, None, args.window, args.secs));
        let cpu = Cpu::now(router).since(&cpu);
        let name = format!(
            "ws-max ({} connections x {} in flight)",
            args.clients, args.window
        );
        report(&name, &stats, elapsed, false, vn);
        cpu.report(stats.counts.acked());
    }
}
