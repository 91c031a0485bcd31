//! Commands: the only input of the engine.

use crate::types::{ClientOrderId, Lots, OrderId, OrderType, SelfTradeMode, Side, Ticks, UserId};

/// A new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlaceOrder {
    /// Caller-assigned identifier (the router's global sequence).
    pub order_id: OrderId,
    /// Owner.
    pub user: UserId,
    /// Optional identifier chosen by the user, unique among the user's resting orders.
    pub client_order_id: Option<ClientOrderId>,
    /// Buy or sell.
    pub side: Side,
    /// Limit price; for [`OrderType::Market`] the protective bound (worst acceptable price).
    pub price: Ticks,
    /// Size in base lots.
    pub size: Lots,
    /// Execution type.
    pub order_type: OrderType,
    /// Self-trade prevention for this order when it takes liquidity.
    pub self_trade: SelfTradeMode,
    /// Signed-order nonce, opaque here, echoed in fills for settlement.
    pub nonce: u64,
    /// Expiry in Unix seconds, 0 = none. An order is live while `now < expiry`; a resting order
    /// expires at the first command stamped at or after it (good-til-time).
    pub expiry: u64,
}

/// Which order a cancel names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelTarget {
    /// By the caller-assigned id.
    OrderId(OrderId),
    /// By the user's client order id.
    ClientOrderId(ClientOrderId),
}

/// Changes a resting order's price, size (new remaining size) and signed terms.
///
/// Keeping the price and not increasing the size keeps time priority; anything else moves the
/// order to the back of its (new) level, and a new price that crosses trades first, as a taker
/// with the order's own self-trade mode. A post-only order that would cross is rejected and
/// left unchanged (post-only slide slides instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplaceOrder {
    /// The user asking; must own the order.
    pub user: UserId,
    /// The resting order.
    pub order_id: OrderId,
    /// New limit price.
    pub price: Ticks,
    /// New remaining size (not counting what has already filled).
    pub size: Lots,
    /// Nonce of the newly signed terms (pass the old one if unchanged).
    pub nonce: u64,
    /// Expiry of the newly signed terms, Unix seconds, 0 = none.
    pub expiry: u64,
}

/// Input to [`crate::Engine::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Submit a new order.
    Place(PlaceOrder),
    /// Cancel one resting order of `user`.
    Cancel {
        /// The user asking; must own the order.
        user: UserId,
        /// Which order.
        target: CancelTarget,
    },
    /// Cancel all of a user's resting orders, or only those on one side.
    CancelAll {
        /// Whose orders.
        user: UserId,
        /// `None` = both sides.
        side: Option<Side>,
    },
    /// Amend a resting order.
    Replace(ReplaceOrder),
    /// Only advance the clock: expire every order whose expiry is due. (Every command does this
    /// first; this one does nothing else.)
    ExpireDue,
}
