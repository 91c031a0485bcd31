//! The embedded devnet: an in-process chain with a deployment (two demo mints, the exchange,
//! market 0), two funded demo wallets, the router API on SQLite and the relayer loops.
//!
//! The embedded chain lives in memory, so every run starts from genesis: the router's journal
//! and store under `<data-dir>/router` are reset at start. Keys (admin/operator, mints, demo
//! wallets) are kept in the data dir and reused, so addresses stay the same across runs.
//!
//! Reconciliation runs periodically against the store, so a real difference between the chain
//! and the ledger halts co-signed withdrawals (and shows as `recon MISMATCH` in the status line).

use crate::bots::Bots;
use crate::bridge::{self, Bridge};
use crate::cosigner::OperatorCosigner;
use crate::keys;
use crate::onchain::{OnChain, OnChainError, RouterLimits};
use crate::reconcile::{self, ReconcileState, Reconciling};
use crate::settle::{self, SettleConfig};
use crate::tables::TablesConfig;
use kestrel::instructions::CreateMarketArgs;
use kestrel_relayer::embedded::{self, EmbeddedChain};
use kestrel_relayer::reconcile::Reconciler;
use kestrel_router::api::limits::LimitsConfig;
use kestrel_router::api::{self, Api, ApiConfig};
use kestrel_router::marketdata::{Item, Topic};
use kestrel_sdk::{chain, Deployment};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::account::Account;
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Deployment id of the devnet exchange.
pub const DOMAIN_ID: u64 = 1;
/// Decimals of the demo mints.
pub const DECIMALS: u8 = 6;
/// Atoms minted to each demo wallet's token account, per asset (1,000,000 tokens).
pub const MINTED: u64 = 1_000_000 * 1_000_000;
/// Atoms each demo wallet deposits at start, per asset (100,000 tokens).
pub const DEPOSITED: u64 = 100_000 * 1_000_000;
/// Slots before a user-initiated withdrawal may execute.
pub const WITHDRAWAL_DELAY_SLOTS: u64 = 25;
/// Slots before announced fees take effect.
pub const FEE_CHANGE_DELAY_SLOTS: u64 = 100;

/// How the devnet starts.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Keys, journal and SQLite store.
    pub data_dir: PathBuf,
    /// REST + WebSocket API address.
    pub http: SocketAddr,
    /// JSON-RPC address of the embedded chain.
    pub rpc: SocketAddr,
    /// Time between slots of the embedded chain.
    pub slot_interval: Duration,
    /// Longest time between settlement rounds (they start as soon as fills are reported).
    pub settle_interval: Duration,
    /// After fills are reported, how long settlement collects more before a round.
    pub settle_linger: Duration,
    /// Settle with v0 transactions over lookup tables (legacy transactions when off).
    pub lookup_tables: bool,
    /// Time between listener polls.
    pub listen_interval: Duration,
    /// Time between reconciliation runs.
    pub reconcile_interval: Duration,
    /// Run the demo market maker and taker (wallets 1 and 2).
    pub bots: bool,
    /// The API's access limits.
    pub access: LimitsConfig,
}

impl DevnetConfig {
    /// Defaults for `data_dir` with loopback ports chosen by the OS (tests).
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> DevnetConfig {
        DevnetConfig {
            data_dir: data_dir.into(),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            rpc: SocketAddr::from(([127, 0, 0, 1], 0)),
            slot_interval: Duration::from_millis(100),
            settle_interval: Duration::from_millis(200),
            settle_linger: Duration::from_millis(5),
            lookup_tables: true,
            listen_interval: Duration::from_millis(200),
            reconcile_interval: Duration::from_secs(1),
            bots: false,
            access: LimitsConfig::default(),
        }
    }
}

