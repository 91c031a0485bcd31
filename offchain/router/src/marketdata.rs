//! Market data and the WebSocket feed: a projection of the sequenced event stream, never on the
//! hot path.
//!
//! It keeps, per market, the L2 book (from [`Event::BookLevel`], with its per-market sequence),
//! recent trades and candles (from [`Event::Fill`]), and a bounded ring of recent feed items so a
//! WebSocket client can resume from a position with no gap. Every event becomes one or more
//! [`Item`]s — a public book delta, trade or candle, or a private update addressed to its
//! wallets — serialised once and fanned out to every connection through one broadcast channel.
//! At start-up, recent trades and candles are seeded from the SQL store
//! ([`MarketData::load_history`]).

mod history;

use crate::decimal::{Annotated, Decimals};
use crate::model::{Event, Owner, Seq, Sequenced, SettlementStatus};
use crate::state::State;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::{broadcast, mpsc};

/// Where an item sits in the global event order: the command's sequence number and the
/// event's index within it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// Command sequence number.
    pub seq: Seq,
    /// Event index within the command.
    pub index: u32,
}

/// Candle widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Interval {
    /// One minute.
    #[serde(rename = "1m")]
    M1,
    /// Five minutes.
    #[serde(rename = "5m")]
    M5,
    /// One hour.
    #[serde(rename = "1h")]
    H1,
    /// One day.
    #[serde(rename = "1d")]
    D1,
}

impl Interval {
    /// Every interval, narrowest first.
    pub const ALL: [Interval; 4] = [Interval::M1, Interval::M5, Interval::H1, Interval::D1];

    /// Width in milliseconds.
    pub const fn millis(self) -> u64 {
        match self {
            Interval::M1 => 60_000,
            Interval::M5 => 300_000,
            Interval::H1 => 3_600_000,
            Interval::D1 => 86_400_000,
        }
    }

    /// The API name (`1m`, `5m`, `1h`, `1d`).
    pub const fn name(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::H1 => "1h",
            Interval::D1 => "1d",
        }
    }

    /// Parses an API name.
    pub fn parse(name: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Start of the interval that holds `timestamp_ms`.
    fn start_of(self, timestamp_ms: u64) -> u64 {
        let width = self.millis();
        timestamp_ms
            .checked_div(width)
            .and_then(|n| n.checked_mul(width))
            .unwrap_or(0)
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

/// A market's L2 book at one point of the stream.
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

/// A public trade (no wallets, no order ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Market index.
    pub market: u32,
    /// Per-market fill id.
    pub fill_id: u64,
    /// Sequence number of the command that matched it.
    pub seq: Seq,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Market index.
    pub market: u32,
    /// Width.
    pub interval: Interval,
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

/// The private channels of a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrivateChannel {
    /// Acceptances, completions, rejections, cancel-floor changes.
    Orders,
    /// Fills as maker or taker.
    Fills,
    /// Ledger entries.
    Balances,
    /// Credited deposits.
    Deposits,
    /// Withdrawal state changes.
    Withdrawals,
    /// Settlement state of the wallet's fills.
    Settlement,
}

impl PrivateChannel {
    /// Every private channel.
    pub const ALL: [PrivateChannel; 6] = [
        PrivateChannel::Orders,
        PrivateChannel::Fills,
        PrivateChannel::Balances,
        PrivateChannel::Deposits,
        PrivateChannel::Withdrawals,
        PrivateChannel::Settlement,
    ];

    /// The channel's name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            PrivateChannel::Orders => "orders",
            PrivateChannel::Fills => "fills",
            PrivateChannel::Balances => "balances",
            PrivateChannel::Deposits => "deposits",
            PrivateChannel::Withdrawals => "withdrawals",
            PrivateChannel::Settlement => "settlement",
        }
    }
}

/// What a feed item is about, which decides who receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A book delta of a market.
    Book(u32),
    /// A public trade of a market.
    Trades(u32),
    /// A candle update of a market.
    Candles(u32, Interval),
    /// A private update for up to two wallets (maker and taker of a fill; otherwise the same
    /// wallet twice).
    Private(PrivateChannel, [Owner; 2]),
}

impl Topic {
    /// The channel name as clients subscribe to it.
    pub fn channel(&self) -> String {
        match self {
            Topic::Book(m) => format!("book:{m}"),
            Topic::Trades(m) => format!("trades:{m}"),
            Topic::Candles(m, i) => format!("candles:{m}:{}", i.name()),
            Topic::Private(c, _) => c.name().to_owned(),
        }
    }
}

