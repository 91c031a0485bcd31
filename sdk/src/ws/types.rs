//! What the router's WebSocket feed carries, as typed values (docs/protocol.md, "WebSocket").
//! Unknown fields are ignored, so additive API changes do not break the SDK.

use super::private::{
    BalanceUpdate, DepositUpdate, OrderUpdate, SettlementUpdate, WithdrawalUpdate,
};
use serde::{Deserialize, Serialize};

/// Where an item sits in the router's global event order: the command's sequence number and
/// the event's index within it. Resuming from a position replays every item after it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// Command sequence number.
    pub seq: u64,
    /// Event index within the command.
    pub index: u32,
}

/// A channel of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// L2 book deltas of a market (`book:<m>`), preceded by a snapshot.
    Book(u32),
    /// Public trades of a market (`trades:<m>`).
    Trades(u32),
    /// Candle updates of a market at one width (`candles:<m>:<1m|5m|1h|1d>`).
    Candles(u32, &'static str),
    /// The wallet's order acceptances, completions, rejections and cancel floors (private).
    Orders,
    /// The wallet's fills as maker or taker (private).
    Fills,
    /// The wallet's ledger entries (private).
    Balances,
    /// The wallet's credited deposits (private).
    Deposits,
    /// The wallet's withdrawal state changes (private).
    Withdrawals,
    /// Settlement state of the wallet's fills (private).
    Settlement,
}

/// Candle widths the router offers.
pub const CANDLE_INTERVALS: [&str; 4] = ["1m", "5m", "1h", "1d"];

const PRIVATE: [(Channel, &str); 6] = [
    (Channel::Orders, "orders"),
    (Channel::Fills, "fills"),
    (Channel::Balances, "balances"),
    (Channel::Deposits, "deposits"),
    (Channel::Withdrawals, "withdrawals"),
    (Channel::Settlement, "settlement"),
];

impl Channel {
    /// The channel's name on the wire.
    pub fn name(&self) -> String {
        match self {
            Channel::Book(m) => format!("book:{m}"),
            Channel::Trades(m) => format!("trades:{m}"),
            Channel::Candles(m, i) => format!("candles:{m}:{i}"),
            private => PRIVATE
                .iter()
                .find(|(c, _)| c == private)
                .map(|(_, name)| (*name).to_owned())
                .unwrap_or_default(),
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Channel> {
        if let Some((channel, _)) = PRIVATE.iter().find(|(_, n)| *n == name) {
            return Some(*channel);
        }
        let mut parts = name.split(':');
        let kind = parts.next()?;
        let market: u32 = parts.next()?.parse().ok()?;
        let channel = match (kind, parts.next()) {
            ("book", None) => Channel::Book(market),
            ("trades", None) => Channel::Trades(market),
            ("candles", Some(i)) => {
                Channel::Candles(market, CANDLE_INTERVALS.into_iter().find(|c| *c == i)?)
            }
            _ => return None,
        };
        parts.next().is_none().then_some(channel)
    }

    /// Whether the channel needs an authenticated connection.
    pub fn is_private(&self) -> bool {
        PRIVATE.iter().any(|(c, _)| c == self)
    }
}

/// Aggregate size at one price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// Price in ticks.
    pub price_ticks: u64,
    /// Lots resting at the price.
    pub size_lots: u64,
    /// Orders resting at the price.
    pub orders: u32,
}

/// A market's whole L2 book at one point of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookSnapshot {
    /// Market index.
    pub market: u32,
    /// Per-market book sequence of the last delta included.
    pub market_seq: u64,
    /// Global position of the last event included.
    pub position: Position,
    /// Bids, best (highest) first.
    pub bids: Vec<Level>,
    /// Asks, best (lowest) first.
    pub asks: Vec<Level>,
}

/// One price level after a change; `size_lots` 0 means the level is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookDelta {
    /// Market index.
    pub market: u32,
    /// Per-market book sequence: each delta of a market is one more than the last.
    pub market_seq: u64,
    /// 0 bid, 1 ask.
    pub side: u8,
    /// Price in ticks.
    pub price_ticks: u64,
    /// Lots now resting at the price.
    pub size_lots: u64,
    /// Orders now resting at the price.
    pub orders: u32,
}

