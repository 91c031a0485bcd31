//! Production mode end to end: the embedded chain runs in this test process; the deployment is
//! made with the admin subcommands' code path; `kestrel router` and `kestrel relayer` run as
//! separate processes (the real binary) against a fresh PostgreSQL database and the chain's
//! JSON-RPC; orders arrive over REST.
//!
//! - A crossing pair settles on-chain and the router learns it through the internal endpoint.
//! - The other admin subcommands (pause, fees, operator) change the exchange as they say.
//! - kill -9 of the router between the fill and its settlement: restarted on the same journal
//!   and database, the relayer started afterwards settles the fill exactly once (also when a
//!   previous relayer left it reported as submitted); on-chain balances equal the ledger and
//!   reconciliation is clean.
//! - `kestrel router --cosigner-keypair` co-signs a withdrawal that lands and is Confirmed; its
//!   reconciliation runs, and its alerts are on its metrics port.
//! - A restarted router resumes its chain listener from the cursor saved in the store: it does
//!   not submit the history before it again, and credits a deposit made while it was down once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

use anchor_lang::AccountDeserialize;
use kestrel::state::{Exchange, Market, UserAccount};
use kestrel_node::admin::{self, AdminCommand};
use kestrel_node::keys;
use kestrel_node::reconcile::StoreLedger;
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
    /// The maker's token accounts (base, quote), each holding as much as was deposited.
    maker_accounts: [Pubkey; 2],
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
        let mut maker_accounts = Vec::new();
        for user in [&maker, &taker] {
            let mut ixs = vec![deployment.create_user(&user.pubkey())];
            for asset in [0u8, 1] {
                let mint = deployment.mint(asset).unwrap();
                let account =
                    chain::funded_token_account(&rpc, &mint, user, &admin_key, DEPOSIT * 2)
                        .await
                        .unwrap();
                if user.pubkey() == maker.pubkey() {
                    maker_accounts.push(account);
                }
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
            maker_accounts: maker_accounts.try_into().unwrap(),
            dir,
        }
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("journal")
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
    let (router, [api, internal, _]) = start_router_with(cluster, database_url, &[]).await;
    (router, api, internal)
}

