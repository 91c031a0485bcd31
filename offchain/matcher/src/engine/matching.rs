//! Placing, replacing and matching orders.
//!
//! Event order, which the reference book in the tests reproduces exactly:
//! 1. `Accepted` (or `Replaced`, followed by the old level's `BookDelta` if the order moved);
//! 2. per maker, in price-time order: `Fill` or `SelfTradeDecrement`, then `Done` if the maker
//!    left the book; after the last maker touched at a level, that level's `BookDelta`;
//! 3. finally the taker's `Done`, or, if it rests, its level's `BookDelta`.

use super::Engine;
use crate::book::{NewResting, NIL};
use crate::command::{PlaceOrder, ReplaceOrder};
use crate::event::{
    Accepted, DoneReason, Event, EventSink, Fill, RejectReason, Replaced, SelfTradeDecrement,
};
use crate::types::{
    ClientOrderId, Lots, OrderId, OrderType, SelfTradeMode, Side, Ticks, Timestamp, UserId,
};

/// An order while it takes liquidity.
struct Taker {
    id: OrderId,
    user: UserId,
    /// The user's slot in the book, if the user has resting orders.
    own: Option<u32>,
    /// For a replaced order: its slot (detached from its level while it takes).
    resting: Option<u32>,
    client_order_id: Option<ClientOrderId>,
    side: Side,
    limit: Ticks,
    remaining: Lots,
    order_type: OrderType,
    self_trade: SelfTradeMode,
    nonce: u64,
    expiry: u64,
}

/// How matching stopped.
enum MatchEnd {
    /// Nothing left to take at the limit; the taker may still have a remainder.
    Exhausted,
    /// The taker is completely filled.
    Filled,
    /// Self-trade prevention ended the taker.
    SelfTrade,
}

impl Engine {
    pub(super) fn place<S: EventSink + ?Sized>(
        &mut self,
        o: &PlaceOrder,
        now: Timestamp,
        sink: &mut S,
    ) {
        let price = match self.check_place(o, now) {
            Ok(price) => price,
            Err(reason) => return self.reject(o.user, Some(o.order_id), reason, sink),
        };
        let seq = self.seq();
        sink.emit(Event::Accepted(Accepted {
            seq,
            order_id: o.order_id,
            user: o.user,
            client_order_id: o.client_order_id,
            side: o.side,
            price,
            size: o.size,
            order_type: o.order_type,
        }));
        let taker = Taker {
            id: o.order_id,
            user: o.user,
            own: self.book.user_slot(&o.user),
            resting: None,
            client_order_id: o.client_order_id,
            side: o.side,
            limit: price,
            remaining: o.size,
            order_type: o.order_type,
            self_trade: o.self_trade,
            nonce: o.nonce,
            expiry: o.expiry,
        };
        self.execute(taker, sink);
    }

    /// Validates a new order; returns its effective price (slid for post-only slide).
    fn check_place(&self, o: &PlaceOrder, now: Timestamp) -> Result<Ticks, RejectReason> {
        self.check_terms(o.price, o.size, o.expiry, now)?;
        if self.book.find(o.order_id).is_some() {
            return Err(RejectReason::DuplicateOrderId);
        }
        if let Some(cid) = o.client_order_id {
            if self.book.find_client(&o.user, cid).is_some() {
                return Err(RejectReason::DuplicateClientOrderId);
            }
        }
        if o.order_type.may_rest() && self.book.len() >= self.config.max_orders {
            return Err(RejectReason::BookFull);
        }
        let price = self.post_only_price(o.order_type, o.side, o.price)?;
        if o.order_type == OrderType::FillOrKill && !self.can_fill(o) {
            return Err(RejectReason::FillOrKillUnfillable);
        }
        Ok(price)
    }

    fn check_terms(
        &self,
        price: Ticks,
        size: Lots,
        expiry: u64,
        now: Timestamp,
    ) -> Result<(), RejectReason> {
        if size < self.config.min_size {
            return Err(RejectReason::SizeBelowMinimum);
        }
        if size > self.config.max_size {
            return Err(RejectReason::SizeAboveMaximum);
        }
        if !self.config.price_in_band(price) {
            return Err(RejectReason::PriceOutOfBand);
        }
        if expiry != 0 && expiry <= now.unix_seconds() {
            return Err(RejectReason::AlreadyExpired);
        }
        Ok(())
    }

