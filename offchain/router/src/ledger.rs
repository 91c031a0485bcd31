//! Balances per (owner, asset): available + frozen + version. Every change is one
//! [`Event::Ledger`] entry naming its business type and id, so a balance can always be
//! explained. Changes are checked: a change that would go negative or overflow is refused and
//! changes nothing.

use crate::model::{Business, Event, Owner};
use std::collections::HashMap;

/// One owner's holdings of one asset, in atoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// Free to trade or withdraw.
    pub available: u64,
    /// Held by open orders and pending withdrawals.
    pub frozen: u64,
    /// Number of changes so far.
    pub version: u64,
}

/// A ledger change could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Available or frozen would go below zero.
    #[error("insufficient funds")]
    Insufficient,
    /// A balance would exceed u64.
    #[error("balance overflow")]
    Overflow,
}

/// One balance change: its business type and id, and the deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Why.
    pub business: Business,
    /// Business id.
    pub business_id: String,
    /// Change of available atoms.
    pub available: i128,
    /// Change of frozen atoms.
    pub frozen: i128,
}

impl Change {
    /// A change of `available` and `frozen` for `business` / `id`.
    pub fn new(business: Business, id: impl Into<String>, available: i128, frozen: i128) -> Self {
        Change {
            business,
            business_id: id.into(),
            available,
            frozen,
        }
    }
}

/// All balances.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    balances: HashMap<(Owner, u8), Balance>,
}

impl Ledger {
    /// The balance of `owner` in `asset` (zero if never touched).
    pub fn balance(&self, owner: &Owner, asset: u8) -> Balance {
        self.balances
            .get(&(*owner, asset))
            .copied()
            .unwrap_or_default()
    }

    /// Every non-empty balance, for snapshots and reconciliation.
    pub fn iter(&self) -> impl Iterator<Item = (&(Owner, u8), &Balance)> {
        self.balances.iter()
    }

    /// Sets a balance exactly as a state snapshot recorded it (recovery only: no entry is
    /// recorded, the entries that led to it were published before the snapshot).
    pub(crate) fn restore(&mut self, owner: Owner, asset: u8, balance: Balance) {
        self.balances.insert((owner, asset), balance);
    }

    /// Applies a change atomically and records it as an entry in `out`.
    pub fn change(
        &mut self,
        owner: &Owner,
        asset: u8,
        change: Change,
        out: &mut Vec<Event>,
    ) -> Result<Balance, LedgerError> {
        let Change {
            business,
            business_id,
            available: available_delta,
            frozen: frozen_delta,
        } = change;
        let current = self.balance(owner, asset);
        let available = apply(current.available, available_delta)?;
        let frozen = apply(current.frozen, frozen_delta)?;
        let next = Balance {
            available,
            frozen,
            version: current.version.saturating_add(1),
        };
        self.balances.insert((*owner, asset), next);
        out.push(Event::Ledger {
            owner: *owner,
            asset,
            business,
            business_id,
            available_delta,
            frozen_delta,
            available,
            frozen,
            version: next.version,
        });
        Ok(next)
    }

    /// Sum of available + frozen of an asset over all owners.
    pub fn total(&self, asset: u8) -> u128 {
        self.balances
            .iter()
            .filter(|((_, a), _)| *a == asset)
            .fold(0u128, |sum, (_, b)| {
                sum.saturating_add(u128::from(b.available))
                    .saturating_add(u128::from(b.frozen))
            })
    }
}

fn apply(value: u64, delta: i128) -> Result<u64, LedgerError> {
    let next = i128::from(value)
        .checked_add(delta)
        .ok_or(LedgerError::Overflow)?;
    if next < 0 {
        return Err(LedgerError::Insufficient);
    }
    u64::try_from(next).map_err(|_| LedgerError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_change_changes_nothing() {
        let mut ledger = Ledger::default();
        let mut out = Vec::new();
        let owner = [1u8; 32];
        let deposit = Change::new(Business::Deposit, "d", 10, 0);
        assert!(ledger.change(&owner, 0, deposit, &mut out).is_ok());
        let before = ledger.balance(&owner, 0);
        let hold = Change::new(Business::OrderHold, "o", -11, 11);
        let refused = ledger.change(&owner, 0, hold, &mut out);
        assert_eq!(refused, Err(LedgerError::Insufficient));
        assert_eq!(ledger.balance(&owner, 0), before);
        assert_eq!(out.len(), 1);
        let huge = Change::new(Business::Deposit, "d2", i128::from(u64::MAX), 0);
        let overflow = ledger.change(&owner, 0, huge, &mut out);
        assert_eq!(overflow, Err(LedgerError::Overflow));
        assert_eq!(ledger.balance(&owner, 0).version, 1);
    }
}
