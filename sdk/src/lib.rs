//! Kestrel's Rust SDK, for market makers and other programmatic traders.
//!
//! - [`protocol`]: the signed message types, re-exported from the program crate, which owns
//!   their canonical bytes (`docs/protocol.md`).
//! - [`order`]: an order builder: `OrderBuilder::limit(0).buy().price(100).size(5).post_only()`.
//! - [`signer`]: a signer abstraction (a Solana keypair today; hardware or remote signers
//!   implement the same trait).
//! - [`nonce`]: strictly increasing order nonces.
//! - [`rest`]: an async client of the router's REST API (place, cancel, cancel-all, replace,
//!   book and account reads) with typed API errors and safe retries.
//! - [`ws`]: a WebSocket client of the router's feed (book, trades, candles, and the wallet's
//!   orders, fills, balances, deposits, withdrawals and settlements) with order entry,
//!   reconnection that resumes without gap or duplicate, heartbeats and cancel-on-disconnect.
//! - [`withdrawal`]: co-signed withdrawals — the ownership proof that obtains the operator's
//!   partially signed transaction, and a check of every byte of it before the owner signs.
//! - [`book`]: a local L2 book kept from the feed's snapshots and deltas.
//! - [`backoff`]: the exponential backoff with jitter both clients use.
//! - [`deployment`]: a deployment's addresses (PDAs) and the program's instructions.
//! - [`chain`]: transactions through `RpcClient`: a wallet's deposit, withdrawals (co-signed,
//!   or alone after the delay) and on-chain cancel floor; mints and funded token accounts.
//! - [`admin`]: the admin's instructions (exchange, assets, markets, operator, fees, pause).
//! - [`settle`]: settlement transactions — the Ed25519 precompile instruction and the settle
//!   instruction — with their exact wire size, for the relayer's batcher.
//!
//! Nothing here panics: every fallible step returns a typed error.
//!
//! Quoting over the WebSocket and following the wallet's fills:
//!
//! ```no_run
//! # async fn demo(wallet: solana_sdk::signature::Keypair) -> Result<(), Box<dyn std::error::Error>> {
//! use kestrel_sdk::rest::RestClient;
//! use kestrel_sdk::ws::{Channel, Data, WsClient, WsConfig, WsEvent};
//! use kestrel_sdk::{nonce::Nonces, OrderBuilder};
//! use std::sync::Arc;
//!
//! let rest = RestClient::connect("http://127.0.0.1:8080").await?;
//! let wallet = Arc::new(wallet);
//! let config = WsConfig::new("ws://127.0.0.1:8080/v1/ws")
//!     .subscribe(Channel::Book(0))
//!     .subscribe(Channel::Fills)
//!     .auth(wallet.clone(), rest.exchange(), true); // cancel-on-disconnect armed
//! let (client, mut events) = WsClient::connect(config)?;
//! let nonces = Nonces::above(0);
//! while let Some(event) = events.recv().await {
//!     match event {
//!         WsEvent::Connected { .. } => {
//!             let ask = OrderBuilder::limit(0).sell().price(1_010).size(1).post_only();
//!             client.place(&ask.sign(rest.exchange(), wallet.as_ref(), nonces.next())?).await?;
//!         }
//!         WsEvent::Update(update) => {
//!             if let Data::Fill(fill) = update.data {
//!                 println!("filled {} lots at {}", fill.size_lots, fill.price_ticks);
//!             }
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod admin;
pub mod backoff;
pub mod book;
pub mod chain;
pub mod deployment;
pub mod nonce;
pub mod order;
pub mod rest;
pub mod settle;
pub mod signer;
pub mod withdrawal;
pub mod ws;

/// The signed message types and their canonical encodings.
pub mod protocol {
    pub use kestrel::encoding::*;
}

pub use deployment::Deployment;
pub use order::OrderBuilder;
pub use signer::OrderSigner;

/// SDK errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The order builder is missing a field.
    #[error("order is missing its {0}")]
    Incomplete(&'static str),
    /// An asset index is not in the deployment's asset table.
    #[error("unknown asset {0}")]
    UnknownAsset(u8),
    /// A settlement batch is malformed (empty, too many orders or fills, bad references).
    #[error("invalid settlement batch: {0}")]
    InvalidBatch(&'static str),
    /// Building an instruction failed.
    #[error("instruction: {0}")]
    Instruction(String),
}
