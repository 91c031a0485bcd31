//! What the production-mode tests share: a PostgreSQL database per test, the embedded chain
//! with a deployment made by the admin subcommands, and `kestrel router` / `kestrel relayer`
//! started as child processes of the real binary.
#![allow(dead_code)]

use anchor_lang::AccountDeserialize;
use kestrel::state::Market;
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

pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const DOMAIN_ID: u64 = 7;
pub const TOKEN: &str = "test-internal-token-0123456789";
pub const DEPOSIT: u64 = 50_000_000;

/// Polls `check` until it yields a value, failing after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    kestrel_e2e::eventually(TIMEOUT, Duration::from_millis(50), what, check).await
}

pub fn postgres_server() -> String {
    std::env::var("KESTREL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

pub async fn postgres_admin() -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&format!("{}/postgres", postgres_server()))
        .await
        .unwrap()
}

/// Runs `test` against a fresh PostgreSQL database, dropped afterwards whatever the outcome.
pub async fn with_database<F, Fut>(test: F)
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

pub fn funded() -> Account {
    Account {
        lamports: LAMPORTS_PER_SOL * 100,
        data: Vec::new(),
        owner: solana_system_interface::program::ID,
        executable: false,
        rent_epoch: 0,
    }
}

/// The chain with a deployment made by the admin subcommands and two wallets that deposited.
pub struct Cluster {
    pub chain: EmbeddedChain,
    pub rpc: RpcClient,
    pub deployment: Deployment,
    pub maker: Keypair,
    pub taker: Keypair,
    /// The maker's token accounts (base, quote), each holding as much as was deposited.
    pub maker_accounts: [Pubkey; 2],
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
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

    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    /// Where `kestrel relayer` keeps its lookup table addresses.
    pub fn tables_file(&self) -> PathBuf {
        self.dir.path().join("lookup-tables.json")
    }

    /// Every address lookup table on the chain.
    pub async fn lookup_tables(&self) -> Vec<Pubkey> {
        self.rpc
            .get_program_accounts(&solana_address_lookup_table_interface::program::ID)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    pub async fn market(&self) -> Market {
        let account = self
            .rpc
            .get_account(&self.deployment.market_address(0))
            .await
            .unwrap();
        Market::try_deserialize(&mut account.data.as_slice()).unwrap()
    }

    pub async fn on_chain_balance(&self, owner: &Pubkey, asset: u8) -> u64 {
        let user = kestrel_e2e::user_account(&self.rpc, &self.deployment, owner).await;
        user.balances[usize::from(asset)].available
    }
}

/// A `kestrel` child process, killed (SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
}

