//! `kestrel relayer`: the settlement loop and reconciliation as their own process. It reads
//! pending fills and signed orders from the store the router projects into, lands them with
//! the operator key, reports every status to the router's internal endpoint, and reconciles
//! the chain against the store's ledger periodically.

use crate::internal::{HttpStatus, Token};
use crate::onchain::{OnChain, OnChainError};
use crate::reconcile::{self, ReconcileState, Reconciling};
use crate::relayer_metrics::RelayerMetrics;
use crate::settle::{self, SettleConfig, Settlement};
use kestrel_router::store::{Store, StoreError};
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::signature::Keypair;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How `kestrel relayer` runs.
#[derive(Debug)]
pub struct RelayerNodeConfig {
    /// JSON-RPC URL of the cluster.
    pub rpc_url: String,
    /// Commitment the chain is read at; a fill counts as settled at it.
    pub commitment: CommitmentConfig,
    /// Deployment id of the exchange.
    pub domain_id: u64,
    /// The router's SQL store.
    pub database_url: String,
    /// The operator key (signs settlements).
    pub operator: Keypair,
    /// Base URL of the router's internal endpoint.
    pub router_internal_url: String,
    /// Its bearer token.
    pub internal_token: Token,
    /// The settlement loop (it polls the store every `settle.interval`).
    pub settle: SettleConfig,
    /// Time between reconciliation runs.
    pub reconcile_interval: Duration,
    /// Prometheus metrics address; `None` disables it.
    pub metrics_listen: Option<SocketAddr>,
}

/// Starting the relayer failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayerNodeError {
    /// The deployment could not be read from the chain.
    #[error("reading the deployment: {0}")]
    OnChain(#[from] OnChainError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The metrics server could not bind.
    #[error("metrics: {0}")]
    Metrics(std::io::Error),
    /// The reconciliation metrics could not be created.
    #[error(transparent)]
    ReconcileMetrics(#[from] reconcile::MetricsError),
}

/// A running `kestrel relayer`.
pub struct RelayerNode {
    settlement: Settlement,
    reconcile: Reconciling,
    metrics: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
    stop: watch::Sender<bool>,
    store: Store,
    deployment: Deployment,
}

impl RelayerNode {
    /// Reads the deployment, opens the store and starts the loops.
    pub async fn start(config: RelayerNodeConfig) -> Result<RelayerNode, RelayerNodeError> {
        let rpc = RpcClient::new_with_commitment(config.rpc_url.clone(), config.commitment);
        let on_chain = OnChain::load(&rpc, config.domain_id).await?;
        let store = Store::connect(&config.database_url).await?;
        let reconcile_state = ReconcileState::new()?;
        let (stop, stopping) = watch::channel(false);
        let sink = HttpStatus::new(
            &config.router_internal_url,
            config.internal_token,
            stopping.clone(),
        );
        let settlement = settle::spawn(
            RpcClient::new_with_commitment(config.rpc_url, config.commitment),
            on_chain.deployment.clone(),
            Arc::new(config.operator),
            store.clone(),
            sink,
            config.settle,
            None,
        );
        let metrics = match config.metrics_listen {
            Some(listen) => {
                let metrics = RelayerMetrics {
                    settlement: settlement.counters(),
                    reconcile: reconcile_state.clone(),
                };
                match metrics.serve(listen, stopping).await {
                    Ok(served) => Some(served),
                    Err(error) => {
                        stop.send_replace(true);
                        settlement.shutdown().await;
                        store.close().await;
                        return Err(RelayerNodeError::Metrics(error));
                    }
                }
            }
            None => None,
        };
        let reconcile = Reconciling::spawn(
            rpc,
            on_chain.deployment.clone(),
            store.clone(),
            reconcile_state,
            config.reconcile_interval,
        );
        Ok(RelayerNode {
            settlement,
            reconcile,
            metrics,
            stop,
            store,
            deployment: on_chain.deployment,
        })
    }

    /// The metrics server's address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The deployment read from the chain.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Stops reconciling and settling (a round in flight finishes, its statuses are
    /// delivered if the router answers), then closes the store.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        self.reconcile.shutdown().await;
        if let Some((_, server)) = self.metrics {
            let _ = server.await;
        }
        self.settlement.shutdown().await;
        self.store.close().await;
    }
}
