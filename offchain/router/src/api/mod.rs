//! The public API: REST and WebSocket over axum, with limits, tracing and Prometheus metrics,
//! and the composition that starts the router behind it.
//!
//! [`start`] brings up, in order: the SQL store and its projector, the market-data projection
//! (its recent trades and candles seeded from the store), the sequencer (recovering from its
//! journal, whose replayed events refill both projections), the signature verification pool,
//! the WebSocket fan-out threads, the HTTP server and the metrics server. [`Api::shutdown`]
//! stops intake, lets in-flight requests finish, closes WebSockets (running their
//! cancel-on-disconnect), lets the sequencer commit and stop, and drains the projections.

pub mod error;
mod fanout;
pub mod intake;
pub mod limits;
pub mod metrics;
pub mod openapi;
mod rest;
mod server;
mod socket;
pub mod withdrawals;
pub mod ws;

use crate::decimal::Decimals;
use crate::marketdata::{MarketData, MarketDataConfig};
use crate::recovery::Recovery;
use crate::sequencer::{self, EventAt, Handle};
use crate::state::Rules;
use crate::store::{spawn_projector, ProjectorConfig, Store, StoreError};
use crate::verify::VerifyPool;
use limits::{Limiters, LimitsConfig};
use metrics::{Metrics, MetricsError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use withdrawals::WithdrawalCosigner;
use ws::WsConfig;

/// Everything the API needs to start.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Address of the REST and WebSocket server (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Address of the Prometheus metrics server; `None` disables it.
    pub metrics_listen: Option<SocketAddr>,
    /// Exchange, assets, markets and order rules.
    pub rules: Rules,
    /// Decimals of each asset's mint, by asset index, for the decimal fields of the API's
    /// output (an asset without an entry is shown in atoms: 0 decimals).
    pub asset_decimals: Vec<u8>,
    /// Journal and tick settings of the sequencer.
    pub sequencer: sequencer::Config,
    /// SQL store URL (`sqlite://...?mode=rwc` or `postgres://...`).
    pub database_url: String,
    /// Batching of the SQL projection.
    pub projector: ProjectorConfig,
    /// Signature verification threads; 0 verifies inline on the runtime worker that took the
    /// request (see [`VerifyPool`]).
    pub verify_threads: usize,
    /// Rates, sizes and connection counts.
    pub limits: LimitsConfig,
    /// Market-data buffers.
    pub market_data: MarketDataConfig,
    /// WebSocket queues and heartbeats.
    pub ws: WsConfig,
    /// Co-signs withdrawal transactions (injected by the node; `None`: the transaction
    /// endpoint answers `unavailable`).
    pub cosigner: Option<Arc<dyn WithdrawalCosigner>>,
}

impl ApiConfig {
    /// The embedded default: journal and SQLite store under `dir`, the API on `listen`, no
    /// metrics server, default limits; callers override what they need.
    pub fn embedded(rules: Rules, dir: &std::path::Path, listen: SocketAddr) -> ApiConfig {
        ApiConfig {
            listen,
            metrics_listen: None,
            rules,
            asset_decimals: Vec::new(),
            sequencer: sequencer::Config {
                journal: kestrel_matcher::journal::JournalConfig::new(dir.join("journal")),
                tick_interval: Duration::from_millis(200),
                light_load_below: 5_000,
                snapshots: crate::snapshot::SnapshotConfig::default(),
            },
            database_url: format!("sqlite://{}?mode=rwc", dir.join("store.db").display()),
            projector: ProjectorConfig::default(),
            verify_threads: 2,
            limits: LimitsConfig::default(),
            market_data: MarketDataConfig::default(),
            ws: WsConfig::default(),
            cosigner: None,
        }
    }
}

/// Starting the API failed; nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The SQL store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sequencer could not recover its journal or start.
    #[error(transparent)]
    Sequencer(#[from] sequencer::StartError),
    /// A socket could not be bound or a thread spawned.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The metrics registry refused a metric.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A start-up task failed.
    #[error("start-up task failed")]
    Task,
}

