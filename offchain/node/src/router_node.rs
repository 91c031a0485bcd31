//! `kestrel router`: the router on its own against a cluster's RPC and a SQL store. The markets
//! come from the chain ([`OnChain`]); the chain listener feeds deposits and cancel floors into
//! the sequencer; the internal endpoint takes settlement statuses from a separate relayer.
//!
//! With the operator key (`--cosigner-keypair`) the router also co-signs withdrawals and
//! reconciles the chain against its store periodically, so the co-signer refuses while the
//! books disagree; without it co-signed withdrawals are off (503) and users take the exit
//! hatch. The listener's and reconciliation's alerts are served with the API's metrics.

use crate::bridge::{self, ChainListener};
use crate::cosigner::OperatorCosigner;
use crate::internal::{InternalServer, Token};
use crate::onchain::{OnChain, OnChainError, RouterLimits};
use crate::reconcile::{self, ReconcileState, Reconciling};
use kestrel_router::api::limits::LimitsConfig;
use kestrel_router::api::{self, Api, ApiConfig};
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::signature::Keypair;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How `kestrel router` runs.
#[derive(Debug, Clone)]
pub struct RouterNodeConfig {
    /// JSON-RPC URL of the cluster.
    pub rpc_url: String,
    /// Commitment the chain is read at (markets, listener).
    pub commitment: CommitmentConfig,
    /// Deployment id of the exchange.
    pub domain_id: u64,
    /// Journal directory.
    pub journal_dir: PathBuf,
    /// SQL store URL (`postgres://...` or `sqlite://...?mode=rwc`).
    pub database_url: String,
    /// Public REST + WebSocket address.
    pub listen: SocketAddr,
    /// Prometheus metrics address.
    pub metrics_listen: Option<SocketAddr>,
    /// The operator-only internal endpoint's address.
    pub internal_listen: SocketAddr,
    /// Its bearer token.
    pub internal_token: Token,
    /// Time between listener polls.
    pub listen_interval: Duration,
    /// Signature verification threads.
    pub verify_threads: usize,
    /// The API's access limits (rates, sizes, connections, load shedding).
    pub access: LimitsConfig,
    /// Limits with no on-chain counterpart.
    pub limits: RouterLimits,
    /// The operator key, to co-sign withdrawals; `None` turns co-signed withdrawals off.
    pub cosigner: Option<Arc<Keypair>>,
    /// Time between reconciliation runs (only with a co-signer).
    pub reconcile_interval: Duration,
}

/// Starting the router failed.
#[derive(Debug, thiserror::Error)]
pub enum RouterNodeError {
    /// The deployment could not be read from the chain.
    #[error("reading the deployment: {0}")]
    OnChain(#[from] OnChainError),
    /// The router API.
    #[error("router: {0}")]
    Start(#[from] api::StartError),
    /// The router did not stop cleanly.
    #[error("router shutdown: {0}")]
    Shutdown(#[from] api::ShutdownError),
    /// The journal directory could not be created.
    #[error("journal dir: {0}")]
    Journal(std::io::Error),
    /// The internal endpoint could not bind.
    #[error("internal endpoint: {0}")]
    Internal(std::io::Error),
    /// The listener's metrics could not be created.
    #[error(transparent)]
    ListenerMetrics(#[from] bridge::MetricsError),
    /// The reconciliation metrics could not be created.
    #[error(transparent)]
    ReconcileMetrics(#[from] reconcile::MetricsError),
    /// The API's metrics registry refused the node's metrics.
    #[error(transparent)]
    Metrics(#[from] api::metrics::MetricsError),
}

/// A running `kestrel router`.
pub struct RouterNode {
    api: Api,
    listener: ChainListener,
    internal: InternalServer,
    reconciling: Option<Reconciling>,
    deployment: Deployment,
}

impl RouterNode {
    /// Reads the deployment, recovers the journal and starts serving.
    pub async fn start(config: RouterNodeConfig) -> Result<RouterNode, RouterNodeError> {
        std::fs::create_dir_all(&config.journal_dir).map_err(RouterNodeError::Journal)?;
        let rpc = RpcClient::new_with_commitment(config.rpc_url.clone(), config.commitment);
        let on_chain = OnChain::load(&rpc, config.domain_id).await?;
        let mut api_config = ApiConfig::embedded(
            on_chain.rules(&config.limits),
            &config.journal_dir,
            config.listen,
        );
        api_config.sequencer.journal.dir = config.journal_dir.clone();
        api_config.database_url = config.database_url.clone();
        api_config.metrics_listen = config.metrics_listen;
        api_config.verify_threads = config.verify_threads.max(1);
        api_config.limits = config.access;
        api_config.asset_decimals = on_chain.asset_decimals.clone();
        let reconcile_state = match &config.cosigner {
            Some(operator) => {
                let state = ReconcileState::new()?;
                api_config.cosigner = Some(Arc::new(OperatorCosigner::new(
                    config.rpc_url.clone(),
                    on_chain.deployment.clone(),
                    operator.clone(),
                    state.reconciler.clone(),
                )));
                Some(state)
            }
            None => None,
        };
        let api = api::start(api_config).await?;
        match Self::serve(&config, &api, &on_chain, reconcile_state).await {
            Ok((internal, listener, reconciling)) => Ok(RouterNode {
                api,
                listener,
                internal,
                reconciling,
                deployment: on_chain.deployment,
            }),
            Err(error) => {
                api.shutdown().await?;
                Err(error)
            }
        }
    }

    /// Starts what runs beside the API: the internal endpoint, the chain listener and, with a
    /// co-signer, reconciliation; registers their metrics with the API's.
    async fn serve(
        config: &RouterNodeConfig,
        api: &Api,
        on_chain: &OnChain,
        reconcile_state: Option<ReconcileState>,
    ) -> Result<(InternalServer, ChainListener, Option<Reconciling>), RouterNodeError> {
        let metrics = api.metrics();
        let listener_metrics = bridge::ListenerMetrics::new()?;
        let reconcile_collectors = reconcile_state
            .as_ref()
            .map(ReconcileState::collectors)
            .unwrap_or_default();
        for collector in listener_metrics
            .collectors()
            .into_iter()
            .chain(reconcile_collectors)
        {
            metrics.register(collector)?;
        }
        let internal = InternalServer::start(
            config.internal_listen,
            api.sequencer(),
            config.internal_token.clone(),
        )
        .await
        .map_err(RouterNodeError::Internal)?;
        let listener = ChainListener::start(
            RpcClient::new_with_commitment(config.rpc_url.clone(), config.commitment),
            on_chain.deployment.clone(),
            api.sequencer(),
            api.store().clone(),
            config.listen_interval,
            listener_metrics,
        );
        let reconciling = reconcile_state.map(|state| {
            Reconciling::spawn(
                RpcClient::new_with_commitment(config.rpc_url.clone(), config.commitment),
                on_chain.deployment.clone(),
                api.store().clone(),
                state,
                config.reconcile_interval,
            )
        });
        Ok((internal, listener, reconciling))
    }

    /// The public API's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.api.local_addr()
    }

    /// The metrics server's address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.api.metrics_addr()
    }

    /// The internal endpoint's address.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.local_addr()
    }

    /// The deployment read from the chain.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Stops reconciliation, the listener and the internal endpoint, then the router
    /// (draining it).
    pub async fn shutdown(self) -> Result<(), RouterNodeError> {
        if let Some(reconciling) = self.reconciling {
            reconciling.shutdown().await;
        }
        self.listener.shutdown().await;
        self.internal.shutdown().await;
        self.api.shutdown().await?;
        Ok(())
    }
}
