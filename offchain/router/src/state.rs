//! The deterministic heart of the router: given the same commands with the same sequence
//! numbers and timestamps, it emits the same events and reaches the same state. The sequencer
//! calls [`State::apply`] for live commands and for journal replay alike.
//!
//! Per order: risk/ledger hold → match in the market's engine → ledger transfers per fill →
//! release of what the order no longer needs.

use crate::ledger::{Change, Ledger};
use crate::market::MarketSpec;
use crate::model::{Business, Command, DoneReason, Event, Owner, Seq, WithdrawalStatus};
use crate::reject::Reject;
use anchor_lang::prelude::Pubkey;
use kestrel::encoding::{
    CancelAll, CancelSide, Order, OrderType, SelfTrade, Side, WithdrawRequest,
};
use kestrel_matcher as m;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The ledger owner that collects fees (the all-zero key, which no wallet can sign for). Its
/// balance per quote asset mirrors the markets' on-chain `fees_accrued`.
pub const FEE_ACCOUNT: Owner = [0; 32];

/// Router-wide rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The exchange account every signed message must name.
    pub exchange: Pubkey,
    /// Mints by asset index (the on-chain asset table).
    pub assets: Vec<Pubkey>,
    /// Markets.
    pub markets: Vec<MarketSpec>,
    /// Orders expiring later than this many seconds from now are refused.
    pub max_expiry_horizon_secs: u64,
    /// Orders stop matching this many seconds before their signed expiry, so that their fills
    /// can still settle on-chain (the chain refuses fills after expiry).
    pub expiry_margin_secs: u64,
    /// Most open orders per owner.
    pub max_open_orders: u32,
}

/// An order resting in (or passing through) a book.
#[derive(Debug, Clone, Copy)]
struct OpenOrder {
    market: u32,
    owner: Owner,
    side: Side,
    price: u64,
    nonce: u64,
    remaining: u64,
    /// Atoms still frozen for it (quote for buys, base for sells).
    held: u64,
}

#[derive(Debug, Default, Clone)]
struct OwnerState {
    floor: u64,
    used_nonces: HashSet<u64>,
    used_withdrawal_nonces: HashSet<u64>,
    /// Open orders by nonce → order id, ordered for deterministic cancel-all.
    open: BTreeMap<u64, u64>,
}

#[derive(Debug, Clone, Copy)]
struct PendingWithdrawal {
    owner: Owner,
    asset: u8,
    amount: u64,
}

/// The whole sequenced state: books, ledger, nonces, withdrawals.
pub struct State {
    rules: Rules,
    engines: BTreeMap<u32, (MarketSpec, m::Engine)>,
    ledger: Ledger,
    orders: HashMap<u64, OpenOrder>,
    owners: HashMap<Owner, OwnerState>,
    deposits: HashSet<([u8; 64], u16)>,
    withdrawals: BTreeMap<Seq, PendingWithdrawal>,
    last_seq: Seq,
    /// The acceptance of the order being placed, emitted when its engine accepts it.
    pending_accept: Option<Event>,
}

/// The state could not be built from its rules.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A market's parameters are invalid for the engine.
    #[error("market {0}: {1}")]
    Market(u32, m::ConfigError),
    /// A market names an asset missing from the asset table.
    #[error("market {0} names an unknown asset")]
    UnknownAsset(u32),
}

impl State {
    /// Empty books and ledger for `rules`.
    pub fn new(rules: Rules) -> Result<State, StateError> {
        let mut engines = BTreeMap::new();
        for spec in &rules.markets {
            let assets = rules.assets.len();
            if usize::from(spec.base_asset) >= assets || usize::from(spec.quote_asset) >= assets {
                return Err(StateError::UnknownAsset(spec.index));
            }
            let engine = m::Engine::new(spec.engine_config())
                .map_err(|e| StateError::Market(spec.index, e))?;
            engines.insert(spec.index, (*spec, engine));
        }
        Ok(State {
            rules,
            engines,
            ledger: Ledger::default(),
            orders: HashMap::new(),
            owners: HashMap::new(),
            deposits: HashSet::new(),
            withdrawals: BTreeMap::new(),
            last_seq: 0,
            pending_accept: None,
        })
    }

    /// The rules this state runs under.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Sequence number of the last applied command.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// A market's engine (for book snapshots).
    pub fn engine(&self, market: u32) -> Option<&m::Engine> {
        self.engines.get(&market).map(|(_, e)| e)
    }

    /// A market's spec.
    pub fn market(&self, market: u32) -> Option<&MarketSpec> {
        self.engines.get(&market).map(|(s, _)| s)
    }

    /// Number of open orders of `owner`.
    pub fn open_orders(&self, owner: &Owner) -> usize {
        self.owners.get(owner).map_or(0, |o| o.open.len())
    }

