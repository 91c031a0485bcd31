//! REST: order entry and reads, every rejection class, hostile input, limits, OpenAPI.

use crate::support::*;
use kestrel::encoding::Side;
use serde_json::{json, Value};

fn code(body: &Value) -> u64 {
    body["code"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_orders_fill_and_every_read_shows_it() {
    let t = TestApi::start().await;
    let (mut maker, mut taker) = funded(&t).await;
    let (status, resting) = t
        .post("/v1/orders", &maker.order(Side::Sell, 1_500, 10))
        .await;
    assert_eq!(status, 200, "{resting}");
    let maker_order = resting["order_id"].as_u64().unwrap();
    assert_eq!(resting["events"][0]["type"], "ledger");
    let (status, taken) = t
        .post("/v1/orders", &taker.order(Side::Buy, 1_500, 10))
        .await;
    assert_eq!(status, 200, "{taken}");
    let taker_order = taken["order_id"].as_u64().unwrap();
    let fill = event_in(&taken, "fill");
    assert_eq!(fill["maker"], maker.hex());
    assert_eq!(fill["taker"], taker.hex());
    assert_eq!(fill["size_lots"], 10);
    assert_eq!(fill["notional"], 150_000);

    let fills = t
        .eventually(&format!("/v1/accounts/{}/fills", taker.hex()), |b| {
            b.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    assert_eq!(fills[0]["settlement_status"], "pending");
    assert_eq!(fills[0]["maker_order_id"], maker_order);
    let order = t
        .eventually(&format!("/v1/orders/{taker_order}"), |b| {
            b["status"] == "filled"
        })
        .await;
    assert_eq!(order["owner"], taker.hex());
    let (status, by_client) = t
        .get(&format!(
            "/v1/accounts/{}/orders/by-client-id/{}",
            maker.hex(),
            1001
        ))
        .await;
    assert_eq!(
        (status, by_client["order_id"].as_u64()),
        (200, Some(maker_order))
    );
    let (_, open) = t.get(&format!("/v1/accounts/{}/orders", maker.hex())).await;
    assert_eq!(open, json!([]));

    let balances = t
        .get(&format!("/v1/accounts/{}/balances", taker.hex()))
        .await
        .1;
    let base = balances
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == 0)
        .unwrap();
    assert_eq!(base["available"], 10_000);
    let quote = balances
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == 1)
        .unwrap();
    // 150,000 notional + 75 taker fee (5 bps, rounded up).
    assert_eq!(quote["available"], 1_000_000_000u64 - 150_075);
    assert_eq!(quote["frozen"], 0);
    let (_, ledger) = t
        .get(&format!("/v1/accounts/{}/ledger?asset=1", taker.hex()))
        .await;
    let businesses: Vec<&str> = ledger
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["business"].as_str().unwrap())
        .collect();
    assert!(
        businesses.contains(&"deposit")
            && businesses.contains(&"fill_pay")
            && businesses.contains(&"fill_fee"),
        "{businesses:?}"
    );

    let trades = t
        .eventually("/v1/markets/0/trades", |b| {
            b.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(trades[0]["price_ticks"], 1_500);
    assert!(
        trades[0].get("maker").is_none(),
        "public trades name no wallet"
    );
    let candles = t
        .eventually("/v1/markets/0/candles?interval=1m", |b| {
            b.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(
        (
            candles[0]["open"].as_u64(),
            candles[0]["volume_lots"].as_u64()
        ),
        (Some(1_500), Some(10))
    );
    let book = t
        .eventually("/v1/markets/0/book", |b| {
            b["market_seq"].as_u64().is_some_and(|s| s >= 2)
        })
        .await;
    assert_eq!(
        (book["bids"].clone(), book["asks"].clone()),
        (json!([]), json!([]))
    );
    assert!(book["market_seq"].as_u64().unwrap() >= 2);

    // Settlement progress reaches the fill's status.
    t.api
        .sequencer()
        .submit(kestrel_router::model::Command::SettlementUpdate {
            market: 0,
            fill_id: fill["fill_id"].as_u64().unwrap(),
            status: kestrel_router::model::SettlementStatus::Confirmed,
        })
        .await
        .unwrap();
    let path = format!("/v1/settlement/0/{}", fill["fill_id"]);
    t.eventually(&path, |b| b["status"] == "confirmed").await;
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resting_order_shows_in_book_and_cancels() {
    let t = TestApi::start().await;
    let (mut maker, mut taker) = funded(&t).await;
    assert_eq!(
        t.post("/v1/orders", &maker.order(Side::Sell, 1_600, 5))
            .await
            .0,
        200
    );
    assert_eq!(
        t.post("/v1/orders", &taker.order(Side::Buy, 1_400, 7))
            .await
            .0,
        200
    );
    let book = t
        .eventually("/v1/markets/0/book?depth=10", |b| {
            b["asks"].as_array().is_some_and(|a| !a.is_empty())
                && b["bids"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(
        book["asks"],
        json!([{"price_ticks": 1600, "price_ticks_decimal": "16", "size_lots": 5, "size_lots_decimal": "5000", "orders": 1}])
    );
    assert_eq!(
        book["bids"],
        json!([{"price_ticks": 1400, "price_ticks_decimal": "14", "size_lots": 7, "size_lots_decimal": "7000", "orders": 1}])
    );
    t.eventually(&format!("/v1/accounts/{}/orders", maker.hex()), |b| {
        b.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let (status, cancelled) = t.post("/v1/cancel", &maker.cancel(0, 1)).await;
    assert_eq!(status, 200, "{cancelled}");
    assert!(cancelled["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "order_done" && e["reason"] == "cancelled"));
    let (status, all) = t.post("/v1/cancel-all", &taker.cancel_all(1_000)).await;
    assert_eq!(status, 200, "{all}");
    t.eventually("/v1/markets/0/book", |b| {
        b["bids"] == json!([]) && b["asks"] == json!([])
    })
    .await;
    t.eventually(&format!("/v1/accounts/{}/orders", taker.hex()), |b| {
        b == &json!([])
    })
    .await;
    t.api.shutdown().await.unwrap();
}

/// Adds the group order L to the signature's s (little-endian): same point equation, a
/// non-canonical encoding that strict verification must refuse.
fn malleate(signature_hex: &str) -> String {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut sig = hex::decode(signature_hex).unwrap();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    hex::encode(sig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_class_has_its_code() {
    let t = TestApi::start().await;
    let (mut maker, mut taker) = funded(&t).await;
    let expect = |name: &'static str, status: u16, code_: u64, body: (u16, Value)| {
        assert_eq!(
            (body.0, code(&body.1)),
            (status, code_),
            "{name}: {}",
            body.1
        );
        assert!(
            body.1["error"].is_string() && body.1["message"].is_string(),
            "{name}"
        );
        name
    };

    let mut bad = maker.order(Side::Sell, 1_500, 1);
    let mut sig = hex::decode(bad["signature"].as_str().unwrap()).unwrap();
    sig[0] ^= 1;
    bad["signature"] = json!(hex::encode(sig));
    expect("bad signature", 401, 101, t.post("/v1/orders", &bad).await);

    let mut terms = maker.order_terms(Side::Sell, 1_500, 1);
    terms.exchange = anchor_lang::prelude::Pubkey::new_from_array([8; 32]);
    expect(
        "wrong exchange",
        400,
        102,
        t.post("/v1/orders", &maker.sign_order(&terms)).await,
    );

    let mut terms = maker.order_terms(Side::Sell, 1_500, 1);
    terms.market_index = 7;
    expect(
        "unknown market",
        404,
        103,
        t.post("/v1/orders", &maker.sign_order(&terms)).await,
    );

    let mut terms = maker.order_terms(Side::Sell, 1_500, 1);
    terms.expiry = now_secs() - 10;
    expect(
        "expired",
        400,
        104,
        t.post("/v1/orders", &maker.sign_order(&terms)).await,
    );

    let first = maker.order(Side::Sell, 1_500, 1);
    assert_eq!(t.post("/v1/orders", &first).await.0, 200);
    let replay = t.post("/v1/orders", &first).await;
    expect("replayed order", 409, 106, replay.clone());
    assert!(
        replay.1["seq"].is_u64(),
        "a sequenced refusal names its seq"
    );
    let mut reused = maker.order_terms(Side::Sell, 1_700, 2);
    reused.nonce = maker.nonce - 1;
    expect(
        "nonce reused with other terms",
        409,
        106,
        t.post("/v1/orders", &maker.sign_order(&reused)).await,
    );

    let mut malleated = maker.order(Side::Sell, 1_500, 1);
    malleated["signature"] = json!(malleate(malleated["signature"].as_str().unwrap()));
    expect(
        "malleated signature",
        401,
        101,
        t.post("/v1/orders", &malleated).await,
    );

    // The order with nonce 5 rests in market 0; a cancel naming market 1 finds nothing.
    expect(
        "cross-market cancel",
        404,
        140,
        t.post("/v1/cancel", &maker.cancel(1, 5)).await,
    );

    expect(
        "price out of range",
        400,
        110,
        t.post("/v1/orders", &maker.order(Side::Sell, 2_000_000, 1))
            .await,
    );
    expect(
        "size out of range",
        400,
        111,
        t.post("/v1/orders", &maker.order(Side::Sell, 1_500, 2_000_000))
            .await,
    );
    expect(
        "insufficient balance",
        422,
        120,
        t.post("/v1/orders", &taker.order(Side::Buy, 1_000_000, 1_000_000))
            .await,
    );
    let mut short = maker.order(Side::Sell, 1_500, 1);
    short["message"] = json!(&short["message"].as_str().unwrap()[..200]);
    expect(
        "malformed message",
        400,
        100,
        t.post("/v1/orders", &short).await,
    );
    let order_as_cancel = maker.order(Side::Sell, 1_500, 1);
    expect(
        "order bytes sent as a cancel",
        400,
        100,
        t.post("/v1/cancel", &order_as_cancel).await,
    );
    expect(
        "withdraw more than held",
        422,
        120,
        t.post("/v1/withdrawals", &taker.withdraw(QUOTE, u64::MAX))
            .await,
    );
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_4xx_with_a_code() {
    let t = TestApi::start().await;
    let mut w = Wallet::new(3);
    let cases: Vec<(&str, String, u16, u64)> = vec![
        ("not json", "{\"message\":".into(), 400, 1000),
        (
            "wrong type",
            json!({"message": 1, "signature": "00"}).to_string(),
            400,
            1001,
        ),
        (
            "huge number",
            "{\"message\": 1e999999, \"signature\": \"00\"}".into(),
            400,
            1000,
        ),
        (
            "missing field",
            json!({"message": "00"}).to_string(),
            400,
            1001,
        ),
        (
            "unknown field",
            json!({"message": "00", "signature": "00", "x": 1}).to_string(),
            400,
            1001,
        ),
        (
            "not hex",
            json!({"message": "zz", "signature": "00"}).to_string(),
            400,
            1001,
        ),
        (
            "short signature",
            json!({"message": "00", "signature": "0011"}).to_string(),
            400,
            1001,
        ),
        ("array", "[1,2,3]".into(), 400, 1001),
        ("empty", String::new(), 400, 1000),
    ];
    for (name, body, status, code_) in cases {
        let (s, b) = t.post_raw("/v1/orders", body).await;
        assert_eq!((s, code(&b)), (status, code_), "{name}: {b}");
    }
    let huge = json!({"message": "00".repeat(100_000), "signature": "00"}).to_string();
    let (s, b) = t.post_raw("/v1/orders", huge).await;
    assert_eq!((s, code(&b)), (413, 1002), "{b}");
    for (path, status, code_) in [
        ("/v1/orders/99999999999999999999999999", 400, 1001),
        ("/v1/orders/-1", 400, 1001),
        ("/v1/orders/12345", 404, 1004),
        ("/v1/markets/4294967296/book", 400, 1001),
        ("/v1/markets/9/book", 404, 103),
        ("/v1/markets/0/book?depth=99999999999", 400, 1001),
        ("/v1/markets/0/book?depth=1&x=2", 400, 1001),
        ("/v1/markets/0/candles?interval=7m", 400, 1001),
        ("/v1/markets/0/candles", 400, 1001),
        ("/v1/accounts/nothex/balances", 400, 1001),
        ("/v1/accounts/00/balances", 400, 1001),
        (
            "/v1/accounts/0000000000000000000000000000000000000000000000000000000000000000/ledger",
            400,
            1001,
        ),
        ("/v1/deposits/abcd", 400, 1001),
        ("/v1/nowhere", 404, 1004),
    ] {
        let (s, b) = t.get(path).await;
        assert_eq!((s, code(&b)), (status, code_), "{path}: {b}");
    }
    let response = t
        .http
        .delete(format!("{}/v1/orders", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(code(&response.json().await.unwrap()), 1005);
    // The server is still serving.
    let (s, _) = t.post("/v1/orders", &w.order(Side::Buy, 1, 1)).await;
    assert_eq!(s, 422);
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_and_withdrawals_are_visible() {
    let t = TestApi::start().await;
    let mut w = Wallet::new(4);
    t.deposit(w.owner(), QUOTE, 5_000, 7).await;
    let tx = hex::encode([7u8; 64]);
    let deposit = t
        .eventually(&format!("/v1/deposits/{tx}"), |b| b["status"] == "credited")
        .await;
    assert_eq!(deposit["deposits"][0]["amount"], 5_000);
    assert_eq!(deposit["deposits"][0]["owner"], w.hex());
    let (s, b) = t
        .get(&format!("/v1/deposits/{}", hex::encode([8u8; 64])))
        .await;
    assert_eq!((s, code(&b)), (404, 1004));
    let (s, requested) = t.post("/v1/withdrawals", &w.withdraw(QUOTE, 2_000)).await;
    assert_eq!(s, 200, "{requested}");
    let id = requested["withdrawal_id"].as_u64().unwrap();
    let list = t
        .eventually(&format!("/v1/accounts/{}/withdrawals", w.hex()), |b| {
            b.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    assert_eq!(
        (list[0]["id"].as_u64(), list[0]["status"].as_str()),
        (Some(id), Some("pending"))
    );
    let balances = t
        .eventually(&format!("/v1/accounts/{}/balances", w.hex()), |b| {
            b[0]["frozen"] == 2_000
        })
        .await;
    assert_eq!(balances[0]["available"], 3_000);
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_a_code() {
    let t = TestApi::start_with(|c| {
        c.limits.per_ip_per_sec = 1;
        c.limits.per_ip_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (s, b) = t.get("/v1/markets").await;
        statuses.push((s, code(&b)));
    }
    assert_eq!(&statuses[..3], &[(200, 0); 3]);
    assert!(statuses[3..].contains(&(429, 1003)), "{statuses:?}");
    t.api.shutdown().await.unwrap();

    let t = TestApi::start_with(|c| {
        c.limits.per_key_per_sec = 1;
        c.limits.per_key_burst = 1;
    })
    .await;
    let (mut maker, _) = funded(&t).await;
    assert_eq!(
        t.post("/v1/orders", &maker.order(Side::Sell, 1_500, 1))
            .await
            .0,
        200
    );
    let (s, b) = t
        .post("/v1/orders", &maker.order(Side::Sell, 1_500, 1))
        .await;
    assert_eq!((s, code(&b)), (429, 1003), "{b}");
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_served_and_checked_in() {
    let t = TestApi::start().await;
    let (status, served) = t.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("KESTREL_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&served).unwrap() + "\n").unwrap();
    }
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        served, checked_in,
        "docs/openapi.json is stale: rerun with KESTREL_BLESS=1"
    );
    // Every documented path is routed.
    for path in served["paths"].as_object().unwrap().keys() {
        let concrete = path
            .replace("{market}", "0")
            .replace("{owner}", &"00".repeat(32))
            .replace("{order_id}", "1")
            .replace("{client_order_id}", "1")
            .replace("{fill_id}", "1")
            .replace("{tx}", &"00".repeat(64));
        let (_, body) = t.get(&concrete).await;
        assert_ne!(
            body["message"], "no such resource",
            "{path} is documented but not routed"
        );
    }
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_and_restart_recovers_the_book() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let t = TestApi::start_in(dir, config.clone()).await;
    let (mut maker, _) = funded(&t).await;
    assert_eq!(
        t.post("/v1/orders", &maker.order(Side::Sell, 1_550, 3))
            .await
            .0,
        200
    );
    let metrics_addr = t.api.metrics_addr().unwrap();
    let metrics = || async {
        reqwest::get(format!("http://{metrics_addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let text = metrics().await;
    assert!(
        text.contains("kestrel_api_commands_total{kind=\"place\",outcome=\"accepted\"} 1"),
        "{text}"
    );
    assert!(text.contains("kestrel_api_http_requests_total{method=\"POST\",route=\"/v1/orders\",status=\"200\"} 1"), "{text}");
    // The order went to its market's engine queue ahead of its turn (the deposits before it
    // are applied on the sequencer's thread); whether the engine thread or the sequencer
    // matched it is up to the scheduler.
    assert!(
        text.contains("kestrel_api_sequencer_ahead_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("kestrel_api_sequencer_engine_thread_total "),
        "{text}"
    );
    assert!(
        text.contains("kestrel_api_sequencer_waited_total "),
        "{text}"
    );
    // The SQL projection catches up: nothing sequenced is left untaken.
    let mut caught_up = false;
    for _ in 0..200 {
        let text = metrics().await;
        assert!(
            text.contains("kestrel_api_projection_lag_events "),
            "{text}"
        );
        if text.contains("kestrel_api_projection_lag_events 0") {
            caught_up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(caught_up, "the projection lag gauge never returned to 0");
    let TestApi { api, dir, .. } = t;
    api.shutdown().await.unwrap();
    let t = TestApi::start_in(dir, config).await;
    let book = t
        .eventually("/v1/markets/0/book", |b| {
            b["asks"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(
        book["asks"],
        json!([{"price_ticks": 1550, "price_ticks_decimal": "15.5", "size_lots": 3, "size_lots_decimal": "3000", "orders": 1}])
    );
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_moves_a_resting_order_to_new_signed_terms() {
    let t = TestApi::start().await;
    let (mut maker, _) = funded(&t).await;
    let first = maker.order_terms(Side::Sell, 1_600, 5);
    let (status, placed) = t.post("/v1/orders", &maker.sign_order(&first)).await;
    assert_eq!(status, 200, "{placed}");
    let order_id = placed["order_id"].as_u64().unwrap();

    let smaller = maker.replacement_terms(&first, Side::Sell, 1_600, 3);
    let body = json!({"cancel": maker.cancel(0, first.nonce), "order": maker.sign_order(&smaller)});
    let (status, replaced) = t.post("/v1/replace", &body).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["order_id"].as_u64(), Some(order_id));
    let event = event_in(&replaced, "order_replaced");
    assert_eq!(
        (event["nonce"].as_u64(), event["kept_priority"].as_bool()),
        (Some(smaller.nonce), Some(true))
    );
    t.eventually("/v1/markets/0/book", |b| {
        b["asks"] == json!([{"price_ticks": 1600, "price_ticks_decimal": "16", "size_lots": 3, "size_lots_decimal": "3000", "orders": 1}])
    })
    .await;
    t.eventually(&format!("/v1/orders/{order_id}"), |o| {
        o["nonce"].as_u64() == Some(smaller.nonce) && o["remaining_lots"].as_u64() == Some(3)
    })
    .await;

    // A replace may not turn a sell into a buy; the refusal is typed and durable.
    let flipped = maker.replacement_terms(&first, Side::Buy, 1_500, 1);
    let body =
        json!({"cancel": maker.cancel(0, smaller.nonce), "order": maker.sign_order(&flipped)});
    let (status, refused) = t.post("/v1/replace", &body).await;
    assert_eq!(
        (status, refused["code"].as_u64()),
        (400, Some(142)),
        "{refused}"
    );
    // The old order's nonce is gone: replacing it again names nothing.
    let again = maker.replacement_terms(&first, Side::Sell, 1_600, 2);
    let body = json!({"cancel": maker.cancel(0, first.nonce), "order": maker.sign_order(&again)});
    let (status, unknown) = t.post("/v1/replace", &body).await;
    assert_eq!(
        (status, unknown["code"].as_u64()),
        (404, Some(140)),
        "{unknown}"
    );
    // Half a replace is a malformed request, not a panic.
    let (status, malformed) = t
        .post("/v1/replace", &json!({"order": maker.sign_order(&again)}))
        .await;
    assert_eq!(status / 100, 4, "{malformed}");
    assert!(malformed["code"].is_u64());
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_transaction_needs_the_owners_proof_and_a_cosigner() {
    let t = TestApi::start().await;
    let mut w = Wallet::new(4);
    let other = Wallet::new(5);
    t.deposit(w.owner(), QUOTE, 5_000, 7).await;
    let (s, requested) = t.post("/v1/withdrawals", &w.withdraw(QUOTE, 2_000)).await;
    assert_eq!(s, 200, "{requested}");
    let id = requested["withdrawal_id"].as_u64().unwrap();
    t.eventually(&format!("/v1/accounts/{}/withdrawals", w.hex()), |b| {
        b[0]["status"] == "pending"
    })
    .await;
    let destination = [3u8; 32];
    let proof = |signer: &Wallet, id: u64| signer.transaction_proof(&w, id, destination);
    let path = format!("/v1/withdrawals/{id}/transaction");
    let (s, b) = t.post(&path, &proof(&other, id)).await;
    assert_eq!((s, code(&b)), (401, 1006), "{b}");
    let (s, b) = t
        .post(
            &format!("/v1/withdrawals/{}/transaction", id + 100),
            &proof(&w, id + 100),
        )
        .await;
    assert_eq!((s, code(&b)), (404, 1004), "{b}");
    let mut bad = proof(&w, id);
    bad["destination"] = json!("zz");
    let (s, b) = t.post(&path, &bad).await;
    assert_eq!((s, code(&b)), (400, 1001), "{b}");
    // A router without a co-signer hands out nothing, and the withdrawal stays pending.
    let (s, b) = t.post(&path, &proof(&w, id)).await;
    assert_eq!((s, code(&b)), (503, 1008), "{b}");
    let (_, list) = t
        .get(&format!("/v1/accounts/{}/withdrawals", w.hex()))
        .await;
    assert_eq!(list[0]["status"], "pending", "{list}");
    t.api.shutdown().await.unwrap();
}

/// Every REST read shows what the client has been acknowledged, although the SQL store writes
/// its batches only every 400 ms here: an order right after its placement (by id and by client
/// id), the fill it made and the order's filled size right after the taker's ack, the open
/// orders right after a cancel, a withdrawal right after its request (here: no co-signer, so
/// 503 and not 404); an id nobody was given is still 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_show_what_was_acknowledged() {
    let t = TestApi::start_with(|c| {
        c.projector.max_delay = std::time::Duration::from_millis(400);
    })
    .await;
    let (mut maker, mut taker) = funded(&t).await;
    let (status, placed) = t
        .post("/v1/orders", &maker.order(Side::Sell, 1_500, 3))
        .await;
    assert_eq!(status, 200, "{placed}");
    let id = placed["order_id"].as_u64().unwrap();
    let (status, order) = t.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(
        (status, order["order_id"].as_u64(), order["owner"].as_str()),
        (200, Some(id), Some(maker.hex().as_str()))
    );
    let terms = maker.order_terms(Side::Sell, 1_600, 2);
    let (status, placed) = t.post("/v1/orders", &maker.sign_order(&terms)).await;
    assert_eq!(status, 200, "{placed}");
    let (status, order) = t
        .get(&format!(
            "/v1/accounts/{}/orders/by-client-id/{}",
            maker.hex(),
            terms.client_order_id
        ))
        .await;
    assert_eq!(
        (status, order["order_id"].as_u64()),
        (200, placed["order_id"].as_u64())
    );
    let (status, taken) = t
        .post("/v1/orders", &taker.order(Side::Buy, 1_500, 1))
        .await;
    assert_eq!(status, 200, "{taken}");
    let fill_id = event_in(&taken, "fill")["fill_id"].as_u64().unwrap();
    let (status, fill) = t.get(&format!("/v1/settlement/0/{fill_id}")).await;
    assert_eq!(
        (status, fill["fill_id"].as_u64(), fill["status"].as_str()),
        (200, Some(fill_id), Some("pending"))
    );
    let (_, order) = t.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(order["filled_lots"].as_u64(), Some(1), "{order}");
    let (status, cancelled) = t.post("/v1/cancel", &maker.cancel(0, terms.nonce)).await;
    assert_eq!(status, 200, "{cancelled}");
    let (_, open) = t.get(&format!("/v1/accounts/{}/orders", maker.hex())).await;
    let open: Vec<_> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_u64())
        .collect();
    assert_eq!(open, vec![Some(id)]);
    let (status, requested) = t.post("/v1/withdrawals", &taker.withdraw(QUOTE, 1)).await;
    assert_eq!(status, 200, "{requested}");
    let withdrawal = requested["withdrawal_id"].as_u64().unwrap();
    let proof = taker.transaction_proof(&taker, withdrawal, [3u8; 32]);
    let (status, refused) = t
        .post(&format!("/v1/withdrawals/{withdrawal}/transaction"), &proof)
        .await;
    assert_eq!((status, code(&refused)), (503, 1008), "{refused}");
    let (status, error) = t.get(&format!("/v1/orders/{}", id + 1_000)).await;
    assert_eq!((status, error["code"].as_u64()), (404, Some(1004)));
    t.api.shutdown().await.unwrap();
}
