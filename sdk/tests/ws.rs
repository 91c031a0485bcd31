//! The WebSocket client against the real router API on loopback: book and fills with order
//! entry, resumption without gap or duplicate across cut connections, a server that cannot
//! resume any more, heartbeat timeouts, and cancel-on-disconnect.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod support;

use kestrel_sdk::backoff::Backoff;
use kestrel_sdk::book::L2Book;
use kestrel_sdk::rest::{hex, RestClient};
use kestrel_sdk::ws::{Channel, Data, Error, OrderUpdate, Update, WsClient, WsConfig, WsEvent};
use kestrel_sdk::OrderBuilder;
use solana_sdk::signature::{Keypair, Signer};
use std::sync::Arc;
use std::time::Duration;
use support::proxy::Proxy;
use support::{eventually, exchange, Router};
use tokio::sync::mpsc::Receiver;

/// Quick reconnects for tests.
fn config(url: String, wallet: &Keypair, cancel_on_disconnect: bool) -> WsConfig {
    let mut config = WsConfig::new(url)
        .subscribe(Channel::Book(0))
        .subscribe(Channel::Trades(0))
        .subscribe(Channel::Candles(0, "1m"))
        .subscribe(Channel::Fills)
        .subscribe(Channel::Orders)
        .subscribe(Channel::Balances)
        .auth(
            Arc::new(wallet.insecure_clone()),
            exchange(),
            cancel_on_disconnect,
        );
    config.reconnect = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        ..Backoff::default()
    };
    config.connect_timeout = Duration::from_secs(2);
    config
}

/// The next event, within a generous limit.
async fn next(events: &mut Receiver<WsEvent>) -> WsEvent {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("no event within 30 s")
        .expect("the client stopped")
}

/// Events until one matches; returns it and the updates skipped on the way.
async fn until(
    events: &mut Receiver<WsEvent>,
    wanted: impl Fn(&WsEvent) -> bool,
) -> (WsEvent, Vec<Update>) {
    let mut updates = Vec::new();
    loop {
        let event = next(events).await;
        if wanted(&event) {
            return (event, updates);
        }
        match event {
            WsEvent::Update(update) => updates.push(update),
            WsEvent::Resync { .. } | WsEvent::Closed(_) | WsEvent::Undecodable { .. } => {
                panic!("unexpected {event:?}")
            }
            _ => {}
        }
    }
}

fn is_connected(event: &WsEvent) -> bool {
    matches!(event, WsEvent::Connected { .. })
}

fn ask(wallet: &Keypair, price: u64, size: u64, nonce: u64) -> kestrel_sdk::order::SignedOrder {
    OrderBuilder::limit(0)
        .sell()
        .price(price)
        .size(size)
        .sign(exchange(), wallet, nonce)
        .unwrap()
}

