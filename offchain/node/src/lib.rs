//! Kestrel's composition root: what the `kestrel` binary runs, as a library so that tests can
//! start the same composition in-process.
//!
//! - [`devnet`]: the one-command embedded devnet (embedded chain, deployment, demo wallets,
//!   router API, relayer loops).
//! - [`bots`]: the demo market maker and taker of `kestrel devnet --bots`.
//! - [`bridge`]: the relayer ↔ router wiring (chain events into the sequencer, pending fills
//!   onto the chain, settlement statuses back).
//! - [`cosigner`]: the operator's co-signature of withdrawal transactions, injected into the
//!   router API.

pub mod bots;
pub mod bridge;
pub mod cosigner;
pub mod devnet;
mod keys;

pub use devnet::{DemoWallet, Devnet, DevnetConfig, DevnetError, Status};
