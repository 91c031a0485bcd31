//! Orders: place (hold → match), cancel, cancel-all, and the on-chain cancel floor.

use super::{neg, OpenOrder, Replacing, State};
use crate::ledger::Change;
use crate::market::MarketSpec;
use crate::model::{Business, Event, Owner, Seq};
use crate::reject::Reject;
use kestrel::encoding::{Cancel, CancelAll, CancelSide, Order, OrderType, SelfTrade, Side};
use kestrel_matcher as m;

/// A replacement's signed cancel of the old order, new order and the new order's signature.
pub(super) type Replacement<'a> = (&'a Cancel, &'a Order, &'a [u8; 64]);

/// Signed terms that passed every check, with what they must hold.
pub(super) struct Terms {
    pub(super) spec: MarketSpec,
    pub(super) engine_expiry: u64,
    pub(super) hold_asset: u8,
    pub(super) hold: u64,
}

impl State {
    /// Checks a signed order's terms and consumes its nonce (from here on a refusal still
    /// burns it, so a refused order can never be replayed later).
    fn check_terms(&mut self, now_ms: u64, order: &Order) -> Result<Terms, (Owner, Reject)> {
        let owner = order.owner.to_bytes();
        let fail = |reason| (owner, reason);
        if order.exchange != self.rules.exchange {
            return Err(fail(Reject::WrongExchange));
        }
        let spec = *self
            .market(order.market_index)
            .ok_or(fail(Reject::UnknownMarket))?;
        let owner_state = self.owners.entry(owner).or_default();
        if order.nonce < owner_state.floor {
            return Err(fail(Reject::NonceCancelled));
        }
        if !owner_state.used_nonces.insert(order.nonce) {
            return Err(fail(Reject::NonceReused));
        }
        self.priced_terms(spec, now_ms, order).map_err(fail)
    }

    /// The checks of an order's terms that read nothing but the rules and the clock: expiry,
    /// price and size range, notional, and what it must hold.
    pub(super) fn priced_terms(
        &self,
        spec: MarketSpec,
        now_ms: u64,
        order: &Order,
    ) -> Result<Terms, Reject> {
        let now_s = now_ms / 1000;
        let engine_expiry = match u64::try_from(order.expiry) {
            Ok(0) => 0,
            Ok(expiry) => {
                let effective = expiry.saturating_sub(self.rules.expiry_margin_secs);
                if effective <= now_s {
                    return Err(Reject::Expired);
                }
                if expiry > now_s.saturating_add(self.rules.max_expiry_horizon_secs) {
                    return Err(Reject::ExpiryTooFar);
                }
                effective
            }
            Err(_) => return Err(Reject::Expired),
        };
        if order.price_ticks < spec.min_price_ticks || order.price_ticks > spec.max_price_ticks {
            return Err(Reject::PriceOutOfRange);
        }
        if order.size_lots < spec.min_size_lots || order.size_lots > spec.max_size_lots {
            return Err(Reject::SizeOutOfRange);
        }
        spec.notional(order.price_ticks, order.size_lots)
            .ok_or(Reject::NotionalOverflow)?;
        let (hold_asset, hold) = match order.side {
            Side::Buy => (
                spec.quote_asset,
                spec.buy_hold(order.price_ticks, order.size_lots)
                    .ok_or(Reject::NotionalOverflow)?,
            ),
            Side::Sell => (
                spec.base_asset,
                spec.base_atoms(order.size_lots)
                    .ok_or(Reject::NotionalOverflow)?,
            ),
        };
        Ok(Terms {
            spec,
            engine_expiry,
            hold_asset,
            hold,
        })
    }

