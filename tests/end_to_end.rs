//! The path a user takes through Kestrel, end to end across every crate, in one process: the
//! devnet comes up (embedded chain, deployment, router on SQLite, relayer loops); a wallet
//! deposits through `RpcClient` and is credited once; two SDK clients (REST for orders, the
//! WebSocket client for their private feeds) place crossing signed orders; both see the fill
//! and its confirmed settlement over the WebSocket; the fill settled on-chain as a v0
//! transaction over the relayer's lookup table; on-chain balances equal the ledger; the taker
//! withdraws what it bought (request, the operator's co-signed transaction checked and signed by
//! the SDK, sent through the RPC) and the tokens are back in its wallet; reconciliation of the
//! chain against the store's ledger is clean.
//!
//! Then the same path with the router killed (`kill -9`) between the fill and its settlement,
//! which needs the router in a process of its own: the embedded chain stays in this process,
//! `kestrel router` and `kestrel relayer` run as child processes of the real binary on a fresh
//! PostgreSQL database. After the restart the fill settles exactly once, the balances agree,
//! the maker withdraws its proceeds through the restarted router's co-signature, and
//! reconciliation is clean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;
mod support;

use kestrel_e2e::{token_balance, user_account};
use kestrel_node::devnet::{DECIMALS, DEPOSITED};
use kestrel_node::reconcile::StoreLedger;
use kestrel_node::{Devnet, DevnetConfig};
use kestrel_sdk::rest::RestClient;
use kestrel_sdk::withdrawal::{self, ExpectedWithdrawal};
use kestrel_sdk::ws::{Channel, Data, Update, WsClient, WsConfig, WsEvent};
use kestrel_sdk::OrderBuilder;
use serde_json::{json, Value};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::signature::{Keypair, Signer};
use std::sync::Arc;
use std::time::Duration;
use support::{
    assert_books_reconcile, assert_settled_once, balance, cross, eventually, fill_status,
    maker_withdraws, start_relayer, start_router, start_router_with, wait_for_deposits, DEPOSIT,
    TIMEOUT, TOKEN,
};
use tokio::sync::mpsc::Receiver;

/// Atoms of base per lot in the devnet's market.
const BASE_PER_LOT: u64 = 1_000;

/// A trader's WebSocket feed of its own fills and their settlement, connected.
async fn private_feed(net: &Devnet, wallet: &Keypair) -> (WsClient, Receiver<WsEvent>) {
    let (client, mut events) = WsClient::connect(
        WsConfig::new(net.ws_url())
            .subscribe(Channel::Fills)
            .subscribe(Channel::Settlement)
            .auth(
                Arc::new(wallet.insecure_clone()),
                net.deployment().exchange,
                false,
            ),
    )
    .unwrap();
    tokio::time::timeout(TIMEOUT, async {
        while !matches!(events.recv().await, Some(WsEvent::Connected { .. }) | None) {}
    })
    .await
    .unwrap();
    (client, events)
}