/// A public trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Market index.
    pub market: u32,
    /// Per-market fill id.
    pub fill_id: u64,
    /// Sequence number of the command that matched it.
    pub seq: u64,
    /// Match time, unix milliseconds.
    pub timestamp_ms: u64,
    /// Price in ticks.
    pub price_ticks: u64,
    /// Size in lots.
    pub size_lots: u64,
    /// 0 the taker bought, 1 the taker sold.
    pub taker_side: u8,
}

/// Open, high, low, close and volume over one interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Market index.
    pub market: u32,
    /// Width (`1m`, `5m`, `1h`, `1d`).
    pub interval: String,
    /// Start of the interval, unix milliseconds.
    pub start_ms: u64,
    /// First price, ticks.
    pub open: u64,
    /// Highest price, ticks.
    pub high: u64,
    /// Lowest price, ticks.
    pub low: u64,
    /// Last price, ticks.
    pub close: u64,
    /// Lots traded.
    pub volume_lots: u64,
    /// Trades.
    pub trades: u64,
}

/// A fill of the authenticated wallet, as maker or taker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// Market index.
    pub market: u32,
    /// Per-market fill id.
    pub fill_id: u64,
    /// Maker order id.
    pub maker_order_id: u64,
    /// Taker order id.
    pub taker_order_id: u64,
    /// Maker wallet (hex).
    pub maker: String,
    /// Taker wallet (hex).
    pub taker: String,
    /// Nonce of the maker's signed order.
    pub maker_nonce: u64,
    /// Nonce of the taker's signed order.
    pub taker_nonce: u64,
    /// 0 the taker bought, 1 the taker sold.
    pub taker_side: u8,
    /// Execution price in ticks.
    pub price_ticks: u64,
    /// Size in lots.
    pub size_lots: u64,
    /// Quote atoms exchanged.
    pub notional: u64,
    /// Maker fee in quote atoms.
    pub maker_fee: u64,
    /// Taker fee in quote atoms.
    pub taker_fee: u64,
}

/// The API's typed refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable numeric code.
    pub code: u16,
    /// Stable snake_case name.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// Whether the same request may pass if sent again later: rate limited (1003), too many
    /// connections (1007), unavailable (1008), internal error (1009), or overloaded (1011: the
    /// exchange sheds new orders until its store catches up; cancels still pass). Every other
    /// refusal is final for that request (a bad signature, a reused nonce, an unknown market).
    pub fn is_retryable(&self) -> bool {
        matches!(self.code, 1003 | 1007 | 1008 | 1009 | 1011)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "api error {} {}: {}",
            self.code, self.error, self.message
        )
    }
}

/// The payload of a feed item.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// A book delta (`book:<m>`).
    Book(BookDelta),
    /// A public trade (`trades:<m>`).
    Trade(Trade),
    /// A candle update (`candles:<m>:<i>`).
    Candle(Candle),
    /// A fill of the wallet (`fills`).
    Fill(Fill),
    /// An order of the wallet changed (`orders`).
    Order(OrderUpdate),
    /// A balance of the wallet changed (`balances`).
    Balance(BalanceUpdate),
    /// A deposit was credited (`deposits`).
    Deposit(DepositUpdate),
    /// A withdrawal changed state (`withdrawals`).
    Withdrawal(WithdrawalUpdate),
    /// A fill's settlement changed state (`settlement`).
    Settlement(SettlementUpdate),
    /// A private update of a kind this SDK does not know: the router's event as JSON, its
    /// `type` field naming it.
    Private(serde_json::Value),
}

/// One item of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The channel it came on.
    pub channel: Channel,
    /// Its position in the global order.
    pub position: Position,
    /// Sequencer time, unix milliseconds.
    pub timestamp_ms: u64,
    /// What it says.
    pub data: Data,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        for channel in [
            Channel::Book(3),
            Channel::Trades(0),
            Channel::Candles(1, "5m"),
            Channel::Orders,
            Channel::Fills,
            Channel::Balances,
            Channel::Deposits,
            Channel::Withdrawals,
            Channel::Settlement,
        ] {
            assert_eq!(Channel::parse(&channel.name()), Some(channel));
        }
        assert_eq!(Channel::parse("candles:1:2m"), None);
        assert_eq!(Channel::parse("book:x"), None);
        assert_eq!(Channel::parse("book:1:2"), None);
        assert!(Channel::Fills.is_private() && !Channel::Book(0).is_private());
    }
}