fn bid(wallet: &Keypair, price: u64, size: u64, nonce: u64) -> kestrel_sdk::order::SignedOrder {
    OrderBuilder::limit(0)
        .buy()
        .price(price)
        .size(size)
        .ioc()
        .sign(exchange(), wallet, nonce)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_follows_its_book_and_fills_and_places_replaces_and_cancels_over_the_socket() {
    let r = Router::start().await;
    let rest = RestClient::new(r.http_url(), exchange());
    let (client, mut events) = WsClient::connect(config(r.ws_url(), &r.maker, false)).unwrap();
    let (connected, _) = until(&mut events, is_connected).await;
    assert_eq!(
        connected,
        WsEvent::Connected {
            session: 1,
            resumed: false
        }
    );
    let (snapshot, _) = until(&mut events, |e| matches!(e, WsEvent::Snapshot(_))).await;
    let WsEvent::Snapshot(snapshot) = snapshot else {
        unreachable!()
    };
    let mut book = L2Book::new(0);
    book.apply_snapshot(&snapshot).unwrap();

    // The maker's ask goes over the WebSocket; the taker crosses it over REST.
    let placed = client.place(&ask(&r.maker, 1_500, 10, 1)).await.unwrap();
    assert!(placed["order_id"].is_u64(), "{placed}");
    rest.place(&bid(&r.taker, 1_500, 4, 1)).await.unwrap();

    let mut fill = None;
    let mut trade = None;
    let mut accepted = None;
    let mut balances = Vec::new();
    while fill.is_none()
        || trade.is_none()
        || accepted.is_none()
        || !balances.contains(&(1, "fill_receive".to_owned()))
        || book.best_ask().map(|l| l.size_lots) != Some(6)
    {
        let WsEvent::Update(update) = next_update(&mut events).await else {
            unreachable!()
        };
        match update.data {
            Data::Book(delta) => {
                book.apply_delta(&delta).unwrap();
            }
            Data::Fill(f) => fill = Some(f),
            Data::Trade(t) => trade = Some(t),
            Data::Order(OrderUpdate::OrderAccepted {
                order_id, nonce, ..
            }) => accepted = Some((order_id, nonce)),
            Data::Balance(b) => balances.push((b.asset, b.business)),
            Data::Candle(_) | Data::Order(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, Some((placed["order_id"].as_u64().unwrap(), 1)));
    // The ask held base; the fill paid quote in.
    assert_eq!(balances.first(), Some(&(0, "order_hold".to_owned())));
    let fill = fill.unwrap();
    assert_eq!(
        (
            fill.maker.as_str(),
            fill.taker.as_str(),
            fill.size_lots,
            fill.price_ticks
        ),
        (
            hex(r.maker.pubkey().as_ref()).as_str(),
            hex(r.taker.pubkey().as_ref()).as_str(),
            4,
            1_500
        )
    );
    assert_eq!(trade.unwrap().fill_id, fill.fill_id);
    assert_eq!(book.best_ask().map(|l| l.price_ticks), Some(1_500));
    assert_eq!(book.best_bid(), None);

    // A channel added on the way starts with its snapshot.
    client.subscribe(&[Channel::Book(1)]).await.unwrap();
    let (snapshot, _) = until(&mut events, |e| matches!(e, WsEvent::Snapshot(_))).await;
    assert!(matches!(snapshot, WsEvent::Snapshot(s) if s.market == 1 && s.asks.is_empty()));
    client.unsubscribe(&[Channel::Book(1)]).await.unwrap();

    // A refused order is the API's typed error; a cancel over the socket empties the book.
    match client.place(&ask(&r.maker, 1_500, 10, 1)).await {
        Err(Error::Api(e)) => assert_eq!((e.code, e.error.as_str()), (106, "nonce_reused")),
        other => panic!("expected nonce_reused, got {other:?}"),
    }
    // A replacement over the socket moves the rest of the ask; the cancel names its new nonce.
    let replaced = client
        .replace(1, &ask(&r.maker, 1_550, 6, 2))
        .await
        .unwrap();
    assert_eq!(replaced["order_id"], placed["order_id"], "{replaced}");
    while book.best_ask().map(|l| (l.price_ticks, l.size_lots)) != Some((1_550, 6)) {
        if let WsEvent::Update(Update {
            data: Data::Book(delta),
            ..
        }) = next_update(&mut events).await
        {
            book.apply_delta(&delta).unwrap();
        }
    }
    client.cancel(0, 2).await.unwrap();
    while book.best_ask().is_some() {
        if let WsEvent::Update(Update {
            data: Data::Book(delta),
            ..
        }) = next_update(&mut events).await
        {
            book.apply_delta(&delta).unwrap();
        }
    }
    client.close().await;
    let (closed, _) = until(&mut events, |e| matches!(e, WsEvent::Closed(_))).await;
    assert_eq!(closed, WsEvent::Closed(None));
    assert!(matches!(
        client.place(&ask(&r.maker, 1, 1, 9)).await,
        Err(Error::Stopped)
    ));
}

async fn next_update(events: &mut Receiver<WsEvent>) -> WsEvent {
    until(events, |e| matches!(e, WsEvent::Update(_))).await.0
}

/// Crossing trades on market 0, then a marker ask at 9,999 ticks.
async fn trade(url: String, maker: Keypair, taker: Keypair, rounds: u64) {
    let rest = RestClient::new(url, exchange());
    for i in 1..=rounds {
        rest.place(&ask(&maker, 1_500 + i, 2, i)).await.unwrap();
        rest.place(&bid(&taker, 1_500 + i, 1, i)).await.unwrap();
    }
    rest.place(&ask(&maker, 9_999, 1, 1_000)).await.unwrap();
}

fn is_marker(update: &Update) -> bool {
    matches!(update.data, Data::Book(d) if d.price_ticks == 9_999)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_resume_with_no_gap_and_no_duplicate() {
    let r = Router::start().await;
    let proxy = Proxy::start(r.api.local_addr()).await;
    let (_direct, mut direct) = WsClient::connect(config(r.ws_url(), &r.taker, false)).unwrap();
    let proxied_url = format!("ws://{}/v1/ws", proxy.addr());
    let (_proxied, mut proxied) = WsClient::connect(config(proxied_url, &r.taker, false)).unwrap();
    until(&mut direct, is_connected).await;
    until(&mut proxied, is_connected).await;

    let trading = tokio::spawn(trade(
        r.http_url(),
        r.maker.insecure_clone(),
        r.taker.insecure_clone(),
        15,
    ));
    let (mut seen_direct, mut seen_proxied) = (Vec::new(), Vec::new());
    let (mut cuts, mut resumed, mut live) = (0, 0, true);
    let mut books = [L2Book::new(0), L2Book::new(0)];
    let done = |seen: &Vec<Update>| seen.last().is_some_and(is_marker);
    while !done(&seen_direct) || !done(&seen_proxied) {
        tokio::select! {
            event = next(&mut direct), if !done(&seen_direct) => match event {
                WsEvent::Update(update) => {
                    if let Data::Book(delta) = &update.data {
                        books[0].apply_delta(delta).unwrap();
                    }
                    seen_direct.push(update);
                }
                WsEvent::Snapshot(snapshot) => books[0].apply_snapshot(&snapshot).unwrap(),
                other => panic!("direct client: unexpected {other:?}"),
            },
            event = next(&mut proxied), if !done(&seen_proxied) => match event {
                WsEvent::Update(update) => {
                    if let Data::Book(delta) = &update.data {
                        books[1].apply_delta(delta).unwrap();
                    }
                    seen_proxied.push(update);
                    // Cut mid-stream, often between the items of one fill.
                    if seen_proxied.len() % 9 == 0 && cuts < 4 && live {
                        proxy.cut();
                        cuts += 1;
                        live = false;
                    }
                }
                WsEvent::Snapshot(snapshot) => books[1].apply_snapshot(&snapshot).unwrap(),
                WsEvent::Connected { resumed: true, .. } => {
                    resumed += 1;
                    live = true;
                }
                WsEvent::Disconnected { .. } => {}
                other => panic!("proxied client: unexpected {other:?}"),
            },
        }
    }
    trading.await.unwrap();
    if !live {
        until(&mut proxied, is_connected).await;
        resumed += 1;
    }
    assert!(cuts >= 2, "only {cuts} cuts");
    assert_eq!(
        resumed, cuts,
        "every cut was followed by a resumed connection"
    );
    assert_eq!(seen_proxied.len(), seen_direct.len());
    assert_eq!(seen_proxied, seen_direct);
    // 15 fills: each a trade, a 1m candle and a private fill, plus the book deltas.
    let fills = seen_direct
        .iter()
        .filter(|u| matches!(u.data, Data::Fill(_)))
        .count();
    assert_eq!(fills, 15);
    assert_eq!(books[0], books[1]);
    let router_book = r.api.market_data().book(0, usize::MAX).unwrap();
    let levels = |book: &L2Book| -> Vec<(u64, u64)> {
        book.asks().map(|l| (l.price_ticks, l.size_lots)).collect()
    };
    let expected: Vec<(u64, u64)> = router_book
        .asks
        .iter()
        .map(|l| (l.price_ticks, l.size_lots))
        .collect();
    assert_eq!(levels(&books[1]), expected);
    assert_eq!(books[1].market_seq(), router_book.market_seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_declared_dead_and_replaced() {
    let r = Router::start().await;
    let proxy = Proxy::start(r.api.local_addr()).await;
    let mut config = config(format!("ws://{}/v1/ws", proxy.addr()), &r.maker, false);
    config.heartbeat_interval = Duration::from_millis(100);
    config.heartbeat_timeout = Duration::from_secs(1);
    let (client, mut events) = WsClient::connect(config).unwrap();
    until(&mut events, is_connected).await;
    until(&mut events, |e| matches!(e, WsEvent::Snapshot(_))).await;
    // The peers stay connected but no byte passes: only the heartbeat can tell.
    proxy.freeze(true);
    let (lost, _) = until(&mut events, |e| matches!(e, WsEvent::Disconnected { .. })).await;
    let WsEvent::Disconnected { reason, .. } = lost else {
        unreachable!()
    };
    assert_eq!(reason, "heartbeat timeout");
    // A snapshot asked for while disconnected comes once connected again (a resumed feed
    // sends none of its own).
    client.resnapshot(0).await.unwrap();
    proxy.freeze(false);
    let (connected, _) = until(&mut events, is_connected).await;
    assert!(matches!(
        connected,
        WsEvent::Connected {
            session: 2,
            resumed: true
        }
    ));
    let (snapshot, _) = until(&mut events, |e| matches!(e, WsEvent::Snapshot(_))).await;
    assert!(matches!(snapshot, WsEvent::Snapshot(s) if s.market == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_resume_says_so_and_sends_a_fresh_snapshot() {
    let r = Router::start_with(|mut c| {
        c.market_data.ring_items = 4;
        c
    })
    .await;
    let proxy = Proxy::start(r.api.local_addr()).await;
    let url = format!("ws://{}/v1/ws", proxy.addr());
    let (_client, mut events) = WsClient::connect(config(url, &r.maker, false)).unwrap();
    until(&mut events, is_connected).await;
    until(&mut events, |e| matches!(e, WsEvent::Snapshot(_))).await;
    // Cut the connection and hold reconnects until more than the ring has happened.
    proxy.freeze(true);
    proxy.cut();
    until(&mut events, |e| matches!(e, WsEvent::Disconnected { .. })).await;
    let rest = RestClient::new(r.http_url(), exchange());
    for i in 1..=5 {
        rest.place(&ask(&r.maker, 2_000 + i, 1, i)).await.unwrap();
    }
    proxy.freeze(false);
    let (resync, _) = until(&mut events, |e| matches!(e, WsEvent::Resync { .. })).await;
    assert_eq!(
        resync,
        WsEvent::Resync {
            reason: "resume_position_too_old".to_owned()
        }
    );
    let (snapshot, _) = until(&mut events, |e| matches!(e, WsEvent::Snapshot(_))).await;
    let WsEvent::Snapshot(snapshot) = snapshot else {
        unreachable!()
    };
    assert_eq!(snapshot.asks.len(), 5);
    let mut book = L2Book::new(0);
    book.apply_snapshot(&snapshot).unwrap();
    rest.place(&ask(&r.maker, 1_999, 1, 6)).await.unwrap();
    loop {
        if let WsEvent::Update(Update {
            data: Data::Book(delta),
            ..
        }) = next_update(&mut events).await
        {
            book.apply_delta(&delta).unwrap();
            break;
        }
    }
    assert_eq!(book.best_ask().map(|l| l.price_ticks), Some(1_999));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_disconnect_cancels_the_makers_orders() {
    let r = Router::start().await;
    let proxy = Proxy::start(r.api.local_addr()).await;
    let url = format!("ws://{}/v1/ws", proxy.addr());
    let (client, mut events) = WsClient::connect(config(url, &r.maker, true)).unwrap();
    let (armed, _) = until(&mut events, |e| {
        matches!(e, WsEvent::CancelOnDisconnect { .. })
    })
    .await;
    assert_eq!(armed, WsEvent::CancelOnDisconnect { armed: true });
    until(&mut events, is_connected).await;
    client.place(&ask(&r.maker, 1_600, 3, 1)).await.unwrap();
    client.place(&ask(&r.maker, 1_700, 3, 2)).await.unwrap();
    let rest = RestClient::new(r.http_url(), exchange());
    let maker = r.maker.pubkey();
    eventually("two open orders", || async {
        let open = rest.open_orders(&maker).await.unwrap();
        (open.as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    proxy.cut();
    eventually("the router to cancel them", || async {
        let open = rest.open_orders(&maker).await.unwrap();
        open.as_array().is_some_and(Vec::is_empty).then_some(())
    })
    .await;
    // The client came back and armed it again for the new connection.
    let (armed, _) = until(&mut events, |e| {
        matches!(e, WsEvent::CancelOnDisconnect { .. })
    })
    .await;
    assert_eq!(armed, WsEvent::CancelOnDisconnect { armed: true });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gives_up_after_the_configured_attempts_and_refusals_are_fatal() {
    // Nothing listens on the port: every attempt fails, then the client stops.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
    drop(listener);
    let mut config = WsConfig::new(url);
    config.reconnect.initial = Duration::from_millis(10);
    config.max_reconnect_attempts = Some(2);
    let (_client, mut events) = WsClient::connect(config).unwrap();
    let mut disconnects = 0;
    loop {
        match next(&mut events).await {
            WsEvent::Disconnected { .. } => disconnects += 1,
            WsEvent::Closed(error) => {
                assert_eq!(error, Some(Error::GaveUp(2)));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(disconnects, 2);

    // A market the router does not have is refused for good, not retried.
    let r = Router::start().await;
    let config = WsConfig::new(r.ws_url()).subscribe(Channel::Book(7));
    let (_client, mut events) = WsClient::connect(config).unwrap();
    match next(&mut events).await {
        WsEvent::Closed(Some(Error::Api(e))) => assert_eq!(e.error, "unknown_market"),
        other => panic!("unexpected {other:?}"),
    }
    // Private channels need a wallet.
    let config = WsConfig::new(r.ws_url()).subscribe(Channel::Fills);
    assert!(matches!(WsClient::connect(config), Err(Error::Config(_))));
}
