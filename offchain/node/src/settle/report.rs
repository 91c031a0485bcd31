//! The submitter's outcomes turned into status updates and counters, remembering which
//! fills are done while the store still lists them.

use kestrel_relayer::submitter::{Attempt, Quarantined, SettlementReport};
use kestrel_router::model::SettlementStatus;
use kestrel_router::store::FillRow;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

use super::StatusUpdate;

/// What the loop counts, and the lookup tables it packs with.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) settled: AtomicU64,
    pub(super) quarantined: AtomicU64,
    pub(super) tables: Arc<Mutex<Vec<Pubkey>>>,
}

/// Where the submitter's outcomes go: status updates, counters, and which fills are done.
pub(super) struct Reporter {
    pub(super) updates: mpsc::UnboundedSender<StatusUpdate>,
    pub(super) counters: Arc<Counters>,
    pub(super) state: Mutex<ReportState>,
}

#[derive(Default)]
pub(super) struct ReportState {
    /// Reported `Submitted`, not yet final.
    submitted: HashSet<(u32, u64)>,
    /// Confirmed or quarantined (the store may still list them as pending for a moment).
    finished: HashSet<(u32, u64)>,
}

impl Reporter {
    fn state(&self) -> std::sync::MutexGuard<'_, ReportState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn update(&self, market: u32, fill_id: u64, status: SettlementStatus) {
        let _ = self.updates.send(StatusUpdate {
            market,
            fill_id,
            status,
        });
    }

    pub(super) fn finish(&self, market: u32, fill_id: u64, status: SettlementStatus) {
        let fresh = {
            let mut state = self.state();
            state.submitted.remove(&(market, fill_id));
            state.finished.insert((market, fill_id))
        };
        if fresh {
            let counter = match status {
                SettlementStatus::Quarantined => &self.counters.quarantined,
                _ => &self.counters.settled,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.update(market, fill_id, status);
        }
    }

    /// Fills submitted but not final when a run stopped go back to pending (retried later).
    pub(super) fn revert_submitted(&self) {
        let pending: Vec<(u32, u64)> = self.state().submitted.drain().collect();
        for (market, fill_id) in pending {
            self.update(market, fill_id, SettlementStatus::Pending);
        }
    }

    /// Keeps only the pending rows not yet finished; forgets finished fills the store no
    /// longer lists as pending.
    pub(super) fn unfinished(&self, rows: Vec<FillRow>) -> Vec<FillRow> {
        let mut state = self.state();
        let listed: HashSet<(u32, u64)> = rows.iter().map(|r| (r.market, r.fill_id)).collect();
        state.finished.retain(|key| listed.contains(key));
        rows.into_iter()
            .filter(|r| !state.finished.contains(&(r.market, r.fill_id)))
            .collect()
    }
}

impl SettlementReport for Reporter {
    fn submitted(&self, attempt: &Attempt) {
        let fresh: Vec<u64> = {
            let mut state = self.state();
            attempt
                .fills
                .iter()
                .copied()
                .filter(|id| state.submitted.insert((attempt.market, *id)))
                .collect()
        };
        for fill_id in fresh {
            self.update(attempt.market, fill_id, SettlementStatus::Submitted);
        }
    }

    fn finished(&self, attempt: &Attempt) {
        tracing::debug!(batch = attempt.batch_id, outcome = ?attempt.outcome, "settle transaction");
    }

    fn confirmed(&self, market: u32, fill_id: u64, _signature: Option<Signature>) {
        self.finish(market, fill_id, SettlementStatus::Confirmed);
    }

    fn quarantined(&self, fill: &Quarantined) {
        tracing::warn!(
            market = fill.market,
            fill_id = fill.fill_id,
            code = ?fill.code,
            error = %fill.error,
            "fill quarantined"
        );
        self.finish(fill.market, fill.fill_id, SettlementStatus::Quarantined);
    }
}
