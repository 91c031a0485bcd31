//! End to end across crates, on the devnet composition started in-process (ports chosen by the
//! OS, a tempdir data dir): a deposit made on-chain through `RpcClient` is credited by the
//! router once; two demo wallets place crossing signed orders over REST; the taker sees the fill
//! and its confirmed settlement over the SDK's WebSocket client; the fill settles
//! on-chain through the relayer loops, as a v0 transaction over the relayer's lookup table
//! (legacy with tables off); the on-chain balances then equal the router's ledger.
//!
//! This lives in the node crate's `tests/` (the workspace's top-level `tests/` would need a crate
//! of its own) because the node crate is the composition root it exercises.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;
mod devnet_support;

use anchor_lang::AccountDeserialize;
use devnet_support::{eventually, Rest};
use kestrel::state::UserAccount;
use kestrel_node::devnet::{DECIMALS, DEPOSITED};
use kestrel_node::{Devnet, DevnetConfig};
use kestrel_sdk::ws::{Channel, Data, Update, WsClient, WsConfig, WsEvent};
use kestrel_sdk::OrderBuilder;
use serde_json::{json, Value};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

fn order_body(wallet: &Keypair, exchange: Pubkey, builder: OrderBuilder, nonce: u64) -> Value {
    let signed = builder.sign(exchange, wallet, nonce).unwrap();
    json!({
        "message": hex::encode(signed.bytes()),
        "signature": hex::encode(signed.signature),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposit_trade_and_settlement_agree_on_chain_and_in_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig::ephemeral(dir.path()))
        .await
        .unwrap();
    let rest = Rest {
        base: net.http_url(),
        http: reqwest::Client::new(),
    };
    let rpc = RpcClient::new(net.rpc_url());
    let d = net.deployment().clone();
    let [maker, taker] = net.wallets() else {
        panic!("two demo wallets")
    };
    let (maker_key, taker_key) = (maker.keypair.pubkey(), taker.keypair.pubkey());

    // The market spec carries the mints' decimals, read from the chain.
    let markets = rest.get("/v1/markets").await;
    let market = &markets["markets"][0];
    assert_eq!(market["base_decimals"], json!(DECIMALS), "{markets}");
    assert_eq!(market["quote_decimals"], json!(DECIMALS), "{markets}");

    // The bootstrap deposits reach the router through the listener.
    for owner in [maker_key, taker_key] {
        for asset in [0, 1] {
            eventually("the bootstrap deposits", || async {
                (rest.balance(&owner, asset).await == Some((DEPOSITED, 0))).then_some(())
            })
            .await;
        }
    }

    // A deposit through RpcClient is credited once.
    let extra = 7_000_000;
    let deposit = d
        .deposit(&maker_key, 0, &maker.token_accounts[0], extra)
        .unwrap();
    let signature = kestrel_sdk::chain::send(&rpc, &[deposit], &maker.keypair, &[])
        .await
        .unwrap();
    eventually("the new deposit", || async {
        (rest.balance(&maker_key, 0).await == Some((DEPOSITED + extra, 0))).then_some(())
    })
    .await;
    let credited = rest
        .get(&format!("/v1/deposits/{}", hex::encode(signature.as_ref())))
        .await;
    assert_eq!(
        credited["deposits"].as_array().map(Vec::len),
        Some(1),
        "{credited}"
    );
    assert_eq!(credited["deposits"][0]["amount"], extra, "{credited}");

    // The taker follows its fills and their settlement over the SDK's WebSocket client.
    let (_feed, mut events) = WsClient::connect(
        WsConfig::new(net.ws_url())
            .subscribe(Channel::Fills)
            .subscribe(Channel::Settlement)
            .auth(Arc::new(taker.keypair.insecure_clone()), d.exchange, false),
    )
    .unwrap();
    tokio::time::timeout(TIMEOUT, async {
        while !matches!(events.recv().await, Some(WsEvent::Connected { .. }) | None) {}
    })
    .await
    .unwrap();

    // Crossing signed orders over REST.
    let (status, resting) = rest
        .post(
            "/v1/orders",
            &order_body(
                &maker.keypair,
                d.exchange,
                OrderBuilder::limit(0)
                    .sell()
                    .price(500)
                    .size(40)
                    .client_id(1),
                1,
            ),
        )
        .await;
    assert_eq!(status, 200, "{resting}");
    let (status, taken) = rest
        .post(
            "/v1/orders",
            &order_body(
                &taker.keypair,
                d.exchange,
                OrderBuilder::limit(0)
                    .buy()
                    .price(500)
                    .size(40)
                    .client_id(2),
                1,
            ),
        )
        .await;
    assert_eq!(status, 200, "{taken}");
    assert!(
        taken["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "fill"),
        "{taken}"
    );

    // The fill, then its confirmed settlement, arrive over the WebSocket.
    let mut fill_seen = None;
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match events.recv().await {
                Some(WsEvent::Update(Update {
                    data: Data::Fill(fill),
                    ..
                })) => fill_seen = Some(fill),
                Some(WsEvent::Update(Update {
                    data: Data::Settlement(update),
                    ..
                })) if update.status == "confirmed" => {
                    let fill = fill_seen.as_ref().expect("the fill before its settlement");
                    assert_eq!((update.market, update.fill_id), (0, fill.fill_id));
                    assert_eq!(fill.size_lots, 40);
                    break;
                }
                Some(_) => {}
                None => panic!("the WebSocket client stopped"),
            }
        }
    })
    .await
    .unwrap();

    // The relayer settles it and the router learns it.
    let fills_path = format!("/v1/accounts/{}/fills", hex::encode(taker_key.to_bytes()));
    let fill = eventually("the fill to be confirmed", || async {
        let fills = rest.get(&fills_path).await;
        fills
            .as_array()
            .and_then(|f| f.first().cloned())
            .filter(|f| f["settlement_status"] == "confirmed")
    })
    .await;
    assert_eq!(fill["size_lots"], 40, "{fill}");
    assert_eq!(net.status().settled, 1);

    // It landed as a v0 transaction over the settlement loop's one lookup table, which holds
    // the market's fixed accounts and both traders' user accounts.
    let tables = net.bridge().lookup_tables();
    assert_eq!(tables.len(), 1, "{tables:?}");
    let settles = common::settle_transactions(&rpc, &d.market_address(0)).await;
    assert_eq!(settles, vec![Some(tables.clone())]);
    let table = rpc.get_account(&tables[0]).await.unwrap();
    let table =
        solana_address_lookup_table_interface::state::AddressLookupTable::deserialize(&table.data)
            .unwrap();
    for address in [
        d.exchange,
        d.market_address(0),
        d.user_address(&maker_key),
        d.user_address(&taker_key),
    ] {
        assert!(table.addresses.contains(&address), "{address}");
    }

    // On-chain balances equal the router's ledger for both wallets and both assets.
    for owner in [maker_key, taker_key] {
        let account = rpc.get_account(&d.user_address(&owner)).await.unwrap();
        let user = UserAccount::try_deserialize(&mut account.data.as_slice()).unwrap();
        for asset in [0u8, 1] {
            let on_chain = user.balances[usize::from(asset)].available;
            let (available, frozen) = rest.balance(&owner, asset).await.unwrap();
            assert_eq!(frozen, 0, "{owner} asset {asset}");
            assert_eq!(on_chain, available, "{owner} asset {asset}");
        }
    }
    // The trade moved something, and the deposit was counted once on both sides.
    let maker_base = rest.balance(&maker_key, 0).await.unwrap().0;
    assert_eq!(maker_base, DEPOSITED + extra - 40 * 1_000);

    net.shutdown().await.unwrap();
}

