//! Production mode end to end: the embedded chain runs in this test process; the deployment is
//! made with the admin subcommands' code path; `kestrel router` and `kestrel relayer` run as
//! separate processes (the real binary) against a fresh PostgreSQL database and the chain's
//! JSON-RPC; orders arrive over REST.
//!
//! - A crossing pair settles on-chain and the router learns it through the internal endpoint,
//!   as a v0 transaction over the relayer's lookup table; a restarted relayer reopens that
//!   table from its file and settles the next fill over it, creating no second table.
//! - The other admin subcommands (pause, fees, operator) change the exchange as they say.
//! - kill -9 of the router between the fill and its settlement: restarted on the same journal
//!   and database, the relayer started afterwards settles the fill exactly once (also when a
//!   previous relayer left it reported as submitted); on-chain balances equal the ledger and
//!   reconciliation is clean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use anchor_lang::AccountDeserialize;
use kestrel::state::{Exchange, Market, UserAccount};
use kestrel_node::admin::{self, AdminCommand};
use kestrel_node::keys;
use kestrel_node::relayer_node::StoreLedger;
use kestrel_relayer::embedded::{self, EmbeddedChain};
use kestrel_relayer::reconcile::Reconciler;
use kestrel_router::store::Store;
use kestrel_sdk::rest::RestClient;
use kestrel_sdk::{chain, Deployment, OrderBuilder};
use serde_json::Value;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::account::Account;
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use sqlx::{AnyConnection, Connection, Executor};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TIMEOUT: Duration = Duration::from_secs(60);
const DOMAIN_ID: u64 = 7;
const TOKEN: &str = "test-internal-token-0123456789";
const DEPOSIT: u64 = 50_000_000;

/// Polls `check` until it yields a value, failing after [`TIMEOUT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn postgres_server() -> String {
    std::env::var("KESTREL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

async fn postgres_admin() -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&format!("{}/postgres", postgres_server()))
        .await
        .unwrap()
}

/// Runs `test` against a fresh PostgreSQL database, dropped afterwards whatever the outcome.
async fn with_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("kestrel_node_{}_{nanos}", std::process::id());
    postgres_admin()
        .await
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let outcome = tokio::spawn(test(format!("{}/{name}", postgres_server()))).await;
    postgres_admin()
        .await
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn funded() -> Account {
    Account {
        lamports: LAMPORTS_PER_SOL * 100,
        data: Vec::new(),
        owner: solana_system_interface::program::ID,
        executable: false,
        rent_epoch: 0,
    }
}

/// The chain with a deployment made by the admin subcommands and two wallets that deposited.
struct Cluster {
    chain: EmbeddedChain,
    rpc: RpcClient,
    deployment: Deployment,
    maker: Keypair,
    taker: Keypair,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let admin_key = Keypair::new();
        let operator = Keypair::new();
        let (maker, taker) = (Keypair::new(), Keypair::new());
        let chain = EmbeddedChain::start(embedded::Config {
            slot_interval: Duration::from_millis(100),
            accounts: [&admin_key, &operator, &maker, &taker]
                .iter()
                .map(|k| (k.pubkey(), funded()))
                .collect(),
            ..embedded::Config::default()
        })
        .await
        .unwrap();
        let rpc = RpcClient::new(chain.rpc_url());
        let mints = [Keypair::new(), Keypair::new()];
        for mint in &mints {
            chain::create_mint(&rpc, &admin_key, mint, 6).await.unwrap();
        }
        let commands = [
            AdminCommand::InitExchange {
                operator: Some(operator.pubkey()),
                fee_collector: None,
                withdrawal_delay_slots: 25,
                fee_change_delay_slots: 100,
            },
            AdminCommand::AddAsset {
                mint: mints[0].pubkey(),
            },
            AdminCommand::AddAsset {
                mint: mints[1].pubkey(),
            },
            AdminCommand::CreateMarket {
                index: 0,
                base_asset: 0,
                quote_asset: 1,
                base_lot_size: 1_000,
                tick_size: 10,
                min_size_lots: 1,
                maker_fee_bps: 2,
                taker_fee_bps: 5,
            },
        ];
        for command in &commands {
            let outcome = admin::run(&rpc, &admin_key, DOMAIN_ID, command)
                .await
                .unwrap();
            assert!(
                outcome.accounts.iter().any(|(name, _)| *name == "exchange"),
                "{outcome}"
            );
        }
        let deployment = Deployment::new(DOMAIN_ID, mints.iter().map(|m| m.pubkey()).collect());
        for user in [&maker, &taker] {
            let mut ixs = vec![deployment.create_user(&user.pubkey())];
            for asset in [0u8, 1] {
                let mint = deployment.mint(asset).unwrap();
                let account =
                    chain::funded_token_account(&rpc, &mint, user, &admin_key, DEPOSIT * 2)
                        .await
                        .unwrap();
                ixs.push(
                    deployment
                        .deposit(&user.pubkey(), asset, &account, DEPOSIT)
                        .unwrap(),
                );
            }
            chain::send(&rpc, &ixs, user, &[]).await.unwrap();
        }
        keys::save(&dir.path().join("operator.json"), &operator).unwrap();
        keys::save(&dir.path().join("admin.json"), &admin_key).unwrap();
        Cluster {
            chain,
            rpc,
            deployment,
            maker,
            taker,
            dir,
        }
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    /// Where `kestrel relayer` keeps its lookup table addresses.
    fn tables_file(&self) -> PathBuf {
        self.dir.path().join("lookup-tables.json")
    }