    /// A digest of everything replay must reproduce: sequence, books, balances, open orders.
    pub fn state_hash(&self) -> u64 {
        let mut h = Fnv::default();
        h.write_u64(self.last_seq);
        for (index, (_, engine)) in &self.engines {
            h.write_u64(u64::from(*index));
            h.write_u64(engine.state_hash());
        }
        let mut balances: Vec<_> = self.ledger.iter().collect();
        balances.sort_by_key(|(k, _)| **k);
        for ((owner, asset), b) in balances {
            h.write(owner);
            h.write_u64(u64::from(*asset));
            h.write_u64(b.available);
            h.write_u64(b.frozen);
            h.write_u64(b.version);
        }
        let mut orders: Vec<_> = self.orders.iter().collect();
        orders.sort_by_key(|(id, _)| **id);
        for (id, o) in orders {
            h.write_u64(*id);
            h.write_u64(o.remaining);
            h.write_u64(o.held);
        }
        h.finish()
    }

    /// Applies command `seq`, stamped `now_ms` (unix milliseconds), returning its events.
    /// A refused command yields one [`Event::Rejected`] and changes nothing else, except that
    /// a signed order consumes its nonce once it reaches the sequencer, accepted or not, so
    /// that a refused order can never be replayed later.
    pub fn apply(&mut self, seq: Seq, now_ms: u64, command: &Command) -> Vec<Event> {
        self.last_seq = seq;
        let mut out = Vec::new();
        let result = match command {
            Command::Place { order, signature } => {
                self.place(seq, now_ms, order, signature, &mut out)
            }
            Command::Cancel(c) => {
                let owner = c.owner.to_bytes();
                self.check_signed_expiry(c.expiry, now_ms)
                    .and_then(|()| self.check_exchange(&c.exchange))
                    .map_err(|(_, reason)| (owner, reason))
                    .and_then(|()| {
                        self.cancel_one(now_ms, &owner, c.market_index, c.order_nonce, &mut out)
                    })
            }
            Command::CancelAll(c) => self.cancel_all(now_ms, c, &mut out),
            Command::Withdraw(w) => self.withdraw(seq, now_ms, w, &mut out),
            Command::DepositObserved {
                owner,
                asset,
                amount,
                tx,
                ix_index,
            } => self.deposit(owner, *asset, *amount, tx, *ix_index, &mut out),
            Command::NonceFloorObserved { owner, floor } => {
                self.raise_floor(now_ms, owner, *floor, &mut out);
                Ok(())
            }
            Command::WithdrawalFinished { id, confirmed } => {
                self.finish_withdrawal(*id, *confirmed, &mut out)
            }
            Command::SettlementUpdate {
                market,
                fill_id,
                status,
            } => {
                out.push(Event::Settlement {
                    market: *market,
                    fill_id: *fill_id,
                    status: *status,
                });
                Ok(())
            }
            Command::Tick => {
                let markets: Vec<u32> = self.engines.keys().copied().collect();
                for market in markets {
                    self.run_engine(market, now_ms, &m::Command::ExpireDue, &mut out);
                }
                Ok(())
            }
        };
        if let Err((owner, reason)) = result {
            out.push(Event::Rejected { owner, reason });
        }
        out
    }

    fn check_exchange(&self, exchange: &Pubkey) -> Result<(), (Owner, Reject)> {
        if *exchange == self.rules.exchange {
            Ok(())
        } else {
            Err(([0; 32], Reject::WrongExchange))
        }
    }

    fn check_signed_expiry(&self, expiry: i64, now_ms: u64) -> Result<(), (Owner, Reject)> {
        if expiry != 0 && i128::from(expiry).saturating_mul(1000) <= i128::from(now_ms) {
            return Err(([0; 32], Reject::Expired));
        }
        Ok(())
    }