pub fn kestrel(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kestrel-under-test"));
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
pub async fn banner(child: &mut Child, names: &[&str]) -> Vec<String> {
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
pub async fn start_router(cluster: &Cluster, database_url: &str) -> (Process, String, String) {
    let (router, [api, internal, _]) = start_router_with(cluster, database_url, &[]).await;
    (router, api, internal)
}

/// Starts `kestrel router` on free ports with `extra` arguments; returns it with its API,
/// internal and metrics URLs.
pub async fn start_router_with(
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
pub async fn start_relayer(
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
pub async fn metric(url: &str, name: &str) -> Option<u64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The router's balance (available, frozen) of `owner` in `asset`.
pub async fn balance(rest: &RestClient, owner: &Pubkey, asset: u8) -> Option<(u64, u64)> {
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

pub async fn wait_for_deposits(cluster: &Cluster, rest: &RestClient) {
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
pub async fn cross(cluster: &Cluster, rest: &RestClient) {
    cross_with_nonce(cluster, rest, 1).await;
}

/// Places a crossing pair of orders with nonce `nonce`; returns once the fill is acknowledged.
pub async fn cross_with_nonce(cluster: &Cluster, rest: &RestClient, nonce: u64) {
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

pub async fn fill_status(rest: &RestClient, taker: &Pubkey) -> Option<Value> {
    let fills = rest.fills(taker).await.ok()?;
    fills.as_array()?.first().cloned()
}

/// The fill settled once on-chain, the router agrees, balances match, reconciliation is clean.
pub async fn assert_settled_once(cluster: &Cluster, rest: &RestClient, database_url: &str) {
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
    assert_eq!(
        balance(rest, &cluster.maker.pubkey(), 0).await,
        Some((DEPOSIT - 40 * 1_000, 0))
    );
    assert_books_reconcile(cluster, rest, database_url).await;
}

/// Both wallets' on-chain balances equal the router's ledger (nothing frozen), and a
/// reconciliation of the chain against the store's ledger is clean.
pub async fn assert_books_reconcile(cluster: &Cluster, rest: &RestClient, database_url: &str) {
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

/// The router's withdrawal `id` of `owner`, once it is in `status`.
pub async fn wait_withdrawal(rest: &RestClient, owner: &Pubkey, id: u64, status: &str) -> Value {
    eventually(&format!("withdrawal {id} {status}"), || async {
        let rows = rest.withdrawals(owner).await.ok()?;
        rows.as_array()?
            .iter()
            .find(|w| w["id"] == id && w["status"] == status)
            .cloned()
    })
    .await
}

/// The maker withdraws `amount` of `asset` to its own token account through the SDK, with a
/// router started with `--cosigner-keypair` (the cluster's operator): the signed request holds
/// the amount; the operator's co-signed transaction is checked and signed by the SDK and sent;
/// the tokens arrive and the router confirms the withdrawal with the landed transaction.
/// Returns the withdrawal's id.
pub async fn maker_withdraws(
    cluster: &Cluster,
    rest: &RestClient,
    asset: u8,
    amount: u64,
    nonce: u64,
) -> u64 {
    let (maker, d) = (&cluster.maker, &cluster.deployment);
    let destination = cluster.maker_accounts[usize::from(asset)];
    let (available, frozen) = balance(rest, &maker.pubkey(), asset).await.unwrap();
    let ack = rest
        .request_withdrawal(maker, d.mint(asset).unwrap(), amount, nonce)
        .await
        .unwrap();
    let id = ack.withdrawal_id.expect("a withdrawal id");
    eventually("the withdrawal's hold", || async {
        let held = Some((available - amount, frozen + amount));
        (balance(rest, &maker.pubkey(), asset).await == held).then_some(())
    })
    .await;
    wait_withdrawal(rest, &maker.pubkey(), id, "pending").await;
    let cosigned = rest
        .withdrawal_transaction(maker, id, &destination)
        .await
        .unwrap();
    let operator = keys::load(&cluster.dir.path().join("operator.json")).unwrap();
    let signed = kestrel_sdk::withdrawal::sign_cosigned(
        &cosigned.transaction,
        d,
        maker,
        &kestrel_sdk::withdrawal::ExpectedWithdrawal {
            asset,
            amount,
            destination,
            operator: operator.pubkey(),
        },
    )
    .unwrap();
    let before = kestrel_e2e::token_balance(&cluster.rpc, &destination).await;
    let landed = cluster
        .rpc
        .send_and_confirm_transaction(&signed)
        .await
        .unwrap();
    assert_eq!(
        kestrel_e2e::token_balance(&cluster.rpc, &destination).await,
        before + amount
    );
    let confirmed = wait_withdrawal(rest, &maker.pubkey(), id, "confirmed").await;
    assert_eq!(confirmed["tx"], hex::encode(landed), "{confirmed}");
    eventually("the hold paid out", || async {
        let paid = Some((available - amount, frozen));
        (balance(rest, &maker.pubkey(), asset).await == paid).then_some(())
    })
    .await;
    id
}

/// Sends SIGTERM and expects a clean exit.
pub async fn terminate(mut process: Process) {
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
