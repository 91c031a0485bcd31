//! Market data across a restart from a snapshot: recent trades and candles (the fills the SQL
//! store holds are seeded from it, the journal tail after the snapshot adds only the others),
//! and settlement updates of fills older than the snapshot, which still reach both parties.

use crate::support::*;
use crate::ws::Client;
use kestrel::encoding::Side;
use kestrel_router::model::{Command, SettlementStatus};
use kestrel_router::snapshot::{self, SnapshotConfig};
use serde_json::Value;

const TRADES: &str = "/v1/markets/0/trades?limit=1000";

fn candles(interval: &str) -> String {
    format!("/v1/markets/0/candles?interval={interval}&limit=1000")
}

/// Trades and candles of every interval, as REST shows them.
async fn history(t: &TestApi) -> Vec<Value> {
    let mut out = vec![t.get(TRADES).await.1];
    for interval in ["1m", "5m", "1h", "1d"] {
        out.push(t.get(&candles(interval)).await.1);
    }
    out
}

/// The API config with a snapshot every 3 commands: the one recovery loads is older than the
/// store's cursor (the shutdown snapshot is too new to use), so the replayed tail holds fills
/// the store already has, and fills before the snapshot are not replayed at all.
fn snapshotting(dir: &std::path::Path) -> kestrel_router::api::ApiConfig {
    let mut config = config(dir);
    config.sequencer.snapshots = SnapshotConfig {
        every_commands: 3,
        ..SnapshotConfig::default()
    };
    config
}

/// A maker's sell and a taker's buy that takes it: two commands, one fill.
async fn cross(t: &TestApi, maker: &mut Wallet, taker: &mut Wallet, price: u64, lots: u64) {
    let sell = maker.order(Side::Sell, price, lots);
    assert_eq!(t.post("/v1/orders", &sell).await.0, 200);
    let buy = taker.order(Side::Buy, price, lots);
    assert_eq!(t.post("/v1/orders", &buy).await.0, 200);
}

fn total_trades(candles: &Value) -> u64 {
    candles
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["trades"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_and_candles_survive_a_restart_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = snapshotting(dir.path());
    let journal = dir.path().join("journal");
    let t = TestApi::start_in(dir, config.clone()).await;
    let (mut maker, mut taker) = funded(&t).await;
    for (price, lots) in [(1_500, 4), (1_520, 2), (1_480, 3), (1_510, 1)] {
        cross(&t, &mut maker, &mut taker, price, lots).await;
    }
    let trades = t
        .eventually(TRADES, |v| v.as_array().is_some_and(|a| a.len() == 4))
        .await;
    let before = history(&t).await;
    let last_fill_seq = trades[0]["seq"].as_u64().unwrap();
    let TestApi { api, dir, .. } = t;
    api.shutdown().await.unwrap();
    let snapshots = snapshot::list(&journal).unwrap();
    assert!(
        snapshots
            .iter()
            .any(|(seq, _)| *seq > 0 && *seq < last_fill_seq),
        "no snapshot before the last fill: {snapshots:?}"
    );

    let t = TestApi::start_in(dir, config).await;
    // The replayed tail reaches market data shortly after start.
    let after = t
        .eventually(TRADES, |v| v.as_array().is_some_and(|a| a.len() >= 4))
        .await;
    assert_eq!(after, before[0], "trades across the restart");
    assert_eq!(
        history(&t).await,
        before,
        "trades and candles across the restart"
    );
    assert_eq!(total_trades(&before[1]), 4, "{}", before[1]);

    // A fill after the restart is added once, to the trades and to every interval's candle.
    cross(&t, &mut maker, &mut taker, 1_530, 5).await;
    let trades = t
        .eventually(TRADES, |v| v.as_array().is_some_and(|a| a.len() > 4))
        .await;
    let ids: Vec<u64> = trades
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["fill_id"].as_u64().unwrap())
        .collect();
    let first = ids[ids.len() - 1];
    assert_eq!(ids, (first..first + 5).rev().collect::<Vec<_>>());
    assert_eq!(trades[0]["price_ticks"].as_u64(), Some(1_530));
    assert_eq!(
        &trades.as_array().unwrap()[1..],
        before[0].as_array().unwrap()
    );
    for interval in ["1m", "5m", "1h", "1d"] {
        let (_, got) = t.get(&candles(interval)).await;
        assert_eq!(total_trades(&got), 5, "{interval}: {got}");
        assert_eq!(got[0]["close"].as_u64(), Some(1_530), "{interval}");
    }
    t.api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_of_a_fill_older_than_the_snapshot_reaches_both_parties() {
    let dir = tempfile::tempdir().unwrap();
    let config = snapshotting(dir.path());
    let journal = dir.path().join("journal");
    let t = TestApi::start_in(dir, config.clone()).await;
    let (mut maker, mut taker) = funded(&t).await;
    cross(&t, &mut maker, &mut taker, 1_500, 4).await;
    let trades = t
        .eventually(TRADES, |v| v.as_array().is_some_and(|a| a.len() == 1))
        .await;
    let (fill_id, fill_seq) = (
        trades[0]["fill_id"].as_u64().unwrap(),
        trades[0]["seq"].as_u64().unwrap(),
    );
    // More commands, so that recovery starts from a snapshot taken after the fill.
    for price in [1_600, 1_610, 1_620, 1_630] {
        assert_eq!(
            t.post("/v1/orders", &maker.order(Side::Sell, price, 1))
                .await
                .0,
            200
        );
    }
    let TestApi { api, dir, .. } = t;
    api.shutdown().await.unwrap();
    let snapshots = snapshot::list(&journal).unwrap();
    let t = TestApi::start_in(dir, config).await;
    assert!(
        snapshots.iter().any(|(seq, _)| *seq > fill_seq),
        "no snapshot after the fill: {snapshots:?}"
    );

    let mut watchers = Vec::new();
    for wallet in [&maker, &taker] {
        let mut c = Client::connect(&t).await;
        c.auth(wallet).await;
        c.subscribe(&["settlement"], None).await;
        watchers.push(c);
    }
    for status in [SettlementStatus::Submitted, SettlementStatus::Confirmed] {
        let command = Command::SettlementUpdate {
            market: 0,
            fill_id,
            status,
        };
        t.api.sequencer().submit(command).await.unwrap();
        for c in &mut watchers {
            let update = c.until("event").await;
            assert_eq!(
                (
                    update["channel"].as_str(),
                    update["data"]["fill_id"].as_u64()
                ),
                (Some("settlement"), Some(fill_id)),
                "{update}"
            );
        }
    }
    t.api.shutdown().await.unwrap();
}
