//! `kestrel router`: the router on its own against a cluster's RPC and a SQL store. The markets
//! come from the chain ([`OnChain`]); the chain listener feeds deposits and cancel floors into
//! the sequencer; the internal endpoint takes settlement statuses from a separate relayer.

use crate::bridge::ChainListener;
use crate::internal::{InternalServer, Token};
use crate::onchain::{OnChain, OnChainError, RouterLimits};
use kestrel_router::api::{self, Api, ApiConfig};
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Limits with no on-chain counterpart.
    pub limits: RouterLimits,
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
}

/// A running `kestrel router`.
pub struct RouterNode {
    api: Api,
    listener: ChainListener,
    internal: InternalServer,
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
        api_config.asset_decimals = on_chain.asset_decimals.clone();
        let api = api::start(api_config).await?;
        let internal = match InternalServer::start(
            config.internal_listen,
            api.sequencer(),
            config.internal_token,
        )
        .await
        {
            Ok(internal) => internal,
            Err(error) => {
                api.shutdown().await?;
                return Err(RouterNodeError::Internal(error));
            }
        };
        let listener = ChainListener::start(
            RpcClient::new_with_commitment(config.rpc_url, config.commitment),
            on_chain.deployment.clone(),
            api.sequencer(),
            api.store().clone(),
            config.listen_interval,
        );
        Ok(RouterNode {
            api,
            listener,
            internal,
            deployment: on_chain.deployment,
        })
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

    /// Stops the listener and the internal endpoint, then the router (draining it).
    pub async fn shutdown(self) -> Result<(), RouterNodeError> {
        self.listener.shutdown().await;
        self.internal.shutdown().await;
        self.api.shutdown().await?;
        Ok(())
    }
}
