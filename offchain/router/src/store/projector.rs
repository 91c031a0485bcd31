//! The writer task: drains the sequencer's event channel into batches, off the hot path.

use super::{Position, Store, StoreError};
use crate::model::Sequenced;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

/// How the projector batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectorConfig {
    /// Most events per batch (per transaction). A batch only grows this large when the
    /// projection is behind (otherwise `max_delay` closes it first), and then large batches
    /// are what lets it catch up: each transaction rewrites the same hot index pages, so the
    /// cost per event falls with the batch (backlog drained on SQLite after a WebSocket burst:
    /// ~4,800 commands/s at 1,000 events, 14,000–15,000 at 20,000; docs/benchmarks.md).
    pub max_batch: usize,
    /// Longest an event waits for its batch to fill before it is written.
    pub max_delay: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            max_batch: 20_000,
            max_delay: Duration::from_millis(10),
        }
    }
}

/// Spawns the task that projects every event received on `events` into `store`, in batches
/// of up to `config.max_batch` events, each written at most `config.max_delay` after its
/// first event arrived; `written` is shown each batch once it is in the store (the API's
/// projection-lag gauge and projected position). The task ends when the channel is closed and
/// drained, returning the store's cursor, or at the first failed batch, returning its error:
/// the supervisor then replays the journal from [`Store::cursor`] (events already projected
/// are skipped).
pub fn spawn_projector(
    store: Store,
    mut events: Receiver<Sequenced>,
    config: ProjectorConfig,
    written: impl Fn(&[Sequenced]) + Send + 'static,
) -> JoinHandle<Result<Position, StoreError>> {
    let max_batch = config.max_batch.max(1);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(max_batch);
        loop {
            if events.recv_many(&mut batch, max_batch).await == 0 {
                return store.cursor().await;
            }
            let deadline = tokio::time::sleep(config.max_delay);
            tokio::pin!(deadline);
            while batch.len() < max_batch {
                let room = max_batch.saturating_sub(batch.len());
                tokio::select! {
                    received = events.recv_many(&mut batch, room) => {
                        if received == 0 {
                            break;
                        }
                    }
                    () = &mut deadline => break,
                }
            }
            store.apply_batch(&batch).await?;
            written(&batch);
            batch.clear();
        }
    })
}
