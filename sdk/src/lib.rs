//! Kestrel's Rust SDK.
//!
//! - [`protocol`]: the signed message types, re-exported from the program crate, which owns
//!   their canonical bytes (`docs/protocol.md`).
//! - [`order`]: an order builder: `OrderBuilder::limit(0).buy().price(100).size(5).post_only()`.
//! - [`signer`]: a signer abstraction (a Solana keypair today; hardware or remote signers
//!   implement the same trait).
//! - [`nonce`]: strictly increasing order nonces.
//! - [`deployment`]: a deployment's addresses (PDAs) and the program's instructions.
//! - [`chain`]: transactions through `RpcClient` (send and confirm, mints, funded token
//!   accounts).
//! - [`rest`]: an async client of the router's REST API (place, cancel, cancel-all, replace,
//!   book and account reads) with typed API errors.
//! - [`settle`]: settlement transactions — the Ed25519 precompile instruction and the settle
//!   instruction — with their exact wire size, for the relayer's batcher.
//!
//! Nothing here panics: every fallible step returns [`Error`].

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