/// One message of the feed. Its JSON text is rendered the first time a connection sends it
/// (live or from the ring on resume) and then shared by every other connection: most items
/// (every order's private updates, book levels nobody watches) are never sent at all, and
/// rendering them eagerly took a quarter of the API's CPU under order intake.
#[derive(Debug, Clone)]
pub struct Item {
    /// Position of the event it comes from.
    pub position: Position,
    /// Who receives it.
    pub topic: Topic,
    body: Arc<Body>,
}

/// What an [`Item`] renders from.
#[derive(Debug)]
struct Body {
    seq: Seq,
    index: u32,
    timestamp_ms: u64,
    payload: Payload,
    decimals: Arc<Decimals>,
    text: OnceLock<String>,
}

/// The `data` of a feed message.
#[derive(Debug)]
enum Payload {
    Book(BookLevel),
    Trade(Trade),
    Candle(Candle),
    /// A private update: the event as the API shows it.
    Event(Event),
}

impl Item {
    /// The JSON text sent to clients (rendered once, on first use).
    pub fn text(&self) -> &str {
        self.body
            .text
            .get_or_init(|| render(&self.topic, &self.body))
    }
}

/// Sizes of the projection's bounded buffers.
#[derive(Debug, Clone, Copy)]
pub struct MarketDataConfig {
    /// Feed items kept for resumption.
    pub ring_items: usize,
    /// Recent trades kept per market.
    pub trades_per_market: usize,
    /// Candles kept per market and interval.
    pub candles_per_interval: usize,
    /// Batches a connection may fall behind the broadcast before it is dropped.
    pub broadcast_capacity: usize,
}

impl Default for MarketDataConfig {
    fn default() -> Self {
        MarketDataConfig {
            ring_items: 100_000,
            trades_per_market: 1_000,
            candles_per_interval: 1_000,
            broadcast_capacity: 4_096,
        }
    }
}

/// What a subscriber gets when it (re)attaches to the feed.
#[derive(Debug, Clone)]
pub struct Attach {
    /// Position of the last event the projection has applied; live items after it follow
    /// on the broadcast receiver.
    pub position: Position,
    /// Items after the requested position, or `None` when that position is older than the
    /// ring (the client must start again from snapshots).
    pub replay: Option<Vec<Item>>,
    /// Book snapshots at `position` for the requested markets (known markets only).
    pub books: Vec<BookSnapshot>,
}

#[derive(Debug, Default)]
struct MarketState {
    market_seq: u64,
    bids: BTreeMap<u64, Level>,
    asks: BTreeMap<u64, Level>,
    trades: VecDeque<Trade>,
    candles: BTreeMap<Interval, VecDeque<Candle>>,
}

struct Inner {
    config: MarketDataConfig,
    markets: BTreeMap<u32, MarketState>,
    ring: VecDeque<Item>,
    /// Position of the newest item evicted from the ring.
    evicted: Option<Position>,
    /// Position of the last applied event.
    last: Position,
    /// Fills at or before this position are already in the trades and candles (seeded from
    /// the SQL store, see `history`): replaying them publishes their items but adds nothing.
    history_until: Position,
    /// Parties of fills whose settlement is not final, for routing settlement updates.
    unsettled: HashMap<(u32, u64), [Owner; 2]>,
    /// Adds the decimal fields to every item.
    decimals: Arc<Decimals>,
}

/// The market-data projection. Cheap to clone.
#[derive(Clone)]
pub struct MarketData {
    inner: Arc<Mutex<Inner>>,
    tx: broadcast::Sender<Arc<[Item]>>,
}