/// `kestrel devnet --bots`: the SDK-written market maker and taker trade on their own, and
/// their fills settle on-chain without a quarantine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_bots_trade_and_their_fills_settle() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(DevnetConfig {
        bots: true,
        ..DevnetConfig::ephemeral(dir.path())
    })
    .await
    .unwrap();
    let status = eventually("the bots' fills to settle", || async {
        let status = devnet.status();
        (status.fills >= 2 && status.settled >= 2).then_some(status)
    })
    .await;
    assert_eq!(status.quarantined, 0, "{status:?}");
    devnet.shutdown().await.unwrap();
}

/// A fill, a replace of the maker's order (new terms under a new nonce), a second fill: each
/// fill settles under the signed terms it matched, so both land on-chain. Lookup tables are
/// off here (`--lookup-tables=false`): the settle transactions are legacy and no table exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_before_and_after_a_replace_both_settle() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig {
        lookup_tables: false,
        ..DevnetConfig::ephemeral(dir.path())
    })
    .await
    .unwrap();
    let rpc = RpcClient::new(net.rpc_url());
    let d = net.deployment().clone();
    let [maker, taker] = net.wallets() else {
        panic!("two demo wallets")
    };
    let client = kestrel_sdk::rest::RestClient::new(net.http_url(), d.exchange);
    let rest = Rest {
        base: net.http_url(),
        http: reqwest::Client::new(),
    };
    for owner in [maker.keypair.pubkey(), taker.keypair.pubkey()] {
        eventually("the bootstrap deposits", || async {
            (rest.balance(&owner, 1).await == Some((DEPOSITED, 0))).then_some(())
        })
        .await;
    }
    let ask = |size, nonce| {
        OrderBuilder::limit(0)
            .sell()
            .price(500)
            .size(size)
            .client_id(7)
            .sign(d.exchange, &maker.keypair, nonce)
            .unwrap()
    };
    let bid = |size, nonce| {
        OrderBuilder::limit(0)
            .buy()
            .price(500)
            .size(size)
            .sign(d.exchange, &taker.keypair, nonce)
            .unwrap()
    };
    client.place(&ask(100, 10)).await.unwrap();
    let first = client.place(&bid(40, 10)).await.unwrap();
    assert!(
        first.events.iter().any(|e| e["type"] == "fill"),
        "{first:?}"
    );
    let replaced = client
        .replace(&maker.keypair, 10, &ask(30, 11))
        .await
        .unwrap();
    assert!(
        replaced
            .events
            .iter()
            .any(|e| e["type"] == "order_replaced"),
        "{replaced:?}"
    );
    let second = client.place(&bid(20, 11)).await.unwrap();
    assert!(
        second.events.iter().any(|e| e["type"] == "fill"),
        "{second:?}"
    );

    let fills_path = format!(
        "/v1/accounts/{}/fills",
        hex::encode(taker.keypair.pubkey().to_bytes())
    );
    let fills = eventually("both fills to be confirmed", || async {
        let fills = rest.get(&fills_path).await;
        let fills = fills.as_array()?.clone();
        (fills.len() == 2 && fills.iter().all(|f| f["settlement_status"] == "confirmed"))
            .then_some(fills)
    })
    .await;
    let mut maker_nonces: Vec<u64> = fills
        .iter()
        .map(|f| f["maker_nonce"].as_u64().unwrap())
        .collect();
    maker_nonces.sort_unstable();
    assert_eq!(maker_nonces, vec![10, 11]);
    let status = net.status();
    assert_eq!((status.settled, status.quarantined), (2, 0), "{status:?}");
    let account = rpc.get_account(&d.market_address(0)).await.unwrap();
    let market = kestrel::state::Market::try_deserialize(&mut account.data.as_slice()).unwrap();
    assert_eq!(market.last_fill_id, 2);
    let settles = common::settle_transactions(&rpc, &d.market_address(0)).await;
    assert!(
        !settles.is_empty() && settles.iter().all(Option::is_none),
        "{settles:?}"
    );
    assert!(net.bridge().lookup_tables().is_empty());
    for owner in [maker.keypair.pubkey(), taker.keypair.pubkey()] {
        let account = rpc.get_account(&d.user_address(&owner)).await.unwrap();
        let user = UserAccount::try_deserialize(&mut account.data.as_slice()).unwrap();
        let (available, frozen) = rest.balance(&owner, 0).await.unwrap();
        assert_eq!(user.balances[0].available, available + frozen, "{owner}");
    }
    net.shutdown().await.unwrap();
}

