//! Kestrel relayer: settlement batcher and submitter, chain listeners, reconciliation and the
//! chain adapters they run against, and the operator's co-signature of withdrawals.

pub mod batcher;
pub mod embedded;
pub mod listener;
pub mod lookup;
pub mod reconcile;
pub mod submitter;
pub mod withdrawals;