impl MarketData {
    /// An empty projection for `markets`.
    pub fn new(config: MarketDataConfig, markets: impl IntoIterator<Item = u32>) -> MarketData {
        let (tx, _) = broadcast::channel(config.broadcast_capacity.max(1));
        MarketData {
            inner: Arc::new(Mutex::new(Inner {
                config,
                markets: markets
                    .into_iter()
                    .map(|m| (m, MarketState::default()))
                    .collect(),
                ring: VecDeque::new(),
                evicted: None,
                last: Position::default(),
                history_until: Position::default(),
                unsettled: HashMap::new(),
                decimals: Arc::new(Decimals::default()),
            })),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the projection half-updated in a way
        // that matters more than stopping the feed would, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the batches the sequencer publishes until it stops.
    pub fn spawn(
        &self,
        mut rx: mpsc::UnboundedReceiver<Arc<[Sequenced]>>,
    ) -> tokio::task::JoinHandle<()> {
        let md = self.clone();
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                md.apply(&batch);
            }
        })
    }

    /// Applies one batch: updates books, trades and candles, appends the feed items to the
    /// ring and broadcasts them. Events at or before the last applied position are skipped, so
    /// the journal replay delivered at start can be applied again harmlessly.
    pub fn apply(&self, batch: &[Sequenced]) {
        let mut inner = self.lock();
        let mut items = Vec::new();
        for s in batch {
            let position = Position {
                seq: s.seq,
                index: s.index,
            };
            if position <= inner.last {
                continue;
            }
            inner.last = position;
            inner.on_event(position, s, &mut items);
        }
        if items.is_empty() {
            return;
        }
        for item in &items {
            inner.ring.push_back(item.clone());
        }
        while inner.ring.len() > inner.config.ring_items {
            if let Some(old) = inner.ring.pop_front() {
                inner.evicted = Some(old.position);
            }
        }
        // Sent under the lock, so attach() sees either the ring with these items or the
        // receiver with them, never neither.
        let _ = self.tx.send(items.into());
    }

    /// Feed items from now on carry decimal fields computed with `decimals` (set before the
    /// first event is applied).
    pub fn set_decimals(&self, decimals: Decimals) {
        self.lock().decimals = Arc::new(decimals);
    }

    /// Starts the projection from a router snapshot instead of from the first event: each
    /// market's book becomes the snapshot's book, with the engine's sequence as its book
    /// sequence (every later delta has a higher one), and the feed position becomes the end of
    /// command `state.last_seq()`. Earlier feed items are not available, so a client resuming
    /// from before it is told to start again from snapshots, never shown a gap. Recent trades
    /// and candles are left as they are: they come from the SQL store
    /// ([`MarketData::load_history`]), not from the snapshot.
    pub fn seed(&self, state: &State) {
        let mut inner = self.lock();
        for (market, m) in inner.markets.iter_mut() {
            let Some(engine) = state.engine(*market) else {
                continue;
            };
            let levels = |side| {
                engine
                    .levels(side)
                    .map(|l| {
                        (
                            l.price.0,
                            Level {
                                price_ticks: l.price.0,
                                size_lots: l.size.0,
                                orders: l.orders,
                            },
                        )
                    })
                    .collect()
            };
            m.market_seq = engine.last_seq();
            m.bids = levels(kestrel_matcher::Side::Buy);
            m.asks = levels(kestrel_matcher::Side::Sell);
        }
        let position = Position {
            seq: state.last_seq(),
            index: u32::MAX,
        };
        inner.last = position;
        inner.evicted = Some(position);
        inner.ring.clear();
    }

    /// A receiver of every future batch of items.
    pub fn receiver(&self) -> broadcast::Receiver<Arc<[Item]>> {
        let _guard = self.lock();
        self.tx.subscribe()
    }

    /// Everything a subscriber needs to continue from `after` (or from now, with snapshots,
    /// when `after` is `None`), consistent with the live items that follow `position`.
    pub fn attach(&self, after: Option<Position>, books: &[u32]) -> Attach {
        let inner = self.lock();
        let replay = after.and_then(|after| {
            if inner.evicted.is_some_and(|evicted| after < evicted) {
                None
            } else {
                Some(
                    inner
                        .ring
                        .iter()
                        .filter(|item| item.position > after)
                        .cloned()
                        .collect(),
                )
            }
        });
        Attach {
            position: inner.last,
            replay,
            books: books
                .iter()
                .filter_map(|m| inner.snapshot(*m, usize::MAX))
                .collect(),
        }
    }

    /// The book of `market`, `depth` levels per side.
    pub fn book(&self, market: u32, depth: usize) -> Option<BookSnapshot> {
        self.lock().snapshot(market, depth)
    }

    /// The most recent trades of `market`, newest first.
    pub fn trades(&self, market: u32, limit: usize) -> Option<Vec<Trade>> {
        let inner = self.lock();
        let m = inner.markets.get(&market)?;
        Some(m.trades.iter().rev().take(limit).copied().collect())
    }

    /// The most recent candles of `market`, newest first.
    pub fn candles(&self, market: u32, interval: Interval, limit: usize) -> Option<Vec<Candle>> {
        let inner = self.lock();
        let m = inner.markets.get(&market)?;
        Some(
            m.candles
                .get(&interval)
                .map(|c| c.iter().rev().take(limit).copied().collect())
                .unwrap_or_default(),
        )
    }

    /// Position of the last applied event.
    pub fn position(&self) -> Position {
        self.lock().last
    }
}

