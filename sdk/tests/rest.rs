//! The REST client against the real router API, in-process on loopback (as the router's own API
//! tests start it): place, fill, cancel, cancel-all, replace, and a typed API error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use kestrel_router::api::{self, Api, ApiConfig};
use kestrel_router::market::MarketSpec;
use kestrel_router::model::Command;
use kestrel_router::state::Rules;
use kestrel_sdk::rest::{Error, RestClient};
use kestrel_sdk::OrderBuilder;
use serde_json::{json, Value};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::future::Future;
use std::time::Duration;

const BASE: u8 = 0;
const QUOTE: u8 = 1;

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
        max_price_ticks: 1_000_000,
        maker_fee_bps: 2,
        taker_fee_bps: 5,
        max_orders: 4_096,
    }
}

fn config(dir: &std::path::Path) -> ApiConfig {
    let limits = api::limits::LimitsConfig {
        per_ip_per_sec: 100_000,
        per_ip_burst: 100_000,
        per_key_per_sec: 100_000,
        per_key_burst: 100_000,
        ..Default::default()
    };
    let rules = Rules {
        exchange: exchange(),
        assets: vec![mint(BASE), mint(QUOTE)],
        markets: vec![spec(0), spec(1)],
        max_expiry_horizon_secs: 86_400 * 365,
        expiry_margin_secs: 30,
        max_open_orders: 64,
    };
    ApiConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        limits,
        ..ApiConfig::embedded(rules, dir, "127.0.0.1:0".parse().unwrap())
    }
}

async fn deposit(api: &Api, owner: &Keypair, asset: u8, amount: u64, tx: u8) {
    let ack = api
        .sequencer()
        .submit(Command::DepositObserved {
            owner: owner.pubkey().to_bytes(),
            asset,
            amount,
            tx: [tx; 64],
            ix_index: 0,
        })
        .await
        .unwrap();
    assert!(!ack.events.is_empty());
}

/// Polls a read until `done` holds (the SQL projection trails durability by a few ms).
async fn eventually<F, Fut>(read: F, done: impl Fn(&Value) -> bool) -> Value
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let mut last = None;
    for _ in 0..200 {
        let value = read().await.unwrap();
        if done(&value) {
            return value;
        }
        last = Some(value);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never satisfied the condition: {last:?}");
}

fn has_event(events: &[Value], kind: &str) -> bool {
    events.iter().any(|e| e["type"] == kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_trades_cancels_replaces_and_reports_api_errors() {
    let dir = tempfile::tempdir().unwrap();
    let api = api::start(config(dir.path())).await.unwrap();
    let base_url = format!("http://{}", api.local_addr());

    let maker = Keypair::new();
    let taker = Keypair::new();
    let (maker_key, taker_key) = (maker.pubkey(), taker.pubkey());
    deposit(&api, &maker, BASE, 1_000_000_000, 1).await;
    deposit(&api, &taker, QUOTE, 1_000_000_000, 2).await;

    // The exchange read from the API is the one the router runs.
    let client = RestClient::connect(base_url.clone()).await.unwrap();
    assert_eq!(client.exchange(), exchange());
    let markets = client.markets().await.unwrap();
    assert_eq!(markets["markets"].as_array().map(Vec::len), Some(2));

    // A resting ask, then a crossing bid: one fill.
    let ask = OrderBuilder::limit(0)
        .sell()
        .price(1_500)
        .size(10)
        .sign(exchange(), &maker, 1)
        .unwrap();
    let resting = client.place(&ask).await.unwrap();
    let maker_order = resting.order_id.unwrap();
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(1_500)
        .size(10)
        .sign(exchange(), &taker, 1)
        .unwrap();
    let taken = client.place(&bid).await.unwrap();
    let fill = taken.events.iter().find(|e| e["type"] == "fill").unwrap();
    assert_eq!(fill["size_lots"], 10);
    let taker_hex = kestrel_sdk::rest::hex(taker.pubkey().as_ref());
    assert_eq!(fill["taker"], taker_hex);
    let fills = eventually(
        || client.fills(&taker_key),
        |f| f.as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    assert_eq!(fills[0]["maker_order_id"], maker_order);
    let balances = eventually(
        || client.balances(&taker_key),
        |b| b.as_array().is_some_and(|a| a.len() == 2),
    )
    .await;
    assert!(balances.as_array().is_some_and(|a| !a.is_empty()));

    // A reused nonce is the API's typed refusal.
    match client.place(&ask).await {
        Err(Error::Api {
            status,
            code: 106,
            error,
            ..
        }) => assert_eq!((status, error.as_str()), (409, "nonce_reused")),
        other => panic!("expected nonce_reused, got {other:?}"),
    }

    // Rest an ask, then cancel it by nonce.
    let ask = OrderBuilder::limit(0)
        .sell()
        .price(1_700)
        .size(4)
        .sign(exchange(), &maker, 2)
        .unwrap();
    client.place(&ask).await.unwrap();
    eventually(
        || client.book(0),
        |b| b["asks"] == json!([{"price_ticks": 1700, "price_ticks_decimal": "17", "size_lots": 4, "size_lots_decimal": "4000", "orders": 1}]),
    )
    .await;
    let cancelled = client.cancel(&maker, 0, 2).await.unwrap();
    assert!(!cancelled.events.is_empty());
    eventually(|| client.book(0), |b| b["asks"] == json!([])).await;
    // Cancelling it again is refused with a typed error.
    assert!(matches!(
        client.cancel(&maker, 0, 2).await,
        Err(Error::Api { .. })
    ));

    // Replace a resting ask with a smaller one.
    let first = OrderBuilder::limit(0)
        .sell()
        .price(1_600)
        .size(5)
        .client_id(77)
        .sign(exchange(), &maker, 3)
        .unwrap();
    let placed = client.place(&first).await.unwrap();
    let smaller = OrderBuilder::limit(0)
        .sell()
        .price(1_600)
        .size(3)
        .client_id(77)
        .sign(exchange(), &maker, 4)
        .unwrap();
    let replaced = client.replace(&maker, 3, &smaller).await.unwrap();
    assert_eq!(replaced.order_id, placed.order_id);
    assert!(has_event(&replaced.events, "order_replaced"));
    eventually(
        || client.book(0),
        |b| b["asks"] == json!([{"price_ticks": 1600, "price_ticks_decimal": "16", "size_lots": 3, "size_lots_decimal": "3000", "orders": 1}]),
    )
    .await;
    eventually(
        || client.open_orders(&maker_key),
        |o| o.as_array().is_some_and(|a| a.len() == 1),
    )
    .await;

    // Cancel-all clears every resting order of the maker.
    let bid = OrderBuilder::limit(1)
        .buy()
        .price(100)
        .size(1)
        .sign(exchange(), &taker, 2)
        .unwrap();
    client.place(&bid).await.unwrap();
    client.cancel_all(&maker, 1_000).await.unwrap();
    client.cancel_all(&taker, 1_000).await.unwrap();
    eventually(
        || client.book(0),
        |b| b["bids"] == json!([]) && b["asks"] == json!([]),
    )
    .await;
    eventually(
        || client.open_orders(&maker_key),
        |o| o.as_array().is_some_and(Vec::is_empty),
    )
    .await;

    // Transport and routing failures are errors, not panics.
    assert!(matches!(client.book(99).await, Err(Error::Api { .. })));
    let nowhere = RestClient::new("http://127.0.0.1:1", exchange());
    assert!(matches!(nowhere.markets().await, Err(Error::Http(_))));
    drop(dir);
}
