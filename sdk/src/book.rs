//! A local L2 book kept from the WebSocket feed: a snapshot, then deltas.
//!
//! A delta carries its market's sequence number, which grows with every engine event of the
//! market (acceptances and fills too), so consecutive deltas need not be consecutive numbers.
//! The book drops deltas at or before its sequence (already in the snapshot), and detects a
//! gap when a delta removes a level it does not have. The feed itself is gap-free across
//! reconnects ([`crate::ws`]); when the router cannot resume, the client reports
//! [`WsEvent::Resync`](crate::ws::WsEvent::Resync): call [`L2Book::invalidate`] and wait for
//! the snapshot that follows. After a gap, ask for a snapshot with
//! [`WsClient::resnapshot`](crate::ws::WsClient::resnapshot).

use crate::ws::{BookDelta, BookSnapshot, Level};
use std::collections::BTreeMap;

/// Why a delta could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// The book has had no snapshot since it was created or since a gap.
    #[error("the book of market {0} needs a snapshot")]
    NotSynced(u32),
    /// A delta contradicts the book (it removes a level the book does not have): updates
    /// were missed. The book is unsynced until the next snapshot.
    #[error("gap in market {market} at sequence {market_seq}")]
    Gap {
        /// Market index.
        market: u32,
        /// Sequence number of the contradicting delta.
        market_seq: u64,
    },
    /// The update is for another market.
    #[error("update for market {got} applied to the book of market {market}")]
    WrongMarket {
        /// This book's market.
        market: u32,
        /// The update's market.
        got: u64,
    },
    /// The delta's side is neither 0 (bid) nor 1 (ask).
    #[error("invalid side {0}")]
    InvalidSide(u8),
}

/// What applying a delta did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The delta was newer than the book and changed it.
    Changed,
    /// The delta was already in the book (at or before its sequence); nothing changed.
    Stale,
}

/// One market's aggregated book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Book {
    market: u32,
    market_seq: u64,
    synced: bool,
    bids: BTreeMap<u64, Level>,
    asks: BTreeMap<u64, Level>,
}

impl L2Book {
    /// An empty, unsynced book of `market`.
    pub fn new(market: u32) -> L2Book {
        L2Book {
            market,
            market_seq: 0,
            synced: false,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
        }
    }

    /// The market.
    pub fn market(&self) -> u32 {
        self.market
    }

    /// Sequence number of the last delta in the book.
    pub fn market_seq(&self) -> u64 {
        self.market_seq
    }

    /// Whether the book has a snapshot and no gap since.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Replaces the book with `snapshot`.
    pub fn apply_snapshot(&mut self, snapshot: &BookSnapshot) -> Result<(), BookError> {
        if snapshot.market != self.market {
            return Err(BookError::WrongMarket {
                market: self.market,
                got: u64::from(snapshot.market),
            });
        }
        let levels = |side: &[Level]| {
            side.iter()
                .filter(|l| l.size_lots > 0)
                .map(|l| (l.price_ticks, *l))
                .collect()
        };
        self.bids = levels(&snapshot.bids);
        self.asks = levels(&snapshot.asks);
        self.market_seq = snapshot.market_seq;
        self.synced = true;
        Ok(())
    }

    /// Marks the book unsynced (after [`WsEvent::Resync`](crate::ws::WsEvent::Resync)): deltas
    /// are refused until the next snapshot.
    pub fn invalidate(&mut self) {
        self.synced = false;
    }

