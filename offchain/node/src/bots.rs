//! Demo trading for `kestrel devnet --bots`: a market maker that re-quotes a bid and an ask
//! around a drifting mid, and a taker that crosses the spread with immediate-or-cancel orders.
//! Both are plain SDK clients (`kestrel_sdk::rest`) signing with the demo wallets' keys, so the
//! book, trades and settlements are live from the first seconds.

use kestrel_sdk::nonce::Nonces;
use kestrel_sdk::rest::RestClient;
use kestrel_sdk::OrderBuilder;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Mid price in ticks around which the maker quotes.
const MID: u64 = 1_000;
/// How far the mid drifts either way, in ticks.
const DRIFT: u64 = 10;
/// Half the maker's spread, in ticks.
const HALF_SPREAD: u64 = 2;

/// The running bots; stop them with [`Bots::shutdown`].
pub struct Bots {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Bots {
    /// Starts the maker (signing with `maker`) and the taker (with `taker`) against the API at
    /// `http_url` for `exchange`.
    pub fn start(http_url: &str, exchange: Pubkey, maker: Keypair, taker: Keypair) -> Bots {
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(market_maker(
                RestClient::new(http_url, exchange),
                maker,
                stopped.clone(),
            )),
            tokio::spawn(taker_bot(
                RestClient::new(http_url, exchange),
                taker,
                stopped,
            )),
        ];
        Bots { stop, tasks }
    }

    /// Stops both bots and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Sleeps for `period`, or returns true at once if the bots are stopping.
async fn stopping(stopped: &mut watch::Receiver<bool>, period: Duration) -> bool {
    let slept = tokio::select! {
        _ = tokio::time::sleep(period) => true,
        _ = stopped.wait_for(|stop| *stop) => false,
    };
    !slept || *stopped.borrow()
}

/// A deterministic walk of the mid within `MID ± DRIFT`, from a step counter.
fn mid(step: u64) -> u64 {
    let span = DRIFT.saturating_mul(2).saturating_add(1);
    let phase = step
        .wrapping_mul(7)
        .wrapping_add(step.checked_div(3).unwrap_or(0))
        .checked_rem(span)
        .unwrap_or(0);
    MID.saturating_sub(DRIFT).saturating_add(phase)
}

async fn market_maker(client: RestClient, wallet: Keypair, mut stopped: watch::Receiver<bool>) {
    let nonces = Nonces::default();
    let mut step = 0u64;
    loop {
        // Cancel every earlier quote (bounded by a nonce, so the request is replay-safe),
        // then quote a fresh bid and ask around the mid.
        if let Err(err) = client.cancel_all(&wallet, nonces.next()).await {
            tracing::debug!(%err, "maker: cancel-all");
        }
        let mid = mid(step);
        step = step.wrapping_add(1);
        let quotes = [
            OrderBuilder::limit(0)
                .buy()
                .price(mid.saturating_sub(HALF_SPREAD))
                .size(5)
                .post_only(),
            OrderBuilder::limit(0)
                .sell()
                .price(mid.saturating_add(HALF_SPREAD))
                .size(5)
                .post_only(),
        ];
        for quote in quotes {
            match quote.sign(client.exchange(), &wallet, nonces.next()) {
                Ok(order) => {
                    if let Err(err) = client.place(&order).await {
                        tracing::debug!(%err, "maker: quote refused");
                    }
                }
                Err(err) => tracing::warn!(%err, "maker: cannot build a quote"),
            }
        }
        if stopping(&mut stopped, Duration::from_millis(1_000)).await {
            return;
        }
    }
}

async fn taker_bot(client: RestClient, wallet: Keypair, mut stopped: watch::Receiver<bool>) {
    let nonces = Nonces::default();
    let mut buy = true;
    loop {
        if stopping(&mut stopped, Duration::from_millis(1_500)).await {
            return;
        }
        // Cross the whole drift band: fills against the best quote on the other side.
        let order = if buy {
            OrderBuilder::limit(0)
                .buy()
                .price(MID.saturating_add(DRIFT + HALF_SPREAD))
        } else {
            OrderBuilder::limit(0)
                .sell()
                .price(MID.saturating_sub(DRIFT + HALF_SPREAD))
        };
        buy = !buy;
        match order
            .size(2)
            .ioc()
            .sign(client.exchange(), &wallet, nonces.next())
        {
            Ok(order) => {
                if let Err(err) = client.place(&order).await {
                    tracing::debug!(%err, "taker: order refused");
                }
            }
            Err(err) => tracing::warn!(%err, "taker: cannot build an order"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mid_stays_in_its_band_and_moves() {
        let mids: Vec<u64> = (0..100).map(mid).collect();
        assert!(mids.iter().all(|m| (MID - DRIFT..=MID + DRIFT).contains(m)));
        assert!(mids.windows(2).any(|w| w[0] != w[1]));
    }
}
