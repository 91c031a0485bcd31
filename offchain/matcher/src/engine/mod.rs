//! The matching engine of one market: commands in, events out.

mod matching;
mod view;

pub use view::{LevelView, RestingOrder};

use crate::book::{Book, NIL};
use crate::command::{CancelTarget, Command};
use crate::config::{ConfigError, MarketConfig};
use crate::event::{BookDelta, Done, DoneReason, Event, EventSink, RejectReason, Rejected};
use crate::types::{Lots, OrderId, Side, Ticks, Timestamp, UserId};

/// One market's order book and matcher.
///
/// [`Engine::apply`] is the only way to change it. Given the same configuration, commands and
/// timestamps it produces the same events and the same [`Engine::state_hash`], which is what
/// makes journal replay exact. It never allocates after [`Engine::new`] (all storage is sized
/// for `max_orders`), never panics on any command, and never reads a clock.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) config: MarketConfig,
    pub(crate) book: Book,
    /// Sequence number of the next event (the first event is 1).
    pub(crate) next_seq: u64,
    /// Id of the next fill (the first fill is 1).
    pub(crate) next_fill_id: u64,
    /// Time priority of the next order that rests.
    pub(crate) next_stamp: u64,
}

impl Engine {
    /// An empty book for `config`, with all storage allocated.
    pub fn new(config: MarketConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        Ok(Engine {
            config,
            book: Book::with_capacity(config.max_orders).map_err(|_| ConfigError::OutOfMemory)?,
            next_seq: 1,
            next_fill_id: 1,
            next_stamp: 1,
        })
    }

    /// The market's configuration.
    pub fn config(&self) -> &MarketConfig {
        &self.config
    }

    /// Sequence number of the last event emitted (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Id of the last fill (0 before the first).
    pub fn last_fill_id(&self) -> u64 {
        self.next_fill_id.saturating_sub(1)
    }

    /// Applies one command stamped `now`, sending its events to `sink`.
    ///
    /// First every resting order whose expiry is at or before `now` (in whole seconds) is
    /// expired, in `(expiry, order id)` order; then the command runs.
    pub fn apply<S: EventSink + ?Sized>(&mut self, cmd: &Command, now: Timestamp, sink: &mut S) {
        self.expire_due(now, sink);
        match cmd {
            Command::Place(order) => self.place(order, now, sink),
            Command::Cancel { user, target } => self.cancel(user, *target, sink),
            Command::CancelAll { user, side } => self.cancel_all(user, *side, sink),
            Command::Replace(replace) => self.replace(replace, now, sink),
            Command::ExpireDue => {}
        }
    }

    pub(crate) fn seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        seq
    }

    pub(crate) fn reject<S: EventSink + ?Sized>(
        &mut self,
        user: UserId,
        order_id: Option<OrderId>,
        reason: RejectReason,
        sink: &mut S,
    ) {
        let seq = self.seq();
        sink.emit(Event::Rejected(Rejected {
            seq,
            user,
            order_id,
            reason,
        }));
    }

    pub(crate) fn done<S: EventSink + ?Sized>(
        &mut self,
        order_id: OrderId,
        user: UserId,
        reason: DoneReason,
        remaining: Lots,
        sink: &mut S,
    ) {
        let seq = self.seq();
        sink.emit(Event::Done(Done {
            seq,
            order_id,
            user,
            reason,
            remaining,
        }));
    }

    /// Emits the aggregate of `level` (a level that is gone reports zero).
    pub(crate) fn delta<S: EventSink + ?Sized>(
        &mut self,
        side: Side,
        price: Ticks,
        level: Option<u32>,
        sink: &mut S,
    ) {
        let (size, orders) = match level {
            Some(l) => {
                let level = self.book.level(l);
                (level.total, level.count)
            }
            None => (Lots::ZERO, 0),
        };
        let seq = self.seq();
        sink.emit(Event::BookDelta(BookDelta {
            seq,
            side,
            price,
            size,
            orders,
        }));
    }

    /// Removes a resting order and reports it done, then its level's new aggregate.
    pub(crate) fn remove_order<S: EventSink + ?Sized>(
        &mut self,
        slot: u32,
        reason: DoneReason,
        sink: &mut S,
    ) {
        let user = self.book.user_key(self.book.order(slot).user);
        let (node, dropped) = self.book.remove(slot);
        self.done(node.id, user, reason, node.remaining, sink);
        self.delta(
            node.side,
            node.price,
            (!dropped).then_some(node.level),
            sink,
        );
    }

    fn expire_due<S: EventSink + ?Sized>(&mut self, now: Timestamp, sink: &mut S) {
        let now = now.unix_seconds();
        while let Some(slot) = self.book.next_expiring() {
            if self.book.order(slot).expiry > now {
                break;
            }
            self.remove_order(slot, DoneReason::Expired, sink);
        }
    }

    fn cancel<S: EventSink + ?Sized>(&mut self, user: &UserId, target: CancelTarget, sink: &mut S) {
        let (slot, named) = match target {
            CancelTarget::OrderId(id) => (self.book.find(id), Some(id)),
            CancelTarget::ClientOrderId(cid) => (self.book.find_client(user, cid), None),
        };
        let Some(slot) = slot else {
            self.reject(*user, named, RejectReason::UnknownOrder, sink);
            return;
        };
        if self.book.user_key(self.book.order(slot).user) != *user {
            self.reject(*user, named, RejectReason::NotOrderOwner, sink);
            return;
        }
        self.remove_order(slot, DoneReason::Cancelled, sink);
    }

    fn cancel_all<S: EventSink + ?Sized>(
        &mut self,
        user: &UserId,
        side: Option<Side>,
        sink: &mut S,
    ) {
        let Some(u) = self.book.user_slot(user) else {
            return;
        };
        let mut slot = self.book.user_head(u);
        while slot != NIL {
            let node = self.book.order(slot);
            let next = node.user_next;
            if side.is_none_or(|s| s == node.side) {
                self.remove_order(slot, DoneReason::Cancelled, sink);
            }
            slot = next;
        }
    }
}