    /// Every address lookup table on the chain.
    async fn lookup_tables(&self) -> Vec<Pubkey> {
        self.rpc
            .get_program_accounts(&solana_address_lookup_table_interface::program::ID)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    async fn market(&self) -> Market {
        let account = self
            .rpc
            .get_account(&self.deployment.market_address(0))
            .await
            .unwrap();
        Market::try_deserialize(&mut account.data.as_slice()).unwrap()
    }

    async fn on_chain_balance(&self, owner: &Pubkey, asset: u8) -> u64 {
        let account = self
            .rpc
            .get_account(&self.deployment.user_address(owner))
            .await
            .unwrap();
        let user = UserAccount::try_deserialize(&mut account.data.as_slice()).unwrap();
        user.balances[usize::from(asset)].available
    }
}

/// A `kestrel` child process, killed (SIGKILL) when dropped.
struct Process {
    child: Child,
}

fn kestrel(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kestrel"));
    command
        .args(args)
        .env("KESTREL_INTERNAL_TOKEN", TOKEN)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Reads the child's banner until it has named every one of `names` (`<name> <url>` lines);
/// returns the URLs in that order and keeps draining its output.
async fn banner(child: &mut Child, names: &[&str]) -> Vec<String> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut found: Vec<Option<String>> = vec![None; names.len()];
    tokio::time::timeout(TIMEOUT, async {
        while found.iter().any(Option::is_none) {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the process exited");
            let mut words = line.split_whitespace();
            if let (Some(name), Some(url)) = (words.next(), words.next()) {
                if let Some(i) = names.iter().position(|n| *n == name) {
                    found[i] = Some(url.to_owned());
                }
            }
        }
    })
    .await
    .expect("the process to start");
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    found.into_iter().map(Option::unwrap).collect()
}

/// Starts `kestrel router` on free ports; returns it with its API and internal base URLs.
async fn start_router(cluster: &Cluster, database_url: &str) -> (Process, String, String) {
    let rpc_url = cluster.chain.rpc_url();
    let journal = cluster.journal();
    let mut child = kestrel(&[
        "router",
        "--rpc-url",
        &rpc_url,
        "--domain-id",
        &DOMAIN_ID.to_string(),
        "--database-url",
        database_url,
        "--journal-dir",
        &journal.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--internal-listen",
        "127.0.0.1:0",
        "--listen-interval-ms",
        "100",
    ])
    .spawn()
    .unwrap();
    let urls = banner(&mut child, &["api", "internal"]).await;
    let [api, internal] = <[String; 2]>::try_from(urls).unwrap();
    (Process { child }, api, internal)
}

/// Starts `kestrel relayer`; returns it with its metrics URL.
async fn start_relayer(
    cluster: &Cluster,
    database_url: &str,
    internal_url: &str,
) -> (Process, String) {
    let rpc_url = cluster.chain.rpc_url();
    let keypair = cluster.dir.path().join("operator.json");
    let mut child = kestrel(&[
        "relayer",
        "--rpc-url",
        &rpc_url,
        "--domain-id",
        &DOMAIN_ID.to_string(),
        "--database-url",
        database_url,
        "--keypair",
        &keypair.display().to_string(),
        "--router-internal-url",
        internal_url,
        "--settle-interval-ms",
        "100",
        "--reconcile-secs",
        "1",
        "--commitment",
        "confirmed",
        "--metrics-listen",
        "127.0.0.1:0",
        "--lookup-tables-file",
        &cluster.tables_file().display().to_string(),
    ])
    .spawn()
    .unwrap();
    let metrics = banner(&mut child, &["metrics"]).await.remove(0);
    (Process { child }, metrics)
}

/// The value of `name` in a Prometheus text exposition.
async fn metric(url: &str, name: &str) -> Option<u64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The router's balance (available, frozen) of `owner` in `asset`.
async fn balance(rest: &RestClient, owner: &Pubkey, asset: u8) -> Option<(u64, u64)> {
    let rows = rest.balances(owner).await.ok()?;
    rows.as_array()?
        .iter()
        .find(|row| row["asset"] == u64::from(asset))
        .map(|row| {
            (
                row["available"].as_u64().unwrap(),
                row["frozen"].as_u64().unwrap(),
            )
        })
}

async fn wait_for_deposits(cluster: &Cluster, rest: &RestClient) {
    for owner in [cluster.maker.pubkey(), cluster.taker.pubkey()] {
        for asset in [0, 1] {
            eventually("the deposits to be credited", || async {
                (balance(rest, &owner, asset).await == Some((DEPOSIT, 0))).then_some(())
            })
            .await;
        }
    }
}

/// Places a crossing pair; returns once the taker's fill is acknowledged (durable).
async fn cross(cluster: &Cluster, rest: &RestClient) {
    cross_with_nonce(cluster, rest, 1).await;
}

/// Places a crossing pair of orders with nonce `nonce`; returns once the fill is acknowledged.
async fn cross_with_nonce(cluster: &Cluster, rest: &RestClient, nonce: u64) {
    let ask = OrderBuilder::limit(0)
        .sell()
        .price(500)
        .size(40)
        .sign(cluster.deployment.exchange, &cluster.maker, nonce)
        .unwrap();
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(500)
        .size(40)
        .sign(cluster.deployment.exchange, &cluster.taker, nonce)
        .unwrap();
    rest.place(&ask).await.unwrap();
    let taken = rest.place(&bid).await.unwrap();
    assert!(
        taken.events.iter().any(|e| e["type"] == "fill"),
        "{taken:?}"
    );
}

async fn fill_status(rest: &RestClient, taker: &Pubkey) -> Option<Value> {
    let fills = rest.fills(taker).await.ok()?;
    fills.as_array()?.first().cloned()
}

/// The fill settled once on-chain, the router agrees, balances match, reconciliation is clean.
async fn assert_settled_once(cluster: &Cluster, rest: &RestClient, database_url: &str) {
    let fill = eventually("the fill to be confirmed", || async {
        fill_status(rest, &cluster.taker.pubkey())
            .await
            .filter(|f| f["settlement_status"] == "confirmed")
    })
    .await;
    assert_eq!(fill["fill_id"], 1, "{fill}");
    let market = cluster.market().await;
    assert_eq!(market.last_fill_id, 1);
    assert_eq!(market.volume_lots, 40, "the fill settled exactly once");
    for owner in [cluster.maker.pubkey(), cluster.taker.pubkey()] {
        for asset in [0u8, 1] {
            let (available, frozen) = balance(rest, &owner, asset).await.unwrap();
            assert_eq!(frozen, 0);
            assert_eq!(
                cluster.on_chain_balance(&owner, asset).await,
                available,
                "{owner} asset {asset}"
            );
        }
    }
    assert_eq!(
        balance(rest, &cluster.maker.pubkey(), 0).await,
        Some((DEPOSIT - 40 * 1_000, 0))
    );
    let store = Store::connect(database_url).await.unwrap();
    let reconciler = Reconciler::new();
    let run = reconciler
        .run(
            &cluster.rpc,
            &cluster.deployment,
            &StoreLedger(store.clone()),
        )
        .await
        .unwrap();
    assert!(run.is_clean(), "{:?}", run.mismatches);
    assert!(!reconciler.withdrawals_halted());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_and_relayer_processes_settle_a_crossing_pair() {
    with_database(|database_url| async move {
        let cluster = Cluster::start().await;
        let (router, api, internal) = start_router(&cluster, &database_url).await;
        let rest = RestClient::new(api, cluster.deployment.exchange);
        wait_for_deposits(&cluster, &rest).await;
        // The internal endpoint takes nothing without the operator's token.
        let url = format!("{internal}{}", kestrel_node::internal::SETTLEMENT_PATH);
        let update = serde_json::json!({"market": 0, "fill_id": 1, "status": "confirmed"});
        for token in [None, Some("wrong-token-0123456789")] {
            let mut request = reqwest::Client::new().post(&url).json(&update);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            assert_eq!(request.send().await.unwrap().status().as_u16(), 401);
        }
        let refused = reqwest::Client::new()
            .post(&url)
            .bearer_auth(TOKEN)
            .body("{\"market\": 0, \"fill_id\": -1}")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 400);

        let (relayer, metrics) = start_relayer(&cluster, &database_url, &internal).await;
        cross(&cluster, &rest).await;
        assert_settled_once(&cluster, &rest, &database_url).await;
        // The relayer's own reconciliation runs and finds nothing; its metrics say so.
        assert_eq!(
            metric(&metrics, "kestrel_relayer_fills_settled_total").await,
            Some(1)
        );
        eventually("a reconciliation run", || async {
            metric(&metrics, "kestrel_relayer_reconcile_runs_total")
                .await
                .filter(|runs| *runs > 0)
        })
        .await;
        assert_eq!(
            metric(&metrics, "kestrel_relayer_withdrawals_halted").await,
            Some(0)
        );
        // The fill went out as v0 over the one table the relayer created and kept in its file.
        let tables = kestrel_node::tables::read_file(&cluster.tables_file()).unwrap();
        assert_eq!(tables.len(), 1);
        assert_eq!(cluster.lookup_tables().await, tables);
        let market = cluster.deployment.market_address(0);
        assert_eq!(
            common::settle_transactions(&cluster.rpc, &market).await,
            vec![Some(tables.clone())]
        );

        // SIGTERM: it drains and exits cleanly; restarted, it reopens the same table.
        terminate(relayer).await;
        let (relayer, _) = start_relayer(&cluster, &database_url, &internal).await;
        cross_with_nonce(&cluster, &rest, 2).await;
        eventually("the second fill to be confirmed", || async {
            let fills = rest.fills(&cluster.taker.pubkey()).await.ok()?;
            let fills = fills.as_array()?.clone();
            (fills.len() == 2 && fills.iter().all(|f| f["settlement_status"] == "confirmed"))
                .then_some(())
        })
        .await;
        assert_eq!(cluster.market().await.last_fill_id, 2);
        assert_eq!(
            common::settle_transactions(&cluster.rpc, &market).await,
            vec![Some(tables.clone()), Some(tables.clone())]
        );
        assert_eq!(cluster.lookup_tables().await, tables, "no second table");
        assert_eq!(
            kestrel_node::tables::read_file(&cluster.tables_file()).unwrap(),
            tables
        );

        // SIGTERM: both drain and exit cleanly.
        for process in [relayer, router] {
            terminate(process).await;
        }
        cluster.chain.shutdown().await.unwrap();
    })
    .await;
}

/// Sends SIGTERM and expects a clean exit.
async fn terminate(mut process: Process) {
    let pid = process.child.id().unwrap().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let exit = tokio::time::timeout(TIMEOUT, process.child.wait())
        .await
        .expect("the process to stop after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// The remaining admin subcommands change what they say, and only that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_subcommands_pause_announce_fees_and_rotate_the_operator() {
    let cluster = Cluster::start().await;
    let admin_key = keys::load(&cluster.dir.path().join("admin.json")).unwrap();
    let exchange = || async {
        let account = cluster
            .rpc
            .get_account(&cluster.deployment.exchange)
            .await
            .unwrap();
        Exchange::try_deserialize(&mut account.data.as_slice()).unwrap()
    };
    let run = |command: AdminCommand| {
        let admin_key = &admin_key;
        let rpc = &cluster.rpc;
        async move { admin::run(rpc, admin_key, DOMAIN_ID, &command).await }
    };

    let paused = run(AdminCommand::SetPause {
        settlement: true,
        deposits: false,
    })
    .await
    .unwrap();
    assert_eq!(
        paused.accounts,
        vec![("exchange", cluster.deployment.exchange)]
    );
    let e = exchange().await;
    assert_eq!((e.settlement_paused, e.deposits_paused), (1, 0));

    let fees = run(AdminCommand::SetFees {
        market: 0,
        maker_fee_bps: 1,
        taker_fee_bps: 9,
    })
    .await
    .unwrap();
    assert!(fees
        .accounts
        .contains(&("market", cluster.deployment.market_address(0))));
    let market = cluster.market().await;
    assert_eq!(
        (market.pending_maker_fee_bps, market.pending_taker_fee_bps),
        (1, 9)
    );
    assert_eq!((market.maker_fee_bps, market.taker_fee_bps), (2, 5));

    let operator = Keypair::new().pubkey();
    run(AdminCommand::SetOperator { operator }).await.unwrap();
    assert_eq!(exchange().await.operator, operator);

    // A key that is not the admin's (the funded former operator) is refused.
    let stranger = keys::load(&cluster.dir.path().join("operator.json")).unwrap();
    assert!(admin::run(
        &cluster.rpc,
        &stranger,
        DOMAIN_ID,
        &AdminCommand::SetPause {
            settlement: false,
            deposits: false,
        },
    )
    .await
    .is_err());
    assert_eq!(exchange().await.settlement_paused, 1);
    cluster.chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_between_fill_and_settlement_settles_once_after_restart() {
    with_database(|database_url| async move {
        let cluster = Cluster::start().await;
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

        // Restarted on the same journal and database: the fill is there, still pending.
        let (router, api, internal) = start_router(&cluster, &database_url).await;
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
        drop((relayer, router));
        cluster.chain.shutdown().await.unwrap();
    })
    .await;
}