/// Starting or running the devnet failed.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// Data dir or key files.
    #[error("data dir: {0}")]
    Io(#[from] std::io::Error),
    /// The embedded chain.
    #[error("embedded chain: {0}")]
    Chain(#[from] embedded::Error),
    /// An RPC call during bootstrap.
    #[error("rpc: {0}")]
    Rpc(#[from] Box<solana_client::client_error::ClientError>),
    /// The SDK refused an instruction.
    #[error("sdk: {0}")]
    Sdk(#[from] kestrel_sdk::Error),
    /// A transaction helper failed.
    #[error(transparent)]
    Transaction(#[from] kestrel_sdk::chain::ChainError),
    /// The deployment could not be read back from the chain.
    #[error("reading the deployment: {0}")]
    OnChain(#[from] OnChainError),
    /// The router API.
    #[error("router: {0}")]
    Api(#[from] api::StartError),
    /// The router API did not stop cleanly.
    #[error("router shutdown: {0}")]
    ApiShutdown(#[from] api::ShutdownError),
    /// The listener's metrics could not be created.
    #[error(transparent)]
    ListenerMetrics(#[from] bridge::MetricsError),
    /// The reconciliation metrics could not be created or registered.
    #[error(transparent)]
    ReconcileMetrics(#[from] reconcile::MetricsError),
    /// The API's metrics registry refused the node's metrics.
    #[error(transparent)]
    Metrics(#[from] api::metrics::MetricsError),
}

impl From<solana_client::client_error::ClientError> for DevnetError {
    fn from(err: solana_client::client_error::ClientError) -> Self {
        DevnetError::Rpc(Box::new(err))
    }
}

/// A demo wallet: its key, its token accounts (base, quote), funded and with an exchange account.
pub struct DemoWallet {
    /// The wallet key (also signs orders).
    pub keypair: Keypair,
    /// Token accounts by asset index (base, quote).
    pub token_accounts: [Pubkey; 2],
}

/// A compact status of the running devnet, from counters (nothing is queried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Orders the router has accepted (place commands) since start.
    pub orders: u64,
    /// Fills matched since start (as the market-data feed saw them).
    pub fills: u64,
    /// Fills confirmed on-chain by this run's settlement loop.
    pub settled: u64,
    /// Fills quarantined.
    pub quarantined: u64,
    /// The last reconciliation found differences (co-signed withdrawals halted).
    pub reconcile_mismatch: bool,
}

impl Status {
    /// Fills matched but neither settled nor quarantined yet: the settlement lag in fills.
    pub fn unsettled(&self) -> u64 {
        self.fills
            .saturating_sub(self.settled)
            .saturating_sub(self.quarantined)
    }

    /// One status line: totals, and the order rate since `previous`, taken `period` earlier.
    pub fn line(&self, previous: &Status, period: Duration) -> String {
        let orders = self.orders.saturating_sub(previous.orders);
        let millis = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        let per_second = orders
            .saturating_mul(1_000)
            .checked_div(millis)
            .unwrap_or(0);
        format!(
            "orders {} ({per_second}/s) | fills {} | settled {} | lag {} | quarantined {} | recon {}",
            self.orders,
            self.fills,
            self.settled,
            self.unsettled(),
            self.quarantined,
            if self.reconcile_mismatch {
                "MISMATCH"
            } else {
                "ok"
            }
        )
    }
}

/// A running devnet.
pub struct Devnet {
    chain: EmbeddedChain,
    api: Api,
    bridge: Bridge,
    bots: Option<Bots>,
    deployment: Deployment,
    operator: Arc<Keypair>,
    reconcile: ReconcileState,
    reconciling: Reconciling,
    wallets: Vec<DemoWallet>,
    data_dir: PathBuf,
    fills: Arc<AtomicU64>,
    fill_counter: JoinHandle<()>,
}

/// The on-chain market 0 of the devnet.
pub fn market_args() -> CreateMarketArgs {
    CreateMarketArgs {
        index: 0,
        base_asset: 0,
        quote_asset: 1,
        base_lot_size: 1_000,
        tick_size: 10,
        min_size_lots: 1,
        maker_fee_bps: 2,
        taker_fee_bps: 5,
    }
}

impl Devnet {
    /// Bootstraps the chain and the deployment, then starts the router and the relayer loops.
    pub async fn start(config: DevnetConfig) -> Result<Devnet, DevnetError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)?;
        let admin = keys::load_or_create(&dir.join("admin.json"))?;
        let base_mint = keys::load_or_create(&dir.join("base-mint.json"))?;
        let quote_mint = keys::load_or_create(&dir.join("quote-mint.json"))?;
        let users = [
            keys::load_or_create(&dir.join("wallet-1.json"))?,
            keys::load_or_create(&dir.join("wallet-2.json"))?,
        ];
        let genesis = std::iter::once(&admin)
            .chain(users.iter())
            .map(|k| (k.pubkey(), funded_account()))
            .collect();
        let chain = EmbeddedChain::start(embedded::Config {
            bind: config.rpc,
            slot_interval: config.slot_interval,
            accounts: genesis,
            ..embedded::Config::default()
        })
        .await?;
        let rpc = RpcClient::new(chain.rpc_url());
        chain::create_mint(&rpc, &admin, &base_mint, DECIMALS).await?;
        chain::create_mint(&rpc, &admin, &quote_mint, DECIMALS).await?;
        let deployment = Deployment::new(DOMAIN_ID, vec![base_mint.pubkey(), quote_mint.pubkey()]);
        let setup = vec![
            deployment.initialize_exchange(
                &admin.pubkey(),
                &admin.pubkey(),
                &admin.pubkey(),
                WITHDRAWAL_DELAY_SLOTS,
                FEE_CHANGE_DELAY_SLOTS,
            ),
            deployment.add_asset(&admin.pubkey(), 0)?,
            deployment.add_asset(&admin.pubkey(), 1)?,
            deployment.create_market(&admin.pubkey(), market_args()),
        ];
        chain::send(&rpc, &setup, &admin, &[]).await?;
        let mut wallets = Vec::new();
        for user in users {
            wallets.push(fund_wallet(&rpc, &deployment, &admin, user).await?);
        }

        let router_dir = dir.join("router");
        if router_dir.exists() {
            std::fs::remove_dir_all(&router_dir)?;
        }
        std::fs::create_dir_all(&router_dir)?;
        // The router mirrors the chain, as `kestrel router` does.
        let on_chain = OnChain::load(&rpc, DOMAIN_ID).await?;
        let rules = on_chain.rules(&RouterLimits::default());
        let operator = Arc::new(admin);
        let reconcile = ReconcileState::new()?;
        let cosigner = OperatorCosigner::new(
            chain.rpc_url(),
            deployment.clone(),
            operator.clone(),
            reconcile.reconciler.clone(),
        );
        let mut api_config = ApiConfig::embedded(rules, &router_dir, config.http);
        api_config.cosigner = Some(Arc::new(cosigner));
        api_config.limits = config.access;
        api_config.asset_decimals = on_chain.asset_decimals;
        let api = api::start(api_config).await?;
        let bridge = match bridge::start(
            chain.rpc_url(),
            deployment.clone(),
            operator.clone(),
            (api.sequencer(), api.store().clone()),
            bridge::BridgeConfig {
                settle: SettleConfig {
                    interval: config.settle_interval,
                    linger: config.settle_linger,
                    // The chain starts from genesis every run: its tables are not kept.
                    tables: TablesConfig {
                        enabled: config.lookup_tables,
                        file: None,
                    },
                },
                listen_interval: config.listen_interval,
            },
            Some(settle::feed_wake(api.market_data().receiver())),
        ) {
            Ok(bridge) => bridge,
            Err(error) => {
                api.shutdown().await?;
                return Err(error.into());
            }
        };
        let registered: Result<(), _> = bridge
            .listener_metrics()
            .collectors()
            .into_iter()
            .chain(reconcile.collectors())
            .try_for_each(|collector| api.metrics().register(collector));
        if let Err(error) = registered {
            bridge.shutdown().await;
            api.shutdown().await?;
            return Err(error.into());
        }
        let reconciling = Reconciling::spawn(
            RpcClient::new(chain.rpc_url()),
            deployment.clone(),
            api.store().clone(),
            reconcile.clone(),
            config.reconcile_interval,
        );
        let fills = Arc::new(AtomicU64::new(0));
        let fill_counter = count_fills(api.market_data().receiver(), fills.clone());
        let bots = match (config.bots, wallets.as_slice()) {
            (true, [maker, taker, ..]) => Some(Bots::start(
                &format!("http://{}", api.local_addr()),
                deployment.exchange,
                maker.keypair.insecure_clone(),
                taker.keypair.insecure_clone(),
            )),
            _ => None,
        };
        Ok(Devnet {
            chain,
            api,
            bridge,
            bots,
            deployment,
            operator,
            reconcile,
            reconciling,
            wallets,
            data_dir: config.data_dir,
            fills,
            fill_counter,
        })
    }

    /// The embedded chain's JSON-RPC URL.
    pub fn rpc_url(&self) -> String {
        self.chain.rpc_url()
    }

    /// The REST API base URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.api.local_addr())
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.api.local_addr())
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The deployment's addresses.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The admin, operator and fee collector key.
    pub fn operator(&self) -> &Keypair {
        &self.operator
    }

    /// The reconciliation alert state the withdrawal co-signer consults (a run with
    /// differences halts co-signed withdrawals until a clean run).
    pub fn reconciler(&self) -> &Arc<Reconciler> {
        &self.reconcile.reconciler
    }

    /// Reconciliation's alert state and metrics.
    pub fn reconcile(&self) -> &ReconcileState {
        &self.reconcile
    }

    /// The relayer loops (settlement and withdrawal counters).
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// The demo wallets.
    pub fn wallets(&self) -> &[DemoWallet] {
        &self.wallets
    }

    /// The router API.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Orders, fills and settlement counts, read from counters.
    pub fn status(&self) -> Status {
        Status {
            orders: self
                .api
                .metrics()
                .commands
                .with_label_values(&["place", "accepted"])
                .get(),
            fills: self.fills.load(Ordering::Relaxed),
            settled: self.bridge.settled(),
            quarantined: self.bridge.quarantined(),
            reconcile_mismatch: self.reconcile.reconciler.withdrawals_halted(),
        }
    }

    /// Stops the relayer loops, the router (draining it) and the chain.
    pub async fn shutdown(self) -> Result<(), DevnetError> {
        self.fill_counter.abort();
        if let Some(bots) = self.bots {
            bots.shutdown().await;
        }
        self.reconciling.shutdown().await;
        self.bridge.shutdown().await;
        let api = self.api.shutdown().await;
        let chain = self.chain.shutdown().await;
        api?;
        chain?;
        Ok(())
    }
}

/// Counts the trades on the market-data feed (one per fill) into `fills`.
fn count_fills(
    mut feed: broadcast::Receiver<Arc<[Item]>>,
    fills: Arc<AtomicU64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(items) => {
                    let trades = items
                        .iter()
                        .filter(|item| matches!(item.topic, Topic::Trades(_)))
                        .count();
                    fills.fetch_add(u64::try_from(trades).unwrap_or(0), Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Lagged(batches)) => {
                    tracing::warn!(batches, "status counter fell behind the feed");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

fn funded_account() -> Account {
    Account {
        lamports: LAMPORTS_PER_SOL.saturating_mul(100),
        data: Vec::new(),
        owner: solana_system_interface::program::ID,
        executable: false,
        rent_epoch: 0,
    }
}

/// Token accounts for both assets, the exchange account, and [`DEPOSITED`] of each deposited.
async fn fund_wallet(
    rpc: &RpcClient,
    deployment: &Deployment,
    admin: &Keypair,
    user: Keypair,
) -> Result<DemoWallet, DevnetError> {
    let base = chain::funded_token_account(rpc, &deployment.mint(0)?, &user, admin, MINTED).await?;
    let quote =
        chain::funded_token_account(rpc, &deployment.mint(1)?, &user, admin, MINTED).await?;
    let ixs = [
        deployment.create_user(&user.pubkey()),
        deployment.deposit(&user.pubkey(), 0, &base, DEPOSITED)?,
        deployment.deposit(&user.pubkey(), 1, &quote, DEPOSITED)?,
    ];
    chain::send(rpc, &ixs, &user, &[]).await?;
    Ok(DemoWallet {
        keypair: user,
        token_accounts: [base, quote],
    })
}
