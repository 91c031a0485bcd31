//! Events: the only output of the engine, delivered through an [`EventSink`].
//!
//! Every event carries `seq`, the market's event sequence number: it starts at 1 and grows by
//! exactly one per event, so a consumer can detect a gap. Fills also carry `fill_id`, which
//! starts at 1 and grows by one per fill (the on-chain program requires strictly increasing
//! fill ids per market).

use crate::types::{ClientOrderId, Lots, OrderId, OrderType, Side, Ticks, UserId};

/// Why a command was refused. Nothing in the book changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RejectReason {
    /// Size below the market's minimum (this includes zero).
    #[error("size below the market minimum")]
    SizeBelowMinimum,
    /// Size above the market's maximum.
    #[error("size above the market maximum")]
    SizeAboveMaximum,
    /// Price outside the market's band (also: a post-only slide that would leave it).
    #[error("price outside the market band")]
    PriceOutOfBand,
    /// The order's expiry is not after the command's timestamp.
    #[error("order already expired")]
    AlreadyExpired,
    /// An order with this id is already resting.
    #[error("duplicate order id")]
    DuplicateOrderId,
    /// The user already has a resting order with this client order id.
    #[error("duplicate client order id")]
    DuplicateClientOrderId,
    /// A post-only order would have traded.
    #[error("post-only order would cross")]
    PostOnlyWouldCross,
    /// A fill-or-kill order could not fill completely.
    #[error("fill-or-kill order cannot fill completely")]
    FillOrKillUnfillable,
    /// The book already holds `max_orders` resting orders.
    #[error("order book full")]
    BookFull,
    /// No resting order matches the cancel or replace.
    #[error("unknown order")]
    UnknownOrder,
    /// The order exists but belongs to another user.
    #[error("order belongs to another user")]
    NotOrderOwner,
}

impl RejectReason {
    /// Stable numeric code, for APIs and storage. Never reused.
    pub const fn code(self) -> u16 {
        match self {
            RejectReason::SizeBelowMinimum => 1001,
            RejectReason::SizeAboveMaximum => 1002,
            RejectReason::PriceOutOfBand => 1003,
            RejectReason::AlreadyExpired => 1004,
            RejectReason::DuplicateOrderId => 1005,
            RejectReason::DuplicateClientOrderId => 1006,
            RejectReason::PostOnlyWouldCross => 1007,
            RejectReason::FillOrKillUnfillable => 1008,
            RejectReason::BookFull => 1009,
            RejectReason::UnknownOrder => 2001,
            RejectReason::NotOrderOwner => 2002,
        }
    }
}

/// Why an order left the book (or never rested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DoneReason {
    /// Completely filled.
    Filled,
    /// Cancelled by its owner (cancel, cancel-all).
    Cancelled,
    /// Its expiry passed.
    Expired,
    /// Removed by self-trade prevention.
    SelfTrade,
    /// The unfilled remainder of an IOC, FOK or market order, which never rests.
    Unmatched,
}

/// The order passed validation and is now live (it may trade at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Accepted {
    /// Market event sequence.
    pub seq: u64,
    /// The order.
    pub order_id: OrderId,
    /// Its owner.
    pub user: UserId,
    /// Its client order id, if any.
    pub client_order_id: Option<ClientOrderId>,
    /// Side.
    pub side: Side,
    /// Effective limit price, ticks (after a post-only slide, the slid price).
    pub price: Ticks,
    /// Size, lots.
    pub size: Lots,
    /// Execution type.
    pub order_type: OrderType,
}

/// A command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// Market event sequence.
    pub seq: u64,
    /// The user who sent the command.
    pub user: UserId,
    /// The order named by the command, if it named one by id.
    pub order_id: Option<OrderId>,
    /// Why.
    pub reason: RejectReason,
}

