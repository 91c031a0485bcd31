//! Identifiers, quantities and order attributes.
//!
//! Prices and sizes are integer newtypes (CONVENTIONS item 3): a price is a number of
//! [`Ticks`], a size a number of base [`Lots`]; quote atoms = ticks × tick size × lots, and that
//! product is only ever formed at the API edge, never here.

/// Order identifier, assigned by the caller (the router's global sequence). Unique per market
/// for as long as the order rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct OrderId(pub u64);

/// The user's own identifier for an order; unique per user among that user's resting orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClientOrderId(pub u64);

/// A user: the 32-byte ed25519 public key that signs the user's orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UserId(pub [u8; 32]);

/// A price in integer ticks of the market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticks(pub u64);

/// A size in integer base lots of the market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lots(pub u64);

impl Lots {
    /// Zero lots.
    pub const ZERO: Lots = Lots(0);
}

/// Wall-clock time as passed in by the caller, in nanoseconds since the Unix epoch.
///
/// The engine never reads a clock: the router stamps every command and journals the stamp, so
/// replay sees exactly the same times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from whole Unix seconds (saturating).
    pub const fn from_unix_seconds(seconds: u64) -> Timestamp {
        Timestamp(seconds.saturating_mul(1_000_000_000))
    }

    /// Whole Unix seconds, the unit of order expiry.
    pub const fn unix_seconds(self) -> u64 {
        self.0 / 1_000_000_000
    }
}

/// Side of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Bid: buys base, pays quote.
    Buy,
    /// Ask: sells base, receives quote.
    Sell,
}

impl Side {
    /// The side this side trades against.
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// True when a taker on this side with limit `limit` may trade at `maker_price`.
    pub fn crosses(self, limit: Ticks, maker_price: Ticks) -> bool {
        match self {
            Side::Buy => maker_price <= limit,
            Side::Sell => maker_price >= limit,
        }
    }
}

/// How an order executes. Good-til-time is a [`OrderType::Limit`] (or post-only) order with a
/// non-zero expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderType {
    /// Matches what it can, rests the remainder (good-til-cancelled, or good-til-time when the
    /// order has an expiry).
    Limit,
    /// Immediate-or-cancel: matches what it can at or better than its price; never rests.
    ImmediateOrCancel,
    /// Fill-or-kill: rejected unless it can fill completely at once; never rests.
    FillOrKill,
    /// Post-only: rejected if it would trade on arrival; otherwise rests.
    PostOnly,
    /// Post-only slide: if it would trade, its price moves to one tick inside the best
    /// opposite price, then it rests.
    PostOnlySlide,
    /// Market order; its price is the protective bound (worst acceptable price). Never rests.
    Market,
}

impl OrderType {
    /// True for the types whose remainder may rest on the book.
    pub const fn may_rest(self) -> bool {
        matches!(
            self,
            OrderType::Limit | OrderType::PostOnly | OrderType::PostOnlySlide
        )
    }

    /// True for the two post-only types.
    pub const fn is_post_only(self) -> bool {
        matches!(self, OrderType::PostOnly | OrderType::PostOnlySlide)
    }
}

/// What happens when a taker would trade against a resting order of the same user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SelfTradeMode {
    /// The taker's remainder is cancelled; the resting order stays.
    #[default]
    CancelTaker,
    /// The resting order is cancelled and matching continues.
    CancelMaker,
    /// Both the resting order and the taker's remainder are cancelled.
    CancelBoth,
    /// Both are reduced by the smaller size; whichever reaches zero is cancelled.
    DecrementAndCancel,
}
