//! The relayer's Prometheus metrics, on their own port: settlement outcomes and the
//! reconciliation alert, rendered from the loops' counters at each scrape.

use crate::reconcile::ReconcileState;
use crate::settle::SettlementCounters;
use std::fmt::Write;
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the metrics are read from.
#[derive(Clone)]
pub struct RelayerMetrics {
    /// Settlement outcomes.
    pub settlement: SettlementCounters,
    /// The reconciliation alert state and its figures.
    pub reconcile: ReconcileState,
}

impl RelayerMetrics {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mismatches = u64::try_from(self.reconcile.mismatches.get()).unwrap_or(0);
        let metrics: [(&str, &str, &str, u64); 6] = [
            (
                "kestrel_relayer_fills_settled_total",
                "counter",
                "Fills confirmed on-chain by this process",
                self.settlement.settled(),
            ),
            (
                "kestrel_relayer_fills_quarantined_total",
                "counter",
                "Fills quarantined by this process",
                self.settlement.quarantined(),
            ),
            (
                "kestrel_relayer_reconcile_runs_total",
                "counter",
                "Reconciliation runs completed",
                self.reconcile.runs.get(),
            ),
            (
                "kestrel_relayer_reconcile_alerts_total",
                "counter",
                "Reconciliation runs that found differences",
                self.reconcile.reconciler.alerts(),
            ),
            (
                "kestrel_relayer_reconcile_mismatches",
                "gauge",
                "Differences found by the last reconciliation run",
                mismatches,
            ),
            (
                "kestrel_relayer_withdrawals_halted",
                "gauge",
                "1 while the last reconciliation found differences",
                u64::from(self.reconcile.reconciler.withdrawals_halted()),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in metrics {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
        out
    }

    /// Serves `GET /metrics` on `listen` until `stop` turns true; returns the bound address.
    pub async fn serve(
        self,
        listen: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = self.clone();
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
        Ok((addr, task))
    }
}
