//! A deliberately naive reference order book: the specification as plain code.
//!
//! `BTreeMap` of price levels, a `VecDeque` per level, a `HashMap` from order id to level, and
//! linear scans wherever that is simplest. It implements the engine's documented semantics
//! (see `src/engine/matching.rs` for the event order) without sharing any of its code, so the
//! differential test and the benchmark can compare the two event for event.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kestrel_matcher::{
    Accepted, BookDelta, CancelTarget, Command, Done, DoneReason, Event, Fill, Lots, MarketConfig,
    OrderId, OrderType, PlaceOrder, RejectReason, Rejected, ReplaceOrder, Replaced,
    SelfTradeDecrement, SelfTradeMode, Side, Ticks, Timestamp, UserId,
};

#[derive(Debug, Clone)]
pub struct RefOrder {
    pub id: OrderId,
    pub user: UserId,
    pub cid: Option<kestrel_matcher::ClientOrderId>,
    pub side: Side,
    pub price: u64,
    pub remaining: u64,
    pub order_type: OrderType,
    pub stp: SelfTradeMode,
    pub nonce: u64,
    pub expiry: u64,
    pub stamp: u64,
}

pub struct RefBook {
    cfg: MarketConfig,
    bids: BTreeMap<u64, VecDeque<RefOrder>>,
    asks: BTreeMap<u64, VecDeque<RefOrder>>,
    ids: HashMap<OrderId, (Side, u64)>,
    seq: u64,
    fill_id: u64,
    stamp: u64,
    /// Resting orders with an expiry (the expiry scan is skipped when there are none).
    expiring: usize,
}

struct Taker {
    id: OrderId,
    user: UserId,
    cid: Option<kestrel_matcher::ClientOrderId>,
    side: Side,
    limit: u64,
    remaining: u64,
    order_type: OrderType,
    stp: SelfTradeMode,
    nonce: u64,
    expiry: u64,
}

fn crosses(side: Side, limit: u64, maker: u64) -> bool {
    match side {
        Side::Buy => maker <= limit,
        Side::Sell => maker >= limit,
    }
}