    /// Everything of placing order `seq` up to the engine: terms, open-order limit, hold,
    /// and the order's entry. Returns its market and its engine command.
    fn open_place(
        &mut self,
        seq: Seq,
        now_ms: u64,
        order: &Order,
        signature: &[u8; 64],
        out: &mut Vec<Event>,
    ) -> Result<(MarketSpec, m::Command), (Owner, Reject)> {
        let owner = order.owner.to_bytes();
        let fail = |reason| (owner, reason);
        let terms = self.check_terms(now_ms, order)?;
        if self.open_orders(&owner) >= self.rules.max_open_orders as usize {
            return Err(fail(Reject::TooManyOpenOrders));
        }
        let order_id = seq;
        self.ledger
            .change(
                &owner,
                terms.hold_asset,
                Change::new(
                    Business::OrderHold,
                    order_id.to_string(),
                    neg(terms.hold),
                    i128::from(terms.hold),
                ),
                out,
            )
            .map_err(|_| fail(Reject::InsufficientBalance))?;
        self.pending_accept = Some(Event::OrderAccepted {
            order_id,
            market: order.market_index,
            owner,
            side: order.side as u8,
            price_ticks: order.price_ticks,
            size_lots: order.size_lots,
            nonce: order.nonce,
            expiry: order.expiry,
            client_order_id: order.client_order_id,
            order_type: order.order_type as u8,
            signed: crate::model::to_hex(&order.encode()),
            signature: crate::model::to_hex(signature),
        });
        self.orders.insert(
            order_id,
            OpenOrder {
                market: order.market_index,
                owner,
                side: order.side,
                price: order.price_ticks,
                nonce: order.nonce,
                remaining: order.size_lots,
                held: terms.hold,
                order_type: order.order_type,
                self_trade: order.self_trade,
                client_order_id: order.client_order_id,
            },
        );
        self.owners
            .entry(owner)
            .or_default()
            .open
            .insert(order.nonce, order_id);
        Ok((terms.spec, place_command(order_id, order, &owner, &terms)))
    }

    pub(super) fn place(
        &mut self,
        seq: Seq,
        now_ms: u64,
        order: &Order,
        signature: &[u8; 64],
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let (spec, command) = self.open_place(seq, now_ms, order, signature, out)?;
        self.run_engine(spec.index, now_ms, &command, out);
        self.pending_accept = None;
        Ok(())
    }

    /// Applies order `seq`, admitted earlier, now that every command before it is applied:
    /// exactly [`State::place`], with the engine's events from the market's engine thread.
    /// `None`: the order was refused at its turn, which its admission rules out.
    pub(super) fn place_matched(
        &mut self,
        seq: Seq,
        now_ms: u64,
        order: &Order,
        signature: &[u8; 64],
        matched: Vec<m::Event>,
    ) -> Option<Vec<Event>> {
        self.last_seq = seq;
        let mut out = Vec::new();
        let (spec, _) = self
            .open_place(seq, now_ms, order, signature, &mut out)
            .ok()?;
        for event in matched {
            self.on_engine_event(&spec, event, &mut out);
        }
        self.pending_accept = None;
        Some(out)
    }

    /// Moves a resting order to new signed terms in one step. The hold grows first (refused if
    /// the balance cannot cover it) and shrinks to what the new terms need afterwards; if the
    /// engine refuses (a post-only that would cross), the order and its hold stay as they were.
    pub(super) fn replace(
        &mut self,
        now_ms: u64,
        replacement: Replacement<'_>,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let (spec, order_id, command) = self.open_replace(now_ms, replacement, out)?;
        self.run_engine(spec.index, now_ms, &command, out);
        self.close_replace(&spec, order_id, out);
        Ok(())
    }

    /// Applies replacement `seq`, admitted earlier, now that every command before it is
    /// applied: exactly [`State::replace`], with the engine's events (`None`: the order was no
    /// longer resting when the engine came to it). `None` back: the two disagree, which the
    /// admission rules out.
    pub(super) fn replace_matched(
        &mut self,
        seq: Seq,
        now_ms: u64,
        replacement: Replacement<'_>,
        matched: Option<Vec<m::Event>>,
    ) -> Option<Vec<Event>> {
        self.last_seq = seq;
        let mut out = Vec::new();
        match (self.open_replace(now_ms, replacement, &mut out), matched) {
            (Ok((spec, order_id, _)), Some(events)) => {
                for event in events {
                    self.on_engine_event(&spec, event, &mut out);
                }
                self.close_replace(&spec, order_id, &mut out);
            }
            (Err((owner, reason)), None) => out.push(Event::Rejected { owner, reason }),
            _ => return None,
        }
        Some(out)
    }

