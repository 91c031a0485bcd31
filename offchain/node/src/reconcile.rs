//! Periodic reconciliation of the chain against the store's ledger, shared by every process
//! that needs its verdict: the relayer (alert metrics), `kestrel router` with a co-signer and
//! the devnet (the co-signer refuses while the last run found differences).

use kestrel_relayer::reconcile::{LedgerError, OffchainLedger, Reconciler};
use kestrel_router::store::Store;
use kestrel_sdk::Deployment;
use prometheus::core::Collector;
use prometheus::{IntCounter, IntGauge};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The off-chain ledger as the store projects it, without the fills not confirmed on-chain.
#[derive(Clone)]
pub struct StoreLedger(pub Store);

impl OffchainLedger for StoreLedger {
    fn expected_balances(
        &self,
    ) -> impl Future<Output = Result<HashMap<(Pubkey, u8), u64>, LedgerError>> + Send {
        let store = self.0.clone();
        async move {
            let settled = store
                .settled_balances()
                .await
                .map_err(|e| LedgerError(Box::new(e)))?;
            Ok(settled
                .into_iter()
                .map(|((owner, asset), total)| ((Pubkey::new_from_array(owner), asset), total))
                .collect())
        }
    }

    fn credited_deposits(
        &self,
    ) -> impl Future<Output = Result<HashMap<(Pubkey, u8), u64>, LedgerError>> + Send {
        let store = self.0.clone();
        async move {
            let credited = store
                .credited_deposits()
                .await
                .map_err(|e| LedgerError(Box::new(e)))?;
            Ok(credited
                .into_iter()
                .map(|((owner, asset), total)| ((Pubkey::new_from_array(owner), asset), total))
                .collect())
        }
    }
}

/// A reconciliation metric could not be created (a programming error: an invalid name).
#[derive(Debug, thiserror::Error)]
#[error("reconciliation metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// What reconciliation reports: the alert state the co-signer consults, and its metrics.
#[derive(Clone)]
pub struct ReconcileState {
    /// The alert state (withdrawals halted while the last run found differences).
    pub reconciler: Arc<Reconciler>,
    /// Runs that completed, clean or not.
    pub runs: IntCounter,
    /// Runs that found differences.
    pub alerts: IntCounter,
    /// Differences found by the last completed run.
    pub mismatches: IntGauge,
    /// 1 while withdrawals are halted.
    pub halted: IntGauge,
}

impl ReconcileState {
    /// A clean state with fresh metrics.
    pub fn new() -> Result<ReconcileState, MetricsError> {
        Ok(ReconcileState {
            reconciler: Arc::new(Reconciler::new()),
            runs: IntCounter::new("reconcile_runs_total", "Reconciliation runs completed")?,
            alerts: IntCounter::new(
                "reconcile_alerts_total",
                "Reconciliation runs that found differences",
            )?,
            mismatches: IntGauge::new(
                "reconcile_mismatches",
                "Differences found by the last reconciliation run",
            )?,
            halted: IntGauge::new(
                "withdrawals_halted",
                "1 while the last reconciliation found differences (co-signing refused)",
            )?,
        })
    }

    /// The metrics, to register with a Prometheus registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.runs.clone()),
            Box::new(self.alerts.clone()),
            Box::new(self.mismatches.clone()),
            Box::new(self.halted.clone()),
        ]
    }

    /// `recon ok` or `recon MISMATCH` (for status lines).
    pub fn summary(&self) -> &'static str {
        if self.reconciler.withdrawals_halted() {
            "recon MISMATCH"
        } else {
            "recon ok"
        }
    }
}

/// The reconciliation loop, running.
pub struct Reconciling {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Reconciling {
    /// Reconciles `deployment` over `rpc` against `store` every `interval` (first run after
    /// one interval), recording each verdict in `state`.
    pub fn spawn(
        rpc: RpcClient,
        deployment: Deployment,
        store: Store,
        state: ReconcileState,
        interval: Duration,
    ) -> Reconciling {
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(reconcile_loop(
            rpc,
            deployment,
            StoreLedger(store),
            state,
            interval,
            stopping,
        ));
        Reconciling { stop, task }
    }

    /// Stops after the run in flight, if any.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

async fn reconcile_loop(
    rpc: RpcClient,
    deployment: Deployment,
    ledger: StoreLedger,
    state: ReconcileState,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let reconciler = &state.reconciler;
        match reconciler.run(&rpc, &deployment, &ledger).await {
            Ok(run) => {
                state.runs.inc();
                state
                    .mismatches
                    .set(i64::try_from(run.mismatches.len()).unwrap_or(i64::MAX));
                state.halted.set(i64::from(reconciler.withdrawals_halted()));
                if run.is_clean() {
                    tracing::info!(mints = run.mints.len(), "reconciled");
                } else {
                    state.alerts.inc();
                    tracing::error!(
                        mismatches = ?run.mismatches,
                        alerts = reconciler.alerts(),
                        "ALERT: reconciliation found differences; withdrawals halted"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "reconciliation could not run"),
        }
    }
}
