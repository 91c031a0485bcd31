//! Which commands may go ahead of their turn ([`Pipeline`](super::Pipeline)), and what those
//! ahead of a command may still change by its turn.
//!
//! A command goes ahead when its turn cannot be decided differently from now, whatever the
//! commands still in flight ahead of it do, or when it is certain not to reach an engine at
//! its turn (it needs none, or it is certain to be refused before: a reused nonce, terms out
//! of range, a cancel of a nonce no order can hold by then); the latter is simply applied at
//! its turn. Every command in flight was itself admitted here (any other command first waits
//! for all of them), and together they can only:
//! - add to an owner's available atoms (fills and releases credit), except for what they hold
//!   themselves, which [`InFlight`] counts: a new order's hold, a replacement's new hold in
//!   full, a withdrawal's amount;
//! - close orders (fills, cancels, cancel-alls, expiries), except the orders they open, which
//!   [`InFlight`] records with their signed terms;
//! - use the nonces [`InFlight`] records;
//! - move an order to a new nonce: a replacement, whose order and owner [`InFlight`] marks so
//!   that nothing behind it is admitted against that order's nonces.
//!
//! The first point needs every fee to be at most the notional (a larger fee would debit a
//! seller's available atoms in a fill); the pipeline admits nothing when a market's fee is
//! above that ([`pipelines`]). The program caps fees at 100 bps.

use super::orders::{cancel_command, cancel_covers, place_command};
use super::State;
use crate::model::{Command, Owner, Seq};
use kestrel::encoding::{Cancel, CancelAll, Order, OrderType, SelfTrade, Side};
use kestrel_matcher as m;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The highest fee for which a fill credits both parties (a fee of at most the notional).
const MAX_PIPELINED_FEE_BPS: u16 = 10_000;

/// Whether commands of `state` may go ahead of their turn at all: every market's fees are at
/// most the notional.
pub(super) fn pipelines(state: &State) -> bool {
    state
        .engines
        .values()
        .all(|(spec, _)| spec.maker_fee_bps.max(spec.taker_fee_bps) <= MAX_PIPELINED_FEE_BPS)
}

/// One engine command of an admitted command, in the order a serial run gives them.
pub(super) struct Part {
    pub(super) market: u32,
    /// The order it acts on, for a cancel or a replacement: left by the engine unless that
    /// order rests when its market's engine comes to the command.
    pub(super) resting: Option<u64>,
    pub(super) command: m::Command,
}

/// An order placed by a command in flight: its id and signed terms.
#[derive(Clone, Copy)]
struct Placed {
    order_id: u64,
    order: Order,
}

/// What the commands admitted and not yet applied will hold, open, use and move.
#[derive(Default)]
pub(super) struct InFlight {
    held: HashMap<(Owner, u8), u128>,
    opening: HashMap<Owner, usize>,
    /// Nonces the commands in flight may use by their turn.
    nonces: HashSet<(Owner, u64)>,
    /// Of those, the ones certain to be used by then (a replacement uses its nonce only if
    /// its order is still open at its turn).
    used: HashSet<(Owner, u64)>,
    placed: BTreeMap<(Owner, u64), Placed>,
    replaced: HashSet<u64>,
    replacing: HashSet<Owner>,
}

impl InFlight {
    fn held(&self, owner: &Owner, asset: u8) -> u128 {
        self.held.get(&(*owner, asset)).copied().unwrap_or(0)
    }

    fn hold(&mut self, owner: &Owner, asset: u8, atoms: u64) {
        let held = self.held.entry((*owner, asset)).or_default();
        *held = held.saturating_add(u128::from(atoms));
    }

    fn opening(&self, owner: &Owner) -> usize {
        self.opening.get(owner).copied().unwrap_or(0)
    }

    /// The order `owner` placed in flight under `nonce`.
    fn placed(&self, owner: &Owner, nonce: u64) -> Option<&Placed> {
        self.placed.get(&(*owner, nonce))
    }

    /// The orders `owner` placed in flight, by nonce.
    fn placed_by<'a>(&'a self, owner: &Owner) -> impl Iterator<Item = &'a Placed> + 'a {
        self.placed
            .range((*owner, 0)..=(*owner, u64::MAX))
            .map(|(_, placed)| placed)
    }

    pub(super) fn clear(&mut self) {
        self.held.clear();
        self.opening.clear();
        self.nonces.clear();
        self.used.clear();
        self.placed.clear();
        self.replaced.clear();
        self.replacing.clear();
    }
}

