//! Read-only views of the book, for the router, market data and tests.

use super::Engine;
use crate::book::NIL;
use crate::types::{ClientOrderId, Lots, OrderId, OrderType, SelfTradeMode, Side, Ticks, UserId};

/// A resting order as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RestingOrder {
    /// Id.
    pub order_id: OrderId,
    /// Owner.
    pub user: UserId,
    /// Client order id, if any.
    pub client_order_id: Option<ClientOrderId>,
    /// Side.
    pub side: Side,
    /// Price, ticks.
    pub price: Ticks,
    /// Open size, lots.
    pub remaining: Lots,
    /// Execution type it was placed with (a resting order is limit or post-only).
    pub order_type: OrderType,
    /// Self-trade mode it takes liquidity with after a replace.
    pub self_trade: SelfTradeMode,
    /// Signed nonce.
    pub nonce: u64,
    /// Signed expiry, Unix seconds, 0 = none.
    pub expiry: u64,
    /// Time priority: lower rested earlier (unique in the book).
    pub priority: u64,
}

/// Aggregate of one price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelView {
    /// Price, ticks.
    pub price: Ticks,
    /// Total open size, lots.
    pub size: Lots,
    /// Number of orders.
    pub orders: u32,
}

impl Engine {
    fn view(&self, slot: u32) -> RestingOrder {
        let n = self.book.order(slot);
        RestingOrder {
            order_id: n.id,
            user: self.book.user_key(n.user),
            client_order_id: n.client_order_id,
            side: n.side,
            price: n.price,
            remaining: n.remaining,
            order_type: n.order_type,
            self_trade: n.self_trade,
            nonce: n.nonce,
            expiry: n.expiry,
            priority: n.stamp,
        }
    }

    /// A resting order by id.
    pub fn order(&self, id: OrderId) -> Option<RestingOrder> {
        self.book.find(id).map(|slot| self.view(slot))
    }

    /// Number of resting orders.
    pub fn resting_orders(&self) -> u32 {
        self.book.len()
    }

    /// Best level of a side.
    pub fn best(&self, side: Side) -> Option<LevelView> {
        self.levels(side).next()
    }

    /// Levels of a side, best first.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = LevelView> + '_ {
        self.book.levels_from_best(side).map(|l| {
            let level = self.book.level(l);
            LevelView {
                price: level.price,
                size: level.total,
                orders: level.count,
            }
        })
    }

    /// Orders at one level, front of the queue first.
    pub fn orders_at(&self, side: Side, price: Ticks) -> impl Iterator<Item = RestingOrder> + '_ {
        let head = self
            .book
            .level_at(side, price)
            .map_or(NIL, |l| self.book.level(l).head);
        std::iter::successors((head != NIL).then_some(head), |&slot| {
            let next = self.book.order(slot).next;
            (next != NIL).then_some(next)
        })
        .map(|slot| self.view(slot))
    }

    /// A user's resting orders, in time priority.
    pub fn user_orders(&self, user: &UserId) -> impl Iterator<Item = RestingOrder> + '_ {
        let head = self
            .book
            .user_slot(user)
            .map_or(NIL, |u| self.book.user_head(u));
        std::iter::successors((head != NIL).then_some(head), |&slot| {
            let next = self.book.order(slot).user_next;
            (next != NIL).then_some(next)
        })
        .map(|slot| self.view(slot))
    }

    /// Every resting order, in time priority (allocates; for snapshots and checks).
    pub fn all_orders(&self) -> Vec<RestingOrder> {
        let mut all: Vec<RestingOrder> = self.book.slots().map(|slot| self.view(slot)).collect();
        all.sort_unstable_by_key(|o| o.priority);
        all
    }
}
