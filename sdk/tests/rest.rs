//! The REST client against the real router API, in-process on loopback (as the router's own API
//! tests start it): place, fill, cancel, cancel-all, replace, a typed API error, and a place
//! whose response is lost on the way back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod support;

use kestrel_router::api;
use kestrel_sdk::backoff::Backoff;
use kestrel_sdk::rest::{Error, RestClient, RetryPolicy};
use kestrel_sdk::OrderBuilder;
use serde_json::{json, Value};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use std::future::Future;
use std::time::Duration;
use support::proxy::Proxy;
use support::{config, deposit, exchange, Router, BASE, QUOTE};

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

#[test]
fn only_transport_failures_5xx_and_429_are_retryable() {
    let api = |status| Error::Api {
        status,
        code: 0,
        error: String::new(),
        message: String::new(),
    };
    assert!(api(503).is_retryable() && api(500).is_retryable() && api(429).is_retryable());
    assert!(!api(409).is_retryable() && !api(400).is_retryable());
    assert!(!Error::Decode(String::new()).is_retryable());
}

/// Deposits by transaction signature and the withdrawal calls: a request holds the amount and
/// names the withdrawal; refusals are the API's typed errors; without a co-signer the router
/// says it does not co-sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_deposits_and_requests_withdrawals() {
    let dir = tempfile::tempdir().unwrap();
    let api = api::start(config(dir.path())).await.unwrap();
    let client = RestClient::connect(format!("http://{}", api.local_addr()))
        .await
        .unwrap();
    let owner = Keypair::new();
    let key = owner.pubkey();
    deposit(&api, &owner, QUOTE, 5_000_000, 7).await;
    let signature = Signature::from([7; 64]);
    let credited = support::eventually("the deposit credited", || async {
        client.deposits(&signature).await.ok()
    })
    .await;
    assert_eq!(credited["deposits"][0]["amount"], 5_000_000, "{credited}");
    match client.deposits(&Signature::from([8; 64])).await {
        Err(Error::Api {
            status: 404, error, ..
        }) => assert_eq!(error, "not_found"),
        other => panic!("expected not_found, got {other:?}"),
    }

    let quote_mint = Pubkey::new_from_array([QUOTE + 1; 32]);
    match client
        .request_withdrawal(&owner, quote_mint, 5_000_001, 1)
        .await
    {
        Err(Error::Api {
            status: 422, error, ..
        }) => assert_eq!(error, "insufficient_balance"),
        other => panic!("expected insufficient_balance, got {other:?}"),
    }
    let ack = client
        .request_withdrawal(&owner, quote_mint, 2_000_000, 2)
        .await
        .unwrap();
    let id = ack.withdrawal_id.expect("the withdrawal's id");
    assert_eq!(ack.order_id, None);
    let listed = eventually(
        || client.withdrawals(&key),
        |w| w.as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    assert_eq!(
        (listed[0]["id"].as_u64(), listed[0]["status"].as_str()),
        (Some(id), Some("pending")),
        "{listed}"
    );
    let balances = eventually(
        || client.balances(&key),
        |b| {
            b.as_array()
                .is_some_and(|a| a.iter().any(|r| r["frozen"] == 2_000_000))
        },
    )
    .await;
    assert_eq!(balances[0]["available"], 3_000_000, "{balances}");

    // Someone else's proof is refused; the owner's, without a co-signer, is unavailable.
    let destination = Pubkey::new_unique();
    match client
        .withdrawal_transaction(&Keypair::new(), id, &destination)
        .await
    {
        Err(Error::Api { status: 401, .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    match client
        .withdrawal_transaction(&owner, id, &destination)
        .await
    {
        Err(Error::Api {
            status: 503, error, ..
        }) => assert_eq!(error, "unavailable"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_whose_response_is_lost_is_retried_without_a_second_order() {
    let r = Router::start().await;
    let proxy = Proxy::start(r.api.local_addr()).await;
    let retry = RetryPolicy {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            ..Backoff::default()
        },
        max_retries: 8,
    };
    let client = RestClient::new(format!("http://{}", proxy.addr()), exchange()).with_retry(retry);
    let direct = RestClient::new(r.http_url(), exchange());
    let maker = r.maker.pubkey();

    // A resting order with a client id: the router takes it, the answer never comes back.
    proxy.drop_response_to(b"POST /v1/orders");
    let ask = OrderBuilder::limit(0)
        .sell()
        .price(1_700)
        .size(3)
        .client_id(5)
        .sign(exchange(), &r.maker, 1)
        .unwrap();
    let ack = client.place(&ask).await.unwrap();
    assert!(ack.recovered);
    let open = direct.open_orders(&maker).await.unwrap();
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
    assert_eq!(open[0]["order_id"].as_u64(), ack.order_id);

    // An order without a client id that filled completely is found through its fill.
    let resting = OrderBuilder::limit(0)
        .sell()
        .price(1_500)
        .size(3)
        .sign(exchange(), &r.maker, 2)
        .unwrap();
    direct.place(&resting).await.unwrap();
    proxy.drop_response_to(b"POST /v1/orders");
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(1_500)
        .size(3)
        .sign(exchange(), &r.taker, 1)
        .unwrap();
    let ack = client.place(&bid).await.unwrap();
    assert!(ack.recovered);
    let fills = direct.fills(&r.taker.pubkey()).await.unwrap();
    assert_eq!(fills.as_array().map(Vec::len), Some(1), "{fills}");
    assert_eq!(fills[0]["taker_order_id"].as_u64(), ack.order_id);

    // Sending a used nonce again on a first try is still the API's refusal.
    assert!(matches!(
        client.place(&ask).await,
        Err(Error::Api { code: 106, .. })
    ));
    // A server that is gone: the retries are spent, then the transport error.
    drop(proxy);
    assert!(matches!(client.book(0).await, Err(Error::Http(_))));
}

#[test]
fn the_sdk_knows_which_of_the_routers_errors_are_worth_a_retry() {
    use api::error::ApiCode;
    for code in ApiCode::ALL {
        let error = kestrel_sdk::ws::ApiError {
            code: code.code(),
            error: code.name().to_owned(),
            message: String::new(),
        };
        let transient = matches!(
            code,
            ApiCode::RateLimited
                | ApiCode::TooManyConnections
                | ApiCode::Unavailable
                | ApiCode::Internal
                | ApiCode::Overloaded
        );
        assert_eq!(error.is_retryable(), transient, "{}", code.name());
    }
}