/// An order's signed terms that a cancel or a replacement is checked against.
struct Target {
    order_id: u64,
    market: u32,
    fixed: Fixed,
}

/// The terms a replacement must keep.
#[derive(PartialEq)]
struct Fixed {
    side: Side,
    order_type: OrderType,
    self_trade: SelfTrade,
    client_order_id: u64,
}

impl Fixed {
    fn of(order: &Order) -> Fixed {
        Fixed {
            side: order.side,
            order_type: order.order_type,
            self_trade: order.self_trade,
            client_order_id: order.client_order_id,
        }
    }
}

impl State {
    /// Whether command `seq` may go ahead of those in flight, and if so its engine commands
    /// (none: it needs no engine and is only applied at its turn). What it will hold, open,
    /// use or move is added to `inflight`. `None`: it waits for every command in flight.
    pub(super) fn admit(
        &self,
        seq: Seq,
        now_ms: u64,
        command: &Command,
        inflight: &mut InFlight,
    ) -> Option<Vec<Part>> {
        // Applied at its turn, with no engine work ahead of it: a command that needs no
        // engine, or one certain to be refused before it reaches one (`then(Vec::new)` below).
        let at_turn = || Some(Vec::new());
        match command {
            Command::Place { order, .. } => self
                .admit_place(seq, now_ms, order, inflight)
                .or_else(|| self.refuses_place(now_ms, order, inflight).then(Vec::new)),
            Command::Cancel(c) => self.admit_cancel(now_ms, c, inflight).or_else(|| {
                let certain = self.check_cancel(c, now_ms).is_err()
                    || self.never_open(&c.owner.to_bytes(), c.order_nonce, inflight);
                certain.then(Vec::new)
            }),
            Command::Replace { cancel, order, .. } => self
                .admit_replace(now_ms, cancel, order, inflight)
                .or_else(|| {
                    let certain = self.check_signed_expiry(cancel.expiry, now_ms).is_err()
                        || self.check_exchange(&cancel.exchange).is_err()
                        || self.never_open(&order.owner.to_bytes(), cancel.order_nonce, inflight);
                    certain.then(Vec::new)
                }),
            Command::CancelAll(c) => self
                .admit_cancel_all(now_ms, c, inflight)
                .or_else(|| self.check_cancel_all(now_ms, c).is_err().then(Vec::new)),
            Command::Tick => Some(
                self.engines
                    .keys()
                    .map(|market| Part {
                        market: *market,
                        resting: None,
                        command: m::Command::ExpireDue,
                    })
                    .collect(),
            ),
            // Credits, and changes no order or nonce depends on.
            Command::DepositObserved { .. }
            | Command::SettlementUpdate { .. }
            | Command::WithdrawalBroadcast { .. }
            | Command::WithdrawalFinished { .. } => at_turn(),
            Command::Withdraw(w) => {
                if let Some(asset) = self.asset_of(&w.mint) {
                    inflight.hold(&w.owner.to_bytes(), asset, w.amount);
                }
                at_turn()
            }
            // They cancel orders chosen by balances and nonces at their turn.
            Command::NonceFloorObserved { .. } | Command::ChainWithdrawal { .. } => None,
        }
    }

    /// A new order goes ahead when it is certain to pass every check of [`State::place`] at
    /// its turn: its nonce unused (now and in flight), its terms valid, room for one more open
    /// order counting those opening in flight, and its hold covered by what is available now
    /// less what is held in flight.
    fn admit_place(
        &self,
        seq: Seq,
        now_ms: u64,
        order: &Order,
        inflight: &mut InFlight,
    ) -> Option<Vec<Part>> {
        let owner = order.owner.to_bytes();
        if order.exchange != self.rules.exchange {
            return None;
        }
        let spec = *self.market(order.market_index)?;
        let terms = self.admit_terms(now_ms, order, inflight)?;
        let open = self
            .open_orders(&owner)
            .saturating_add(inflight.opening(&owner));
        if open >= self.rules.max_open_orders as usize {
            return None;
        }
        if !self.covers(&owner, terms.hold_asset, terms.hold, inflight) {
            return None;
        }
        inflight.hold(&owner, terms.hold_asset, terms.hold);
        let opening = inflight.opening.entry(owner).or_default();
        *opening = opening.saturating_add(1);
        inflight.nonces.insert((owner, order.nonce));
        inflight.used.insert((owner, order.nonce));
        inflight.placed.insert(
            (owner, order.nonce),
            Placed {
                order_id: seq,
                order: *order,
            },
        );
        Some(vec![Part {
            market: spec.index,
            resting: None,
            command: place_command(seq, order, &owner, &terms),
        }])
    }

