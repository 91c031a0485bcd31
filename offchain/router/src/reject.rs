//! Why the router refused a command: a stable numeric code, an HTTP status, a message that
//! leaks nothing internal.

use serde::{Deserialize, Serialize};

/// Every refusal of a command. Codes are stable and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// The bytes are not a canonical message of the expected kind.
    #[error("malformed signed message")]
    MalformedMessage,
    /// The ed25519 signature does not verify for the owner.
    #[error("invalid signature")]
    BadSignature,
    /// The message names another exchange deployment.
    #[error("wrong exchange")]
    WrongExchange,
    /// The market does not exist.
    #[error("unknown market")]
    UnknownMarket,
    /// The order or request has expired.
    #[error("expired")]
    Expired,
    /// The expiry is further in the future than the router accepts.
    #[error("expiry too far in the future")]
    ExpiryTooFar,
    /// The owner already used this nonce.
    #[error("nonce already used")]
    NonceReused,
    /// The nonce is below the owner's cancel floor.
    #[error("nonce below the cancel floor")]
    NonceCancelled,
    /// Price is zero or outside the market's band.
    #[error("price out of range")]
    PriceOutOfRange,
    /// Size is below the market minimum or above its maximum.
    #[error("size out of range")]
    SizeOutOfRange,
    /// The price × size × tick size overflows.
    #[error("notional overflows")]
    NotionalOverflow,
    /// Not enough available balance to hold the order or the withdrawal.
    #[error("insufficient balance")]
    InsufficientBalance,
    /// The owner has too many open orders.
    #[error("too many open orders")]
    TooManyOpenOrders,
    /// A post-only order would have traded.
    #[error("post-only order would cross")]
    PostOnlyWouldCross,
    /// A fill-or-kill order could not fill completely.
    #[error("fill-or-kill order cannot fill")]
    FillOrKillUnfillable,
    /// The market's book is full.
    #[error("order book full")]
    BookFull,
    /// No such open order for this owner.
    #[error("unknown order")]
    UnknownOrder,
    /// The client order id is already used by an open order of this owner.
    #[error("duplicate client order id")]
    DuplicateClientOrderId,
    /// A replacement changes what a replace may not: market, side, type, self-trade mode or
    /// client order id (or the cancel names another market or owner).
    #[error("replacement changes the order's market, side or type")]
    ReplaceMismatch,
    /// Amount is zero or the asset is unknown.
    #[error("invalid amount or asset")]
    InvalidAmount,
    /// No such withdrawal, or not in a state that allows the step.
    #[error("withdrawal not pending")]
    WithdrawalNotPending,
    /// An on-chain withdrawal the router did not expect (alert: no co-signed transaction
    /// matches it, or its withdrawal already failed).
    #[error("unexpected on-chain withdrawal")]
    UnexpectedWithdrawal,
}

impl Reject {
    /// Stable numeric code.
    pub const fn code(self) -> u16 {
        match self {
            Reject::MalformedMessage => 100,
            Reject::BadSignature => 101,
            Reject::WrongExchange => 102,
            Reject::UnknownMarket => 103,
            Reject::Expired => 104,
            Reject::ExpiryTooFar => 105,
            Reject::NonceReused => 106,
            Reject::NonceCancelled => 107,
            Reject::PriceOutOfRange => 110,
            Reject::SizeOutOfRange => 111,
            Reject::NotionalOverflow => 112,
            Reject::InsufficientBalance => 120,
            Reject::TooManyOpenOrders => 121,
            Reject::PostOnlyWouldCross => 130,
            Reject::FillOrKillUnfillable => 131,
            Reject::BookFull => 132,
            Reject::UnknownOrder => 140,
            Reject::DuplicateClientOrderId => 141,
            Reject::ReplaceMismatch => 142,
            Reject::InvalidAmount => 150,
            Reject::WithdrawalNotPending => 151,
            Reject::UnexpectedWithdrawal => 152,
        }
    }

    /// HTTP status for the API edge.
    pub const fn http_status(self) -> u16 {
        match self {
            Reject::BadSignature => 401,
            Reject::UnknownOrder | Reject::UnknownMarket => 404,
            Reject::NonceReused
            | Reject::DuplicateClientOrderId
            | Reject::WithdrawalNotPending
            | Reject::UnexpectedWithdrawal => 409,
            Reject::InsufficientBalance
            | Reject::TooManyOpenOrders
            | Reject::PostOnlyWouldCross
            | Reject::FillOrKillUnfillable
            | Reject::BookFull => 422,
            _ => 400,
        }
    }
}

impl From<kestrel_matcher::RejectReason> for Reject {
    fn from(reason: kestrel_matcher::RejectReason) -> Reject {
        use kestrel_matcher::RejectReason as R;
        match reason {
            R::SizeBelowMinimum | R::SizeAboveMaximum => Reject::SizeOutOfRange,
            R::PriceOutOfBand => Reject::PriceOutOfRange,
            R::AlreadyExpired => Reject::Expired,
            R::DuplicateOrderId => Reject::NonceReused,
            R::DuplicateClientOrderId => Reject::DuplicateClientOrderId,
            R::PostOnlyWouldCross => Reject::PostOnlyWouldCross,
            R::FillOrKillUnfillable => Reject::FillOrKillUnfillable,
            R::BookFull => Reject::BookFull,
            R::UnknownOrder | R::NotOrderOwner => Reject::UnknownOrder,
        }
    }
}
