//! Recent trades and candles across a restart, seeded from the SQL store, and the parties of
//! fills not yet settled (see `unsettled_parties`).
//!
//! The in-memory projection is rebuilt at start-up from a router snapshot (books only) and the
//! journal replayed after it, so without help its trades and candles would hold only the
//! replayed fills. The SQL store keeps every fill and candle, projected up to its cursor `P`;
//! the snapshot loaded is always older than `P` (see [`crate::recovery::Recovery`]), so the
//! journal replay overlaps the store: it replays every fill after the snapshot, some of which
//! (those at or before `P`) the store already holds.
//!
//! The split is made at `P`, not at the snapshot: before the sequencer starts (the store is
//! idle then), [`MarketData::load_history`] seeds each market's trades and candles with the
//! store's newest rows, which are exactly the fills at or before `P`, and marks `P` as the end
//! of the seeded history. The replay then adds to the trades and candles only the fills after
//! `P`; a fill at or before it still publishes its feed items (a resuming client sees no gap),
//! with its candle as seeded. So no fill is lost or counted twice, whether a snapshot was
//! loaded or the whole journal is replayed, and the result equals what a projection that had
//! run without a restart would hold.
//!
//! The store keeps candles of 1 minute, 1 hour and 1 day ([`CANDLE_INTERVALS`]); a 5-minute
//! candle is merged from the 1-minute ones of its span. Volumes are summed as the live
//! projection does, saturating at `u64::MAX`.

use super::{Candle, Interval, MarketData, Position, Trade};
use crate::model::Owner;
use crate::store::{self, Store, StoreError, CANDLE_INTERVALS, MAX_PAGE};
use std::collections::{BTreeMap, VecDeque};

/// One market's seeded history, oldest first.
struct Seeded {
    trades: VecDeque<Trade>,
    candles: BTreeMap<Interval, VecDeque<Candle>>,
}

impl MarketData {
    /// Seeds every market's recent trades and candles (up to the configured caps) from
    /// `store`, whose cursor is `until`, and makes later replayed fills at or before `until`
    /// count nothing twice. Call it before any event is applied and while nothing writes to
    /// the store.
    ///
    /// Why split at the store's cursor rather than at the snapshot: the snapshot recovery
    /// loads is always older than the cursor, so the journal tail it replays overlaps the
    /// store. Seeding with every stored fill and letting the replay add only the fills after
    /// the cursor loses and doubles nothing, with or without a snapshot; a replayed fill at or
    /// before the cursor still publishes its feed items (with its candle as seeded), so a
    /// resuming WebSocket client sees no gap.
    pub async fn load_history(
        &self,
        store: &Store,
        until: store::Position,
    ) -> Result<(), StoreError> {
        let (config, markets) = {
            let inner = self.lock();
            (
                inner.config,
                inner.markets.keys().copied().collect::<Vec<_>>(),
            )
        };
        let mut seeded = Vec::with_capacity(markets.len());
        for market in markets {
            let fills = store
                .recent_trades(market, config.trades_per_market)
                .await?;
            let trades = fills
                .iter()
                .rev()
                .map(|f| Trade {
                    market,
                    fill_id: f.fill_id,
                    seq: f.position.seq,
                    timestamp_ms: f.timestamp_ms,
                    price_ticks: f.price_ticks,
                    size_lots: f.size_lots,
                    taker_side: f.taker_side,
                })
                .collect();
            let mut candles = BTreeMap::new();
            for interval in Interval::ALL {
                let kept = stored_candles(store, market, interval, config.candles_per_interval);
                candles.insert(interval, kept.await?);
            }
            seeded.push((market, Seeded { trades, candles }));
        }
        let unsettled = unsettled_parties(store).await?;
        let mut inner = self.lock();
        inner.unsettled.extend(unsettled);
        for (market, history) in seeded {
            if let Some(m) = inner.markets.get_mut(&market) {
                m.trades = history.trades;
                m.candles = history.candles;
            }
        }
        inner.history_until = Position {
            seq: until.seq,
            index: until.index,
        };
        Ok(())
    }
}

/// The parties of every fill the store holds whose settlement is not final. Settlement updates
/// go to a fill's maker and taker, whom market data learns from the fill itself; a fill older
/// than the snapshot recovery starts from is not replayed, so without these its later
/// settlement would reach no one. (A fill the replay does repeat is keyed the same.)
async fn unsettled_parties(store: &Store) -> Result<Vec<((u32, u64), [Owner; 2])>, StoreError> {
    let mut parties = Vec::new();
    let mut after = store::Position::default();
    loop {
        let page = store.unsettled_fills(after, MAX_PAGE).await?;
        parties.extend(
            page.iter()
                .map(|f| ((f.market, f.fill_id), [f.maker, f.taker])),
        );
        match page.last() {
            Some(last) if page.len() >= usize::try_from(MAX_PAGE).unwrap_or(usize::MAX) => {
                after = last.position;
            }
            _ => return Ok(parties),
        }
    }
}

/// The newest `cap` candles of `interval`, oldest first, from the widest stored interval that
/// divides it (itself when the store keeps it).
async fn stored_candles(
    store: &Store,
    market: u32,
    interval: Interval,
    cap: usize,
) -> Result<VecDeque<Candle>, StoreError> {
    let width_secs = interval.millis() / 1_000;
    let Some(source_secs) = CANDLE_INTERVALS
        .into_iter()
        .rev()
        .find(|s| width_secs.checked_rem(*s) == Some(0))
    else {
        return Ok(VecDeque::new());
    };
    // Each candle of `interval` spans at most `per` stored ones, so this many rows hold the
    // newest `cap` candles whole, plus perhaps a partial older one that is dropped below.
    let per = width_secs
        .checked_div(source_secs)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    let rows = store
        .latest_candles(market, source_secs, cap.saturating_mul(per))
        .await?;
    let mut candles: VecDeque<Candle> = VecDeque::new();
    for row in rows.iter().rev() {
        let start_ms = interval.start_of(row.open_time.saturating_mul(1_000));
        let volume = u64::try_from(row.volume_lots).unwrap_or(u64::MAX);
        match candles.back_mut() {
            Some(c) if c.start_ms == start_ms => {
                c.high = c.high.max(row.high_ticks);
                c.low = c.low.min(row.low_ticks);
                c.close = row.close_ticks;
                c.volume_lots = c.volume_lots.saturating_add(volume);
                c.trades = c.trades.saturating_add(row.trades);
            }
            _ => candles.push_back(Candle {
                market,
                interval,
                start_ms,
                open: row.open_ticks,
                high: row.high_ticks,
                low: row.low_ticks,
                close: row.close_ticks,
                volume_lots: volume,
                trades: row.trades,
            }),
        }
    }
    while candles.len() > cap {
        candles.pop_front();
    }
    Ok(candles)
}