    /// A cancel goes ahead when its checks pass and the order it names is open now or placed
    /// in flight, and no replacement in flight moves it. Commands in flight may still close
    /// that order: the engine then finds it no longer resting and leaves the cancel, and at
    /// its turn the cancel is refused as a serial run refuses it.
    fn admit_cancel(&self, now_ms: u64, c: &Cancel, inflight: &InFlight) -> Option<Vec<Part>> {
        let owner = c.owner.to_bytes();
        self.check_cancel(c, now_ms).ok()?;
        let target = self.target(&owner, c.order_nonce, inflight)?;
        if target.market != c.market_index {
            return None;
        }
        Some(vec![Part {
            market: target.market,
            resting: Some(target.order_id),
            command: cancel_command(&owner, target.order_id),
        }])
    }

    /// A replacement goes ahead when every check of [`State::replace`] is certain to pass at
    /// its turn, as for a new order: the order it names is open now or placed in flight and
    /// not moved by another replacement in flight, the fixed terms match, the new nonce is
    /// unused, the new terms are valid, and the whole new hold (the order's present hold may
    /// shrink by its turn) is covered. As for a cancel, an order closed by its turn is left
    /// by the engine and the replacement refused at its turn as unknown.
    fn admit_replace(
        &self,
        now_ms: u64,
        cancel: &Cancel,
        order: &Order,
        inflight: &mut InFlight,
    ) -> Option<Vec<Part>> {
        let owner = order.owner.to_bytes();
        self.check_signed_expiry(cancel.expiry, now_ms).ok()?;
        self.check_exchange(&cancel.exchange).ok()?;
        if order.exchange != self.rules.exchange {
            return None;
        }
        let target = self.target(&owner, cancel.order_nonce, inflight)?;
        if cancel.owner != order.owner
            || cancel.market_index != order.market_index
            || target.market != order.market_index
            || target.fixed != Fixed::of(order)
        {
            return None;
        }
        let spec = *self.market(order.market_index)?;
        let terms = self.admit_terms(now_ms, order, inflight)?;
        if !self.covers(&owner, terms.hold_asset, terms.hold, inflight) {
            return None;
        }
        inflight.hold(&owner, terms.hold_asset, terms.hold);
        inflight.nonces.insert((owner, order.nonce));
        inflight.replaced.insert(target.order_id);
        inflight.replacing.insert(owner);
        Some(vec![Part {
            market: spec.index,
            resting: Some(target.order_id),
            command: m::Command::Replace(m::ReplaceOrder {
                user: m::UserId(owner),
                order_id: m::OrderId(target.order_id),
                price: m::Ticks(order.price_ticks),
                size: m::Lots(order.size_lots),
                nonce: order.nonce,
                expiry: terms.engine_expiry,
            }),
        }])
    }

    /// A cancel-all goes ahead when its checks pass and no replacement of its owner is in
    /// flight (which could move an order across its nonce bound). Its candidates are the
    /// owner's orders it covers that are open now or placed in flight, by nonce; at its turn
    /// it cancels exactly those still open, which are those still resting when their market's
    /// engine comes to it.
    fn admit_cancel_all(
        &self,
        now_ms: u64,
        c: &CancelAll,
        inflight: &InFlight,
    ) -> Option<Vec<Part>> {
        let owner = c.owner.to_bytes();
        self.check_cancel_all(now_ms, c).ok()?;
        if inflight.replacing.contains(&owner) {
            return None;
        }
        let mut candidates: Vec<(u64, u64, u32)> = self.cancel_all_targets(&owner, c);
        candidates.extend(
            inflight
                .placed_by(&owner)
                .filter(|p| {
                    p.order.nonce < c.up_to_nonce
                        && cancel_covers(c, p.order.market_index, p.order.side)
                })
                .map(|p| (p.order.nonce, p.order_id, p.order.market_index)),
        );
        candidates.sort_unstable_by_key(|(nonce, _, _)| *nonce);
        Some(
            candidates
                .into_iter()
                .map(|(_, order_id, market)| Part {
                    market,
                    resting: Some(order_id),
                    command: cancel_command(&owner, order_id),
                })
                .collect(),
        )
    }

