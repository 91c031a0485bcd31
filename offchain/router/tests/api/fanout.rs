//! WebSocket fan-out: many subscribers each receive every book delta, in order, the same
//! stream for all, while bursts of orders make the server coalesce its writes; and what a client offering
//! permessage-deflate gets (the WebSocket stack has no such extension, see docs/benchmarks.md).

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use kestrel::encoding::Side;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no message within 10 s")
            .expect("socket ended")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn subscribe(socket: &mut Socket, channel: &str) {
    socket
        .send(Message::Text(
            json!({"op": "subscribe", "channels": [channel]})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    while next_json(socket).await["type"] != "snapshot" {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_book_delta_in_order() {
    const SUBSCRIBERS: usize = 40;
    const ORDERS: u64 = 60;
    let t = TestApi::start_with(|c| c.limits.ws_per_ip = SUBSCRIBERS).await;
    let (mut maker, _) = funded(&t).await;
    let mut sockets = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (mut socket, _) = tokio_tungstenite::connect_async(t.ws_url()).await.unwrap();
        subscribe(&mut socket, "book:0").await;
        sockets.push(socket);
    }
    // Resting asks at distinct prices, sent in concurrent bursts: each is one book delta, and
    // several of them reach a connection together.
    let orders: Vec<Value> = (0..ORDERS)
        .map(|i| maker.order(Side::Sell, 2_000 + i, 1))
        .collect();
    for burst in orders.chunks(20) {
        let posts = burst.iter().map(|o| t.post("/v1/orders", o));
        for (status, body) in futures_util::future::join_all(posts).await {
            assert_eq!(status, 200, "{body}");
        }
    }
    let readers = sockets.into_iter().map(|mut socket| {
        tokio::spawn(async move {
            let mut market_seqs = Vec::new();
            while market_seqs.len() < ORDERS as usize {
                let m = next_json(&mut socket).await;
                if m["type"] == "event" && m["channel"] == "book:0" {
                    market_seqs.push(m["data"]["market_seq"].as_u64().unwrap());
                }
            }
            market_seqs
        })
    });
    let all: Vec<Vec<u64>> = futures_util::future::join_all(readers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // The market sequence also counts the market's other items, so it steps by more than one
    // between book deltas; what matters is that it only grows and everyone saw the same.
    assert!(
        all[0].windows(2).all(|w| w[0] < w[1]),
        "reordered: {:?}",
        all[0]
    );
    assert!(all.iter().all(|seqs| *seqs == all[0]), "{all:?}");
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permessage_deflate_offer_is_declined_and_messages_flow_uncompressed() {
    let t = TestApi::start().await;
    let mut request = t.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits"
            .parse()
            .unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    // RFC 7692: the server accepts an extension only by naming it in its response; it does
    // not, so neither side compresses.
    assert_eq!(response.status(), 101);
    assert!(
        response.headers().get("sec-websocket-extensions").is_none(),
        "{:?}",
        response.headers()
    );
    assert_eq!(next_json(&mut socket).await["type"], "challenge");
    socket
        .send(Message::Text(json!({"op": "ping"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await, json!({"type": "pong"}));
    t.api.shutdown().await.unwrap();
}