/// Settlement is woken by the router's fills: with the fallback interval set to an hour, a
/// fill still settles (within the test's timeout) as a v0 transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_wakes_settlement_before_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig {
        settle_interval: Duration::from_secs(3_600),
        ..DevnetConfig::ephemeral(dir.path())
    })
    .await
    .unwrap();
    let d = net.deployment().clone();
    let [maker, taker] = net.wallets() else {
        panic!("two demo wallets")
    };
    let client = kestrel_sdk::rest::RestClient::new(net.http_url(), d.exchange);
    let rest = Rest {
        base: net.http_url(),
        http: reqwest::Client::new(),
    };
    for owner in [maker.keypair.pubkey(), taker.keypair.pubkey()] {
        eventually("the bootstrap deposits", || async {
            (rest.balance(&owner, 1).await == Some((DEPOSITED, 0))).then_some(())
        })
        .await;
    }
    let order = |builder: OrderBuilder, wallet: &Keypair| {
        builder
            .price(500)
            .size(10)
            .sign(d.exchange, wallet, 1)
            .unwrap()
    };
    client
        .place(&order(OrderBuilder::limit(0).sell(), &maker.keypair))
        .await
        .unwrap();
    let taken = client
        .place(&order(OrderBuilder::limit(0).buy(), &taker.keypair))
        .await
        .unwrap();
    assert!(
        taken.events.iter().any(|e| e["type"] == "fill"),
        "{taken:?}"
    );
    eventually("the fill to settle", || async {
        (net.status().settled == 1).then_some(())
    })
    .await;
    let rpc = RpcClient::new(net.rpc_url());
    let settles = common::settle_transactions(&rpc, &d.market_address(0)).await;
    assert_eq!(settles, vec![Some(net.bridge().lookup_tables())]);
    net.shutdown().await.unwrap();
}
