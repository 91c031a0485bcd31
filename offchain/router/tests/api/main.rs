//! The API over real HTTP and WebSocket on loopback: order entry, every rejection class,
//! hostile input, reads from the projections, the OpenAPI document, limits, and the WebSocket
//! feed (auth, resume, slow consumers, cancel-on-disconnect), the decimal fields of every
//! output, market-data history across a restart, and load shedding while the store is behind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod decimals;
mod fanout;
mod history;
mod overload;
mod rest;
mod support;
mod ws;
