//! Decimal fields at the API edge: with base and quote mints of 6 decimals, the fixture's
//! market (1,000 base atoms per lot, 10 quote atoms per tick per lot) has a 0.01 quote tick
//! and a 0.001 base lot. Every integer price, size and amount of the REST and WebSocket
//! outputs gets an exact decimal string beside it; the integer fields stay as they were.

use crate::support::*;
use futures_util::StreamExt;
use kestrel::encoding::Side;
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// `atoms / 10^6` as a plain decimal string, by integer arithmetic alone (the oracle).
fn six(atoms: u64) -> String {
    let (whole, frac) = (atoms / 1_000_000, atoms % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

async fn decimal_api() -> TestApi {
    TestApi::start_with(|c| c.asset_decimals = vec![6, 6]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_outputs_carry_exact_decimal_strings() {
    let t = decimal_api().await;
    let (_, markets) = t.get("/v1/markets").await;
    let m = &markets["markets"][0];
    assert_eq!(
        (
            m["tick_size_decimal"].as_str(),
            m["base_lot_size_decimal"].as_str(),
            m["base_decimals"].as_u64(),
            m["quote_decimals"].as_u64(),
            m["tick_size"].as_u64(),
            m["base_lot_size"].as_u64(),
        ),
        (
            Some("0.01"),
            Some("0.001"),
            Some(6),
            Some(6),
            Some(10),
            Some(1_000)
        )
    );
    assert_eq!(markets["assets"][1]["decimals"].as_u64(), Some(6));

    let (mut maker, mut taker) = funded(&t).await;
    let (status, placed) = t
        .post("/v1/orders", &maker.order(Side::Sell, 1_550, 3))
        .await;
    assert_eq!(status, 200);
    // The command result's events carry them too.
    let accepted = event_in(&placed, "order_accepted");
    assert_eq!(
        (
            accepted["price_ticks_decimal"].as_str(),
            accepted["size_lots_decimal"].as_str()
        ),
        (Some("15.5"), Some("0.003"))
    );
    let book = t
        .eventually("/v1/markets/0/book", |b| {
            b["asks"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let level = &book["asks"][0];
    assert_eq!(
        (
            level["price_ticks"].as_u64(),
            level["price_ticks_decimal"].as_str(),
            level["size_lots"].as_u64(),
            level["size_lots_decimal"].as_str(),
        ),
        (Some(1_550), Some("15.5"), Some(3), Some("0.003"))
    );

    assert_eq!(
        t.post("/v1/orders", &taker.order(Side::Buy, 1_550, 2))
            .await
            .0,
        200
    );
    let trades = t
        .eventually("/v1/markets/0/trades", |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(
        (
            trades[0]["price_ticks_decimal"].as_str(),
            trades[0]["size_lots_decimal"].as_str()
        ),
        (Some("15.5"), Some("0.002"))
    );
    let (_, candles) = t.get("/v1/markets/0/candles?interval=1m").await;
    let c = &candles[0];
    for field in ["open", "high", "low", "close"] {
        assert_eq!(c[format!("{field}_decimal")].as_str(), Some("15.5"), "{c}");
    }
    assert_eq!(c["volume_lots_decimal"].as_str(), Some("0.002"));

    let path = format!("/v1/accounts/{}/orders", maker.hex());
    let orders = t
        .eventually(&path, |v| v[0]["filled_lots"].as_u64() == Some(2))
        .await;
    let o = &orders[0];
    assert_eq!(
        (
            o["price_ticks_decimal"].as_str(),
            o["size_lots_decimal"].as_str(),
            o["remaining_lots_decimal"].as_str(),
            o["filled_lots_decimal"].as_str(),
        ),
        (Some("15.5"), Some("0.003"), Some("0.001"), Some("0.002"))
    );

    let path = format!("/v1/accounts/{}/fills", taker.hex());
    let fills = t
        .eventually(&path, |v| v.as_array().is_some_and(|a| !a.is_empty()))
        .await;
    let f = &fills[0];
    // 1,550 ticks × 10 atoms × 2 lots = 31,000 quote atoms.
    assert_eq!(
        (f["notional"].as_u64(), f["notional_decimal"].as_str()),
        (Some(31_000), Some("0.031"))
    );
    let fee = f["taker_fee"].as_u64().unwrap();
    assert_eq!(f["taker_fee_decimal"].as_str(), Some(six(fee).as_str()));

    let path = format!("/v1/accounts/{}/balances", taker.hex());
    let balances = t
        .eventually(&path, |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|b| b["asset"] == BASE))
        })
        .await;
    for b in balances.as_array().unwrap() {
        for field in ["available", "frozen"] {
            let atoms = b[field].as_u64().unwrap();
            assert_eq!(
                b[format!("{field}_decimal")].as_str(),
                Some(six(atoms).as_str()),
                "{b}"
            );
        }
    }
    let base = balances
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == BASE)
        .unwrap();
    assert_eq!(base["available_decimal"].as_str(), Some("0.002"));
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_items_carry_the_same_decimal_strings() {
    let t = decimal_api().await;
    let (mut maker, _) = funded(&t).await;
    assert_eq!(
        t.post("/v1/orders", &maker.order(Side::Sell, 1_234, 5))
            .await
            .0,
        200
    );
    // Market data trails durability: subscribe once the book holds the order, so the
    // snapshot has a level to check.
    t.eventually("/v1/markets/0/book", |b| {
        b["asks"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(t.ws_url()).await.unwrap();
    let request = serde_json::json!({"op": "subscribe", "channels": ["book:0"]});
    futures_util::SinkExt::send(&mut socket, Message::Text(request.to_string().into()))
        .await
        .unwrap();
    let snapshot = until(&mut socket, "snapshot").await;
    let level = &snapshot["data"]["asks"][0];
    assert_eq!(
        (
            level["price_ticks_decimal"].as_str(),
            level["size_lots_decimal"].as_str()
        ),
        (Some("12.34"), Some("0.005"))
    );
    assert_eq!(
        t.post("/v1/orders", &maker.order(Side::Sell, 1_300, 7))
            .await
            .0,
        200
    );
    let delta = until(&mut socket, "event").await;
    assert_eq!(
        (
            delta["data"]["price_ticks"].as_u64(),
            delta["data"]["price_ticks_decimal"].as_str(),
            delta["data"]["size_lots_decimal"].as_str()
        ),
        (Some(1_300), Some("13"), Some("0.007"))
    );
    t.api.shutdown().await.unwrap();
}

async fn until(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    kind: &str,
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no message within 10 s")
            .expect("socket ended")
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == kind {
                return value;
            }
        }
    }
}
