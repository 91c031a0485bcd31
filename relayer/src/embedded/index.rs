//! What a validator's ledger and secondary indexes would answer: every committed transaction
//! with its status metadata, the signatures touching each address, and each account's owner
//! (for `getProgramAccounts`; the embedded bank is only ever changed through this chain, so the
//! owner map stays exact).

use solana_sdk::clock::{Slot, UnixTimestamp};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_sdk::transaction::VersionedTransaction;
use solana_transaction_status::TransactionStatusMeta;
use std::collections::{HashMap, HashSet};

/// One committed transaction (successful or failed), as `getTransaction` returns it.
#[derive(Clone, Debug)]
pub(crate) struct TxRecord {
    pub slot: Slot,
    pub block_time: Option<UnixTimestamp>,
    pub transaction: VersionedTransaction,
    pub meta: TransactionStatusMeta,
}

#[derive(Default)]
pub(crate) struct Index {
    /// Committed transactions by their first signature.
    transactions: HashMap<Signature, TxRecord>,
    /// Signatures per address, oldest first.
    by_address: HashMap<Pubkey, Vec<Signature>>,
    /// Every account known to exist (or to have existed), by owner.
    by_owner: HashMap<Pubkey, HashSet<Pubkey>>,
    owner_of: HashMap<Pubkey, Pubkey>,
}

impl Index {
    /// Records a committed transaction under each of its account keys.
    pub fn insert(&mut self, signature: Signature, keys: &[Pubkey], record: TxRecord) {
        let mut seen = HashSet::new();
        for key in keys {
            if seen.insert(*key) {
                self.by_address.entry(*key).or_default().push(signature);
            }
        }
        self.transactions.insert(signature, record);
    }

    pub fn transaction(&self, signature: &Signature) -> Option<&TxRecord> {
        self.transactions.get(signature)
    }

    /// Signatures touching `address`, newest first.
    pub fn signatures_for(&self, address: &Pubkey) -> impl Iterator<Item = &Signature> {
        self.by_address
            .get(address)
            .into_iter()
            .flat_map(|signatures| signatures.iter().rev())
    }

    /// Notes the current owner of `address` (`None`: the account no longer exists).
    pub fn set_owner(&mut self, address: Pubkey, owner: Option<Pubkey>) {
        let previous = match owner {
            Some(owner) => self.owner_of.insert(address, owner),
            None => self.owner_of.remove(&address),
        };
        if previous == owner {
            return;
        }
        if let Some(previous) = previous {
            if let Some(set) = self.by_owner.get_mut(&previous) {
                set.remove(&address);
            }
        }
        if let Some(owner) = owner {
            self.by_owner.entry(owner).or_default().insert(address);
        }
    }

    /// Addresses last seen owned by `owner`.
    pub fn owned_by(&self, owner: &Pubkey) -> Vec<Pubkey> {
        self.by_owner
            .get(owner)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }
}
