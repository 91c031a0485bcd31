//! The slot clock: the bank moves to the next slot every interval, as a validator's would.

use super::bank::Bank;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub(crate) fn spawn(
    bank: Arc<Bank>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick completes at once: the genesis slot lasts a whole interval too.
        ticks.tick().await;
        let stop = async move {
            // An error means the chain handle is gone: stop as well.
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = ticks.tick() => {
                    if let Err(err) = bank.advance_slot().await {
                        tracing::error!(%err, "embedded chain: the slot did not advance");
                    }
                }
            }
        }
    })
}
