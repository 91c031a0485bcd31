//! Kestrel's composition root: what the `kestrel` binary runs, as a library so that tests can
//! start the same composition in-process.
//!
//! - [`devnet`]: the one-command embedded devnet (embedded chain, deployment, demo wallets,
//!   router API, relayer loops).
//! - [`router_node`] and [`relayer_node`]: production mode, the router and the relayer as
//!   separate processes against a cluster's RPC and a SQL store, talking through the router's
//!   operator-only [`internal`] endpoint; [`onchain`] reads the deployment they mirror;
//!   [`relayer_metrics`] are the relayer's Prometheus metrics.
//! - [`app`] and [`cli`]: the `kestrel` binary itself (its `main` and command line).
//! - [`admin`]: the admin's instructions against a cluster.
//! - [`bots`]: the demo market maker and taker of `kestrel devnet --bots`.
//! - [`bridge`]: the relayer ↔ router wiring in one process (chain events into the sequencer,
//!   settlement statuses back); [`settle`]: the settlement loop both modes share.
//! - [`cosigner`]: the operator's co-signature of withdrawal transactions, injected into the
//!   router API; [`reconcile`]: the periodic reconciliation whose verdict halts it.

pub mod admin;
pub mod app;
pub mod bots;
pub mod bridge;
pub mod cli;
pub mod cosigner;
pub mod devnet;
pub mod internal;
pub mod keys;
pub mod onchain;
pub mod reconcile;
pub mod relayer_metrics;
pub mod relayer_node;
pub mod router_node;
pub mod settle;
pub mod tables;

pub use devnet::{DemoWallet, Devnet, DevnetConfig, DevnetError, Status};