/// Waits on a private feed for a fill of `size_lots` and then its confirmed settlement;
/// returns the fill id.
async fn fill_then_settlement(events: &mut Receiver<WsEvent>, size_lots: u64) -> u64 {
    let mut fill_id = None;
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match events.recv().await {
                Some(WsEvent::Update(Update {
                    data: Data::Fill(fill),
                    ..
                })) => {
                    assert_eq!(fill.size_lots, size_lots);
                    fill_id = Some(fill.fill_id);
                }
                Some(WsEvent::Update(Update {
                    data: Data::Settlement(update),
                    ..
                })) if update.status == "confirmed" => {
                    let fill = fill_id.expect("the fill before its settlement");
                    assert_eq!((update.market, update.fill_id), (0, fill));
                    return fill;
                }
                Some(_) => {}
                None => panic!("the WebSocket client stopped"),
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_deposits_trades_settles_withdraws_and_the_books_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    // The test runs reconciliation itself, after the withdrawal.
    let net = Devnet::start(DevnetConfig {
        reconcile_interval: Duration::from_secs(3_600),
        ..DevnetConfig::ephemeral(dir.path())
    })
    .await
    .unwrap();
    let rpc = RpcClient::new(net.rpc_url());
    let d = net.deployment().clone();
    let [maker, taker] = net.wallets() else {
        panic!("two demo wallets")
    };
    let (maker_key, taker_key) = (maker.keypair.pubkey(), taker.keypair.pubkey());
    // The SDK's REST client learns the exchange from the API.
    let rest = RestClient::connect(net.http_url()).await.unwrap();
    assert_eq!(rest.exchange(), d.exchange);

    // The market spec carries the mints' decimals, read from the chain.
    let markets = rest.markets().await.unwrap();
    let market = &markets["markets"][0];
    assert_eq!(market["base_decimals"], json!(DECIMALS), "{markets}");
    assert_eq!(market["quote_decimals"], json!(DECIMALS), "{markets}");

    // The devnet's bootstrap deposits reach the router through the listener.
    for owner in [maker_key, taker_key] {
        for asset in [0, 1] {
            eventually("the bootstrap deposits", || async {
                (balance(&rest, &owner, asset).await == Some((DEPOSITED, 0))).then_some(())
            })
            .await;
        }
    }

    // 1. A deposit through RpcClient is credited once, under its transaction signature.
    let extra = 7_000_000;
    let deposit = d
        .deposit(&maker_key, 0, &maker.token_accounts[0], extra)
        .unwrap();
    let signature = kestrel_sdk::chain::send(&rpc, &[deposit], &maker.keypair, &[])
        .await
        .unwrap();
    eventually("the new deposit", || async {
        (balance(&rest, &maker_key, 0).await == Some((DEPOSITED + extra, 0))).then_some(())
    })
    .await;
    let credited = rest.deposits(&signature).await.unwrap();
    let credited = credited["deposits"].as_array().unwrap();
    assert_eq!(credited.len(), 1, "{credited:?}");
    assert_eq!(credited[0]["amount"], extra, "{credited:?}");

    // 2. Two SDK clients follow their fills and settlements, and place crossing orders.
    let (_maker_feed, mut maker_events) = private_feed(&net, &maker.keypair).await;
    let (_taker_feed, mut taker_events) = private_feed(&net, &taker.keypair).await;
    let size = 40;
    let resting = OrderBuilder::limit(0)
        .sell()
        .price(500)
        .size(size)
        .client_id(1)
        .sign(d.exchange, &maker.keypair, 1)
        .unwrap();
    let ack = rest.place(&resting).await.unwrap();
    assert!(ack.order_id.is_some(), "{ack:?}");
    let taking = OrderBuilder::limit(0)
        .buy()
        .price(500)
        .size(size)
        .client_id(2)
        .sign(d.exchange, &taker.keypair, 1)
        .unwrap();
    let ack = rest.place(&taking).await.unwrap();
    assert!(
        ack.events.iter().any(|e| e["type"] == "fill"),
        "{:?}",
        ack.events
    );

    // 3. Both see the fill, then its confirmed settlement, over the WebSocket.
    let fill_id = fill_then_settlement(&mut taker_events, size).await;
    assert_eq!(fill_then_settlement(&mut maker_events, size).await, fill_id);
    let fill = eventually("the fill confirmed in the store", || async {
        let fills = rest.fills(&taker_key).await.unwrap();
        fills
            .as_array()
            .and_then(|f| f.first().cloned())
            .filter(|f| f["settlement_status"] == "confirmed")
    })
    .await;
    assert_eq!(
        (fill["fill_id"].as_u64(), fill["size_lots"].as_u64()),
        (Some(fill_id), Some(size))
    );
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

    // 4. On-chain balances equal the router's ledger for both wallets and both assets, and the
    //    trade moved the base: the deposit was counted once on both sides.
    let assert_books_agree = || async {
        for owner in [maker_key, taker_key] {
            let user = user_account(&rpc, &d, &owner).await;
            for asset in [0u8, 1] {
                let (available, frozen) = balance(&rest, &owner, asset).await.unwrap();
                assert_eq!(frozen, 0, "{owner} asset {asset}");
                assert_eq!(
                    user.balances[usize::from(asset)].available,
                    available,
                    "{owner} asset {asset}"
                );
            }
        }
    };
    assert_books_agree().await;
    let bought = size * BASE_PER_LOT;
    assert_eq!(
        balance(&rest, &maker_key, 0).await,
        Some((DEPOSITED + extra - bought, 0))
    );
    assert_eq!(
        balance(&rest, &taker_key, 0).await,
        Some((DEPOSITED + bought, 0))
    );

    // 5. The taker withdraws what it bought: the request holds it; the operator's co-signed
    //    transaction is checked byte for byte and signed by the SDK, then sent by the wallet.
    let destination = taker.token_accounts[0];
    let wallet_before = token_balance(&rpc, &destination).await;
    let requested = rest
        .request_withdrawal(&taker.keypair, d.mint(0).unwrap(), bought, 2)
        .await
        .unwrap();
    let id = requested.withdrawal_id.unwrap();
    eventually("the withdrawal's hold", || async {
        (balance(&rest, &taker_key, 0).await == Some((DEPOSITED, bought))).then_some(())
    })
    .await;
    let withdrawal_status = |status: &'static str| {
        let rest = &rest;
        async move {
            eventually(&format!("withdrawal {id} {status}"), || async {
                let rows = rest.withdrawals(&taker_key).await.unwrap();
                rows.as_array()?
                    .iter()
                    .find(|w| w["id"] == id && w["status"] == status)
                    .cloned()
            })
            .await
        }
    };
    withdrawal_status("pending").await;
    let cosigned = rest
        .withdrawal_transaction(&taker.keypair, id, &destination)
        .await
        .unwrap();
    assert_eq!(cosigned.withdrawal_id, id);
    let signed = withdrawal::sign_cosigned(
        &cosigned.transaction,
        &d,
        &taker.keypair,
        &ExpectedWithdrawal {
            asset: 0,
            amount: bought,
            destination,
            operator: net.operator().pubkey(),
        },
    )
    .unwrap();
    let landed = rpc.send_and_confirm_transaction(&signed).await.unwrap();

    // 6. The tokens are back in the wallet; the router confirms the withdrawal once.
    assert_eq!(
        token_balance(&rpc, &destination).await,
        wallet_before + bought
    );
    let confirmed: Value = withdrawal_status("confirmed").await;
    assert_eq!(confirmed["tx"], json!(hex::encode(landed)), "{confirmed}");
    eventually("the hold paid out", || async {
        (balance(&rest, &taker_key, 0).await == Some((DEPOSITED, 0))).then_some(())
    })
    .await;
    assert_books_agree().await;

    // 7. Reconciliation of the chain against the store's ledger is clean: vault balances equal
    //    the users' balances plus fees and pending withdrawals, per user and asset the chain
    //    equals the ledger, and the deposit counters equal the credited deposits.
    let report = net
        .reconciler()
        .run(&rpc, &d, &StoreLedger(net.api().store().clone()))
        .await
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.mismatches);
    assert!(!net.reconciler().withdrawals_halted());

    net.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_between_fill_and_settlement_settles_once_after_restart() {
    support::with_database(|database_url| async move {
        let cluster = support::Cluster::start().await;
        let (mut router, api, _) = start_router(&cluster, &database_url).await;
        let rest = RestClient::new(api, cluster.deployment.exchange);
        wait_for_deposits(&cluster, &rest).await;
        cross(&cluster, &rest).await;

        // kill -9 after the fill was acknowledged, before any relayer saw it.
        router.child.start_kill().unwrap();
        let status = router.child.wait().await.unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert_eq!(cluster.market().await.last_fill_id, 0);

        // Restarted on the same journal and database (now co-signing withdrawals): the fill is
        // there, still pending.
        let operator = cluster.dir.path().join("operator.json");
        let operator = operator.display().to_string();
        let (router, [api, internal, _]) =
            start_router_with(&cluster, &database_url, &["--cosigner-keypair", &operator]).await;
        let rest = RestClient::new(api, cluster.deployment.exchange);
        let fill = eventually("the fill after the restart", || async {
            fill_status(&rest, &cluster.taker.pubkey()).await
        })
        .await;
        assert_eq!(fill["settlement_status"], "pending", "{fill}");
        // A relayer that died mid-flight would have left it submitted: the next one resumes it.
        let status = reqwest::Client::new()
            .post(format!(
                "{internal}{}",
                kestrel_node::internal::SETTLEMENT_PATH
            ))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"market": 0, "fill_id": 1, "status": "submitted"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 204);
        eventually("the fill to be listed as submitted", || async {
            fill_status(&rest, &cluster.taker.pubkey())
                .await
                .filter(|f| f["settlement_status"] == "submitted")
        })
        .await;

        let (relayer, _) = start_relayer(&cluster, &database_url, &internal).await;
        assert_settled_once(&cluster, &rest, &database_url).await;

        // The maker takes its proceeds out, and the books still reconcile.
        let proceeds = balance(&rest, &cluster.maker.pubkey(), 1).await.unwrap().0 - DEPOSIT;
        assert!(proceeds > 0);
        maker_withdraws(&cluster, &rest, 1, proceeds, 2).await;
        assert_eq!(
            cluster.on_chain_balance(&cluster.maker.pubkey(), 1).await,
            DEPOSIT
        );
        assert_books_reconcile(&cluster, &rest, &database_url).await;
        drop((relayer, router));
        cluster.chain.shutdown().await.unwrap();
    })
    .await;
}
