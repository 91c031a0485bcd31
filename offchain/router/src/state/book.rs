//! What the engine's events do to the ledger: fills move atoms exactly as settlement will,
//! holds shrink to what the remaining size needs, finished orders release the rest.

use super::{neg, Replacing, State, FEE_ACCOUNT};
use crate::ledger::Change;
use crate::market::MarketSpec;
use crate::model::{Business, DoneReason, Event};
use kestrel::encoding::Side;
use kestrel_matcher as m;

impl State {
    /// Runs one engine command and turns its events into ledger changes and router events.
    pub(super) fn run_engine(
        &mut self,
        market: u32,
        now_ms: u64,
        command: &m::Command,
        out: &mut Vec<Event>,
    ) {
        let Some((_, engine)) = self.engines.get(&market) else {
            return;
        };
        let events = match_on(&mut engine.lock(), now_ms, command);
        self.engine_events(market, events, out);
    }

    /// Turns events of `market`'s engine into ledger changes and router events.
    pub(super) fn engine_events(
        &mut self,
        market: u32,
        events: Vec<m::Event>,
        out: &mut Vec<Event>,
    ) {
        let Some(spec) = self.market(market).copied() else {
            return;
        };
        for event in events {
            self.on_engine_event(&spec, event, out);
        }
    }

    pub(super) fn on_engine_event(
        &mut self,
        spec: &MarketSpec,
        event: m::Event,
        out: &mut Vec<Event>,
    ) {
        match event {
            m::Event::Accepted(_) => out.extend(self.pending_accept.take()),
            m::Event::Replaced(r) => {
                if let Some(replacing) = self.replacing.as_mut() {
                    if let Event::OrderReplaced {
                        price_ticks,
                        kept_priority,
                        ..
                    } = &mut replacing.event
                    {
                        *price_ticks = r.price.0;
                        *kept_priority = r.kept_priority;
                    }
                    out.push(replacing.event.clone());
                }
                if let Some(order) = self.orders.get_mut(&r.order_id.0) {
                    order.price = r.price.0;
                }
            }
            m::Event::Rejected(r) => {
                match (r.order_id, self.replacing.take()) {
                    (Some(id), Some(replacing)) if replacing.order_id == id.0 => {
                        self.undo_replace(spec, replacing, out)
                    }
                    (Some(id), other) => {
                        self.replacing = other;
                        self.close_order(spec, id.0, None, out);
                    }
                    (None, other) => self.replacing = other,
                }
                out.push(Event::Rejected {
                    owner: r.user.0,
                    reason: r.reason.into(),
                });
            }
            m::Event::Fill(f) => self.on_fill(spec, &f, out),
            m::Event::SelfTradeDecrement(d) => {
                for id in [d.maker_order_id.0, d.taker_order_id.0] {
                    if let Some(order) = self.orders.get_mut(&id) {
                        order.remaining = order.remaining.saturating_sub(d.size.0);
                    }
                    self.release_excess(spec, id, out);
                }
            }
            m::Event::Done(d) => {
                let reason = match d.reason {
                    m::DoneReason::Filled => DoneReason::Filled,
                    m::DoneReason::Cancelled => DoneReason::Cancelled,
                    m::DoneReason::Expired => DoneReason::Expired,
                    m::DoneReason::SelfTrade => DoneReason::SelfTrade,
                    m::DoneReason::Unmatched => DoneReason::Unmatched,
                };
                self.close_order(spec, d.order_id.0, Some((reason, d.remaining.0)), out);
            }
            m::Event::BookDelta(b) => out.push(Event::BookLevel {
                market: spec.index,
                market_seq: b.seq,
                side: router_side(b.side) as u8,
                price_ticks: b.price.0,
                size_lots: b.size.0,
                orders: b.orders,
            }),
        }
    }

    /// The engine refused a replacement: the order keeps its old terms, nonce and hold.
    fn undo_replace(&mut self, spec: &MarketSpec, replacing: Replacing, out: &mut Vec<Event>) {
        let Replacing {
            order_id,
            before,
            extra_hold,
            ..
        } = replacing;
        let Some(current) = self.orders.insert(order_id, before) else {
            return;
        };
        self.rekey(&before.owner, current.nonce, before.nonce, order_id);
        if extra_hold > 0 {
            let asset = match before.side {
                Side::Buy => spec.quote_asset,
                Side::Sell => spec.base_asset,
            };
            let change = Change::new(
                Business::OrderRelease,
                order_id.to_string(),
                i128::from(extra_hold),
                neg(extra_hold),
            );
            let _ = self.ledger.change(&before.owner, asset, change, out);
        }
    }