    /// Everything of a replacement up to the engine: checks, the grown hold, the order under
    /// its new terms and nonce. Returns its market, the order and the engine command.
    fn open_replace(
        &mut self,
        now_ms: u64,
        (cancel, order, signature): Replacement<'_>,
        out: &mut Vec<Event>,
    ) -> Result<(MarketSpec, u64, m::Command), (Owner, Reject)> {
        let owner = order.owner.to_bytes();
        let fail = |reason| (owner, reason);
        self.check_signed_expiry(cancel.expiry, now_ms)
            .and_then(|()| self.check_exchange(&cancel.exchange))
            .map_err(|(_, reason)| fail(reason))?;
        let order_id = self
            .owners
            .get(&owner)
            .and_then(|o| o.open.get(&cancel.order_nonce))
            .copied()
            .ok_or(fail(Reject::UnknownOrder))?;
        let before = *self
            .orders
            .get(&order_id)
            .ok_or(fail(Reject::UnknownOrder))?;
        let terms = self.check_terms(now_ms, order)?;
        if cancel.owner != order.owner
            || cancel.market_index != order.market_index
            || before.market != order.market_index
            || before.side != order.side
            || before.order_type != order.order_type
            || before.self_trade != order.self_trade
            || before.client_order_id != order.client_order_id
        {
            return Err(fail(Reject::ReplaceMismatch));
        }
        let extra_hold = terms.hold.saturating_sub(before.held);
        if extra_hold > 0 {
            let change = Change::new(
                Business::OrderHold,
                order_id.to_string(),
                neg(extra_hold),
                i128::from(extra_hold),
            );
            self.ledger
                .change(&owner, terms.hold_asset, change, out)
                .map_err(|_| fail(Reject::InsufficientBalance))?;
        }
        let replaced = OpenOrder {
            price: order.price_ticks,
            nonce: order.nonce,
            remaining: order.size_lots,
            held: before.held.saturating_add(extra_hold),
            ..before
        };
        self.orders.insert(order_id, replaced);
        self.rekey(&owner, before.nonce, order.nonce, order_id);
        self.replacing = Some(Replacing {
            order_id,
            before,
            extra_hold,
            event: Event::OrderReplaced {
                order_id,
                market: order.market_index,
                owner,
                old_nonce: before.nonce,
                nonce: order.nonce,
                price_ticks: order.price_ticks,
                size_lots: order.size_lots,
                expiry: order.expiry,
                kept_priority: false,
                signed: crate::model::to_hex(&order.encode()),
                signature: crate::model::to_hex(signature),
            },
        });
        let command = m::Command::Replace(m::ReplaceOrder {
            user: m::UserId(owner),
            order_id: m::OrderId(order_id),
            price: m::Ticks(order.price_ticks),
            size: m::Lots(order.size_lots),
            nonce: order.nonce,
            expiry: terms.engine_expiry,
        });
        Ok((terms.spec, order_id, command))
    }

    /// The end of a replacement, after its engine events: the hold shrinks to what the new
    /// terms need.
    fn close_replace(&mut self, spec: &MarketSpec, order_id: u64, out: &mut Vec<Event>) {
        self.replacing = None;
        self.release_excess(spec, order_id, out);
    }

    /// Moves an open order from one nonce to another in its owner's index.
    pub(super) fn rekey(&mut self, owner: &Owner, from: u64, to: u64, order_id: u64) {
        if let Some(state) = self.owners.get_mut(owner) {
            state.open.remove(&from);
            state.open.insert(to, order_id);
        }
    }

    /// The checks of a signed cancel that read nothing but the rules and the clock.
    pub(super) fn check_cancel(&self, c: &Cancel, now_ms: u64) -> Result<(), (Owner, Reject)> {
        self.check_signed_expiry(c.expiry, now_ms)
            .and_then(|()| self.check_exchange(&c.exchange))
            .map_err(|(_, reason)| (c.owner.to_bytes(), reason))
    }

