//! The devnet composition started in-process (ports chosen by the OS, a tempdir data dir), beyond
//! the single path of `end_to_end.rs`: the demo bots trade and settle; fills before and after a
//! replace both settle (as legacy transactions with lookup tables off); a fill wakes settlement
//! long before its interval; the `kestrel devnet` command prints its status, not program logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;
mod devnet_support;

use anchor_lang::AccountDeserialize;
use devnet_support::{eventually, Rest};
use kestrel::state::UserAccount;
use kestrel_node::devnet::DEPOSITED;
use kestrel_node::{Devnet, DevnetConfig};
use kestrel_sdk::OrderBuilder;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::signature::{Keypair, Signer};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

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

/// `kestrel devnet --bots` as a user runs it: stdout carries the banner and the status lines,
/// not a program log line per instruction. (Natively run, the program's `msg!` prints straight
/// to the process's stdout; the instruction-name log Anchor adds to every instruction would
/// print once per settle transaction and bury the status.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_command_prints_its_status_not_the_programs_logs() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kestrel-under-test"))
        .args(["devnet", "--data-dir", &data_dir, "--http", "127.0.0.1:0"])
        .args(["--rpc-port", "0", "--bots", "--status-secs", "1"])
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let settled = |line: &str| {
        line.split(" | ")
            .find_map(|part| part.strip_prefix("settled "))
            .and_then(|n| n.parse::<u64>().ok())
    };
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = settled(&line).is_some_and(|n| n >= 2);
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("the devnet exited:\n{}", seen.join("\n"));
    })
    .await
    .unwrap_or_else(|_| panic!("no settled fills within 90 s:\n{}", seen.join("\n")));
    assert_eq!(
        seen.first().map(String::as_str),
        Some("kestrel devnet is running")
    );
    let logs: Vec<&String> = seen.iter().filter(|l| l.contains("Instruction:")).collect();
    assert!(logs.is_empty(), "program logs on stdout: {logs:?}");
    child.kill().await.unwrap();
}
