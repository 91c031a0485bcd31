//! Prometheus metrics, one registry per running API (so several can run in one process), served
//! on their own port.

use crate::sequencer::PipelineStats;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::Arc;

/// The API's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route.
    pub http_latency: HistogramVec,
    /// Signed commands by kind and outcome (`accepted`, a rejection name, or an API error).
    pub commands: IntCounterVec,
    /// Open WebSocket connections.
    pub ws_connections: IntGauge,
    /// WebSocket connections closed by the server, by reason.
    pub ws_closed: IntCounterVec,
    /// Requests or messages refused by a rate limit, by scope.
    pub rate_limited: IntCounterVec,
    /// Events sequenced (durable, acknowledged) but not yet taken by the SQL projection:
    /// how far REST reads from the store trail the exchange.
    pub projection_lag: IntGauge,
}

/// A metric could not be registered (a programming error: duplicate or invalid name).
#[derive(Debug, thiserror::Error)]
#[error("metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new_custom(Some("kestrel_api".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests"),
            &["route", "method", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new("http_request_seconds", "HTTP request latency"),
            &["route"],
        )?;
        let commands = IntCounterVec::new(
            Opts::new("commands_total", "Signed commands by outcome"),
            &["kind", "outcome"],
        )?;
        let ws_connections = IntGauge::new("ws_connections", "Open WebSocket connections")?;
        let ws_closed = IntCounterVec::new(
            Opts::new(
                "ws_closed_total",
                "WebSocket connections closed by the server",
            ),
            &["reason"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new("rate_limited_total", "Requests refused by a rate limit"),
            &["scope"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(ws_connections.clone()))?;
        registry.register(Box::new(ws_closed.clone()))?;
        let projection_lag = IntGauge::new(
            "projection_lag_events",
            "Events sequenced but not yet taken by the SQL projection",
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(projection_lag.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_latency,
            commands,
            ws_connections,
            ws_closed,
            rate_limited,
            projection_lag,
        })
    }

    /// Adds a metric owned by whoever composes the API (the node's listener and reconciliation
    /// alerts), so it is served on the same port; its name gets the same `kestrel_api_` prefix.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), MetricsError> {
        Ok(self.registry.register(collector)?)
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

/// The sequencer's engine-thread counters, brought up to its totals at each scrape.
pub struct PipelineCounters {
    stats: Arc<PipelineStats>,
    ahead: IntCounter,
    threaded: IntCounter,
    waited: IntCounter,
}

impl PipelineCounters {
    /// Counters over `stats`.
    pub fn new(stats: Arc<PipelineStats>) -> Result<PipelineCounters, MetricsError> {
        Ok(PipelineCounters {
            stats,
            ahead: IntCounter::new(
                "sequencer_ahead_total",
                "Orders, cancels, replacements and cancel-alls that went to their markets' engines ahead of their turn",
            )?,
            threaded: IntCounter::new(
                "sequencer_engine_thread_total",
                "Engine commands matched on their market's engine thread (the rest of those that went ahead were matched on the sequencer's thread)",
            )?,
            waited: IntCounter::new(
                "sequencer_waited_total",
                "Commands that could not go ahead and waited for every command in flight to be matched and applied",
            )?,
        })
    }
}

impl Collector for PipelineCounters {
    fn desc(&self) -> Vec<&Desc> {
        self.ahead
            .desc()
            .into_iter()
            .chain(self.threaded.desc())
            .chain(self.waited.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (counter, total) in [
            (&self.ahead, self.stats.ahead()),
            (&self.threaded, self.stats.threaded()),
            (&self.waited, self.stats.waited()),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.ahead
            .collect()
            .into_iter()
            .chain(self.threaded.collect())
            .chain(self.waited.collect())
            .collect()
    }
}
