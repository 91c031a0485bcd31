//! What wakes the settlement loop in-process: the router's market data reports every trade
//! (one per fill) with the position of its event, which the store's cursor reaches once the
//! fill is projected.

use kestrel_router::marketdata::{Item, Topic};
use kestrel_router::store::Position;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Wake-ups of the settlement loop: the position of the newest fill the router reported.
pub type Wake = watch::Receiver<Position>;

/// Follows the router's market data and reports the position of every trade (one per fill):
/// the settlement loop's wake-up. The task ends with the feed.
pub fn feed_wake(mut feed: broadcast::Receiver<Arc<[Item]>>) -> Wake {
    let (tx, rx) = watch::channel(Position::default());
    tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(items) => {
                    let newest = items
                        .iter()
                        .filter(|item| matches!(item.topic, Topic::Trades(_)))
                        .map(|item| item.position)
                        .max();
                    if let Some(position) = newest {
                        let position = Position {
                            seq: position.seq,
                            index: position.index,
                        };
                        tx.send_modify(|p| *p = (*p).max(position));
                    }
                }
                // Fills were missed: wake the loop all the same, the store has them.
                Err(broadcast::error::RecvError::Lagged(_)) => tx.send_modify(|_| {}),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    rx
}

/// Resolves when `wake` reports a new fill; never while there is no (more) feed.
pub(super) async fn woken(wake: &mut Option<Wake>) {
    if let Some(rx) = wake {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    *wake = None;
    std::future::pending::<()>().await;
}