    /// Whether order `order` is certain to be refused at its turn before its engine: wrong
    /// exchange or market, a nonce below the floor or certain to be used by then, or terms
    /// out of range. In the last case its turn uses its nonce (if a replacement ahead has not),
    /// which `inflight` records.
    fn refuses_place(&self, now_ms: u64, order: &Order, inflight: &mut InFlight) -> bool {
        let owner = order.owner.to_bytes();
        let Some(spec) = self.market(order.market_index) else {
            return true;
        };
        let owner_state = self.owners.get(&owner);
        if order.exchange != self.rules.exchange
            || order.nonce < owner_state.map_or(0, |o| o.floor)
            || owner_state.is_some_and(|o| o.used_nonces.contains(&order.nonce))
            || inflight.used.contains(&(owner, order.nonce))
        {
            return true;
        }
        if self.priced_terms(*spec, now_ms, order).is_err() {
            inflight.nonces.insert((owner, order.nonce));
            inflight.used.insert((owner, order.nonce));
            return true;
        }
        false
    }

    /// Whether no order of `owner` can be open under `nonce` at a command's turn: none is now,
    /// and no command in flight places or moves an order to that nonce.
    fn never_open(&self, owner: &Owner, nonce: u64, inflight: &InFlight) -> bool {
        !self
            .owners
            .get(owner)
            .is_some_and(|o| o.open.contains_key(&nonce))
            && !inflight.nonces.contains(&(*owner, nonce))
    }

    /// An order's terms that pass at its turn whatever is in flight: nonce above the floor and
    /// unused now and in flight, and the checks that read only the rules and the clock.
    fn admit_terms(
        &self,
        now_ms: u64,
        order: &Order,
        inflight: &InFlight,
    ) -> Option<super::orders::Terms> {
        let owner = order.owner.to_bytes();
        let spec = *self.market(order.market_index)?;
        let owner_state = self.owners.get(&owner);
        let floor = owner_state.map_or(0, |o| o.floor);
        if order.nonce < floor
            || owner_state.is_some_and(|o| o.used_nonces.contains(&order.nonce))
            || inflight.nonces.contains(&(owner, order.nonce))
        {
            return None;
        }
        self.priced_terms(spec, now_ms, order).ok()
    }

    /// Whether `owner` can hold `atoms` more of `asset` at its turn: the available atoms now
    /// cover them and everything held in flight, and the frozen atoms cannot overflow.
    fn covers(&self, owner: &Owner, asset: u8, atoms: u64, inflight: &InFlight) -> bool {
        let balance = self.ledger.balance(owner, asset);
        let needed = inflight
            .held(owner, asset)
            .saturating_add(u128::from(atoms));
        u128::from(balance.available) >= needed
            && u128::from(balance.frozen).saturating_add(needed) <= u128::from(u64::MAX)
    }

    /// The order `owner` has under `nonce`, open now or placed in flight, unless a
    /// replacement in flight moves it.
    fn target(&self, owner: &Owner, nonce: u64, inflight: &InFlight) -> Option<Target> {
        let open = self
            .owners
            .get(owner)
            .and_then(|o| o.open.get(&nonce))
            .and_then(|id| self.orders.get(id).map(|o| (*id, o)))
            .map(|(order_id, o)| Target {
                order_id,
                market: o.market,
                fixed: Fixed {
                    side: o.side,
                    order_type: o.order_type,
                    self_trade: o.self_trade,
                    client_order_id: o.client_order_id,
                },
            });
        let target = open.or_else(|| {
            inflight.placed(owner, nonce).map(|p| Target {
                order_id: p.order_id,
                market: p.order.market_index,
                fixed: Fixed::of(&p.order),
            })
        })?;
        (!inflight.replaced.contains(&target.order_id)).then_some(target)
    }
}
