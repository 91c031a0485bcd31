//! Kestrel relayer: settlement batcher and submitter, chain listeners, reconciliation and the
//! chain adapters they run against.

pub mod batcher;
pub mod embedded;
pub mod listener;
pub mod lookup;
pub mod reconcile;
pub mod submitter;
