//! Where the client stands in the feed, so a reconnect resumes with no gap and no duplicate.
//!
//! One event can produce several items at the same position (a fill is a trade, four candles
//! and a private fill), and a connection can drop between them. Resuming from the last
//! position seen would then skip the rest of that event, so the cursor resumes from the last
//! position known to be *complete* (the one before the newest) and drops, by channel, the
//! items of the newest position it has already delivered.

use super::types::Position;
use std::collections::HashSet;

/// The client's place in the feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Every item at or before this position has been delivered (or predates the stream).
    complete: Option<Position>,
    /// The newest position with delivered items, and the channels delivered there.
    newest: Option<(Position, HashSet<String>)>,
}

impl Cursor {
    /// Starts afresh at `position` (a snapshot or subscription point): items after it are new.
    pub(crate) fn start(&mut self, position: Position) {
        self.complete = Some(position);
        self.newest = None;
    }

    /// The position to resume from, if the client has been subscribed before.
    pub(crate) fn resume(&self) -> Option<Position> {
        self.complete
    }

    /// Records an item; false if it was delivered before and must be dropped.
    pub(crate) fn admit(&mut self, position: Position, channel: &str) -> bool {
        if self.complete.is_some_and(|c| position <= c) {
            return false;
        }
        match &mut self.newest {
            Some((newest, channels)) if *newest == position => channels.insert(channel.to_owned()),
            Some((newest, _)) if *newest > position => false,
            _ => {
                if let Some((newest, _)) = self.newest.take() {
                    self.complete = Some(newest);
                }
                self.newest = Some((position, HashSet::from([channel.to_owned()])));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64, index: u32) -> Position {
        Position { seq, index }
    }

    #[test]
    fn resumes_before_a_partly_delivered_position_and_drops_what_was_seen() {
        let mut cursor = Cursor::default();
        assert_eq!(cursor.resume(), None);
        cursor.start(at(10, 0));
        assert!(!cursor.admit(at(10, 0), "book:0"));
        assert!(cursor.admit(at(11, 0), "book:0"));
        assert!(cursor.admit(at(12, 1), "trades:0"));
        assert!(cursor.admit(at(12, 1), "candles:0:1m"));
        // The connection drops before the rest of position 12/1 arrives.
        assert_eq!(cursor.resume(), Some(at(11, 0)));
        // The replay repeats 12/1 in full: only the unseen channel passes.
        assert!(!cursor.admit(at(12, 1), "trades:0"));
        assert!(!cursor.admit(at(12, 1), "candles:0:1m"));
        assert!(cursor.admit(at(12, 1), "fills"));
        assert!(!cursor.admit(at(11, 0), "book:0"));
        assert!(cursor.admit(at(13, 0), "book:0"));
        assert_eq!(cursor.resume(), Some(at(12, 1)));
        cursor.start(at(20, 0));
        assert_eq!(cursor.resume(), Some(at(20, 0)));
        assert!(!cursor.admit(at(13, 0), "book:0"));
    }
}