    fn place(
        &mut self,
        seq: Seq,
        now_ms: u64,
        order: &Order,
        signature: &[u8; 64],
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
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
        let open = owner_state.open.len();
        let now_s = now_ms / 1000;
        let engine_expiry = match u64::try_from(order.expiry) {
            Ok(0) => 0,
            Ok(expiry) => {
                let effective = expiry.saturating_sub(self.rules.expiry_margin_secs);
                if effective <= now_s {
                    return Err(fail(Reject::Expired));
                }
                if expiry > now_s.saturating_add(self.rules.max_expiry_horizon_secs) {
                    return Err(fail(Reject::ExpiryTooFar));
                }
                effective
            }
            Err(_) => return Err(fail(Reject::Expired)),
        };
        if order.price_ticks < spec.min_price_ticks || order.price_ticks > spec.max_price_ticks {
            return Err(fail(Reject::PriceOutOfRange));
        }
        if order.size_lots < spec.min_size_lots || order.size_lots > spec.max_size_lots {
            return Err(fail(Reject::SizeOutOfRange));
        }
        if open >= self.rules.max_open_orders as usize {
            return Err(fail(Reject::TooManyOpenOrders));
        }
        spec.notional(order.price_ticks, order.size_lots)
            .ok_or(fail(Reject::NotionalOverflow))?;
        let (hold_asset, hold) = match order.side {
            Side::Buy => (
                spec.quote_asset,
                spec.buy_hold(order.price_ticks, order.size_lots)
                    .ok_or(fail(Reject::NotionalOverflow))?,
            ),
            Side::Sell => (
                spec.base_asset,
                spec.base_atoms(order.size_lots)
                    .ok_or(fail(Reject::NotionalOverflow))?,
            ),
        };
        let order_id = seq;
        self.ledger
            .change(
                &owner,
                hold_asset,
                Change::new(
                    Business::OrderHold,
                    order_id.to_string(),
                    neg(hold),
                    i128::from(hold),
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
            signed: hex::encode(order.encode()),
            signature: hex::encode(signature),
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
                held: hold,
            },
        );
        self.owners
            .entry(owner)
            .or_default()
            .open
            .insert(order.nonce, order_id);
        let command = m::Command::Place(m::PlaceOrder {
            order_id: m::OrderId(order_id),
            user: m::UserId(owner),
            client_order_id: (order.client_order_id != 0)
                .then_some(m::ClientOrderId(order.client_order_id)),
            side: engine_side(order.side),
            price: m::Ticks(order.price_ticks),
            size: m::Lots(order.size_lots),
            order_type: engine_order_type(order.order_type),
            self_trade: engine_self_trade(order.self_trade),
            nonce: order.nonce,
            expiry: engine_expiry,
        });
        self.run_engine(order.market_index, now_ms, &command, out);
        self.pending_accept = None;
        Ok(())
    }

    fn cancel_one(
        &mut self,
        now_ms: u64,
        owner: &Owner,
        market: u32,
        nonce: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let order_id = self
            .owners
            .get(owner)
            .and_then(|o| o.open.get(&nonce))
            .copied()
            .filter(|id| self.orders.get(id).is_some_and(|o| o.market == market))
            .ok_or((*owner, Reject::UnknownOrder))?;
        let command = m::Command::Cancel {
            user: m::UserId(*owner),
            target: m::CancelTarget::OrderId(m::OrderId(order_id)),
        };
        self.run_engine(market, now_ms, &command, out);
        Ok(())
    }

    fn cancel_all(
        &mut self,
        now_ms: u64,
        c: &CancelAll,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let owner = c.owner.to_bytes();
        self.check_signed_expiry(c.expiry, now_ms)
            .map_err(|(_, r)| (owner, r))?;
        self.check_exchange(&c.exchange)
            .map_err(|(_, r)| (owner, r))?;
        let targets: Vec<(u64, u32)> = self
            .owners
            .get(&owner)
            .map(|o| {
                o.open
                    .range(..c.up_to_nonce)
                    .filter_map(|(_, id)| self.orders.get(id).map(|order| (*id, *order)))
                    .filter(|(_, order)| {
                        (c.market_index == kestrel::encoding::ALL_MARKETS
                            || order.market == c.market_index)
                            && match c.side {
                                CancelSide::Both => true,
                                CancelSide::Buy => order.side == Side::Buy,
                                CancelSide::Sell => order.side == Side::Sell,
                            }
                    })
                    .map(|(id, order)| (id, order.market))
                    .collect()
            })
            .unwrap_or_default();
        for (order_id, market) in targets {
            let command = m::Command::Cancel {
                user: m::UserId(owner),
                target: m::CancelTarget::OrderId(m::OrderId(order_id)),
            };
            self.run_engine(market, now_ms, &command, out);
        }
        Ok(())
    }

