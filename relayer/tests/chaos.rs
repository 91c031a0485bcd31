//! Chaos: two submitters settle the same batches through a fault-injecting proxy in front of
//! the embedded chain's RPC — requests dropped before or after reaching the node, delayed,
//! duplicated, or hanging past the client's timeout. Every valid fill settles exactly once,
//! the invalid one is quarantined, no batch is re-signed while its previous signature could
//! still land, and reconciliation is clean at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{Chain, Exchange, LOT, TICK};
use kestrel::error::KestrelError;
use kestrel::state::{Market, UserAccount};
use kestrel_relayer::batcher::{Limits, Packer, PendingFill};
use kestrel_relayer::reconcile::{LedgerError, OffchainLedger, Reconciler};
use kestrel_relayer::submitter::{
    Attempt, Outcome, Quarantined, SettlementReport, Submitter, SubmitterConfig,
};
use kestrel_sdk::OrderBuilder;
use rand::{Rng, SeedableRng};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy did, by kind of fault.
#[derive(Default)]
struct Faults {
    dropped_before: AtomicU64,
    dropped_after: AtomicU64,
    delayed: AtomicU64,
    duplicated: AtomicU64,
    hung: AtomicU64,
    passed: AtomicU64,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    rng: Mutex<rand::rngs::StdRng>,
    faults: Faults,
}

async fn forward(proxy: &Proxy, body: &Bytes) -> Result<(StatusCode, Bytes), reqwest::Error> {
    let response = proxy
        .http
        .post(&proxy.upstream)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    Ok((status, response.bytes().await?))
}

async fn relay(State(proxy): State<Arc<Proxy>>, body: Bytes) -> Response {
    let roll: f64 = proxy.rng.lock().unwrap().gen();
    let unavailable = || StatusCode::SERVICE_UNAVAILABLE.into_response();
    let f = &proxy.faults;
    if roll < 0.12 {
        f.dropped_before.fetch_add(1, Ordering::Relaxed);
        return unavailable();
    }
    if roll < 0.24 {
        // The node acts on it, the answer is lost: the worst case for sendTransaction.
        f.dropped_after.fetch_add(1, Ordering::Relaxed);
        let _ = forward(&proxy, &body).await;
        return unavailable();
    }
    if roll < 0.29 {
        f.hung.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        return unavailable();
    }
    if roll < 0.44 {
        f.delayed.fetch_add(1, Ordering::Relaxed);
        let ms = proxy.rng.lock().unwrap().gen_range(20..300);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    } else if roll < 0.54 {
        f.duplicated.fetch_add(1, Ordering::Relaxed);
        let _ = forward(&proxy, &body).await;
    } else {
        f.passed.fetch_add(1, Ordering::Relaxed);
    }
    match forward(&proxy, &body).await {
        Ok((status, bytes)) => (status, bytes).into_response(),
        Err(_) => unavailable(),
    }
}

async fn start_proxy(upstream: String, seed: u64) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        upstream,
        http: reqwest::Client::new(),
        rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        faults: Faults::default(),
    });
    let app = axum::Router::new()
        .route("/", axum::routing::post(relay))
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, proxy)
}

#[derive(Default)]
struct Report {
    quarantined: Mutex<Vec<Quarantined>>,
}

impl SettlementReport for Report {
    fn submitted(&self, _: &Attempt) {}
    fn finished(&self, _: &Attempt) {}
    fn confirmed(&self, _: u32, _: u64, _: Option<Signature>) {}
    fn quarantined(&self, fill: &Quarantined) {
        self.quarantined.lock().unwrap().push(fill.clone());
    }
}

/// Expected balances and credited deposits.
struct Expected(HashMap<(Pubkey, u8), u64>, HashMap<(Pubkey, u8), u64>);

impl OffchainLedger for Expected {
    fn expected_balances(
        &self,
    ) -> impl Future<Output = Result<HashMap<(Pubkey, u8), u64>, LedgerError>> + Send {
        let balances = self.0.clone();
        async move { Ok(balances) }
    }

    fn credited_deposits(
        &self,
    ) -> impl Future<Output = Result<HashMap<(Pubkey, u8), u64>, LedgerError>> + Send {
        let deposits = self.1.clone();
        async move { Ok(deposits) }
    }
}