impl RefBook {
    pub fn new(cfg: MarketConfig) -> Self {
        RefBook {
            cfg,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            ids: HashMap::new(),
            seq: 0,
            fill_id: 0,
            stamp: 0,
            expiring: 0,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<u64, VecDeque<RefOrder>> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn side(&self, side: Side) -> &BTreeMap<u64, VecDeque<RefOrder>> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn best(&self, side: Side) -> Option<u64> {
        match side {
            Side::Buy => self.bids.keys().next_back().copied(),
            Side::Sell => self.asks.keys().next().copied(),
        }
    }

    /// Levels from best to worst.
    fn prices_from_best(&self, side: Side) -> Vec<u64> {
        let mut p: Vec<u64> = self.side(side).keys().copied().collect();
        if side == Side::Buy {
            p.reverse();
        }
        p
    }

    fn all(&self) -> impl Iterator<Item = &RefOrder> {
        self.bids.values().chain(self.asks.values()).flatten()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn get(&self, id: OrderId) -> Option<&RefOrder> {
        let (side, price) = *self.ids.get(&id)?;
        self.side(side).get(&price)?.iter().find(|o| o.id == id)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn delta(&mut self, side: Side, price: u64, out: &mut Vec<Event>) {
        let (size, orders) = match self.side(side).get(&price) {
            Some(q) => (q.iter().map(|o| o.remaining).sum(), q.len() as u32),
            None => (0, 0),
        };
        let seq = self.next_seq();
        out.push(Event::BookDelta(BookDelta {
            seq,
            side,
            price: Ticks(price),
            size: Lots(size),
            orders,
        }));
    }

    fn done(
        &mut self,
        id: OrderId,
        user: UserId,
        reason: DoneReason,
        rem: u64,
        out: &mut Vec<Event>,
    ) {
        let seq = self.next_seq();
        out.push(Event::Done(Done {
            seq,
            order_id: id,
            user,
            reason,
            remaining: Lots(rem),
        }));
    }

    fn reject(
        &mut self,
        user: UserId,
        id: Option<OrderId>,
        reason: RejectReason,
        out: &mut Vec<Event>,
    ) {
        let seq = self.next_seq();
        out.push(Event::Rejected(Rejected {
            seq,
            user,
            order_id: id,
            reason,
        }));
    }

    fn take_out(&mut self, id: OrderId) -> RefOrder {
        let (side, price) = self.ids.remove(&id).unwrap();
        let level = self.side_mut(side).get_mut(&price).unwrap();
        let pos = level.iter().position(|o| o.id == id).unwrap();
        let order = level.remove(pos).unwrap();
        if level.is_empty() {
            self.side_mut(side).remove(&price);
        }
        if order.expiry != 0 {
            self.expiring -= 1;
        }
        order
    }

    fn remove_with_events(&mut self, id: OrderId, reason: DoneReason, out: &mut Vec<Event>) {
        let o = self.take_out(id);
        self.done(o.id, o.user, reason, o.remaining, out);
        self.delta(o.side, o.price, out);
    }

    pub fn apply(&mut self, cmd: &Command, now: Timestamp) -> Vec<Event> {
        let mut out = Vec::new();
        let now_s = now.unix_seconds();
        let mut due: Vec<(u64, OrderId)> = self
            .all()
            .take(if self.expiring == 0 { 0 } else { usize::MAX })
            .filter(|o| o.expiry != 0 && o.expiry <= now_s)
            .map(|o| (o.expiry, o.id))
            .collect();
        due.sort();
        for (_, id) in due {
            self.remove_with_events(id, DoneReason::Expired, &mut out);
        }
        match cmd {
            Command::Place(o) => self.place(o, now_s, &mut out),
            Command::Cancel { user, target } => {
                let (found, named) = match target {
                    CancelTarget::OrderId(id) => (self.get(*id).map(|o| (o.id, o.user)), Some(*id)),
                    CancelTarget::ClientOrderId(c) => (
                        self.all()
                            .find(|o| o.user == *user && o.cid == Some(*c))
                            .map(|o| (o.id, o.user)),
                        None,
                    ),
                };
                match found {
                    None => self.reject(*user, named, RejectReason::UnknownOrder, &mut out),
                    Some((_, owner)) if owner != *user => {
                        self.reject(*user, named, RejectReason::NotOrderOwner, &mut out)
                    }
                    Some((id, _)) => self.remove_with_events(id, DoneReason::Cancelled, &mut out),
                }
            }
            Command::CancelAll { user, side } => {
                let mut mine: Vec<(u64, OrderId)> = self
                    .all()
                    .filter(|o| o.user == *user && side.is_none_or(|s| s == o.side))
                    .map(|o| (o.stamp, o.id))
                    .collect();
                mine.sort();
                for (_, id) in mine {
                    self.remove_with_events(id, DoneReason::Cancelled, &mut out);
                }
            }
            Command::Replace(r) => self.replace(r, now_s, &mut out),
            Command::ExpireDue => {}
        }
        out
    }

    fn check_terms(
        &self,
        price: u64,
        size: u64,
        expiry: u64,
        now_s: u64,
    ) -> Result<(), RejectReason> {
        if size < self.cfg.min_size.0 {
            return Err(RejectReason::SizeBelowMinimum);
        }
        if size > self.cfg.max_size.0 {
            return Err(RejectReason::SizeAboveMaximum);
        }
        if price < self.cfg.min_price.0 || price > self.cfg.max_price.0 {
            return Err(RejectReason::PriceOutOfBand);
        }
        if expiry != 0 && expiry <= now_s {
            return Err(RejectReason::AlreadyExpired);
        }
        Ok(())
    }

    fn post_only(&self, t: OrderType, side: Side, price: u64) -> Result<u64, RejectReason> {
        if !matches!(t, OrderType::PostOnly | OrderType::PostOnlySlide) {
            return Ok(price);
        }
        match self.best(side.opposite()) {
            Some(best) if crosses(side, price, best) => {
                if t == OrderType::PostOnly {
                    return Err(RejectReason::PostOnlyWouldCross);
                }
                let slid = match side {
                    Side::Buy => best as i128 - 1,
                    Side::Sell => best as i128 + 1,
                };
                if slid < self.cfg.min_price.0 as i128 || slid > self.cfg.max_price.0 as i128 {
                    Err(RejectReason::PriceOutOfBand)
                } else {
                    Ok(slid as u64)
                }
            }
            _ => Ok(price),
        }
    }

    fn fok_ok(&self, o: &PlaceOrder) -> bool {
        let mut avail = 0u64;
        for p in self.prices_from_best(o.side.opposite()) {
            if !crosses(o.side, o.price.0, p) {
                return false;
            }
            for m in &self.side(o.side.opposite())[&p] {
                if m.user == o.user {
                    if o.self_trade != SelfTradeMode::CancelMaker {
                        return false;
                    }
                } else {
                    avail += m.remaining;
                    if avail >= o.size.0 {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn place(&mut self, o: &PlaceOrder, now_s: u64, out: &mut Vec<Event>) {
        let may_rest = matches!(
            o.order_type,
            OrderType::Limit | OrderType::PostOnly | OrderType::PostOnlySlide
        );
        let checked = self
            .check_terms(o.price.0, o.size.0, o.expiry, now_s)
            .and_then(|_| {
                if self.ids.contains_key(&o.order_id) {
                    return Err(RejectReason::DuplicateOrderId);
                }
                if o.client_order_id.is_some()
                    && self
                        .all()
                        .any(|r| r.user == o.user && r.cid == o.client_order_id)
                {
                    return Err(RejectReason::DuplicateClientOrderId);
                }
                if may_rest && self.len() >= self.cfg.max_orders as usize {
                    return Err(RejectReason::BookFull);
                }
                let price = self.post_only(o.order_type, o.side, o.price.0)?;
                if o.order_type == OrderType::FillOrKill && !self.fok_ok(o) {
                    return Err(RejectReason::FillOrKillUnfillable);
                }
                Ok(price)
            });
        let price = match checked {
            Ok(p) => p,
            Err(r) => return self.reject(o.user, Some(o.order_id), r, out),
        };
        let seq = self.next_seq();
        out.push(Event::Accepted(Accepted {
            seq,
            order_id: o.order_id,
            user: o.user,
            client_order_id: o.client_order_id,
            side: o.side,
            price: Ticks(price),
            size: o.size,
            order_type: o.order_type,
        }));
        let t = Taker {
            id: o.order_id,
            user: o.user,
            cid: o.client_order_id,
            side: o.side,
            limit: price,
            remaining: o.size.0,
            order_type: o.order_type,
            stp: o.self_trade,
            nonce: o.nonce,
            expiry: o.expiry,
        };
        self.execute(t, out);
    }

    fn replace(&mut self, r: &ReplaceOrder, now_s: u64, out: &mut Vec<Event>) {
        let Some(cur) = self.get(r.order_id).cloned() else {
            return self.reject(r.user, Some(r.order_id), RejectReason::UnknownOrder, out);
        };
        if cur.user != r.user {
            return self.reject(r.user, Some(r.order_id), RejectReason::NotOrderOwner, out);
        }
        if let Err(e) = self.check_terms(r.price.0, r.size.0, r.expiry, now_s) {
            return self.reject(r.user, Some(r.order_id), e, out);
        }
        if r.price.0 == cur.price && r.size.0 <= cur.remaining {
            let level = self.side_mut(cur.side).get_mut(&cur.price).unwrap();
            let o = level.iter_mut().find(|o| o.id == r.order_id).unwrap();
            let had = o.expiry != 0;
            o.remaining = r.size.0;
            o.nonce = r.nonce;
            o.expiry = r.expiry;
            match (had, r.expiry != 0) {
                (true, false) => self.expiring -= 1,
                (false, true) => self.expiring += 1,
                _ => {}
            }
            let seq = self.next_seq();
            out.push(Event::Replaced(Replaced {
                seq,
                order_id: r.order_id,
                price: r.price,
                size: r.size,
                kept_priority: true,
            }));
            if r.size.0 != cur.remaining {
                self.delta(cur.side, cur.price, out);
            }
            return;
        }
        let price = match self.post_only(cur.order_type, cur.side, r.price.0) {
            Ok(p) => p,
            Err(e) => return self.reject(r.user, Some(r.order_id), e, out),
        };
        self.take_out(r.order_id);
        let seq = self.next_seq();
        out.push(Event::Replaced(Replaced {
            seq,
            order_id: r.order_id,
            price: Ticks(price),
            size: r.size,
            kept_priority: false,
        }));
        self.delta(cur.side, cur.price, out);
        let t = Taker {
            id: cur.id,
            user: cur.user,
            cid: cur.cid,
            side: cur.side,
            limit: price,
            remaining: r.size.0,
            order_type: cur.order_type,
            stp: cur.stp,
            nonce: r.nonce,
            expiry: r.expiry,
        };
        self.execute(t, out);
    }

    /// Returns Some(self_trade_ended) when matching stopped because of STP.
    fn take(&mut self, t: &mut Taker, out: &mut Vec<Event>) -> Option<bool> {
        let ms = t.side.opposite();
        while t.remaining > 0 {
            let best = self.best(ms)?;
            if !crosses(t.side, t.limit, best) {
                return None;
            }
            let mut changed = false;
            let mut ended = false;
            let ids: Vec<OrderId> = self.side(ms)[&best].iter().map(|o| o.id).collect();
            for id in ids {
                if t.remaining == 0 || ended {
                    break;
                }
                let m = self.get(id).unwrap().clone();
                if m.user == t.user {
                    match t.stp {
                        SelfTradeMode::CancelTaker => ended = true,
                        SelfTradeMode::CancelMaker => {
                            changed = true;
                            self.take_out(id);
                            self.done(id, m.user, DoneReason::SelfTrade, m.remaining, out);
                        }
                        SelfTradeMode::CancelBoth => {
                            changed = true;
                            ended = true;
                            self.take_out(id);
                            self.done(id, m.user, DoneReason::SelfTrade, m.remaining, out);
                        }
                        SelfTradeMode::DecrementAndCancel => {
                            changed = true;
                            let d = t.remaining.min(m.remaining);
                            t.remaining -= d;
                            self.set_remaining(id, m.remaining - d);
                            let seq = self.next_seq();
                            out.push(Event::SelfTradeDecrement(SelfTradeDecrement {
                                seq,
                                maker_order_id: id,
                                taker_order_id: t.id,
                                size: Lots(d),
                            }));
                            if m.remaining == d {
                                self.take_out(id);
                                self.done(id, m.user, DoneReason::SelfTrade, 0, out);
                            }
                            if t.remaining == 0 {
                                ended = true;
                            }
                        }
                    }
                } else {
                    changed = true;
                    let f = t.remaining.min(m.remaining);
                    t.remaining -= f;
                    self.set_remaining(id, m.remaining - f);
                    let seq = self.next_seq();
                    self.fill_id += 1;
                    out.push(Event::Fill(Fill {
                        seq,
                        fill_id: self.fill_id,
                        maker_order_id: id,
                        taker_order_id: t.id,
                        maker_user: m.user,
                        taker_user: t.user,
                        taker_side: t.side,
                        price: Ticks(m.price),
                        size: Lots(f),
                        maker_remaining: Lots(m.remaining - f),
                        taker_remaining: Lots(t.remaining),
                        maker_nonce: m.nonce,
                        maker_expiry: m.expiry,
                        taker_nonce: t.nonce,
                        taker_expiry: t.expiry,
                    }));
                    if m.remaining == f {
                        self.take_out(id);
                        self.done(id, m.user, DoneReason::Filled, 0, out);
                    }
                }
            }
            if changed {
                self.delta(ms, best, out);
            }
            if ended {
                return Some(true);
            }
        }
        None
    }

    fn set_remaining(&mut self, id: OrderId, rem: u64) {
        let (side, price) = self.ids[&id];
        let level = self.side_mut(side).get_mut(&price).unwrap();
        level.iter_mut().find(|o| o.id == id).unwrap().remaining = rem;
    }

    fn execute(&mut self, mut t: Taker, out: &mut Vec<Event>) {
        let stp_end = self.take(&mut t, out);
        if stp_end.is_some() {
            return self.done(t.id, t.user, DoneReason::SelfTrade, t.remaining, out);
        }
        if t.remaining == 0 {
            return self.done(t.id, t.user, DoneReason::Filled, 0, out);
        }
        if matches!(
            t.order_type,
            OrderType::Limit | OrderType::PostOnly | OrderType::PostOnlySlide
        ) {
            self.stamp += 1;
            let o = RefOrder {
                id: t.id,
                user: t.user,
                cid: t.cid,
                side: t.side,
                price: t.limit,
                remaining: t.remaining,
                order_type: t.order_type,
                stp: t.stp,
                nonce: t.nonce,
                expiry: t.expiry,
                stamp: self.stamp,
            };
            if t.expiry != 0 {
                self.expiring += 1;
            }
            self.ids.insert(t.id, (t.side, t.limit));
            self.side_mut(t.side)
                .entry(t.limit)
                .or_default()
                .push_back(o);
            self.delta(t.side, t.limit, out);
        } else {
            self.done(t.id, t.user, DoneReason::Unmatched, t.remaining, out);
        }
    }
}
