//! Load shedding: while the SQL projection is held back, new orders are refused with
//! `overloaded` over REST and WebSocket and change nothing; cancels still pass; once the store
//! has caught up, the very same signed orders are taken.

use crate::support::*;
use crate::ws::Client;
use kestrel::encoding::Side;
use serde_json::json;
use sqlx::Connection;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_orders_are_shed_while_the_store_is_behind_and_cancels_still_pass() {
    // A projector taking one event at a time: the gauge must count what queues in front of it,
    // not only what its channel holds.
    let t = TestApi::start_with(|c| {
        c.limits.max_projection_lag = 20;
        c.projector.max_batch = 1;
    })
    .await;
    let (mut maker, _) = funded(&t).await;
    let lag = || t.api.metrics().projection_lag.get();
    while lag() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another connection holds SQLite's write lock: the projector's next batch waits for it
    // (well within the store's 5 s busy timeout).
    let url = format!("sqlite://{}", t.dir.path().join("store.db").display());
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();

    // Resting sells at distinct prices until the lag passes the bound and one is refused.
    let mut rested = Vec::new();
    let shed = loop {
        assert!(rested.len() < 50, "nothing was shed; lag {}", lag());
        let order = maker.order(Side::Sell, 2_000 + rested.len() as u64, 1);
        let (status, body) = t.post("/v1/orders", &order).await;
        if status == 503 {
            assert_eq!(
                (body["code"].as_u64(), body["error"].as_str()),
                (Some(1011), Some("overloaded")),
                "{body}"
            );
            break order;
        }
        assert_eq!(status, 200, "{body}");
        rested.push(maker.nonce);
    };
    assert!(lag() > 20, "lag {}", lag());
    // Over the WebSocket too, with the same error.
    let mut ws = Client::connect(&t).await;
    let ws_order = maker.order(Side::Sell, 3_000, 1);
    ws.send(json!({"op": "place", "id": 1, "message": ws_order["message"], "signature": ws_order["signature"]}))
        .await;
    let refused = ws.until("result").await;
    assert_eq!(
        (refused["ok"].as_bool(), refused["error"]["code"].as_u64()),
        (Some(false), Some(1011)),
        "{refused}"
    );
    // Nothing of either refused order reached the book (the in-memory market data, which does
    // not wait for the store): one level per accepted order.
    let levels =
        |n: usize| move |b: &serde_json::Value| b["asks"].as_array().map(Vec::len) == Some(n);
    t.eventually("/v1/markets/0/book", levels(rested.len()))
        .await;
    // A cancel reduces risk: it is taken while orders are shed.
    let (status, body) = t.post("/v1/cancel", &maker.cancel(0, rested[0])).await;
    assert_eq!(status, 200, "{body}");

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    drop(holder);
    for _ in 0..500 {
        if lag() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lag(), 0, "the projection never caught up");
    // The refusals consumed nothing: the same signed orders are now accepted.
    let (status, body) = t.post("/v1/orders", &shed).await;
    assert_eq!(status, 200, "{body}");
    ws.send(json!({"op": "place", "id": 2, "message": ws_order["message"], "signature": ws_order["signature"]}))
        .await;
    let taken = ws.until("result").await;
    assert_eq!(taken["ok"].as_bool(), Some(true), "{taken}");
    t.eventually("/v1/markets/0/book", levels(rested.len() + 1))
        .await;
    t.api.shutdown().await.unwrap();
}