    /// The order a cancel names: `owner`'s open order `nonce`, in `market`.
    fn cancel_target(
        &self,
        owner: &Owner,
        market: u32,
        nonce: u64,
    ) -> Result<u64, (Owner, Reject)> {
        self.owners
            .get(owner)
            .and_then(|o| o.open.get(&nonce))
            .copied()
            .filter(|id| self.orders.get(id).is_some_and(|o| o.market == market))
            .ok_or((*owner, Reject::UnknownOrder))
    }

    pub(super) fn cancel_one(
        &mut self,
        now_ms: u64,
        owner: &Owner,
        market: u32,
        nonce: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let order_id = self.cancel_target(owner, market, nonce)?;
        self.run_engine(market, now_ms, &cancel_command(owner, order_id), out);
        Ok(())
    }

    /// Applies cancel `seq`, admitted earlier, now that every command before it is applied:
    /// exactly the serial cancel, with the engine's events (`None`: the order was no longer
    /// resting when its engine came to it). `None` back: the two disagree, which the
    /// admission rules out.
    pub(super) fn cancel_matched(
        &mut self,
        seq: Seq,
        now_ms: u64,
        c: &Cancel,
        matched: Option<Vec<m::Event>>,
    ) -> Option<Vec<Event>> {
        self.last_seq = seq;
        let owner = c.owner.to_bytes();
        let target = self
            .check_cancel(c, now_ms)
            .and_then(|()| self.cancel_target(&owner, c.market_index, c.order_nonce));
        let mut out = Vec::new();
        match (target, matched) {
            (Ok(_), Some(events)) => self.engine_events(c.market_index, events, &mut out),
            (Err((owner, reason)), None) => out.push(Event::Rejected { owner, reason }),
            _ => return None,
        }
        Some(out)
    }

    pub(super) fn cancel_all(
        &mut self,
        now_ms: u64,
        c: &CancelAll,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        self.check_cancel_all(now_ms, c)?;
        let owner = c.owner.to_bytes();
        for (_, order_id, market) in self.cancel_all_targets(&owner, c) {
            self.run_engine(market, now_ms, &cancel_command(&owner, order_id), out);
        }
        Ok(())
    }

    /// The checks of a signed cancel-all that read nothing but the rules and the clock.
    pub(super) fn check_cancel_all(
        &self,
        now_ms: u64,
        c: &CancelAll,
    ) -> Result<(), (Owner, Reject)> {
        let owner = c.owner.to_bytes();
        self.check_signed_expiry(c.expiry, now_ms)
            .and_then(|()| self.check_exchange(&c.exchange))
            .map_err(|(_, r)| (owner, r))
    }

