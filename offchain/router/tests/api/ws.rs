//! WebSocket: auth, public and private channels, order entry, resume without a gap, slow
//! consumers, connection limits, message rate, cancel-on-disconnect.

use crate::support::*;
use ed25519_dalek::Signer;
use futures_util::{SinkExt, StreamExt};
use kestrel::encoding::Side;
use kestrel_router::api::ws::auth_message;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Client {
    socket: Socket,
    nonce: [u8; 32],
}

impl Client {
    pub(crate) async fn connect(t: &TestApi) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(t.ws_url()).await.unwrap();
        Client::greeted(socket).await
    }

    /// A client whose socket's receive buffer is `bytes` (which Linux doubles).
    async fn with_receive_buffer(t: &TestApi, bytes: u32) -> Client {
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(bytes).unwrap();
        let stream = tcp.connect(t.api.local_addr()).await.unwrap();
        let plain = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (socket, _) = tokio_tungstenite::client_async(t.ws_url(), plain)
            .await
            .unwrap();
        Client::greeted(socket).await
    }

    async fn greeted(mut socket: Socket) -> Client {
        let challenge = next_json(&mut socket).await;
        assert_eq!(challenge["type"], "challenge");
        let nonce = hex::decode(challenge["nonce"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        Client { socket, nonce }
    }

    pub(crate) async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    async fn recv(&mut self) -> Value {
        next_json(&mut self.socket).await
    }

    /// Receives until a message with `type` arrives (skipping others).
    pub(crate) async fn until(&mut self, kind: &str) -> Value {
        loop {
            let m = self.recv().await;
            if m["type"] == kind {
                return m;
            }
        }
    }

    pub(crate) async fn auth(&mut self, w: &Wallet) -> Value {
        let message = auth_message(&exchange().to_bytes(), &w.owner(), &self.nonce);
        let signature = hex::encode(w.key.sign(&message).to_bytes());
        self.send(json!({"op": "auth", "owner": w.hex(), "signature": signature}))
            .await;
        self.recv().await
    }

    pub(crate) async fn subscribe(&mut self, channels: &[&str], resume: Option<Value>) -> Value {
        let mut request = json!({"op": "subscribe", "channels": channels});
        if let Some(r) = resume {
            request["resume"] = r;
        }
        self.send(request).await;
        self.until("subscribed").await
    }
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("no message within 5 s")
            .expect("socket ended")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => {
                return json!({"type": "closed", "reason": frame.map(|f| f.reason.to_string())})
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_reach_public_and_private_channels_and_orders_enter_over_ws() {
    let t = TestApi::start().await;
    let (mut maker, mut taker) = funded(&t).await;
    let mut c = Client::connect(&t).await;
    let authed = c.auth(&taker).await;
    assert_eq!(
        authed,
        json!({"type": "authenticated", "owner": taker.hex()})
    );
    c.subscribe(&["book:0", "trades:0", "fills", "orders", "balances"], None)
        .await;
    let snapshot = c.until("snapshot").await;
    assert_eq!(snapshot["channel"], "book:0");
    assert_eq!(
        t.post("/v1/orders", &maker.order(Side::Sell, 1_500, 4))
            .await
            .0,
        200
    );
    let delta = c.until("event").await;
    assert_eq!(
        (
            delta["channel"].as_str(),
            delta["data"]["size_lots"].as_u64()
        ),
        (Some("book:0"), Some(4))
    );
    // The taker's order goes over the WebSocket.
    let order = taker.order(Side::Buy, 1_500, 4);
    c.send(json!({"op": "place", "id": 42, "message": order["message"], "signature": order["signature"]})).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut result = None;
    while result.is_none() || !seen.contains("trades:0") || !seen.contains("fills") {
        let m = c.recv().await;
        match m["type"].as_str() {
            Some("event") => {
                if m["channel"] == "fills" {
                    assert_eq!(
                        (m["data"]["maker"].as_str(), m["data"]["taker"].as_str()),
                        (Some(maker.hex().as_str()), Some(taker.hex().as_str()))
                    );
                }
                seen.insert(m["channel"].as_str().unwrap().to_owned());
            }
            Some("result") => result = Some(m),
            other => panic!("unexpected {other:?}"),
        }
    }
    let result = result.unwrap();
    assert_eq!(
        (result["id"].as_u64(), result["ok"].as_bool()),
        (Some(42), Some(true)),
        "{result}"
    );
    // The result carries the same decimal fields as the REST answer: 1,500 ticks are 15.
    let fill = event_in(&result["result"], "fill");
    assert_eq!(
        (
            fill["price_ticks_decimal"].as_str(),
            fill["size_lots_decimal"].as_str()
        ),
        (Some("15"), Some("4000")),
        "{fill}"
    );
    assert!(
        seen.contains("orders") && seen.contains("balances"),
        "{seen:?}"
    );
    // A refusal over the WebSocket carries the same error as REST.
    c.send(json!({"op": "place", "id": "again", "message": order["message"], "signature": order["signature"]})).await;
    let refused = c.until("result").await;
    assert_eq!(
        (refused["ok"].as_bool(), refused["error"]["code"].as_u64()),
        (Some(false), Some(106))
    );
    t.api.shutdown().await.unwrap();
}

/// A market maker moves its quote over the WebSocket: the answer is the REST replace's; a
/// refusal and half a replace get typed errors and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_order_is_replaced_over_ws() {
    let t = TestApi::start().await;
    let (mut maker, _) = funded(&t).await;
    let mut c = Client::connect(&t).await;
    let first = maker.order_terms(Side::Sell, 1_600, 5);
    let order = maker.sign_order(&first);
    c.send(json!({"op": "place", "id": 1, "message": order["message"], "signature": order["signature"]})).await;
    let placed = c.until("result").await;
    assert_eq!(placed["ok"].as_bool(), Some(true), "{placed}");
    let order_id = placed["result"]["order_id"].as_u64();

    let moved = maker.replacement_terms(&first, Side::Sell, 1_650, 3);
    c.send(json!({"op": "replace", "id": 2, "cancel": maker.cancel(0, first.nonce), "order": maker.sign_order(&moved)})).await;
    let replaced = c.until("result").await;
    assert_eq!(
        (replaced["id"].as_u64(), replaced["ok"].as_bool()),
        (Some(2), Some(true)),
        "{replaced}"
    );
    assert_eq!(replaced["result"]["order_id"].as_u64(), order_id);
    let event = event_in(&replaced["result"], "order_replaced");
    assert_eq!(
        (
            event["nonce"].as_u64(),
            event["price_ticks"].as_u64(),
            event["size_lots"].as_u64()
        ),
        (Some(moved.nonce), Some(1_650), Some(3)),
        "{event}"
    );
    t.eventually("/v1/markets/0/book", |b| {
        b["asks"] == json!([{"price_ticks": 1650, "price_ticks_decimal": "16.5", "size_lots": 3, "size_lots_decimal": "3000", "orders": 1}])
    })
    .await;

    // The old nonce names nothing any more: refused as REST refuses it.
    let again = maker.replacement_terms(&first, Side::Sell, 1_600, 2);
    c.send(json!({"op": "replace", "id": 3, "cancel": maker.cancel(0, first.nonce), "order": maker.sign_order(&again)})).await;
    let unknown = c.until("result").await;
    assert_eq!(
        (
            unknown["id"].as_u64(),
            unknown["ok"].as_bool(),
            unknown["error"]["code"].as_u64()
        ),
        (Some(3), Some(false), Some(140)),
        "{unknown}"
    );
    // Half a replace is a malformed message.
    c.send(json!({"op": "replace", "id": 4, "order": maker.sign_order(&again)}))
        .await;
    let malformed = c.until("error").await;
    assert_eq!(
        malformed["error"]["error"], "invalid_request",
        "{malformed}"
    );
    c.send(json!({"op": "ping"})).await;
    c.until("pong").await;
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_is_not_an_upgrade_gets_a_typed_error() {
    let t = TestApi::start().await;
    let plain = t.get("/v1/ws").await;
    let wrong_version = t
        .http
        .get(format!("{}/v1/ws", t.base))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    let wrong_version = (
        wrong_version.status().as_u16(),
        wrong_version.json::<Value>().await.unwrap(),
    );
    for (status, body) in [plain, wrong_version] {
        assert_eq!(
            (status, body["code"].as_u64(), body["error"].as_str()),
            (400, Some(1001), Some("invalid_request")),
            "{body}"
        );
    }
    // The server still upgrades a proper request.
    Client::connect(&t).await;
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_and_private_channels_without_auth() {
    let t = TestApi::start().await;
    let w = Wallet::new(5);
    let other = Wallet::new(6);
    let mut c = Client::connect(&t).await;
    c.send(json!({"op": "subscribe", "channels": ["fills"]}))
        .await;
    assert_eq!(c.recv().await["error"]["code"], 1006);
    // Signed by another key, and a signature over another nonce.
    let message = auth_message(&exchange().to_bytes(), &w.owner(), &c.nonce);
    let forged = hex::encode(other.key.sign(&message).to_bytes());
    c.send(json!({"op": "auth", "owner": w.hex(), "signature": forged}))
        .await;
    assert_eq!(c.recv().await["error"]["code"], 1006);
    let stale = auth_message(&exchange().to_bytes(), &w.owner(), &[0; 32]);
    c.send(json!({"op": "auth", "owner": w.hex(), "signature": hex::encode(w.key.sign(&stale).to_bytes())})).await;
    assert_eq!(c.recv().await["error"]["code"], 1006);
    c.send(json!({"op": "subscribe", "channels": ["book:9"]}))
        .await;
    assert_eq!(c.recv().await["error"]["code"], 103);
    c.send(json!({"op": "subscribe", "channels": ["nonsense"]}))
        .await;
    assert_eq!(c.recv().await["error"]["code"], 1001);
    c.send(json!({"op": "fly"})).await;
    assert_eq!(c.recv().await["error"]["code"], 1001);
    c.socket.send(Message::Text("{".into())).await.unwrap();
    assert_eq!(c.recv().await["error"]["code"], 1000);
    assert_eq!(c.auth(&w).await["type"], "authenticated");
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_missed_events_without_a_gap() {
    let t = TestApi::start().await;
    let (mut maker, mut taker) = funded(&t).await;
    let mut c = Client::connect(&t).await;
    c.subscribe(&["trades:0"], None).await;
    assert_eq!(
        t.post("/v1/orders", &maker.order(Side::Sell, 1_500, 100))
            .await
            .0,
        200
    );
    assert_eq!(
        t.post("/v1/orders", &taker.order(Side::Buy, 1_500, 1))
            .await
            .0,
        200
    );
    let first = c.until("event").await;
    assert_eq!(first["data"]["fill_id"], 1);
    drop(c);
    for _ in 0..5 {
        assert_eq!(
            t.post("/v1/orders", &taker.order(Side::Buy, 1_500, 1))
                .await
                .0,
            200
        );
    }
    let mut c = Client::connect(&t).await;
    c.subscribe(
        &["trades:0"],
        Some(json!({"seq": first["seq"], "index": first["index"]})),
    )
    .await;
    let mut fill_ids = Vec::new();
    for _ in 0..5 {
        let m = c.until("event").await;
        fill_ids.push(m["data"]["fill_id"].as_u64().unwrap());
    }
    assert_eq!(fill_ids, vec![2, 3, 4, 5, 6]);
    // Live events continue after the replay.
    assert_eq!(
        t.post("/v1/orders", &taker.order(Side::Buy, 1_500, 1))
            .await
            .0,
        200
    );
    assert_eq!(c.until("event").await["data"]["fill_id"], 7);
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_older_than_the_ring_gets_a_resync_and_snapshot() {
    let t = TestApi::start_with(|c| c.market_data.ring_items = 4).await;
    let (mut maker, _) = funded(&t).await;
    for i in 0..6 {
        assert_eq!(
            t.post("/v1/orders", &maker.order(Side::Sell, 1_500 + i, 1))
                .await
                .0,
            200
        );
    }
    // Market data trails durability by a few ms: wait until it holds all six levels.
    t.eventually("/v1/markets/0/book", |b| {
        b["asks"].as_array().map(Vec::len) == Some(6)
    })
    .await;
    let mut c = Client::connect(&t).await;
    c.send(json!({"op": "subscribe", "channels": ["book:0"], "resume": {"seq": 1, "index": 0}}))
        .await;
    assert_eq!(c.until("subscribed").await["type"], "subscribed");
    assert_eq!(c.recv().await["reason"], "resume_position_too_old");
    let snapshot = c.recv().await;
    assert_eq!(
        (
            snapshot["type"].as_str(),
            snapshot["data"]["asks"].as_array().map(Vec::len)
        ),
        (Some("snapshot"), Some(6))
    );
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected_with_a_reason() {
    // Small kernel buffers at both ends, so that a client that stops reading soon has a
    // full socket, and then frames queue on the server up to the bound.
    let t = TestApi::start_with(|c| {
        c.ws.queue = 8;
        c.ws.send_buffer_bytes = Some(4_096);
    })
    .await;
    let (mut maker, mut taker) = funded(&t).await;
    for i in 0..30 {
        assert_eq!(
            t.post("/v1/orders", &maker.order(Side::Sell, 1_500 + i, 1))
                .await
                .0,
            200
        );
    }
    let mut c = Client::with_receive_buffer(&t, 4_096).await;
    c.subscribe(
        &["book:0", "trades:0", "candles:0:1m", "candles:0:1h"],
        None,
    )
    .await;
    // The client reads nothing while one taker order sweeps 30 levels: well over a hundred
    // feed items in one batch, more than both sockets and the queue hold.
    assert_eq!(
        t.post("/v1/orders", &taker.order(Side::Buy, 2_000, 30))
            .await
            .0,
        200
    );
    // Then it reads: what the sockets held, and the close frame, which waited for room.
    // The close frame carries the reason; if the client's read races the server's close
    // (the kernel may drop the frame's bytes with the connection), the reason is still
    // checked below, server-side.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.socket.next())
            .await
            .expect("closed within 10 s")
        {
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(
                    frame.map(|f| f.reason.to_string()).as_deref(),
                    Some("slow_consumer")
                );
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    let metric = "kestrel_api_ws_closed_total{reason=\"slow_consumer\"} 1";
    let mut text = String::new();
    for _ in 0..100 {
        text = reqwest::get(format!("http://{}/metrics", t.api.metrics_addr().unwrap()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(metric) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(text.contains(metric), "{text}");
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_message_limits() {
    let t = TestApi::start_with(|c| {
        c.limits.ws_per_ip = 2;
        c.limits.ws_per_user = 1;
        c.limits.ws_messages_per_sec = 3;
    })
    .await;
    let w = Wallet::new(7);
    let mut a = Client::connect(&t).await;
    let mut b = Client::connect(&t).await;
    match tokio_tungstenite::connect_async(t.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429)
        }
        other => panic!("third connection from one IP: {:?}", other.map(|_| ())),
    }
    assert_eq!(a.auth(&w).await["type"], "authenticated");
    assert_eq!(b.auth(&w).await["error"]["code"], 1007);
    drop(b);
    // The freed slot is usable again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _c = Client::connect(&t).await;
    let mut errors = 0;
    for _ in 0..6 {
        a.send(json!({"op": "ping"})).await;
    }
    for _ in 0..6 {
        let m = a.recv().await;
        if m["error"]["code"] == 1003 {
            errors += 1;
        } else {
            assert_eq!(m["type"], "pong");
        }
    }
    assert!(errors >= 2, "{errors}");
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_disconnect_cancels_the_makers_orders() {
    let t = TestApi::start().await;
    let (mut maker, _) = funded(&t).await;
    let mut c = Client::connect(&t).await;
    assert_eq!(c.auth(&maker).await["type"], "authenticated");
    let cancel_all = maker.cancel_all(1_000_000);
    c.send(json!({"op": "cancel_on_disconnect", "message": cancel_all["message"], "signature": cancel_all["signature"]})).await;
    assert_eq!(
        c.recv().await,
        json!({"type": "cancel_on_disconnect", "armed": true})
    );
    // A cancel-all signed by someone else is refused.
    let stranger = Wallet::new(9).cancel_all(5);
    c.send(json!({"op": "cancel_on_disconnect", "message": stranger["message"], "signature": stranger["signature"]})).await;
    assert_eq!(c.recv().await["error"]["code"], 1006);
    for i in 0..3 {
        assert_eq!(
            t.post("/v1/orders", &maker.order(Side::Sell, 1_500 + i, 1))
                .await
                .0,
            200
        );
    }
    t.eventually("/v1/markets/0/book", |b| {
        b["asks"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    c.socket.close(None).await.unwrap();
    t.eventually("/v1/markets/0/book", |b| b["asks"] == json!([]))
        .await;
    t.eventually(&format!("/v1/accounts/{}/orders", maker.hex()), |b| {
        b == &json!([])
    })
    .await;
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_unsubscribing_from_everything_a_new_subscription_gets_the_feed_again() {
    let t = TestApi::start().await;
    let (mut maker, mut taker) = funded(&t).await;
    let mut c = Client::connect(&t).await;
    c.subscribe(&["book:0"], None).await;
    c.until("snapshot").await;
    c.send(json!({"op": "unsubscribe", "channels": ["book:0"]}))
        .await;
    assert_eq!(c.until("unsubscribed").await["channels"], json!(["book:0"]));
    let sell = maker.order(Side::Sell, 1_500, 2);
    assert_eq!(t.post("/v1/orders", &sell).await.0, 200);
    t.eventually("/v1/markets/0/book", |b| {
        b["asks"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;

    // Subscribed again, to another channel: its events arrive, and nothing of book:0 before.
    c.subscribe(&["trades:0"], None).await;
    let buy = taker.order(Side::Buy, 1_500, 2);
    assert_eq!(t.post("/v1/orders", &buy).await.0, 200);
    loop {
        let m = c.recv().await;
        assert_ne!(m["channel"], "book:0", "{m}");
        if m["type"] == "event" {
            assert_eq!(
                (m["channel"].as_str(), m["data"]["size_lots"].as_u64()),
                (Some("trades:0"), Some(2)),
                "{m}"
            );
            break;
        }
    }
    t.api.shutdown().await.unwrap();
}