impl Inner {
    fn snapshot(&self, market: u32, depth: usize) -> Option<BookSnapshot> {
        let m = self.markets.get(&market)?;
        Some(BookSnapshot {
            market,
            market_seq: m.market_seq,
            position: self.last,
            bids: m.bids.values().rev().take(depth).copied().collect(),
            asks: m.asks.values().take(depth).copied().collect(),
        })
    }

    fn on_event(&mut self, position: Position, s: &Sequenced, items: &mut Vec<Item>) {
        let decimals = &self.decimals;
        let private = |channel, owners: [Owner; 2], items: &mut Vec<Item>| {
            if owners != [[0; 32]; 2] {
                items.push(item(
                    decimals,
                    position,
                    s,
                    Topic::Private(channel, owners),
                    Payload::Event(s.event.clone()),
                ));
            }
        };
        match &s.event {
            Event::BookLevel {
                market,
                market_seq,
                side,
                price_ticks,
                size_lots,
                orders,
            } => {
                let Some(m) = self.markets.get_mut(market) else {
                    return;
                };
                m.market_seq = *market_seq;
                let levels = if *side == 0 { &mut m.bids } else { &mut m.asks };
                if *size_lots == 0 {
                    levels.remove(price_ticks);
                } else {
                    levels.insert(
                        *price_ticks,
                        Level {
                            price_ticks: *price_ticks,
                            size_lots: *size_lots,
                            orders: *orders,
                        },
                    );
                }
                items.push(item(
                    decimals,
                    position,
                    s,
                    Topic::Book(*market),
                    Payload::Book(BookLevel {
                        market: *market,
                        market_seq: *market_seq,
                        side: *side,
                        price_ticks: *price_ticks,
                        size_lots: *size_lots,
                        orders: *orders,
                    }),
                ));
            }
            Event::Fill {
                market,
                fill_id,
                maker,
                taker,
                taker_side,
                price_ticks,
                size_lots,
                ..
            } => {
                self.unsettled.insert((*market, *fill_id), [*maker, *taker]);
                let trade = Trade {
                    market: *market,
                    fill_id: *fill_id,
                    seq: s.seq,
                    timestamp_ms: s.timestamp_ms,
                    price_ticks: *price_ticks,
                    size_lots: *size_lots,
                    taker_side: *taker_side,
                };
                let (trades_cap, candles_cap) = (
                    self.config.trades_per_market,
                    self.config.candles_per_interval,
                );
                let seeded = position <= self.history_until;
                if let Some(m) = self.markets.get_mut(market) {
                    if !seeded {
                        m.trades.push_back(trade);
                        while m.trades.len() > trades_cap {
                            m.trades.pop_front();
                        }
                    }
                    items.push(item(
                        decimals,
                        position,
                        s,
                        Topic::Trades(*market),
                        Payload::Trade(trade),
                    ));
                    for interval in Interval::ALL {
                        let candle = if seeded {
                            m.candle_of(&trade, interval)
                        } else {
                            Some(m.add_to_candle(&trade, interval, candles_cap))
                        };
                        if let Some(candle) = candle {
                            items.push(item(
                                decimals,
                                position,
                                s,
                                Topic::Candles(*market, interval),
                                Payload::Candle(candle),
                            ));
                        }
                    }
                }
                private(PrivateChannel::Fills, [*maker, *taker], items);
            }
            Event::Rejected { owner, .. }
            | Event::OrderAccepted { owner, .. }
            | Event::OrderReplaced { owner, .. }
            | Event::OrderDone { owner, .. }
            | Event::NonceFloor { owner, .. } => {
                private(PrivateChannel::Orders, [*owner, *owner], items);
            }
            Event::Ledger { owner, .. } => {
                private(PrivateChannel::Balances, [*owner, *owner], items)
            }
            Event::DepositCredited { owner, .. } => {
                private(PrivateChannel::Deposits, [*owner, *owner], items);
            }
            Event::Withdrawal { owner, .. } => {
                private(PrivateChannel::Withdrawals, [*owner, *owner], items);
            }
            Event::Settlement {
                market,
                fill_id,
                status,
            } => {
                let key = (*market, *fill_id);
                let parties = match status {
                    SettlementStatus::Confirmed | SettlementStatus::Quarantined => {
                        self.unsettled.remove(&key)
                    }
                    SettlementStatus::Pending | SettlementStatus::Submitted => {
                        self.unsettled.get(&key).copied()
                    }
                };
                if let Some(parties) = parties {
                    private(PrivateChannel::Settlement, parties, items);
                }
            }
        }
    }
}