    /// For post-only types: rejects or slides a price that would cross the best opposite level.
    fn post_only_price(
        &self,
        order_type: OrderType,
        side: Side,
        price: Ticks,
    ) -> Result<Ticks, RejectReason> {
        if !order_type.is_post_only() {
            return Ok(price);
        }
        let Some(best) = self.book.best(side.opposite()) else {
            return Ok(price);
        };
        let best = self.book.level(best).price;
        if !side.crosses(price, best) {
            return Ok(price);
        }
        if order_type == OrderType::PostOnly {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        let slid = match side {
            Side::Buy => best.0.checked_sub(1),
            Side::Sell => best.0.checked_add(1),
        };
        match slid.map(Ticks) {
            Some(p) if self.config.price_in_band(p) => Ok(p),
            _ => Err(RejectReason::PriceOutOfBand),
        }
    }

    /// Whether a fill-or-kill order would fill completely: walks the crossing makers in
    /// priority order; the taker's own makers are skipped under cancel-maker and end the walk
    /// under every other self-trade mode.
    fn can_fill(&self, o: &PlaceOrder) -> bool {
        let own = self.book.user_slot(&o.user);
        let mut available = 0u64;
        for level in self.book.levels_from_best(o.side.opposite()) {
            let level = self.book.level(level);
            if !o.side.crosses(o.price, level.price) {
                return false;
            }
            let mut slot = level.head;
            while slot != NIL {
                let maker = self.book.order(slot);
                if Some(maker.user) == own {
                    if o.self_trade != SelfTradeMode::CancelMaker {
                        return false;
                    }
                } else {
                    available = available.saturating_add(maker.remaining.0);
                    if available >= o.size.0 {
                        return true;
                    }
                }
                slot = maker.next;
            }
        }
        false
    }

    pub(super) fn replace<S: EventSink + ?Sized>(
        &mut self,
        r: &ReplaceOrder,
        now: Timestamp,
        sink: &mut S,
    ) {
        let Some(slot) = self.book.find(r.order_id) else {
            return self.reject(r.user, Some(r.order_id), RejectReason::UnknownOrder, sink);
        };
        let node = *self.book.order(slot);
        if self.book.user_key(node.user) != r.user {
            return self.reject(r.user, Some(r.order_id), RejectReason::NotOrderOwner, sink);
        }
        if let Err(reason) = self.check_terms(r.price, r.size, r.expiry, now) {
            return self.reject(r.user, Some(r.order_id), reason, sink);
        }
        if r.price == node.price && r.size <= node.remaining {
            let by = Lots(node.remaining.0.saturating_sub(r.size.0));
            self.book.reduce(slot, by);
            self.book.set_terms(slot, r.nonce, r.expiry);
            let seq = self.seq();
            sink.emit(Event::Replaced(Replaced {
                seq,
                order_id: r.order_id,
                price: r.price,
                size: r.size,
                kept_priority: true,
            }));
            if by.0 != 0 {
                self.delta(node.side, node.price, Some(node.level), sink);
            }
            return;
        }
        let price = match self.post_only_price(node.order_type, node.side, r.price) {
            Ok(price) => price,
            Err(reason) => return self.reject(r.user, Some(r.order_id), reason, sink),
        };
        let dropped = self.book.detach(slot);
        self.book.set_terms(slot, r.nonce, r.expiry);
        let seq = self.seq();
        sink.emit(Event::Replaced(Replaced {
            seq,
            order_id: r.order_id,
            price,
            size: r.size,
            kept_priority: false,
        }));
        self.delta(
            node.side,
            node.price,
            (!dropped).then_some(node.level),
            sink,
        );
        let taker = Taker {
            id: node.id,
            user: r.user,
            own: Some(node.user),
            resting: Some(slot),
            client_order_id: node.client_order_id,
            side: node.side,
            limit: price,
            remaining: r.size,
            order_type: node.order_type,
            self_trade: node.self_trade,
            nonce: r.nonce,
            expiry: r.expiry,
        };
        self.execute(taker, sink);
    }

    /// Matches a taker, then rests its remainder or reports it done.
    fn execute<S: EventSink + ?Sized>(&mut self, mut t: Taker, sink: &mut S) {
        let end = self.take(&mut t, sink);
        let rests = matches!(end, MatchEnd::Exhausted) && t.order_type.may_rest();
        if !rests {
            if let Some(slot) = t.resting {
                self.book.remove(slot);
            }
            let reason = match end {
                MatchEnd::Filled => DoneReason::Filled,
                MatchEnd::SelfTrade => DoneReason::SelfTrade,
                MatchEnd::Exhausted => DoneReason::Unmatched,
            };
            return self.done(t.id, t.user, reason, t.remaining, sink);
        }
        let stamp = self.next_stamp;
        self.next_stamp = stamp.saturating_add(1);
        let slot = match t.resting {
            Some(slot) => {
                self.book.attach(slot, t.limit, t.remaining, stamp);
                slot
            }
            None => self.book.insert(
                NewResting {
                    id: t.id,
                    user: t.user,
                    client_order_id: t.client_order_id,
                    side: t.side,
                    price: t.limit,
                    size: t.remaining,
                    order_type: t.order_type,
                    self_trade: t.self_trade,
                    nonce: t.nonce,
                    expiry: t.expiry,
                    stamp,
                },
                t.own,
            ),
        };
        let level = self.book.order(slot).level;
        self.delta(t.side, t.limit, Some(level), sink);
    }

    /// Takes liquidity level by level while the taker's limit crosses the best opposite price.
    fn take<S: EventSink + ?Sized>(&mut self, t: &mut Taker, sink: &mut S) -> MatchEnd {
        let maker_side = t.side.opposite();
        let own = t.own;
        loop {
            if t.remaining.0 == 0 {
                return MatchEnd::Filled;
            }
            let Some(level) = self.book.best(maker_side) else {
                return MatchEnd::Exhausted;
            };
            let (price, mut slot) = {
                let level = self.book.level(level);
                (level.price, level.head)
            };
            if !t.side.crosses(t.limit, price) {
                return MatchEnd::Exhausted;
            }
            let mut changed = false;
            let mut end = None;
            while slot != NIL && t.remaining.0 != 0 && end.is_none() {
                let maker = *self.book.order(slot);
                let next = maker.next;
                if Some(maker.user) == own {
                    changed |= t.self_trade != SelfTradeMode::CancelTaker;
                    end = self.self_trade(t, slot, sink);
                } else {
                    changed = true;
                    self.fill(t, slot, sink);
                }
                slot = next;
            }
            if changed {
                let alive = self.book.best(maker_side) == Some(level);
                self.delta(maker_side, price, alive.then_some(level), sink);
            }
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// One trade between the taker and the maker in `slot`, at the maker's price.
    fn fill<S: EventSink + ?Sized>(&mut self, t: &mut Taker, slot: u32, sink: &mut S) {
        let maker = *self.book.order(slot);
        let size = Lots(t.remaining.0.min(maker.remaining.0));
        let maker_remaining = self.book.reduce(slot, size);
        t.remaining = Lots(t.remaining.0.saturating_sub(size.0));
        let maker_user = self.book.user_key(maker.user);
        let seq = self.seq();
        let fill_id = self.next_fill_id;
        self.next_fill_id = fill_id.saturating_add(1);
        sink.emit(Event::Fill(Fill {
            seq,
            fill_id,
            maker_order_id: maker.id,
            taker_order_id: t.id,
            maker_user,
            taker_user: t.user,
            taker_side: t.side,
            price: maker.price,
            size,
            maker_remaining,
            taker_remaining: t.remaining,
            maker_nonce: maker.nonce,
            maker_expiry: maker.expiry,
            taker_nonce: t.nonce,
            taker_expiry: t.expiry,
        }));
        if maker_remaining.0 == 0 {
            self.book.remove(slot);
            self.done(maker.id, maker_user, DoneReason::Filled, Lots::ZERO, sink);
        }
    }

    /// Applies the taker's self-trade mode against its own maker in `slot`. Returns how the
    /// taker ends, if it does.
    fn self_trade<S: EventSink + ?Sized>(
        &mut self,
        t: &mut Taker,
        slot: u32,
        sink: &mut S,
    ) -> Option<MatchEnd> {
        let maker = *self.book.order(slot);
        match t.self_trade {
            SelfTradeMode::CancelTaker => Some(MatchEnd::SelfTrade),
            SelfTradeMode::CancelMaker => {
                self.book.remove(slot);
                self.done(
                    maker.id,
                    t.user,
                    DoneReason::SelfTrade,
                    maker.remaining,
                    sink,
                );
                None
            }
            SelfTradeMode::CancelBoth => {
                self.book.remove(slot);
                self.done(
                    maker.id,
                    t.user,
                    DoneReason::SelfTrade,
                    maker.remaining,
                    sink,
                );
                Some(MatchEnd::SelfTrade)
            }
            SelfTradeMode::DecrementAndCancel => {
                let size = Lots(t.remaining.0.min(maker.remaining.0));
                let maker_remaining = self.book.reduce(slot, size);
                t.remaining = Lots(t.remaining.0.saturating_sub(size.0));
                let seq = self.seq();
                sink.emit(Event::SelfTradeDecrement(SelfTradeDecrement {
                    seq,
                    maker_order_id: maker.id,
                    taker_order_id: t.id,
                    size,
                }));
                if maker_remaining.0 == 0 {
                    self.book.remove(slot);
                    self.done(maker.id, t.user, DoneReason::SelfTrade, Lots::ZERO, sink);
                }
                (t.remaining.0 == 0).then_some(MatchEnd::SelfTrade)
            }
        }
    }
}
