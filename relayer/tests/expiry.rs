//! A settle transaction whose blockhash actually expires mid-flight: a fast slot clock lets
//! the ~150 slots of a blockhash's life pass in moments, and a proxy in front of the embedded
//! chain's RPC drops every `sendTransaction` signed over the batch's first blockhash. The
//! submitter (sending v0 over a lookup table) must re-sign exactly once, only after
//! `isBlockhashValid` turned false, and every fill settles exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::prelude::{Engine, BASE64_STANDARD};
use common::{Chain, Exchange, LOT, TICK};
use kestrel::state::{Market, UserAccount};
use kestrel_relayer::batcher::{Limits, Packer, PendingFill};
use kestrel_relayer::lookup::{fixed_accounts, frequent_accounts, LookupTables};
use kestrel_relayer::submitter::{
    Attempt, Outcome, Quarantined, SettlementReport, Submitter, SubmitterConfig,
};
use kestrel_sdk::OrderBuilder;
use serde_json::{json, Value};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::hash::Hash;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::VersionedTransaction;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Drops every send over the first blockhash it sees; records, for every other send, whether
/// that first blockhash was still valid at that moment.
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    doomed: Mutex<Option<Hash>>,
    dropped: AtomicU64,
    /// `(blockhash of a forwarded send, was the doomed blockhash still valid)`.
    forwarded: Mutex<Vec<(Hash, bool)>>,
}

impl Proxy {
    async fn call(&self, body: Vec<u8>) -> Result<(StatusCode, Bytes), reqwest::Error> {
        let response = self
            .http
            .post(&self.upstream)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        Ok((status, response.bytes().await?))
    }

    async fn is_valid(&self, blockhash: &Hash) -> bool {
        let request = json!({
            "jsonrpc": "2.0", "id": 1, "method": "isBlockhashValid",
            "params": [blockhash.to_string()],
        });
        let (_, body) = self.call(request.to_string().into_bytes()).await.unwrap();
        let answer: Value = serde_json::from_slice(&body).unwrap();
        answer["result"]["value"].as_bool().unwrap()
    }
}

/// The blockhash of a `sendTransaction` request (base64, as `RpcClient` sends it).
fn sent_blockhash(request: &Value) -> Option<Hash> {
    if request["method"] != "sendTransaction" {
        return None;
    }
    let wire = BASE64_STANDARD
        .decode(request["params"][0].as_str()?)
        .ok()?;
    let tx: VersionedTransaction = bincode::deserialize(&wire).ok()?;
    Some(*tx.message.recent_blockhash())
}

