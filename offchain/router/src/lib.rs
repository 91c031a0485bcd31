//! Kestrel's order router: the one sequence of events (DESIGN.md, "Off-chain").
//!
//! Signed commands are verified ([`verify`]) in parallel, then a single sequencer assigns the
//! global sequence number, journals them and applies them deterministically to [`state::State`]:
//! risk/ledger hold → match in the market's engine → ledger transfer. Everything else (SQL
//! store, market data, user channels, the settlement outbox) is a projection of the
//! [`model::Event`] stream it emits.

pub mod api;
pub mod codec;
pub mod decimal;
pub mod ledger;
pub mod market;
pub mod marketdata;
pub mod model;
pub mod recovery;
pub mod reject;
pub mod sequencer;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod verify;