    /// Ledger transfers of one fill, exactly as the program will settle it.
    pub(super) fn on_fill(&mut self, spec: &MarketSpec, f: &m::Fill, out: &mut Vec<Event>) {
        let lots = f.size.0;
        let price = f.price.0;
        let (Some(notional), Some(base)) = (spec.notional(price, lots), spec.base_atoms(lots))
        else {
            return;
        };
        let maker_fee = MarketSpec::fee(notional, spec.maker_fee_bps).unwrap_or(0);
        let taker_fee = MarketSpec::fee(notional, spec.taker_fee_bps).unwrap_or(0);
        let business_id = format!("{}:{}", spec.index, f.fill_id);
        let (buyer_id, buyer_fee, seller_id, seller_fee) = match f.taker_side {
            m::Side::Buy => (f.taker_order_id.0, taker_fee, f.maker_order_id.0, maker_fee),
            m::Side::Sell => (f.maker_order_id.0, maker_fee, f.taker_order_id.0, taker_fee),
        };
        let (Some(buyer), Some(seller)) = (
            self.orders.get(&buyer_id).copied(),
            self.orders.get(&seller_id).copied(),
        ) else {
            return;
        };
        let pay = notional.saturating_add(buyer_fee);
        let quote = spec.quote_asset;
        let base_asset = spec.base_asset;
        let entries = [
            (
                buyer.owner,
                quote,
                Change::new(Business::FillPay, business_id.clone(), 0, neg(notional)),
            ),
            (
                buyer.owner,
                quote,
                Change::new(Business::FillFee, business_id.clone(), 0, neg(buyer_fee)),
            ),
            (
                buyer.owner,
                base_asset,
                Change::new(
                    Business::FillReceive,
                    business_id.clone(),
                    i128::from(base),
                    0,
                ),
            ),
            (
                seller.owner,
                base_asset,
                Change::new(Business::FillPay, business_id.clone(), 0, neg(base)),
            ),
            (
                seller.owner,
                quote,
                Change::new(
                    Business::FillReceive,
                    business_id.clone(),
                    i128::from(notional),
                    0,
                ),
            ),
            (
                seller.owner,
                quote,
                Change::new(Business::FillFee, business_id.clone(), neg(seller_fee), 0),
            ),
            (
                FEE_ACCOUNT,
                quote,
                Change::new(
                    Business::FillFee,
                    business_id.clone(),
                    i128::from(maker_fee.saturating_add(taker_fee)),
                    0,
                ),
            ),
        ];
        for (owner, asset, change) in entries {
            // Holds always cover a fill (see MarketSpec::buy_hold); a failure here would be a
            // bug in that bound, and the entry is then skipped rather than corrupting a balance.
            let _ = self.ledger.change(&owner, asset, change, out);
        }
        if let Some(o) = self.orders.get_mut(&buyer_id) {
            o.held = o.held.saturating_sub(pay);
            o.remaining = o.remaining.saturating_sub(lots);
        }
        if let Some(o) = self.orders.get_mut(&seller_id) {
            o.held = o.held.saturating_sub(base);
            o.remaining = o.remaining.saturating_sub(lots);
        }
        out.push(Event::Fill {
            market: spec.index,
            fill_id: f.fill_id,
            maker_order_id: f.maker_order_id.0,
            taker_order_id: f.taker_order_id.0,
            maker: f.maker_user.0,
            taker: f.taker_user.0,
            maker_nonce: f.maker_nonce,
            taker_nonce: f.taker_nonce,
            taker_side: router_side(f.taker_side) as u8,
            price_ticks: price,
            size_lots: lots,
            notional,
            maker_fee,
            taker_fee,
        });
        self.release_excess(spec, buyer_id, out);
        self.release_excess(spec, seller_id, out);
    }

    /// Releases what an order holds beyond what its remaining size needs.
    pub(super) fn release_excess(
        &mut self,
        spec: &MarketSpec,
        order_id: u64,
        out: &mut Vec<Event>,
    ) {
        let Some(order) = self.orders.get(&order_id).copied() else {
            return;
        };
        let (asset, needed) = match order.side {
            Side::Buy => (
                spec.quote_asset,
                spec.buy_hold(order.price, order.remaining),
            ),
            Side::Sell => (spec.base_asset, spec.base_atoms(order.remaining)),
        };
        let excess = order.held.saturating_sub(needed.unwrap_or(order.held));
        if excess == 0 {
            return;
        }
        let change = Change::new(
            Business::OrderRelease,
            order_id.to_string(),
            i128::from(excess),
            neg(excess),
        );
        if self.ledger.change(&order.owner, asset, change, out).is_ok() {
            if let Some(o) = self.orders.get_mut(&order_id) {
                o.held = o.held.saturating_sub(excess);
            }
        }
    }

    /// Removes an order, releasing everything it still holds.
    pub(super) fn close_order(
        &mut self,
        spec: &MarketSpec,
        order_id: u64,
        done: Option<(DoneReason, u64)>,
        out: &mut Vec<Event>,
    ) {
        let Some(order) = self.orders.remove(&order_id) else {
            return;
        };
        if let Some(state) = self.owners.get_mut(&order.owner) {
            state.open.remove(&order.nonce);
        }
        let asset = match order.side {
            Side::Buy => spec.quote_asset,
            Side::Sell => spec.base_asset,
        };
        if order.held > 0 {
            let held = i128::from(order.held);
            let change = Change::new(
                Business::OrderRelease,
                order_id.to_string(),
                held,
                neg(order.held),
            );
            let _ = self.ledger.change(&order.owner, asset, change, out);
        }
        if let Some((reason, remaining_lots)) = done {
            out.push(Event::OrderDone {
                order_id,
                market: order.market,
                owner: order.owner,
                reason,
                remaining_lots,
            });
        }
    }
}

/// Applies one command to an engine at `now_ms`: the one step the sequencer and the market's
/// engine thread both take, so a pipelined order matches exactly as a serial one.
pub(super) fn match_on(engine: &mut m::Engine, now_ms: u64, command: &m::Command) -> Vec<m::Event> {
    let mut events = Vec::new();
    engine.apply(
        command,
        m::Timestamp(now_ms.saturating_mul(1_000_000)),
        &mut events,
    );
    events
}

fn router_side(side: m::Side) -> Side {
    match side {
        m::Side::Buy => Side::Buy,
        m::Side::Sell => Side::Sell,
    }
}
