//! Address lookup tables for settle transactions: the relayer creates and extends tables
//! holding the accounts that repeat across batches (the exchange, markets, the instructions
//! sysvar and system program, frequent traders' user accounts and order records), and hands
//! the packer only addresses the chain already resolves.
//!
//! A table extended in slot N resolves its new addresses from slot N + 1 on: [`LookupTables::add`]
//! returns once the chain's slot has passed the last extension, with the tables as the chain
//! holds them. Tables are append-only, so a message compiled against a table stays valid.
//! Program ids and signers (the kestrel and Ed25519 programs, the operator) can never be
//! looked up: they stay static keys. Full tables are kept (never deactivated) and a new one is
//! opened; closing old tables to reclaim their rent is left to the operator.

use crate::batcher::PendingFill;
use kestrel_sdk::Deployment;
use solana_address_lookup_table_interface::instruction::{
    create_lookup_table, extend_lookup_table,
};
use solana_address_lookup_table_interface::state::{
    AddressLookupTable, LOOKUP_TABLE_MAX_ADDRESSES,
};
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::message::AddressLookupTableAccount;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Addresses per extend transaction: 30 keys keep it well inside 1,232 bytes.
const EXTEND_CHUNK: usize = 30;

/// Why a table could not be created, extended or read.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The RPC node failed.
    #[error("rpc: {0}")]
    Rpc(#[from] Box<ClientError>),
    /// A table transaction failed.
    #[error(transparent)]
    Chain(#[from] kestrel_sdk::chain::ChainError),
    /// The table account is missing or does not decode.
    #[error("lookup table {table}: {reason}")]
    Table {
        /// Table address.
        table: Pubkey,
        /// What was wrong.
        reason: String,
    },
}

impl From<ClientError> for LookupError {
    fn from(err: ClientError) -> Self {
        LookupError::Rpc(Box::new(err))
    }
}

/// The operator's lookup tables, as the chain holds them.
#[derive(Debug, Clone)]
pub struct LookupTables {
    tables: Vec<AddressLookupTableAccount>,
    poll_interval: Duration,
}

impl LookupTables {
    /// No table yet; `poll_interval` paces the wait for a new slot.
    pub fn new(poll_interval: Duration) -> Self {
        LookupTables {
            tables: Vec::new(),
            poll_interval,
        }
    }

    /// The tables at `keys` as the chain holds them (a relayer restarting with the keys it
    /// persisted), once every address in them is usable.
    pub async fn existing(
        rpc: &RpcClient,
        keys: &[Pubkey],
        poll_interval: Duration,
    ) -> Result<Self, LookupError> {
        let mut tables = LookupTables {
            tables: keys
                .iter()
                .map(|key| AddressLookupTableAccount {
                    key: *key,
                    addresses: Vec::new(),
                })
                .collect(),
            poll_interval,
        };
        tables.wait_usable(rpc).await?;
        Ok(tables)
    }

    /// The tables, every address in them usable on-chain.
    pub fn tables(&self) -> &[AddressLookupTableAccount] {
        &self.tables
    }

    /// Whether some table holds `address`.
    pub fn contains(&self, address: &Pubkey) -> bool {
        self.tables.iter().any(|t| t.addresses.contains(address))
    }

    /// Adds the `addresses` no table holds yet (in the given order, opening tables as they
    /// fill), with `authority` as table authority and fee payer; returns once every address is
    /// usable. Returns how many addresses were added.
    pub async fn add(
        &mut self,
        rpc: &RpcClient,
        authority: &Keypair,
        addresses: &[Pubkey],
    ) -> Result<usize, LookupError> {
        let mut seen = HashSet::new();
        let missing: Vec<Pubkey> = addresses
            .iter()
            .filter(|a| !self.contains(a) && seen.insert(**a))
            .copied()
            .collect();
        let mut rest = missing.as_slice();
        while !rest.is_empty() {
            let room = match self.tables.last() {
                Some(table) => LOOKUP_TABLE_MAX_ADDRESSES.saturating_sub(table.addresses.len()),
                None => 0,
            };
            if room == 0 {
                self.open(rpc, authority).await?;
                continue;
            }
            let take = room.min(EXTEND_CHUNK).min(rest.len());
            let (chunk, tail) = rest.split_at(take);
            let Some(table) = self.tables.last_mut() else {
                continue;
            };
            let extend = extend_lookup_table(
                table.key,
                authority.pubkey(),
                Some(authority.pubkey()),
                chunk.to_vec(),
            );
            kestrel_sdk::chain::send(rpc, &[extend], authority, &[]).await?;
            table.addresses.extend_from_slice(chunk);
            rest = tail;
        }
        if !missing.is_empty() {
            self.wait_usable(rpc).await?;
        }
        Ok(missing.len())
    }

    /// Creates an empty table (derived from a recent slot the chain still remembers).
    async fn open(&mut self, rpc: &RpcClient, authority: &Keypair) -> Result<(), LookupError> {
        loop {
            let recent_slot = rpc.get_slot().await?.saturating_sub(1);
            let (create, key) =
                create_lookup_table(authority.pubkey(), authority.pubkey(), recent_slot);
            // One table per authority and slot: a second one this slot waits for the next.
            if self.tables.iter().any(|t| t.key == key) {
                tokio::time::sleep(self.poll_interval).await;
                continue;
            }
            kestrel_sdk::chain::send(rpc, &[create], authority, &[]).await?;
            self.tables.push(AddressLookupTableAccount {
                key,
                addresses: Vec::new(),
            });
            return Ok(());
        }
    }

    /// Waits until the chain's slot is past every table's last extension, then takes the
    /// tables' addresses from the chain.
    async fn wait_usable(&mut self, rpc: &RpcClient) -> Result<(), LookupError> {
        for table in &mut self.tables {
            let account = rpc
                .get_account_with_commitment(&table.key, rpc.commitment())
                .await?
                .value
                .ok_or_else(|| LookupError::Table {
                    table: table.key,
                    reason: "no such account".into(),
                })?;
            let state = AddressLookupTable::deserialize(&account.data).map_err(|err| {
                LookupError::Table {
                    table: table.key,
                    reason: err.to_string(),
                }
            })?;
            while rpc.get_slot().await? <= state.meta.last_extended_slot {
                tokio::time::sleep(self.poll_interval).await;
            }
            table.addresses = state.addresses.to_vec();
        }
        Ok(())
    }
}

/// The accounts of market `market`'s settle instruction that never change: the exchange, the
/// market, the instructions sysvar and the system program.
pub fn fixed_accounts(deployment: &Deployment, market: u32) -> Vec<Pubkey> {
    vec![
        deployment.exchange,
        deployment.market_address(market),
        solana_sdk::sysvar::instructions::ID,
        solana_system_interface::program::ID,
    ]
}

/// The user accounts and order records `fills` settle against, most used first (ties in
/// order of first use): the candidates for a table, frequent traders ahead.
pub fn frequent_accounts(deployment: &Deployment, fills: &[PendingFill]) -> Vec<Pubkey> {
    let mut uses: HashMap<Pubkey, (usize, usize)> = HashMap::new();
    let orders = fills.iter().flat_map(|f| [f.maker.order, f.taker.order]);
    for order in orders {
        for address in [
            deployment.user_address(&order.owner),
            deployment.order_address(&order.owner, order.nonce),
        ] {
            let first = uses.len();
            let entry = uses.entry(address).or_insert((0, first));
            entry.0 = entry.0.saturating_add(1);
        }
    }
    let mut ranked: Vec<(Pubkey, (usize, usize))> = uses.into_iter().collect();
    ranked.sort_by(|(_, (a, first_a)), (_, (b, first_b))| b.cmp(a).then(first_a.cmp(first_b)));
    ranked.into_iter().map(|(address, _)| address).collect()
}