/// Stopping the API found a failure (everything is stopped regardless).
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// The sequencer failed while it ran (its journal, or an engine thread).
    #[error(transparent)]
    Sequencer(#[from] sequencer::Failure),
    /// The SQL projection failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A server task or the sequencer thread panicked or failed.
    #[error("{0} failed")]
    Task(&'static str),
}

/// State shared by every request and connection.
pub struct Shared {
    /// Exchange, assets and markets.
    pub rules: Rules,
    /// Decimal views of prices, sizes and amounts.
    pub decimals: Decimals,
    /// Signature verification.
    pub pool: VerifyPool,
    /// The sequencer.
    pub sequencer: Handle,
    /// The SQL projection (reads).
    pub store: Store,
    /// The last event the SQL projection holds.
    pub projected: watch::Receiver<EventAt>,
    /// Market data and the feed.
    pub market_data: MarketData,
    /// The feed's writers to the WebSocket connections.
    pub fanout: fanout::Fanout,
    /// Rate and connection limits.
    pub limits: Arc<Limiters>,
    /// Metrics.
    pub metrics: Metrics,
    /// WebSocket settings.
    pub ws: WsConfig,
    /// Co-signer of withdrawal transactions.
    pub cosigner: Option<Arc<dyn WithdrawalCosigner>>,
    /// Turns true when shutdown starts.
    pub shutdown: watch::Receiver<bool>,
}

/// How long a REST read waits for the SQL store to catch up with the commands acknowledged
/// before it (then it reads what the store has).
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(1);

impl Shared {
    /// The SQL store, once it holds every event of every command acknowledged before this
    /// call (at once when it is not behind; after at most [`READ_YOUR_WRITES_WAIT`] it is
    /// read as it is). The store trails the acknowledgements by the projector's batching
    /// delay: without this a client reading an order right after its placement's ack would
    /// find nothing, and right after its cancel's ack would find it still open.
    pub(crate) async fn caught_up_store(&self) -> &Store {
        let target = self.sequencer.durable_event();
        let mut projected = self.projected.clone();
        let caught_up = tokio::time::timeout(READ_YOUR_WRITES_WAIT, async {
            projected.wait_for(|at| *at >= target).await.is_ok()
        })
        .await;
        if caught_up != Ok(true) {
            tracing::debug!(
                ?target,
                "read from a store still behind the acknowledgements"
            );
        }
        &self.store
    }
}

/// Moves the projected position forward (never back).
fn raise(projected: &watch::Sender<EventAt>, at: EventAt) {
    projected.send_if_modified(|current| {
        let later = at > *current;
        if later {
            *current = at;
        }
        later
    });
}

/// A running API.
pub struct Api {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    sequencer: Handle,
    store: Store,
    market_data: MarketData,
    metrics: Metrics,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    metrics_server: Option<JoinHandle<std::io::Result<()>>>,
    sequencer_thread: std::thread::JoinHandle<Result<(), sequencer::Failure>>,
    projector: JoinHandle<Result<crate::store::Position, StoreError>>,
    feeds: Vec<JoinHandle<()>>,
}

/// Starts the router and serves its API on `config.listen`.
pub async fn start(config: ApiConfig) -> Result<Api, StartError> {
    let metrics = Metrics::new()?;
    let api_metrics = metrics.clone();
    let store = Store::connect(&config.database_url).await?;
    let decimals = Decimals::new(&config.rules, &config.asset_decimals);
    let market_data = MarketData::new(
        config.market_data,
        config.rules.markets.iter().map(|m| m.index),
    );
    market_data.set_decimals(decimals.clone());
    let (md_tx, md_rx) = mpsc::unbounded_channel();
    let (store_tx, store_rx) = mpsc::unbounded_channel::<Arc<[crate::model::Sequenced]>>();
    let (events_tx, events_rx) = mpsc::channel(config.projector.max_batch.max(1));
    let lag = metrics.projection_lag.clone();
    let (projected_tx, projected_rx) = watch::channel((0, 0));
    let written = projected_tx.clone();
    let projector = spawn_projector(store.clone(), events_rx, config.projector, move |batch| {
        lag.sub(i64::try_from(batch.len()).unwrap_or(i64::MAX));
        if let Some(last) = batch.last() {
            raise(&written, (last.seq, last.index));
        }
    });
    let bridge = spawn_bridge(store_rx, events_tx, metrics.projection_lag.clone());
    let md_task = market_data.spawn(md_rx);
    let rules = config.rules.clone();
    let seq_config = config.sequencer.clone();
    // A snapshot is usable only if the SQL store already holds every event up to it (the
    // cursor's own command may be partly projected, so strictly before it); the in-memory
    // market data starts from the snapshot's books.
    let projected = store.cursor().await?;
    raise(&projected_tx, (projected.seq, projected.index));
    // Trades and candles of the fills the store holds come from it, the rest from the replay
    // (see `marketdata::history`).
    market_data.load_history(&store, projected).await?;
    let seed = market_data.clone();
    let recovery = Recovery {
        max_snapshot_seq: projected.seq.saturating_sub(1),
        on_snapshot: Some(Box::new(move |state| seed.seed(state))),
    };
    let started = tokio::task::spawn_blocking(move || {
        sequencer::start_with(rules, seq_config, vec![md_tx, store_tx], recovery)
    })
    .await
    .map_err(|_| StartError::Task)??;
    let sequencer::Sequencer {
        handle,
        stats,
        thread: sequencer_thread,
        ..
    } = started;
    metrics.register(Box::new(metrics::PipelineCounters::new(stats)?))?;
    let pool = VerifyPool::start(config.verify_threads)?;
    let limits = Arc::new(Limiters::new(config.limits));
    let (shutdown, shutdown_rx) = watch::channel(false);
    spawn_sweeper(limits.clone(), shutdown_rx.clone());
    let fanout_threads = match config.ws.fanout_threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let fanout = fanout::Fanout::start(&market_data, fanout_threads, &shutdown_rx)?;
    let shared = Arc::new(Shared {
        rules: config.rules.clone(),
        decimals,
        pool,
        sequencer: handle.clone(),
        store: store.clone(),
        projected: projected_rx,
        market_data: market_data.clone(),
        fanout,
        limits,
        metrics: metrics.clone(),
        ws: config.ws,
        cosigner: config.cosigner.clone(),
        shutdown: shutdown_rx.clone(),
    });
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = rest::router(shared, config.limits.max_body_bytes);
    let server = tokio::spawn(server::serve(listener, app, shutdown_rx.clone()));
    let (metrics_addr, metrics_server) = match config.metrics_listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            let mut stop = shutdown_rx.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let metrics = metrics.clone();
                    async move { metrics.render() }
                }),
            );
            let task = tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
            });
            (Some(addr), Some(task))
        }
        None => (None, None),
    };
    tracing::info!(%addr, ?metrics_addr, "api listening");
    Ok(Api {
        addr,
        metrics_addr,
        sequencer: handle,
        store,
        market_data,
        metrics: api_metrics,
        shutdown,
        server,
        metrics_server,
        sequencer_thread,
        projector,
        feeds: vec![bridge, md_task],
    })
}