    /// Applies a delta. A delta at or before the book's sequence is [`Applied::Stale`] (it is
    /// in the snapshot already); one that removes a missing level is a [`BookError::Gap`].
    pub fn apply_delta(&mut self, delta: &BookDelta) -> Result<Applied, BookError> {
        if delta.market != self.market {
            return Err(BookError::WrongMarket {
                market: self.market,
                got: u64::from(delta.market),
            });
        }
        if !self.synced {
            return Err(BookError::NotSynced(self.market));
        }
        if delta.market_seq <= self.market_seq {
            return Ok(Applied::Stale);
        }
        let side = match delta.side {
            0 => &mut self.bids,
            1 => &mut self.asks,
            other => return Err(BookError::InvalidSide(other)),
        };
        if delta.size_lots == 0 {
            if side.remove(&delta.price_ticks).is_none() {
                self.synced = false;
                return Err(BookError::Gap {
                    market: self.market,
                    market_seq: delta.market_seq,
                });
            }
        } else {
            side.insert(
                delta.price_ticks,
                Level {
                    price_ticks: delta.price_ticks,
                    size_lots: delta.size_lots,
                    orders: delta.orders,
                },
            );
        }
        self.market_seq = delta.market_seq;
        Ok(Applied::Changed)
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = &Level> {
        self.bids.values().rev()
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = &Level> {
        self.asks.values()
    }

    /// The best bid.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.values().next_back().copied()
    }

    /// The best ask.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.values().next().copied()
    }

    /// The mid price in ticks (rounded down), when both sides have a level.
    pub fn mid(&self) -> Option<u64> {
        let (bid, ask) = (self.best_bid()?, self.best_ask()?);
        let sum = u128::from(bid.price_ticks).checked_add(u128::from(ask.price_ticks))?;
        u64::try_from(sum / 2).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::Position;

    fn level(price_ticks: u64, size_lots: u64) -> Level {
        Level {
            price_ticks,
            size_lots,
            orders: 1,
        }
    }

    fn delta(market_seq: u64, side: u8, price_ticks: u64, size_lots: u64) -> BookDelta {
        BookDelta {
            market: 0,
            market_seq,
            side,
            price_ticks,
            size_lots,
            orders: u32::from(size_lots > 0),
        }
    }

    #[test]
    fn snapshot_then_deltas_in_sequence_and_gaps_are_refused() {
        let mut book = L2Book::new(0);
        assert_eq!(
            book.apply_delta(&delta(1, 0, 10, 1)),
            Err(BookError::NotSynced(0))
        );
        let snapshot = BookSnapshot {
            market: 0,
            market_seq: 5,
            position: Position::default(),
            bids: vec![level(99, 3), level(98, 1)],
            asks: vec![level(101, 2)],
        };
        assert_eq!(book.apply_snapshot(&snapshot), Ok(()));
        assert_eq!(book.mid(), Some(100));
        assert_eq!(book.apply_delta(&delta(5, 0, 99, 7)), Ok(Applied::Stale));
        assert_eq!(book.best_bid(), Some(level(99, 3)));
        assert_eq!(book.apply_delta(&delta(6, 0, 99, 0)), Ok(Applied::Changed));
        assert_eq!(book.apply_delta(&delta(7, 1, 100, 4)), Ok(Applied::Changed));
        assert_eq!(book.best_bid(), Some(level(98, 1)));
        assert_eq!(book.best_ask(), Some(level(100, 4)));
        assert_eq!(book.asks().count(), 2);
        assert_eq!(
            book.apply_delta(&delta(8, 2, 1, 1)),
            Err(BookError::InvalidSide(2))
        );
        // Sequence numbers need not be consecutive.
        assert_eq!(
            book.apply_delta(&delta(12, 1, 103, 1)),
            Ok(Applied::Changed)
        );
        assert_eq!(
            book.apply_delta(&delta(14, 1, 102, 0)),
            Err(BookError::Gap {
                market: 0,
                market_seq: 14
            })
        );
        assert!(!book.is_synced());
        assert_eq!(
            book.apply_delta(&delta(15, 1, 100, 0)),
            Err(BookError::NotSynced(0))
        );
        assert_eq!(book.apply_snapshot(&snapshot), Ok(()));
        book.invalidate();
        assert_eq!(
            book.apply_delta(&delta(16, 1, 100, 0)),
            Err(BookError::NotSynced(0))
        );
        let mut other = delta(8, 0, 1, 1);
        other.market = 1;
        assert!(matches!(
            book.apply_delta(&other),
            Err(BookError::WrongMarket { .. })
        ));
    }
}