impl MarketState {
    /// The kept candle that holds `trade`, if any (for a trade already counted in it).
    fn candle_of(&self, trade: &Trade, interval: Interval) -> Option<Candle> {
        let start_ms = interval.start_of(trade.timestamp_ms);
        self.candles
            .get(&interval)?
            .iter()
            .rev()
            .find(|c| c.start_ms == start_ms)
            .copied()
    }

    fn add_to_candle(&mut self, trade: &Trade, interval: Interval, cap: usize) -> Candle {
        let start_ms = interval.start_of(trade.timestamp_ms);
        let candles = self.candles.entry(interval).or_default();
        match candles.back_mut() {
            Some(c) if c.start_ms == start_ms => {
                c.high = c.high.max(trade.price_ticks);
                c.low = c.low.min(trade.price_ticks);
                c.close = trade.price_ticks;
                c.volume_lots = c.volume_lots.saturating_add(trade.size_lots);
                c.trades = c.trades.saturating_add(1);
                *c
            }
            _ => {
                let c = Candle {
                    market: trade.market,
                    interval,
                    start_ms,
                    open: trade.price_ticks,
                    high: trade.price_ticks,
                    low: trade.price_ticks,
                    close: trade.price_ticks,
                    volume_lots: trade.size_lots,
                    trades: 1,
                };
                candles.push_back(c);
                while candles.len() > cap {
                    candles.pop_front();
                }
                c
            }
        }
    }
}

fn item(
    decimals: &Arc<Decimals>,
    position: Position,
    s: &Sequenced,
    topic: Topic,
    payload: Payload,
) -> Item {
    Item {
        position,
        topic,
        body: Arc::new(Body {
            seq: s.seq,
            index: s.index,
            timestamp_ms: s.timestamp_ms,
            payload,
            decimals: decimals.clone(),
            text: OnceLock::new(),
        }),
    }
}

fn render(topic: &Topic, body: &Body) -> String {
    let decimals = &*body.decimals;
    match &body.payload {
        Payload::Book(level) => envelope(topic, body, level, decimals),
        Payload::Trade(trade) => envelope(topic, body, trade, decimals),
        Payload::Candle(candle) => envelope(topic, body, candle, decimals),
        Payload::Event(event) => envelope(topic, body, event, decimals),
    }
}

/// The `data` of a book message.
#[derive(Debug, Serialize)]
struct BookLevel {
    market: u32,
    market_seq: u64,
    side: u8,
    price_ticks: u64,
    size_lots: u64,
    orders: u32,
}

/// A feed message around `data`, which is written straight to the text with its wallet keys
/// in hex and its decimal fields (see [`Annotated`]).
#[derive(Serialize)]
struct Envelope<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: String,
    seq: Seq,
    index: u32,
    timestamp_ms: u64,
    data: T,
}

fn envelope<T: Serialize>(topic: &Topic, body: &Body, data: &T, decimals: &Decimals) -> String {
    let message = |data| Envelope {
        kind: "event",
        channel: topic.channel(),
        seq: body.seq,
        index: body.index,
        timestamp_ms: body.timestamp_ms,
        data,
    };
    // Every payload is a flat struct, which cannot fail to serialise; were it to, the
    // message still goes out, with `data: null`, so that no position is skipped.
    serde_json::to_string(&message(Some(Annotated {
        value: data,
        decimals,
    })))
    .or_else(|_| serde_json::to_string(&message(None)))
    .unwrap_or_default()
}

/// Rewrites the wallet keys of a JSON object (`owner`, `maker`, `taker`: arrays of 32 bytes)
/// as hex strings, the form the API uses for keys.
pub fn hex_wallets(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = value {
        for key in ["owner", "maker", "taker"] {
            if let Some(field) = map.get_mut(key) {
                if let Ok(bytes) = serde_json::from_value::<Owner>(field.clone()) {
                    *field = serde_json::Value::String(crate::model::to_hex(&bytes));
                }
            }
        }
    }
}
