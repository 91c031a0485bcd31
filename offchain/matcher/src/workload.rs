//! Deterministic command streams from a seed: the benchmark workloads, the crash test's
//! stream, and load tests elsewhere.
//!
//! A [`Workload`] keeps a shadow [`Engine`] so that every cancel and move names an order that
//! is actually resting; the stream depends only on the mix and the seed. Time advances by one
//! microsecond per command.

use std::collections::HashMap;

use crate::command::{CancelTarget, Command, PlaceOrder, ReplaceOrder};
use crate::config::{ConfigError, MarketConfig};
use crate::engine::Engine;
use crate::event::Event;
use crate::types::{
    ClientOrderId, Lots, OrderId, OrderType, SelfTradeMode, Side, Ticks, Timestamp, UserId,
};

/// SplitMix64: a small, fast, seedable generator (not for cryptography).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()).saturating_mul(u128::from(n));
        (wide >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo.saturating_add(self.below(hi.saturating_sub(lo).saturating_add(1)))
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The workloads of the benchmark (and the crash test's anything-goes stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// exchange-core's mix: ~9% GTC, 3% IOC, 6% cancel, 82% move; ~1,000 orders, ~750 levels.
    ExchangeCore,
    /// Retail: 50% limit, 20% IOC or market, 30% cancel.
    Retail,
    /// 100,000 resting orders over 10,000 levels; places, cancels and moves across the depth.
    DeepBook,
    /// 32 one-order ask levels swept by one IOC, then refilled (33 commands per cycle).
    Sweep32,
    /// Every command and order type, self-trade mode, expiry and client id (crash test).
    Random,
}

const MID: u64 = 100_000;

impl Mix {
    /// The market each workload runs on.
    pub fn market_config(self) -> MarketConfig {
        let max_orders = match self {
            Mix::DeepBook => 1 << 18,
            _ => 1 << 14,
        };
        MarketConfig {
            market_id: 1,
            tick_size: 1,
            lot_size: 1,
            min_size: Lots(1),
            max_size: Lots(1_000_000),
            min_price: Ticks(1),
            max_price: Ticks(1_000_000_000),
            max_orders,
        }
    }

    /// Resting orders the steady state hovers around.
    fn target(self) -> (usize, usize) {
        match self {
            Mix::ExchangeCore => (900, 1_100),
            Mix::Retail => (1_500, 2_500),
            Mix::DeepBook => (95_000, 105_000),
            Mix::Sweep32 => (0, 32),
            Mix::Random => (100, 300),
        }
    }

    fn users(self) -> u64 {
        match self {
            Mix::ExchangeCore => 1_000,
            Mix::Retail => 10_000,
            Mix::DeepBook => 10_000,
            Mix::Sweep32 => 64,
            Mix::Random => 8,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Live {
    id: OrderId,
    user: UserId,
    side: Side,
    price: Ticks,
}

/// A seeded command generator for one [`Mix`].
#[derive(Debug)]
pub struct Workload {
    mix: Mix,
    rng: SplitMix64,
    shadow: Engine,
    live: Vec<Live>,
    position: HashMap<OrderId, usize>,
    events: Vec<Event>,
    next_id: u64,
    now_ns: u64,
    cycle: u64,
}

/// The user with index `i`.
pub fn user(i: u64) -> UserId {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&i.to_le_bytes());
    key[31] = 0x5a;
    UserId(key)
}

impl Workload {
    /// A generator for `mix` seeded with `seed`.
    pub fn new(mix: Mix, seed: u64) -> Result<Workload, ConfigError> {
        Ok(Workload {
            mix,
            rng: SplitMix64::new(seed),
            shadow: Engine::new(mix.market_config())?,
            live: Vec::new(),
            position: HashMap::new(),
            events: Vec::new(),
            next_id: 1,
            now_ns: 1_700_000_000_000_000_000,
            cycle: 0,
        })
    }

    /// Resting orders in the shadow book.
    pub fn resting(&self) -> usize {
        self.live.len()
    }

    /// The commands that build the initial book (empty for mixes that start empty).
    pub fn prefill(&mut self) -> Vec<(Command, Timestamp)> {
        let count: u64 = match self.mix {
            Mix::ExchangeCore => 1_000,
            Mix::Retail => 2_000,
            Mix::DeepBook => 100_000,
            Mix::Sweep32 => 32,
            Mix::Random => 200,
        };
        let levels: u64 = match self.mix {
            Mix::ExchangeCore => 375,
            Mix::DeepBook => 5_000,
            Mix::Sweep32 => 32,
            _ => 50,
        };
        (0..count)
            .map(|i| {
                let side = if self.mix == Mix::Sweep32 || i % 2 == 1 {
                    Side::Sell
                } else {
                    Side::Buy
                };
                let depth = match self.mix {
                    Mix::Sweep32 => i,
                    Mix::DeepBook => (i / 2).checked_rem(levels).unwrap_or(0),
                    _ => self.rng.below(levels),
                };
                let offset = depth.saturating_add(1);
                let price = match side {
                    Side::Buy => MID.saturating_sub(offset),
                    Side::Sell => MID.saturating_add(offset),
                };
                let size = if self.mix == Mix::Sweep32 {
                    10
                } else {
                    self.rng.range(1, 100)
                };
                let u = self.rng.range(1, self.mix.users().saturating_sub(1));
                let cmd = self.place(u, side, price, size, OrderType::Limit);
                self.emit(cmd)
            })
            .collect()
    }

    /// `n` steady-state commands.
    pub fn take(&mut self, n: usize) -> Vec<(Command, Timestamp)> {
        (0..n).map(|_| self.next_command()).collect()
    }

    /// The next steady-state command.
    pub fn next_command(&mut self) -> (Command, Timestamp) {
        let cmd = match self.mix {
            Mix::ExchangeCore => self.exchange_core(),
            Mix::Retail => self.retail(),
            Mix::DeepBook => self.deep_book(),
            Mix::Sweep32 => self.sweep(),
            Mix::Random => self.random(),
        };
        self.emit(cmd)
    }

    fn emit(&mut self, cmd: Command) -> (Command, Timestamp) {
        self.now_ns = self.now_ns.saturating_add(1_000);
        let now = Timestamp(self.now_ns);
        self.events.clear();
        self.shadow.apply(&cmd, now, &mut self.events);
        let mut gone = Vec::new();
        for e in &self.events {
            if let Event::Done(d) = e {
                gone.push(d.order_id);
            }
            if let Event::Accepted(a) = e {
                gone.push(a.order_id);
            }
        }
        for id in gone {
            self.forget(id);
        }
        let placed = match &cmd {
            Command::Place(p) => Some(p.order_id),
            Command::Replace(r) => Some(r.order_id),
            _ => None,
        };
        if let Some(id) = placed {
            self.forget(id);
            if let Some(o) = self.shadow.order(id) {
                self.position.insert(id, self.live.len());
                self.live.push(Live {
                    id,
                    user: o.user,
                    side: o.side,
                    price: o.price,
                });
            }
        }
        (cmd, now)
    }

    fn forget(&mut self, id: OrderId) {
        if let Some(pos) = self.position.remove(&id) {
            self.live.swap_remove(pos);
            if let Some(moved) = self.live.get(pos) {
                self.position.insert(moved.id, pos);
            }
        }
    }

    fn place(&mut self, u: u64, side: Side, price: u64, size: u64, t: OrderType) -> Command {
        let id = self.next_id;
        self.next_id = id.saturating_add(1);
        Command::Place(PlaceOrder {
            order_id: OrderId(id),
            user: user(u),
            client_order_id: None,
            side,
            price: Ticks(price.max(1)),
            size: Lots(size.max(1)),
            order_type: t,
            self_trade: SelfTradeMode::CancelTaker,
            nonce: id,
            expiry: 0,
        })
    }

    fn side(&mut self) -> Side {
        if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    fn best(&self, side: Side) -> u64 {
        self.shadow.best(side).map_or(
            match side {
                Side::Buy => MID.saturating_sub(1),
                Side::Sell => MID.saturating_add(1),
            },
            |l| l.price.0,
        )
    }

    fn mid(&self) -> u64 {
        self.best(Side::Buy)
            .saturating_add(self.best(Side::Sell))
            .saturating_div(2)
    }

    fn random_live(&mut self) -> Option<Live> {
        let n = self.live.len() as u64;
        (n > 0).then(|| self.live.get(self.rng.below(n) as usize).copied())?
    }

    fn cancel(&mut self) -> Command {
        match self.random_live() {
            Some(o) => Command::Cancel {
                user: o.user,
                target: CancelTarget::OrderId(o.id),
            },
            None => Command::ExpireDue,
        }
    }

    /// Moves a random resting order by up to `max_step` ticks, never across the spread.
    fn moved(&mut self, max_step: u64) -> Command {
        let Some(o) = self.random_live() else {
            return Command::ExpireDue;
        };
        let step = self.rng.range(1, max_step);
        let up = self.rng.below(2) == 0;
        let target = if up {
            o.price.0.saturating_add(step)
        } else {
            o.price.0.saturating_sub(step).max(1)
        };
        let price = match o.side {
            Side::Buy => target.min(self.best(Side::Sell).saturating_sub(1)),
            Side::Sell => target.max(self.best(Side::Buy).saturating_add(1)),
        };
        let size = self.shadow.order(o.id).map_or(Lots(1), |r| r.remaining);
        Command::Replace(ReplaceOrder {
            user: o.user,
            order_id: o.id,
            price: Ticks(price.max(1)),
            size,
            nonce: self.next_id,
            expiry: 0,
        })
    }

    /// Adds when below the target, removes when above it; otherwise `cmd`.
    fn steer(&mut self, add: bool, remove: bool) -> Option<Command> {
        let (lo, hi) = self.mix.target();
        if add && self.live.len() > hi {
            return Some(self.cancel());
        }
        if remove && self.live.len() < lo {
            let side = self.side();
            let depth = self.rng.range(1, 375);
            let price = match side {
                Side::Buy => self.best(Side::Sell).saturating_sub(depth),
                Side::Sell => self.best(Side::Buy).saturating_add(depth),
            };
            let size = self.rng.range(1, 100);
            let u = self.rng.below(self.mix.users());
            return Some(self.place(u, side, price, size, OrderType::Limit));
        }
        None
    }

    fn exchange_core(&mut self) -> Command {
        let r = self.rng.below(100);
        let u = self.rng.below(self.mix.users());
        let side = self.side();
        if r < 9 {
            if let Some(c) = self.steer(true, false) {
                return c;
            }
            let mid = self.mid();
            let offset = self.rng.range(1, 375);
            let price = match side {
                Side::Buy => mid.saturating_sub(offset),
                Side::Sell => mid.saturating_add(offset),
            };
            let size = self.rng.range(1, 100);
            self.place(u, side, price, size, OrderType::Limit)
        } else if r < 12 {
            let price = match side {
                Side::Buy => self.best(Side::Sell).saturating_add(self.rng.below(5)),
                Side::Sell => self.best(Side::Buy).saturating_sub(self.rng.below(5)),
            };
            let size = self.rng.range(1, 100);
            self.place(u, side, price, size, OrderType::ImmediateOrCancel)
        } else if r < 18 {
            self.steer(false, true).unwrap_or_else(|| self.cancel())
        } else {
            self.moved(5)
        }
    }

    fn retail(&mut self) -> Command {
        let r = self.rng.below(100);
        let u = self.rng.below(self.mix.users());
        let side = self.side();
        let mid = self.mid();
        if r < 50 {
            if let Some(c) = self.steer(true, false) {
                return c;
            }
            let offset = self.rng.below(60);
            let price = match side {
                Side::Buy => mid.saturating_add(offset).saturating_sub(50),
                Side::Sell => mid.saturating_sub(offset).saturating_add(50),
            };
            let size = self.rng.range(1, 20);
            self.place(u, side, price, size, OrderType::Limit)
        } else if r < 70 {
            let (t, price) = if r < 60 {
                let price = match side {
                    Side::Buy => self.best(Side::Sell).saturating_add(self.rng.below(3)),
                    Side::Sell => self.best(Side::Buy).saturating_sub(self.rng.below(3)),
                };
                (OrderType::ImmediateOrCancel, price)
            } else {
                let price = match side {
                    Side::Buy => mid.saturating_add(50),
                    Side::Sell => mid.saturating_sub(50),
                };
                (OrderType::Market, price)
            };
            let size = self.rng.range(1, 30);
            self.place(u, side, price, size, t)
        } else {
            self.steer(false, true).unwrap_or_else(|| self.cancel())
        }
    }

    fn deep_book(&mut self) -> Command {
        let r = self.rng.below(100);
        let u = self.rng.below(self.mix.users());
        let side = self.side();
        if r < 35 {
            if let Some(c) = self.steer(true, false) {
                return c;
            }
            let depth = self.rng.range(1, 5_000);
            let price = match side {
                Side::Buy => self.best(Side::Sell).saturating_sub(depth),
                Side::Sell => self.best(Side::Buy).saturating_add(depth),
            };
            let size = self.rng.range(1, 100);
            self.place(u, side, price, size, OrderType::Limit)
        } else if r < 70 {
            self.steer(false, true).unwrap_or_else(|| self.cancel())
        } else if r < 80 {
            let price = match side {
                Side::Buy => self.best(Side::Sell).saturating_add(2),
                Side::Sell => self.best(Side::Buy).saturating_sub(2),
            };
            let size = self.rng.range(1, 50);
            self.place(u, side, price, size, OrderType::ImmediateOrCancel)
        } else {
            self.moved(10)
        }
    }

    fn sweep(&mut self) -> Command {
        let step = self.cycle % 33;
        self.cycle = self.cycle.saturating_add(1);
        if step == 0 {
            let price = MID.saturating_add(32);
            return self.place(0, Side::Buy, price, 320, OrderType::ImmediateOrCancel);
        }
        let price = MID.saturating_add(step);
        let u = self.rng.range(1, self.mix.users().saturating_sub(1));
        self.place(u, Side::Sell, price, 10, OrderType::Limit)
    }

    fn random(&mut self) -> Command {
        let r = self.rng.below(100);
        let u = self.rng.below(self.mix.users());
        let side = self.side();
        if r < 55 {
            if let Some(c) = self.steer(true, false) {
                return c;
            }
            let mid = self.mid();
            let price = mid.saturating_add(self.rng.below(40)).saturating_sub(20);
            let size = self.rng.range(1, 50);
            let t = [
                OrderType::Limit,
                OrderType::Limit,
                OrderType::Limit,
                OrderType::ImmediateOrCancel,
                OrderType::FillOrKill,
                OrderType::PostOnly,
                OrderType::PostOnlySlide,
                OrderType::Market,
            ][self.rng.below(8) as usize];
            let mut cmd = self.place(u, side, price, size, t);
            if let Command::Place(p) = &mut cmd {
                p.self_trade = [
                    SelfTradeMode::CancelTaker,
                    SelfTradeMode::CancelMaker,
                    SelfTradeMode::CancelBoth,
                    SelfTradeMode::DecrementAndCancel,
                ][self.rng.below(4) as usize];
                if self.rng.percent(20) {
                    p.expiry = (self.now_ns / 1_000_000_000).saturating_add(self.rng.range(1, 3));
                }
                if self.rng.percent(30) {
                    p.client_order_id = Some(ClientOrderId(self.rng.below(16)));
                }
            }
            cmd
        } else if r < 75 {
            self.steer(false, true).unwrap_or_else(|| self.cancel())
        } else if r < 77 {
            let side = [None, Some(Side::Buy), Some(Side::Sell)][self.rng.below(3) as usize];
            Command::CancelAll {
                user: user(u),
                side,
            }
        } else if r < 79 {
            Command::Cancel {
                user: user(u),
                target: CancelTarget::ClientOrderId(ClientOrderId(self.rng.below(16))),
            }
        } else if r < 98 {
            self.moved(30)
        } else {
            // Let time pass so that good-til-time orders expire.
            self.now_ns = self.now_ns.saturating_add(1_000_000_000);
            Command::ExpireDue
        }
    }
}
