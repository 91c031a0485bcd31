//! The SQL store: a projection of the router's [`Sequenced`](crate::model::Sequenced) event
//! stream (DESIGN.md, "Off-chain: one sequence of events"), never on the hot path.
//!
//! - **Batched**: [`Store::apply_batch`] writes a batch in one transaction;
//!   [`spawn_projector`] drains a channel into batches of up to N events or 10 ms.
//! - **Idempotent by sequence**: a cursor row holds the position `(seq, index)` of the last
//!   projected event, updated in the batch's transaction; events at or below it are skipped,
//!   so re-applying any batch, or the whole journal, changes nothing.
//! - **Rebuildable**: every column derives from the events alone (no wall clock), so
//!   projecting the journal from scratch yields identical tables ([`Store::table_digests`]).
//!
//! SQLite (the embedded default, WAL mode) and PostgreSQL share one code path through sqlx's
//! `Any` driver with runtime-checked queries; the schemas live in `migrations/<dialect>/` at
//! the repository root and are embedded at compile time. Wide values (u64 atoms, lots, ticks;
//! i128 ledger deltas) are NUMERIC on PostgreSQL and exact decimal TEXT on SQLite.

mod codec;
mod listener;
mod project;
mod projector;
mod query;
mod rows;
mod stage;
mod versions;

pub use codec::OrderStatus;
pub use listener::ListenerCursor;
pub use projector::{spawn_projector, ProjectorConfig};
pub use query::{
    BalanceRow, Candle, DepositRow, FillRow, LedgerEntryRow, OrderRow, OutboxRow, Page,
    TableDigest, WithdrawalRow, MAX_PAGE,
};
pub use versions::OrderVersionRow;

use crate::model::Seq;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::{Executor, Row};
use std::borrow::Cow;

/// Candle intervals maintained from fills, in seconds.
pub const CANDLE_INTERVALS: [u64; 3] = [60, 3_600, 86_400];

/// The store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed (including unique-constraint violations).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database url: expected sqlite:... or postgres://...")]
    UnsupportedUrl,
    /// A value does not fit the column meant for it.
    #[error("{field} value {value} does not fit its column")]
    OutOfRange {
        /// Field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// A stored value cannot be read back as its type.
    #[error("column {column} holds an invalid value {value:?}")]
    Corrupt {
        /// Column.
        column: &'static str,
        /// The stored value.
        value: String,
    },
    /// An event names a row the projection does not have: the stream is incomplete or out of
    /// order, and projecting further would be wrong.
    #[error("event {seq}:{index} names unknown {what} {id}")]
    Inconsistent {
        /// Sequence number of the event.
        seq: Seq,
        /// Index of the event within its command.
        index: u32,
        /// What is missing.
        what: &'static str,
        /// Its id.
        id: u64,
    },
    /// An event creates a row the projection already has (an order id or a fill's outbox
    /// row seen twice in one batch): the stream is not the router's.
    #[error("event {seq}:{index} creates {what} {id}, which exists already")]
    Duplicate {
        /// Sequence number of the event.
        seq: Seq,
        /// Index of the event within its command.
        index: u32,
        /// What is duplicated.
        what: &'static str,
        /// Its id.
        id: u64,
    },
    /// An amount or count overflowed while being accumulated.
    #[error("{0} overflowed")]
    Overflow(&'static str),
}

/// The place of an event in the global stream; ordered by sequence number, then index.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// Sequence number of the command.
    pub seq: Seq,
    /// Index of the event among the command's events.
    pub index: u32,
}

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Result of one [`Store::apply_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Events written (the rest were at or below the cursor).
    pub events: usize,
    /// Cursor after the batch.
    pub cursor: Position,
}

/// A connection pool to the projection.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc`, `postgres://...`) and brings the schema up
    /// to date. SQLite databases are switched to WAL mode, so readers never block the writer.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        // A projection batch runs multi-row upserts, each with a statement
                        // journal: kept in memory, not in temporary files (a write syscall
                        // per journaled page; docs/benchmarks.md).
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                        // The WAL's checkpoints are the store's only fsyncs, and they share
                        // the disk with the command journal's, which every acknowledgement
                        // waits for: at 200 pages (SQLite's default is 1,000) each flush is
                        // small. Ack p99 at 2,000 orders/s 6.4-7.4 -> 4.8-4.9 ms with the
                        // same drain rate; 10,000 pages drained faster but doubled the p99
                        // (docs/benchmarks.md).
                        conn.execute("PRAGMA wal_autocheckpoint = 200").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        match dialect {
            Dialect::Sqlite => {
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
                sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
            }
            Dialect::Postgres => {
                sqlx::migrate!("../../migrations/postgres")
                    .run(&pool)
                    .await?
            }
        }
        Ok(Store { pool, dialect })
    }

    /// The dialect of this store.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes every connection (after in-flight queries finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Position of the last projected event (`(0, 0)` when nothing is projected yet): the
    /// journal is replayed into the store from just after it.
    pub async fn cursor(&self) -> Result<Position, StoreError> {
        let row = sqlx::query("SELECT last_seq, last_idx FROM projection_cursor WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(Position {
            seq: codec::get_int(&row, "last_seq")?,
            index: codec::get_int(&row, "last_idx")?,
        })
    }

    /// Per table, its row count and a SHA-256 over all its rows in key order: two stores
    /// projected from the same events have equal digests, which is how a rebuild from the
    /// journal is checked against the live projection.
    pub async fn table_digests(&self) -> Result<Vec<TableDigest>, StoreError> {
        use sha2::{Digest, Sha256};
        let mut out = Vec::with_capacity(query::TABLES.len());
        for (table, columns, key) in query::TABLES {
            let select: Vec<String> = columns
                .iter()
                .map(|c| format!("CAST({c} AS TEXT) AS {c}"))
                .collect();
            let sql = format!("SELECT {} FROM {table} ORDER BY {key}", select.join(", "));
            let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
            let mut hasher = Sha256::new();
            for row in &rows {
                for column in columns.iter() {
                    let value: Option<String> = row.try_get(*column)?;
                    hasher.update(value.unwrap_or_default().as_bytes());
                    hasher.update([0x1f]);
                }
                hasher.update([0x1e]);
            }
            out.push(TableDigest {
                table,
                rows: rows.len(),
                sha256: crate::model::to_hex(&hasher.finalize()),
            });
        }
        Ok(out)
    }

    /// `template` in this store's dialect: `$n::N` marks a bind of a wide value given as
    /// decimal text, cast to NUMERIC on PostgreSQL and stored as is on SQLite.
    fn sql<'t>(&self, template: &'t str) -> Cow<'t, str> {
        sql_for(self.dialect, template)
    }
}

fn sql_for(dialect: Dialect, template: &str) -> Cow<'_, str> {
    if !template.contains("::N") {
        return Cow::Borrowed(template);
    }
    match dialect {
        Dialect::Sqlite => Cow::Owned(template.replace("::N", "")),
        Dialect::Postgres => Cow::Owned(template.replace("::N", "::numeric")),
    }
}