/// A new signature for a batch only after the previous one's blockhash expired unseen.
fn assert_no_early_resign(attempts: &[Attempt]) {
    for pair in attempts.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.batch_id == b.batch_id && a.fills == b.fills {
            assert_eq!(
                a.outcome,
                Outcome::Expired,
                "re-signed before expiry: {a:?} then {b:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_valid_fill_settles_exactly_once_through_a_faulty_rpc() {
    let c = Chain::start().await;
    let ex = Exchange::deploy(&c).await;
    let (taker, _) = ex.user(&c, 1, 10_000_000, 0).await;
    let mut makers: Vec<Keypair> = Vec::new();
    for _ in 0..7 {
        makers.push(ex.user(&c, 0, 5 * LOT, 0).await.0);
    }
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(101)
        .size(40)
        .sign(ex.d.exchange, &taker, 100)
        .unwrap();
    // Fill 4 asks 6 lots of a 5-lot order: the chain refuses it as an overfill.
    let fills: Vec<PendingFill> = makers
        .iter()
        .enumerate()
        .map(|(i, m)| PendingFill {
            market: 0,
            fill_id: i as u64 + 1,
            maker: OrderBuilder::limit(0)
                .sell()
                .price(100)
                .size(5)
                .sign(ex.d.exchange, m, 1)
                .unwrap(),
            taker: bid,
            price_ticks: 100,
            size_lots: if i == 3 { 6 } else { 5 },
        })
        .collect();
    let packer = Packer {
        deployment: &ex.d,
        operator: ex.operator.pubkey(),
        limits: Limits::default(),
    };
    let packed = packer.pack(&fills, &HashSet::new(), &mut 1).unwrap();

    let (url, proxy) = start_proxy(c.chain.rpc_url(), 7).await;
    let rpc_a = RpcClient::new_with_timeout(url.clone(), Duration::from_secs(1));
    let rpc_b = RpcClient::new_with_timeout(url, Duration::from_secs(1));
    let config = SubmitterConfig {
        poll_interval: Duration::from_millis(20),
        rebroadcast_interval: Duration::from_millis(300),
        rpc_retries: 10,
        rpc_backoff: Duration::from_millis(50),
    };
    let (report_a, report_b) = (Report::default(), Report::default());
    let mut a = Submitter::new(&rpc_a, &ex.d, &ex.operator, &report_a, config);
    let mut b = Submitter::new(&rpc_b, &ex.d, &ex.operator, &report_b, config);
    let (settled_a, settled_b) = tokio::join!(a.settle(&packed), b.settle(&packed));
    settled_a.unwrap();
    settled_b.unwrap();
    let f = &proxy.faults;
    let injected = [
        &f.dropped_before,
        &f.dropped_after,
        &f.hung,
        &f.delayed,
        &f.duplicated,
    ];
    assert!(
        injected.iter().all(|n| n.load(Ordering::Relaxed) > 0),
        "every kind of fault was injected at least once"
    );

    // On-chain truth: the six valid fills settled once each, the overfill never.
    let market: Market = c.load(&ex.d.market_address(0)).await;
    assert_eq!((market.last_fill_id, market.volume_lots), (7, 30));
    let notional = 100 * TICK * 5;
    let maker_fee = (notional * 2).div_ceil(10_000);
    let taker_fee = (notional * 5).div_ceil(10_000);
    let mut expected = HashMap::new();
    for (i, m) in makers.iter().enumerate() {
        let u: UserAccount = c.load(&ex.d.user_address(&m.pubkey())).await;
        let want = if i == 3 {
            (5 * LOT, 0)
        } else {
            (0, notional - maker_fee)
        };
        assert_eq!(
            (u.balances[0].available, u.balances[1].available),
            want,
            "maker {i}"
        );
        expected.insert((m.pubkey(), 0), want.0);
        expected.insert((m.pubkey(), 1), want.1);
    }
    let t: UserAccount = c.load(&ex.d.user_address(&taker.pubkey())).await;
    let taker_quote = 10_000_000 - 6 * (notional + taker_fee);
    assert_eq!(
        (t.balances[0].available, t.balances[1].available),
        (30 * LOT, taker_quote)
    );
    expected.insert((taker.pubkey(), 0), 30 * LOT);
    expected.insert((taker.pubkey(), 1), taker_quote);

    // The overfill was isolated with the program's own error, by at least one submitter.
    let overfill = u32::from(KestrelError::SettlementOverfill);
    let quarantined: Vec<Quarantined> = [&report_a, &report_b]
        .iter()
        .flat_map(|r| r.quarantined.lock().unwrap().clone())
        .collect();
    assert!(
        quarantined
            .iter()
            .any(|q| q.fill_id == 4 && q.code == Some(overfill)),
        "{quarantined:?}"
    );
    assert!(
        quarantined.iter().all(|q| q.fill_id == 4),
        "{quarantined:?}"
    );

    assert_no_early_resign(a.attempts());
    assert_no_early_resign(b.attempts());

    let mut deposits: HashMap<(Pubkey, u8), u64> =
        makers.iter().map(|m| ((m.pubkey(), 0), 5 * LOT)).collect();
    deposits.insert((taker.pubkey(), 1), 10_000_000);
    let reconciler = Reconciler::new();
    let result = reconciler
        .run(&c.rpc, &ex.d, &Expected(expected, deposits))
        .await
        .unwrap();
    assert!(result.is_clean(), "{result:?}");
    assert!(!reconciler.withdrawals_halted());
}