/// Feeds the projector one event at a time from the sequencer's batches. Every batch is taken
/// off the sequencer's channel as soon as it arrives and counted in `lag` then, so the gauge
/// (and the admission control that reads it) sees everything sequenced but not yet projected,
/// including what waits here while the projector's bounded channel is full.
fn spawn_bridge(
    mut batches: mpsc::UnboundedReceiver<Arc<[crate::model::Sequenced]>>,
    events: mpsc::Sender<crate::model::Sequenced>,
    lag: prometheus::IntGauge,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut queue = std::collections::VecDeque::new();
        let mut open = true;
        loop {
            tokio::select! {
                batch = batches.recv(), if open => match batch {
                    Some(batch) => {
                        lag.add(i64::try_from(batch.len()).unwrap_or(i64::MAX));
                        queue.extend(batch.iter().cloned());
                    }
                    None => open = false,
                },
                permit = events.reserve(), if !queue.is_empty() => {
                    let Ok(permit) = permit else { return };
                    if let Some(event) = queue.pop_front() {
                        permit.send(event);
                    }
                    while let Some(event) = queue.pop_front() {
                        match events.try_send(event) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(event)) => {
                                queue.push_front(event);
                                break;
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                }
                else => return,
            }
        }
    })
}

fn spawn_sweeper(limits: Arc<Limiters>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = every.tick() => limits.sweep(),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}

impl Api {
    /// Address the REST and WebSocket server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Address of the metrics server, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// A sequencer handle, for inputs that do not come through the API (chain listeners).
    pub fn sequencer(&self) -> Handle {
        self.sequencer.clone()
    }

    /// The SQL projection.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The market-data projection.
    pub fn market_data(&self) -> &MarketData {
        &self.market_data
    }

    /// The API's metrics (the same the metrics server renders).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Graceful shutdown: stop intake, drain, let the sequencer commit, drain projections.
    pub async fn shutdown(self) -> Result<(), ShutdownError> {
        let _ = self.shutdown.send(true);
        let served = self.server.await;
        if let Some(task) = self.metrics_server {
            let _ = task.await;
        }
        // The sequencer stops once every handle is gone: this one, the server's (dropped with
        // the server) and each WebSocket's (dropped as they close).
        drop(self.sequencer);
        let thread = self.sequencer_thread;
        let journal = tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|_| ShutdownError::Task("sequencer"))?
            .map_err(|_| ShutdownError::Task("sequencer"))?;
        for feed in self.feeds {
            let _ = feed.await;
        }
        let projected = self
            .projector
            .await
            .map_err(|_| ShutdownError::Task("projector"))?;
        self.store.close().await;
        journal?;
        projected?;
        match served {
            Ok(Ok(())) => Ok(()),
            _ => Err(ShutdownError::Task("http server")),
        }
    }
}
