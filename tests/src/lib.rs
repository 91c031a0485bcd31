//! What every end-to-end test here shares, whichever composition it starts (the devnet in
//! process, or the router and relayer as child processes).

use std::future::Future;
use std::time::Duration;

/// Polls `check` every `every` until it yields a value; panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}
