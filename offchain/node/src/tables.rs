//! The settlement loop's address lookup tables: which accounts go into them, and where their
//! addresses are kept so a restarted `kestrel relayer` reopens the same tables.
//!
//! The table addresses are kept in a small JSON file next to the operator key, not in the SQL
//! store: the store is the router's projection (rebuildable from its journal and written only
//! by the router), while the tables belong to the relayer's operator key and cluster. The file
//! is replaced atomically (temp file, fsync, rename), so a crash leaves the old or the new list.

use kestrel_relayer::batcher::PendingFill;
use kestrel_relayer::lookup::{fixed_accounts, LookupError, LookupTables};
use kestrel_sdk::Deployment;
use serde::{Deserialize, Serialize};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::message::AddressLookupTableAccount;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the wait for a table's next slot polls the chain.
const SLOT_POLL: Duration = Duration::from_millis(20);

/// An order record goes into a table once this many pending fills use it (a record used once
/// would cost a slot's wait for one byte-saving).
const RECORD_USES: usize = 2;

/// Whether and how the settlement loop uses lookup tables.
#[derive(Debug, Clone, Default)]
pub struct TablesConfig {
    /// Pack v0 transactions over lookup tables; legacy transactions when off.
    pub enabled: bool,
    /// Where the table addresses are kept across restarts; `None` keeps them in memory only
    /// (the devnet, whose chain starts from genesis every run).
    pub file: Option<PathBuf>,
}

/// Reading or writing the table file failed.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// The file could not be read or written.
    #[error("lookup table file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold a list of table addresses.
    #[error("lookup table file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A table could not be created, extended or read.
    #[error(transparent)]
    Lookup(#[from] LookupError),
}

#[derive(Serialize, Deserialize)]
struct TableFile {
    tables: Vec<String>,
}

/// The table addresses in `path` (none if the file does not exist).
pub fn read_file(path: &Path) -> Result<Vec<Pubkey>, TablesError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TablesError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let format = |reason: String| TablesError::Format {
        path: path.to_owned(),
        reason,
    };
    let file: TableFile = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    file.tables
        .iter()
        .map(|key| Pubkey::from_str(key).map_err(|e| format(format!("{key}: {e}"))))
        .collect()
}

fn write_file(path: &Path, keys: &[Pubkey]) -> Result<(), TablesError> {
    let io = |source| TablesError::Io {
        path: path.to_owned(),
        source,
    };
    let file = TableFile {
        tables: keys.iter().map(Pubkey::to_string).collect(),
    };
    let text = serde_json::to_vec_pretty(&file).map_err(|e| TablesError::Format {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let temp = path.with_extension("json.tmp");
    let mut out = std::fs::File::create(&temp).map_err(io)?;
    out.write_all(&text).map_err(io)?;
    out.sync_all().map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)
}

/// The loop's tables, the addresses they hold and the file they are kept in.
pub(crate) struct Tables {
    tables: LookupTables,
    file: Option<PathBuf>,
    /// The file does not list every table yet (a write failed).
    unsaved: bool,
    /// The table addresses, for whoever watches the loop.
    published: Arc<Mutex<Vec<Pubkey>>>,
}

impl Tables {
    /// Reopens the tables listed in the configured file, or starts with none.
    pub(crate) async fn open(
        rpc: &RpcClient,
        file: Option<PathBuf>,
        published: Arc<Mutex<Vec<Pubkey>>>,
    ) -> Result<Tables, TablesError> {
        let keys = match &file {
            Some(path) => read_file(path)?,
            None => Vec::new(),
        };
        let tables = if keys.is_empty() {
            LookupTables::new(SLOT_POLL)
        } else {
            LookupTables::existing(rpc, &keys, SLOT_POLL).await?
        };
        let tables = Tables {
            tables,
            file,
            unsaved: false,
            published,
        };
        tables.publish();
        Ok(tables)
    }

    /// Makes sure market `market`'s fixed accounts, the user accounts of `fills` and the
    /// order records several of them use are in a table and usable, and the file lists every
    /// table; returns the tables to pack with.
    pub(crate) async fn prepare(
        &mut self,
        rpc: &RpcClient,
        operator: &Keypair,
        deployment: &Deployment,
        market: u32,
        fills: &[PendingFill],
    ) -> Result<&[AddressLookupTableAccount], TablesError> {
        let mut wanted = fixed_accounts(deployment, market);
        wanted.extend(candidates(deployment, fills));
        let before = self.tables.tables().len();
        // A table opened before a failed extension is listed all the same.
        let added = self.tables.add(rpc, operator, &wanted).await;
        if self.tables.tables().len() != before {
            self.unsaved = true;
            self.publish();
        }
        if self.unsaved {
            if let Some(path) = &self.file {
                write_file(path, &self.keys())?;
            }
            self.unsaved = false;
        }
        added?;
        Ok(self.tables.tables())
    }

    fn keys(&self) -> Vec<Pubkey> {
        self.tables.tables().iter().map(|t| t.key).collect()
    }

    fn publish(&self) {
        let keys = self.keys();
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = keys;
    }
}

/// Every user account `fills` settle against (traders recur), then the order records used by
/// at least [`RECORD_USES`] of them, most used first.
fn candidates(deployment: &Deployment, fills: &[PendingFill]) -> Vec<Pubkey> {
    let mut users = Vec::new();
    let mut records: Vec<(Pubkey, usize)> = Vec::new();
    let mut record_index: HashMap<Pubkey, usize> = HashMap::new();
    for order in fills.iter().flat_map(|f| [f.maker.order, f.taker.order]) {
        let user = deployment.user_address(&order.owner);
        if !users.contains(&user) {
            users.push(user);
        }
        let record = deployment.order_address(&order.owner, order.nonce);
        match record_index.get(&record) {
            Some(&i) => {
                if let Some(entry) = records.get_mut(i) {
                    entry.1 = entry.1.saturating_add(1);
                }
            }
            None => {
                record_index.insert(record, records.len());
                records.push((record, 1));
            }
        }
    }
    records.retain(|(_, uses)| *uses >= RECORD_USES);
    records.sort_by_key(|(_, uses)| std::cmp::Reverse(*uses));
    users.extend(records.into_iter().map(|(record, _)| record));
    users
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_table_file_round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relayer").join("lookup-tables.json");
        assert!(read_file(&path).unwrap().is_empty(), "no file: no tables");
        let keys = vec![Pubkey::new_unique(), Pubkey::new_unique()];
        write_file(&path, &keys).unwrap();
        assert_eq!(read_file(&path).unwrap(), keys);
        std::fs::write(&path, "{\"tables\": [\"not a key\"]}").unwrap();
        assert!(matches!(read_file(&path), Err(TablesError::Format { .. })));
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(matches!(read_file(&path), Err(TablesError::Format { .. })));
    }
}