async fn relay(State(proxy): State<Arc<Proxy>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(blockhash) = sent_blockhash(&request) {
        let doomed = *proxy.doomed.lock().unwrap().get_or_insert(blockhash);
        if blockhash == doomed {
            proxy.dropped.fetch_add(1, Ordering::SeqCst);
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let still_valid = proxy.is_valid(&doomed).await;
        proxy
            .forwarded
            .lock()
            .unwrap()
            .push((blockhash, still_valid));
    }
    match proxy.call(body.to_vec()).await {
        Ok((status, bytes)) => (status, bytes).into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn start_proxy(upstream: String) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        upstream,
        http: reqwest::Client::new(),
        doomed: Mutex::new(None),
        dropped: AtomicU64::new(0),
        forwarded: Mutex::new(Vec::new()),
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
    confirmed: Mutex<Vec<(u64, Option<Signature>)>>,
}

impl SettlementReport for Report {
    fn submitted(&self, _: &Attempt) {}
    fn finished(&self, _: &Attempt) {}
    fn confirmed(&self, _: u32, fill_id: u64, signature: Option<Signature>) {
        self.confirmed.lock().unwrap().push((fill_id, signature));
    }
    fn quarantined(&self, fill: &Quarantined) {
        panic!("unexpected quarantine {fill:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_attempt_is_re_signed_once_after_its_blockhash_is_invalid() {
    let c = Chain::start_fast(Duration::from_millis(5)).await;
    let ex = Exchange::deploy(&c).await;
    let d = &ex.d;
    let (taker, _) = ex.user(&c, 1, 1_000_000, 0).await;
    let mut makers: Vec<Keypair> = Vec::new();
    for _ in 0..3 {
        makers.push(ex.user(&c, 0, 5 * LOT, 0).await.0);
    }
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(100)
        .size(3)
        .sign(d.exchange, &taker, 100)
        .unwrap();
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
                .sign(d.exchange, m, 1)
                .unwrap(),
            taker: bid,
            price_ticks: 100,
            size_lots: 1,
        })
        .collect();
    let mut tables = LookupTables::new(Duration::from_millis(5));
    let mut wanted = fixed_accounts(d, 0);
    wanted.extend(frequent_accounts(d, &fills));
    tables.add(&c.rpc, &ex.operator, &wanted).await.unwrap();
    let packed = Packer {
        deployment: d,
        operator: ex.operator.pubkey(),
        limits: Limits::default(),
    }
    .pack_with_tables(&fills, &HashSet::new(), &mut 1, tables.tables())
    .unwrap();
    assert_eq!(packed.len(), 1, "one batch");

    let (url, proxy) = start_proxy(c.chain.rpc_url()).await;
    let rpc = RpcClient::new(url);
    let report = Report::default();
    let config = SubmitterConfig {
        poll_interval: Duration::from_millis(20),
        rebroadcast_interval: Duration::from_millis(100),
        ..SubmitterConfig::default()
    };
    let mut submitter = Submitter::new(&rpc, d, &ex.operator, &report, config);
    let settled = submitter.settle(&packed).await.unwrap();
    assert_eq!(settled.confirmed, vec![(0, 1), (0, 2), (0, 3)]);

    // Two signatures for the batch: the first expired unseen, the second landed.
    let attempts = submitter.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let doomed = proxy.doomed.lock().unwrap().unwrap();
    assert_eq!(
        (attempts[0].blockhash, &attempts[0].outcome),
        (doomed, &Outcome::Expired)
    );
    assert_eq!(attempts[1].outcome, Outcome::Confirmed);
    assert_eq!(attempts[0].batch_id, attempts[1].batch_id);
    assert_eq!(attempts[0].fills, attempts[1].fills);
    assert_ne!(attempts[1].blockhash, doomed);
    assert!(
        proxy.dropped.load(Ordering::SeqCst) >= 2,
        "rebroadcasts dropped too"
    );
    // Every send of the new signature went out after the old blockhash was invalid.
    let forwarded = proxy.forwarded.lock().unwrap().clone();
    assert!(!forwarded.is_empty());
    assert!(
        forwarded
            .iter()
            .all(|(blockhash, still_valid)| *blockhash == attempts[1].blockhash && !still_valid),
        "{forwarded:?}"
    );
    // The expired signature never landed; the new one did, once.
    let statuses = c
        .rpc
        .get_signature_statuses(&[attempts[0].signature, attempts[1].signature])
        .await
        .unwrap()
        .value;
    assert!(statuses[0].is_none());
    assert!(statuses[1].as_ref().unwrap().err.is_none());
    let confirmed = report.confirmed.lock().unwrap().clone();
    assert_eq!(
        confirmed,
        (1..=3)
            .map(|id| (id, Some(attempts[1].signature)))
            .collect::<Vec<_>>()
    );

    // On-chain: three fills of one lot, each once.
    let market: Market = c.load(&d.market_address(0)).await;
    assert_eq!(
        (
            market.last_fill_id,
            market.last_batch_id,
            market.volume_lots
        ),
        (3, 1, 3)
    );
    let notional = 100 * TICK;
    let taker_fee = (notional * 5).div_ceil(10_000);
    let t: UserAccount = c.load(&d.user_address(&taker.pubkey())).await;
    assert_eq!(
        (t.balances[0].available, t.balances[1].available),
        (3 * LOT, 1_000_000 - 3 * (notional + taker_fee))
    );
}