    fn raise_floor(&mut self, now_ms: u64, owner: &Owner, floor: u64, out: &mut Vec<Event>) {
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
            let command = m::Command::Cancel {
                user: m::UserId(*owner),
                target: m::CancelTarget::OrderId(m::OrderId(order_id)),
            };
            self.run_engine(market, now_ms, &command, out);
        }
    }

    fn deposit(
        &mut self,
        owner: &Owner,
        asset: u8,
        amount: u64,
        tx: &[u8; 64],
        ix_index: u16,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        if amount == 0 || usize::from(asset) >= self.rules.assets.len() {
            return Err((*owner, Reject::InvalidAmount));
        }
        if self.deposits.contains(&(*tx, ix_index)) {
            return Ok(());
        }
        let id = format!("{}:{}", hex::encode(tx), ix_index);
        self.ledger
            .change(
                owner,
                asset,
                Change::new(Business::Deposit, id, i128::from(amount), 0),
                out,
            )
            .map_err(|_| (*owner, Reject::InvalidAmount))?;
        self.deposits.insert((*tx, ix_index));
        out.push(Event::DepositCredited {
            owner: *owner,
            asset,
            amount,
            tx: hex::encode(tx),
            ix_index,
        });
        Ok(())
    }

    fn withdraw(
        &mut self,
        seq: Seq,
        now_ms: u64,
        w: &WithdrawRequest,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let owner = w.owner.to_bytes();
        self.check_signed_expiry(w.expiry, now_ms)
            .map_err(|(_, r)| (owner, r))?;
        self.check_exchange(&w.exchange)
            .map_err(|(_, r)| (owner, r))?;
        let asset = self
            .rules
            .assets
            .iter()
            .position(|mint| *mint == w.mint)
            .and_then(|i| u8::try_from(i).ok())
            .ok_or((owner, Reject::InvalidAmount))?;
        if w.amount == 0 {
            return Err((owner, Reject::InvalidAmount));
        }
        if !self
            .owners
            .entry(owner)
            .or_default()
            .used_withdrawal_nonces
            .insert(w.nonce)
        {
            return Err((owner, Reject::NonceReused));
        }
        let amount = i128::from(w.amount);
        self.ledger
            .change(
                &owner,
                asset,
                Change::new(
                    Business::WithdrawalHold,
                    seq.to_string(),
                    neg(w.amount),
                    amount,
                ),
                out,
            )
            .map_err(|_| (owner, Reject::InsufficientBalance))?;
        self.withdrawals.insert(
            seq,
            PendingWithdrawal {
                owner,
                asset,
                amount: w.amount,
            },
        );
        out.push(Event::Withdrawal {
            id: seq,
            owner,
            asset,
            amount: w.amount,
            status: WithdrawalStatus::Pending,
        });
        Ok(())
    }

    fn finish_withdrawal(
        &mut self,
        id: Seq,
        confirmed: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let w = self
            .withdrawals
            .remove(&id)
            .ok_or(([0; 32], Reject::UnknownOrder))?;
        let amount = i128::from(w.amount);
        let (business, available, status) = if confirmed {
            (Business::WithdrawalPaid, 0, WithdrawalStatus::Confirmed)
        } else {
            (
                Business::WithdrawalRelease,
                amount,
                WithdrawalStatus::Failed,
            )
        };
        let change = Change::new(business, id.to_string(), available, neg(w.amount));
        if self.ledger.change(&w.owner, w.asset, change, out).is_err() {
            self.withdrawals.insert(id, w);
            return Err((w.owner, Reject::InsufficientBalance));
        }
        out.push(Event::Withdrawal {
            id,
            owner: w.owner,
            asset: w.asset,
            amount: w.amount,
            status,
        });
        Ok(())
    }

    /// Runs one engine command and turns its events into ledger changes and router events.
    fn run_engine(&mut self, market: u32, now_ms: u64, command: &m::Command, out: &mut Vec<Event>) {
        let Some((spec, engine)) = self.engines.get_mut(&market) else {
            return;
        };
        let spec = *spec;
        let mut events: Vec<m::Event> = Vec::new();
        engine.apply(
            command,
            m::Timestamp(now_ms.saturating_mul(1_000_000)),
            &mut events,
        );
        for event in events {
            self.on_engine_event(&spec, event, out);
        }
    }

    fn on_engine_event(&mut self, spec: &MarketSpec, event: m::Event, out: &mut Vec<Event>) {
        match event {
            m::Event::Accepted(_) => out.extend(self.pending_accept.take()),
            m::Event::Replaced(_) => {}
            m::Event::Rejected(r) => {
                if let Some(id) = r.order_id {
                    self.close_order(spec, id.0, None, out);
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

    /// Ledger transfers of one fill, exactly as the program will settle it.
    fn on_fill(&mut self, spec: &MarketSpec, f: &m::Fill, out: &mut Vec<Event>) {
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
    fn release_excess(&mut self, spec: &MarketSpec, order_id: u64, out: &mut Vec<Event>) {
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
    fn close_order(
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

/// The negative of an amount, as a ledger delta (cannot overflow: |u64| fits in i128).
fn neg(amount: u64) -> i128 {
    0i128.saturating_sub(i128::from(amount))
}

fn engine_side(side: Side) -> m::Side {
    match side {
        Side::Buy => m::Side::Buy,
        Side::Sell => m::Side::Sell,
    }
}

fn router_side(side: m::Side) -> Side {
    match side {
        m::Side::Buy => Side::Buy,
        m::Side::Sell => Side::Sell,
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

/// FNV-1a, for a deterministic state digest independent of the process's hasher seed.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