/// Starts `kestrel router` on free ports with `extra` arguments; returns it with its API,
/// internal and metrics URLs.
async fn start_router_with(
    cluster: &Cluster,
    database_url: &str,
    extra: &[&str],
) -> (Process, [String; 3]) {
    let rpc_url = cluster.chain.rpc_url();
    let journal = cluster.journal();
    let domain = DOMAIN_ID.to_string();
    let journal = journal.display().to_string();
    let mut args = vec![
        "router",
        "--rpc-url",
        &rpc_url,
        "--domain-id",
        &domain,
        "--database-url",
        database_url,
        "--journal-dir",
        &journal,
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--internal-listen",
        "127.0.0.1:0",
        "--listen-interval-ms",
        "100",
    ];
    args.extend_from_slice(extra);
    let mut child = kestrel(&args).spawn().unwrap();
    let urls = banner(&mut child, &["api", "internal", "metrics"]).await;
    (Process { child }, <[String; 3]>::try_from(urls).unwrap())
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
    let ask = OrderBuilder::limit(0)
        .sell()
        .price(500)
        .size(40)
        .sign(cluster.deployment.exchange, &cluster.maker, 1)
        .unwrap();
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(500)
        .size(40)
        .sign(cluster.deployment.exchange, &cluster.taker, 1)
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
        assert_eq!(
            metric(&metrics, "kestrel_relayer_reconcile_mismatches").await,
            Some(0)
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

/// The router's withdrawal `id` of `owner`, once it is in `status`.
async fn wait_withdrawal(api: &str, owner: &Pubkey, id: u64, status: &str) -> Value {
    let url = format!("{api}/v1/accounts/{}/withdrawals", hex::encode(owner));
    eventually(&format!("withdrawal {id} {status}"), || async {
        let rows: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        rows.as_array()?
            .iter()
            .find(|w| w["id"] == id && w["status"] == status)
            .cloned()
    })
    .await
}

async fn token_balance(rpc: &RpcClient, account: &Pubkey) -> u64 {
    rpc.get_token_account_balance(account)
        .await
        .unwrap()
        .amount
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_with_the_cosigner_lands_a_cosigned_withdrawal() {
    with_database(|database_url| async move {
        let cluster = Cluster::start().await;
        let keypair = cluster.dir.path().join("operator.json");
        let keypair = keypair.display().to_string();
        let (router, [api, _, metrics]) = start_router_with(
            &cluster,
            &database_url,
            &["--cosigner-keypair", &keypair, "--reconcile-secs", "1"],
        )
        .await;
        let rest = RestClient::new(api.clone(), cluster.deployment.exchange);
        wait_for_deposits(&cluster, &rest).await;
        // Reconciliation runs in the router and finds the books clean.
        eventually("a clean reconciliation run", || async {
            metric(&metrics, "kestrel_api_reconcile_runs_total")
                .await
                .filter(|runs| *runs > 0)
        })
        .await;
        assert_eq!(
            metric(&metrics, "kestrel_api_withdrawals_halted").await,
            Some(0)
        );

        let (maker, d) = (&cluster.maker, &cluster.deployment);
        let amount = 2_000_000;
        let destination = cluster.maker_accounts[1];
        let request = kestrel::encoding::WithdrawRequest {
            exchange: d.exchange,
            owner: maker.pubkey(),
            mint: d.mint(1).unwrap(),
            amount,
            nonce: 1,
            expiry: 0,
        }
        .encode();
        let answer: Value = reqwest::Client::new()
            .post(format!("{api}/v1/withdrawals"))
            .json(&serde_json::json!({
                "message": hex::encode(request),
                "signature": hex::encode(maker.sign_message(&request)),
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = answer["withdrawal_id"].as_u64().expect("a withdrawal id");
        wait_withdrawal(&api, &maker.pubkey(), id, "pending").await;
        let proof =
            kestrel_sdk::withdrawal::transaction_request(&d.exchange, maker, id, &destination);
        let response = reqwest::Client::new()
            .post(format!("{api}/v1/withdrawals/{id}/transaction"))
            .json(&proof)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let cosigned: Value = response.json().await.unwrap();
        let operator = keys::load(&cluster.dir.path().join("operator.json")).unwrap();
        let signed = kestrel_sdk::withdrawal::sign_cosigned(
            cosigned["transaction"].as_str().unwrap(),
            d,
            maker,
            &kestrel_sdk::withdrawal::ExpectedWithdrawal {
                asset: 1,
                amount,
                destination,
                operator: operator.pubkey(),
            },
        )
        .unwrap();
        let before = token_balance(&cluster.rpc, &destination).await;
        let landed = cluster
            .rpc
            .send_and_confirm_transaction(&signed)
            .await
            .unwrap();
        assert_eq!(
            token_balance(&cluster.rpc, &destination).await,
            before + amount
        );
        let confirmed = wait_withdrawal(&api, &maker.pubkey(), id, "confirmed").await;
        assert_eq!(confirmed["tx"], hex::encode(landed), "{confirmed}");
        assert_eq!(
            balance(&rest, &maker.pubkey(), 1).await,
            Some((DEPOSIT - amount, 0))
        );
        assert_eq!(
            cluster.on_chain_balance(&maker.pubkey(), 1).await,
            DEPOSIT - amount
        );
        // The landed withdrawal was expected: no alert, nothing expired.
        for name in [
            "kestrel_api_withdrawal_alerts_total",
            "kestrel_api_withdrawals_expired_total",
        ] {
            assert_eq!(metric(&metrics, name).await, Some(0), "{name}");
        }
        terminate(router).await;
        cluster.chain.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_router_resumes_its_listener_from_the_saved_cursor() {
    with_database(|database_url| async move {
        let cluster = Cluster::start().await;
        let (router, [api, _, metrics]) = start_router_with(&cluster, &database_url, &[]).await;
        let rest = RestClient::new(api, cluster.deployment.exchange);
        wait_for_deposits(&cluster, &rest).await;
        let history = eventually("the listener's events counted", || async {
            metric(&metrics, "kestrel_api_listener_chain_events_total")
                .await
                .filter(|events| *events >= 4)
        })
        .await;
        let newest = cluster
            .rpc
            .get_signatures_for_address(&kestrel::ID)
            .await
            .unwrap()
            .remove(0);
        let store = Store::connect(&database_url).await.unwrap();
        let name = cluster.deployment.exchange.to_string();
        let saved = eventually("the cursor at the newest transaction", || async {
            store
                .listener_cursor(&name)
                .await
                .unwrap()
                .filter(|c| c.signature == newest.signature)
        })
        .await;
        assert_eq!(saved.slot, newest.slot);
        // Without a co-signer the router does not reconcile.
        assert_eq!(
            metric(&metrics, "kestrel_api_reconcile_runs_total").await,
            None
        );
        terminate(router).await;

        // While the router is down, the maker deposits again.
        let extra = 3_000_000;
        let (maker, d) = (&cluster.maker, &cluster.deployment);
        let deposit = d
            .deposit(&maker.pubkey(), 0, &cluster.maker_accounts[0], extra)
            .unwrap();
        let landed = chain::send(&cluster.rpc, &[deposit], maker, &[])
            .await
            .unwrap();

        let (router, [api, _, metrics]) = start_router_with(&cluster, &database_url, &[]).await;
        let rest = RestClient::new(api, cluster.deployment.exchange);
        eventually("the deposit made while down to be credited", || async {
            (balance(&rest, &maker.pubkey(), 0).await == Some((DEPOSIT + extra, 0))).then_some(())
        })
        .await;
        // Only the new deposit went to the sequencer: the history before the cursor was not
        // read again (it had produced `history` events).
        assert_eq!(
            metric(&metrics, "kestrel_api_listener_chain_events_total").await,
            Some(1),
            "the first run submitted {history}"
        );
        let saved = eventually("the cursor at the new deposit", || async {
            store
                .listener_cursor(&name)
                .await
                .unwrap()
                .filter(|c| c.signature == landed.to_string())
        })
        .await;
        assert!(saved.slot > newest.slot);
        // Credited exactly once: the ledger and the chain's deposit counters agree.
        let run = Reconciler::new()
            .run(&cluster.rpc, d, &StoreLedger(store.clone()))
            .await
            .unwrap();
        assert!(run.is_clean(), "{:?}", run.mismatches);
        assert_eq!(
            cluster.on_chain_balance(&maker.pubkey(), 0).await,
            DEPOSIT + extra
        );
        store.close().await;
        terminate(router).await;
        cluster.chain.shutdown().await.unwrap();
    })
    .await;
}
