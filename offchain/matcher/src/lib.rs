//! Kestrel's matching engine: one market's order book, price-time matching and a command
//! journal.
//!
//! The engine ([`Engine`]) is pure: it takes [`Command`]s stamped with a caller-supplied
//! [`Timestamp`] and emits [`Event`]s into a caller-supplied [`EventSink`]. It performs no I/O,
//! reads no clock, spawns no thread and, after construction, allocates nothing. The router runs
//! one engine per market on its own thread, journals every command before applying it
//! ([`journal`]), and after a crash rebuilds the engine from the latest snapshot plus the
//! journal's tail through the very same [`Engine::apply`].
//!
//! Units: prices are integer [`Ticks`], sizes integer base [`Lots`]. Every event carries the
//! market's event sequence number; fills carry a per-market `fill_id` starting at 1.

mod book;
mod codec;
mod command;
mod config;
mod engine;
mod event;
pub mod journal;
mod snapshot;
mod types;
pub mod workload;

pub use codec::DecodeError;
pub use command::{CancelTarget, Command, PlaceOrder, ReplaceOrder};
pub use config::{ConfigError, MarketConfig};
pub use engine::{Engine, LevelView, RestingOrder};
pub use event::{
    Accepted, BookDelta, Done, DoneReason, Event, EventSink, Fill, NullSink, RejectReason,
    Rejected, Replaced, SelfTradeDecrement,
};
pub use snapshot::SnapshotError;
pub use types::{
    ClientOrderId, Lots, OrderId, OrderType, SelfTradeMode, Side, Ticks, Timestamp, UserId,
};