/// A trade between a resting maker and an incoming taker, at the maker's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fill {
    /// Market event sequence.
    pub seq: u64,
    /// Market fill id: 1, 2, 3, … strictly increasing.
    pub fill_id: u64,
    /// Resting order.
    pub maker_order_id: OrderId,
    /// Incoming order.
    pub taker_order_id: OrderId,
    /// Owner of the resting order.
    pub maker_user: UserId,
    /// Owner of the incoming order.
    pub taker_user: UserId,
    /// Side of the taker (the maker is on the other side).
    pub taker_side: Side,
    /// Trade price, ticks (the maker's price).
    pub price: Ticks,
    /// Trade size, lots.
    pub size: Lots,
    /// Maker's remaining size after this fill, lots.
    pub maker_remaining: Lots,
    /// Taker's remaining size after this fill, lots.
    pub taker_remaining: Lots,
    /// Maker's signed nonce.
    pub maker_nonce: u64,
    /// Maker's signed expiry, Unix seconds, 0 = none.
    pub maker_expiry: u64,
    /// Taker's signed nonce.
    pub taker_nonce: u64,
    /// Taker's signed expiry, Unix seconds, 0 = none.
    pub taker_expiry: u64,
}

/// Self-trade prevention in mode decrement-and-cancel reduced both orders by `size` without a
/// trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SelfTradeDecrement {
    /// Market event sequence.
    pub seq: u64,
    /// Resting order.
    pub maker_order_id: OrderId,
    /// Incoming order.
    pub taker_order_id: OrderId,
    /// Lots removed from each.
    pub size: Lots,
}

/// A replace was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Replaced {
    /// Market event sequence.
    pub seq: u64,
    /// The order.
    pub order_id: OrderId,
    /// New price, ticks (after a post-only slide, the slid price).
    pub price: Ticks,
    /// New remaining size, lots.
    pub size: Lots,
    /// True if the order kept its place in the queue.
    pub kept_priority: bool,
}

/// An order is finished: it will produce no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Done {
    /// Market event sequence.
    pub seq: u64,
    /// The order.
    pub order_id: OrderId,
    /// Its owner.
    pub user: UserId,
    /// Why.
    pub reason: DoneReason,
    /// Lots that were open and are now cancelled (0 when filled).
    pub remaining: Lots,
}

/// The aggregate at one price level changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BookDelta {
    /// Market event sequence.
    pub seq: u64,
    /// Side of the level.
    pub side: Side,
    /// Price of the level, ticks.
    pub price: Ticks,
    /// Total resting size at the level now, lots; 0 = the level is gone.
    pub size: Lots,
    /// Resting orders at the level now.
    pub orders: u32,
}

/// Everything the engine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// See [`Accepted`].
    Accepted(Accepted),
    /// See [`Rejected`].
    Rejected(Rejected),
    /// See [`Fill`].
    Fill(Fill),
    /// See [`SelfTradeDecrement`].
    SelfTradeDecrement(SelfTradeDecrement),
    /// See [`Replaced`].
    Replaced(Replaced),
    /// See [`Done`].
    Done(Done),
    /// See [`BookDelta`].
    BookDelta(BookDelta),
}

impl Event {
    /// The market event sequence number.
    pub const fn seq(&self) -> u64 {
        match self {
            Event::Accepted(e) => e.seq,
            Event::Rejected(e) => e.seq,
            Event::Fill(e) => e.seq,
            Event::SelfTradeDecrement(e) => e.seq,
            Event::Replaced(e) => e.seq,
            Event::Done(e) => e.seq,
            Event::BookDelta(e) => e.seq,
        }
    }
}

/// Receives events as the engine produces them, in sequence order.
pub trait EventSink {
    /// Takes one event.
    fn emit(&mut self, event: Event);
}

impl EventSink for Vec<Event> {
    fn emit(&mut self, event: Event) {
        self.push(event);
    }
}

/// Discards every event (replay that only needs the state).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn emit(&mut self, _event: Event) {}
}

impl<F: FnMut(Event)> EventSink for F {
    fn emit(&mut self, event: Event) {
        self(event);
    }
}