    /// The open orders of `owner` that cancel-all `c` covers, by nonce: (nonce, order id,
    /// market).
    pub(super) fn cancel_all_targets(&self, owner: &Owner, c: &CancelAll) -> Vec<(u64, u64, u32)> {
        self.owners
            .get(owner)
            .map(|o| {
                o.open
                    .range(..c.up_to_nonce)
                    .filter_map(|(nonce, id)| {
                        let order = self.orders.get(id)?;
                        cancel_covers(c, order.market, order.side).then_some((
                            *nonce,
                            *id,
                            order.market,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Applies cancel-all `seq`, admitted earlier with `candidates` (order id and the engine's
    /// events, `None` if the order was no longer resting when its engine came to it, by
    /// nonce), now that every command before it is applied: exactly [`State::cancel_all`].
    /// `None` back: the candidates the engines cancelled are not exactly the orders open now,
    /// which the admission rules out.
    pub(super) fn cancel_all_matched(
        &mut self,
        seq: Seq,
        now_ms: u64,
        c: &CancelAll,
        candidates: Vec<(u64, Option<Vec<m::Event>>)>,
    ) -> Option<Vec<Event>> {
        self.last_seq = seq;
        self.check_cancel_all(now_ms, c).ok()?;
        let owner = c.owner.to_bytes();
        let mut targets = self.cancel_all_targets(&owner, c).into_iter();
        let mut out = Vec::new();
        for (order_id, matched) in candidates {
            let Some(events) = matched else {
                continue;
            };
            let (_, target, market) = targets.next()?;
            if target != order_id {
                return None;
            }
            self.engine_events(market, events, &mut out);
        }
        targets.next().is_none().then_some(out)
    }

    /// Applies tick `seq`, admitted earlier, with each market's expiries (in market order).
    pub(super) fn tick_matched(
        &mut self,
        seq: Seq,
        expired: Vec<(u32, Vec<m::Event>)>,
    ) -> Vec<Event> {
        self.last_seq = seq;
        let mut out = Vec::new();
        for (market, events) in expired {
            self.engine_events(market, events, &mut out);
        }
        out
    }

    pub(super) fn raise_floor(
        &mut self,
        now_ms: u64,
        owner: &Owner,
        floor: u64,
        out: &mut Vec<Event>,
    ) {
        let state = self.owners.entry(*owner).or_default();
        if floor <= state.floor {
            return;
        }
        state.floor = floor;
        out.push(Event::NonceFloor {
            owner: *owner,
            floor,
        });
        let dead: Vec<(u64, u32)> = state
            .open
            .range(..floor)
            .filter_map(|(_, id)| self.orders.get(id).map(|o| (*id, o.market)))
            .collect();
        for (order_id, market) in dead {
            self.run_engine(market, now_ms, &cancel_command(owner, order_id), out);
        }
    }
}

/// Whether cancel-all `c` covers an order in `market` on `side`.
pub(super) fn cancel_covers(c: &CancelAll, market: u32, side: Side) -> bool {
    (c.market_index == kestrel::encoding::ALL_MARKETS || market == c.market_index)
        && match c.side {
            CancelSide::Both => true,
            CancelSide::Buy => side == Side::Buy,
            CancelSide::Sell => side == Side::Sell,
        }
}

/// The engine command cancelling `owner`'s order `order_id`.
pub(super) fn cancel_command(owner: &Owner, order_id: u64) -> m::Command {
    m::Command::Cancel {
        user: m::UserId(*owner),
        target: m::CancelTarget::OrderId(m::OrderId(order_id)),
    }
}

/// The engine command placing order `order_id`.
pub(super) fn place_command(
    order_id: u64,
    order: &Order,
    owner: &Owner,
    terms: &Terms,
) -> m::Command {
    m::Command::Place(m::PlaceOrder {
        order_id: m::OrderId(order_id),
        user: m::UserId(*owner),
        client_order_id: (order.client_order_id != 0)
            .then_some(m::ClientOrderId(order.client_order_id)),
        side: engine_side(order.side),
        price: m::Ticks(order.price_ticks),
        size: m::Lots(order.size_lots),
        order_type: engine_order_type(order.order_type),
        self_trade: engine_self_trade(order.self_trade),
        nonce: order.nonce,
        expiry: terms.engine_expiry,
    })
}

pub(super) fn engine_side(side: Side) -> m::Side {
    match side {
        Side::Buy => m::Side::Buy,
        Side::Sell => m::Side::Sell,
    }
}

fn engine_order_type(t: OrderType) -> m::OrderType {
    match t {
        OrderType::Limit => m::OrderType::Limit,
        OrderType::ImmediateOrCancel => m::OrderType::ImmediateOrCancel,
        OrderType::FillOrKill => m::OrderType::FillOrKill,
        OrderType::PostOnly => m::OrderType::PostOnly,
        OrderType::PostOnlySlide => m::OrderType::PostOnlySlide,
        OrderType::Market => m::OrderType::Market,
    }
}

fn engine_self_trade(s: SelfTrade) -> m::SelfTradeMode {
    match s {
        SelfTrade::CancelTaker => m::SelfTradeMode::CancelTaker,
        SelfTrade::CancelMaker => m::SelfTradeMode::CancelMaker,
        SelfTrade::CancelBoth => m::SelfTradeMode::CancelBoth,
        SelfTrade::DecrementAndCancel => m::SelfTradeMode::DecrementAndCancel,
    }
}
