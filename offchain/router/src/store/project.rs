//! Writing events into the tables, one transaction per batch, idempotent by position.
//!
//! A batch is folded in memory first ([`Stage`]): the stored rows of the orders it changes are
//! read with one query per 128 ids, then every table gets its rows in a few multi-row
//! statements ([`rows::insert`]). The tables end exactly as projecting one event at a time
//! would leave them (the store tests compare digests of both, and of any batch split).

use super::codec::{dec, get_dec, get_int, int, Named};
use super::query::{order_row, OrderRow, ORDER_COLUMNS};
use super::rows::{self, Column, Value};
use super::stage::{referenced_orders, Stage, StagedCandle};
use super::{Applied, Dialect, Position, Store, StoreError};
use crate::model::Sequenced;
use sqlx::AnyConnection;
use std::collections::BTreeMap;

const ORDERS: &[Column] = &[
    ("order_id", false),
    ("market", false),
    ("owner", false),
    ("side", false),
    ("price_ticks", true),
    ("size_lots", true),
    ("remaining_lots", true),
    ("filled_lots", true),
    ("status", false),
    ("nonce", true),
    ("expiry", false),
    ("client_order_id", true),
    ("order_type", false),
    ("signed", false),
    ("signature", false),
    ("created_seq", false),
    ("updated_seq", false),
];
const ORDER_CHANGES: &str = "ON CONFLICT (order_id) DO UPDATE SET \
    price_ticks = excluded.price_ticks, size_lots = excluded.size_lots, \
    remaining_lots = excluded.remaining_lots, filled_lots = excluded.filled_lots, \
    status = excluded.status, nonce = excluded.nonce, expiry = excluded.expiry, \
    signed = excluded.signed, signature = excluded.signature, updated_seq = excluded.updated_seq";

const VERSIONS: &[Column] = &[
    ("owner", false),
    ("nonce", true),
    ("order_id", false),
    ("signed", false),
    ("signature", false),
    ("seq", false),
];

const FILLS: &[Column] = &[
    ("market", false),
    ("fill_id", false),
    ("maker_order_id", false),
    ("taker_order_id", false),
    ("maker", false),
    ("taker", false),
    ("taker_side", false),
    ("price_ticks", true),
    ("size_lots", true),
    ("notional", true),
    ("maker_fee", true),
    ("taker_fee", true),
    ("seq", false),
    ("idx", false),
    ("timestamp_ms", false),
    ("maker_nonce", true),
    ("taker_nonce", true),
];

const OUTBOX: &[Column] = &[
    ("market", false),
    ("fill_id", false),
    ("status", false),
    ("attempts", false),
    ("seq", false),
    ("idx", false),
    ("updated_seq", false),
];
const OUTBOX_CHANGES: &str = "ON CONFLICT (market, fill_id) DO UPDATE SET \
    status = excluded.status, attempts = settlement_outbox.attempts + excluded.attempts, \
    updated_seq = excluded.updated_seq";

const LEDGER: &[Column] = &[
    ("seq", false),
    ("idx", false),
    ("timestamp_ms", false),
    ("owner", false),
    ("asset", false),
    ("business", false),
    ("business_id", false),
    ("available_delta", true),
    ("frozen_delta", true),
    ("available", true),
    ("frozen", true),
    ("version", false),
];

const BALANCES: &[Column] = &[
    ("owner", false),
    ("asset", false),
    ("available", true),
    ("frozen", true),
    ("version", false),
    ("updated_seq", false),
];
const BALANCE_CHANGES: &str = "ON CONFLICT (owner, asset) DO UPDATE SET \
    available = excluded.available, frozen = excluded.frozen, version = excluded.version, \
    updated_seq = excluded.updated_seq";

const CANDLES: &[Column] = &[
    ("market", false),
    ("interval_secs", false),
    ("open_time", false),
    ("open_ticks", true),
    ("high_ticks", true),
    ("low_ticks", true),
    ("close_ticks", true),
    ("volume_lots", true),
    ("quote_volume", true),
    ("trades", false),
    ("updated_seq", false),
];
const CANDLE_CHANGES: &str = "ON CONFLICT (market, interval_secs, open_time) DO UPDATE SET \
    high_ticks = excluded.high_ticks, low_ticks = excluded.low_ticks, \
    close_ticks = excluded.close_ticks, volume_lots = excluded.volume_lots, \
    quote_volume = excluded.quote_volume, trades = excluded.trades, \
    updated_seq = excluded.updated_seq";

const DEPOSITS: &[Column] = &[
    ("tx", false),
    ("ix_index", false),
    ("owner", false),
    ("asset", false),
    ("amount", true),
    ("seq", false),
    ("timestamp_ms", false),
];

const WITHDRAWALS: &[Column] = &[
    ("id", false),
    ("owner", false),
    ("asset", false),
    ("amount", true),
    ("status", false),
    ("created_seq", false),
    ("updated_seq", false),
    ("kind", false),
    ("tx", false),
    ("last_valid_block_height", false),
];
const WITHDRAWAL_CHANGES: &str = "ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
    updated_seq = excluded.updated_seq, tx = excluded.tx, \
    last_valid_block_height = excluded.last_valid_block_height";

const NONCE_FLOORS: &[Column] = &[("owner", false), ("floor", true), ("updated_seq", false)];
const NONCE_FLOOR_CHANGES: &str = "ON CONFLICT (owner) DO UPDATE SET floor = excluded.floor, \
    updated_seq = excluded.updated_seq";

/// Most ids in one `IN (…)` list when reading the orders a batch changes.
const READ_CHUNK: usize = 128;

impl Store {
    /// Projects `events` (in stream order) in one transaction. Events at or below the cursor
    /// are skipped, so any batch may be applied again, or overlap the previous one, without
    /// changing anything. On error nothing of the batch is written and the cursor stays put.
    pub async fn apply_batch(&self, events: &[Sequenced]) -> Result<Applied, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first: it takes the write lock (SQLite) / row lock (PostgreSQL) before the
        // cursor is read, so two concurrent writers cannot both project the same events.
        let row = sqlx::query(
            "UPDATE projection_cursor SET id = id WHERE id = 1 RETURNING last_seq, last_idx",
        )
        .fetch_one(&mut *tx)
        .await?;
        let start = Position {
            seq: get_int(&row, "last_seq")?,
            index: get_int(&row, "last_idx")?,
        };
        let mut cursor = start;
        let mut fresh = Vec::with_capacity(events.len());
        for event in events {
            let at = Position {
                seq: event.seq,
                index: event.index,
            };
            if at > cursor {
                fresh.push(event);
                cursor = at;
            }
        }
        if !fresh.is_empty() {
            let existing = read_orders(&mut tx, self.dialect, &referenced_orders(&fresh)).await?;
            let stage = Stage::fold(&fresh, existing)?;
            write(&mut tx, self.dialect, stage).await?;
            sqlx::query("UPDATE projection_cursor SET last_seq = $1, last_idx = $2 WHERE id = 1")
                .bind(int("seq", cursor.seq)?)
                .bind(i64::from(cursor.index))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Applied {
            events: fresh.len(),
            cursor,
        })
    }
}

/// The stored rows of `ids` (those missing are simply absent: the fold reports them).
async fn read_orders(
    conn: &mut AnyConnection,
    dialect: Dialect,
    ids: &std::collections::BTreeSet<u64>,
) -> Result<BTreeMap<u64, OrderRow>, StoreError> {
    let ids = ids
        .iter()
        .map(|id| int("order_id", *id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(READ_CHUNK) {
        let list = rows::placeholders(dialect, chunk.len());
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id IN ({list})");
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let order = order_row(&row)?;
            out.insert(order.order_id, order);
        }
    }
    Ok(out)
}

fn order_values(row: &OrderRow) -> Result<Vec<Value>, StoreError> {
    Ok(vec![
        Value::Int(int("order_id", row.order_id)?),
        Value::Int(i64::from(row.market)),
        Value::Text(crate::model::to_hex(&row.owner)),
        Value::Int(i64::from(row.side)),
        Value::Text(dec(row.price_ticks)),
        Value::Text(dec(row.size_lots)),
        Value::Text(dec(row.remaining_lots)),
        Value::Text(dec(row.filled_lots)),
        Value::Text(row.status.name().to_owned()),
        Value::Text(dec(row.nonce)),
        Value::Int(row.expiry),
        Value::Text(dec(row.client_order_id)),
        Value::Int(i64::from(row.order_type)),
        Value::Text(row.signed.clone()),
        Value::Text(row.signature.clone()),
        Value::Int(int("created_seq", row.created_seq)?),
        Value::Int(int("updated_seq", row.updated_seq)?),
    ])
}

async fn write(conn: &mut AnyConnection, dialect: Dialect, stage: Stage) -> Result<(), StoreError> {
    let mut created = Vec::new();
    let mut changed = Vec::new();
    for staged in stage.orders.values() {
        let values = order_values(&staged.row)?;
        if staged.created {
            created.push(values);
        } else {
            changed.push(values);
        }
    }
    rows::insert(conn, dialect, "orders", ORDERS, &created, "").await?;
    rows::insert(conn, dialect, "orders", ORDERS, &changed, ORDER_CHANGES).await?;
    let versions_tail = "ON CONFLICT (owner, nonce) DO NOTHING";
    rows::insert(
        conn,
        dialect,
        "order_versions",
        VERSIONS,
        &stage.versions,
        versions_tail,
    )
    .await?;
    rows::insert(conn, dialect, "fills", FILLS, &stage.fills, "").await?;

    let (mut new_outbox, mut outbox_changes) = (Vec::new(), Vec::new());
    for ((market, fill_id), o) in &stage.outbox {
        let values = vec![
            Value::Int(i64::from(*market)),
            Value::Int(int("fill_id", *fill_id)?),
            Value::Text(o.status.name().to_owned()),
            Value::Int(o.attempts),
            Value::Int(o.seq),
            Value::Int(o.index),
            Value::Int(o.updated_seq),
        ];
        if o.created {
            new_outbox.push(values);
        } else {
            outbox_changes.push(values);
        }
    }
    rows::insert(conn, dialect, "settlement_outbox", OUTBOX, &new_outbox, "").await?;
    rows::insert(
        conn,
        dialect,
        "settlement_outbox",
        OUTBOX,
        &outbox_changes,
        OUTBOX_CHANGES,
    )
    .await?;

    rows::insert(conn, dialect, "ledger_entries", LEDGER, &stage.ledger, "").await?;
    let balances = stage
        .balances
        .iter()
        .map(|((owner, asset), (available, frozen, version, seq))| {
            vec![
                Value::Text(owner.clone()),
                Value::Int(i64::from(*asset)),
                Value::Text(dec(available)),
                Value::Text(dec(frozen)),
                Value::Int(*version),
                Value::Int(*seq),
            ]
        })
        .collect::<Vec<_>>();
    rows::insert(
        conn,
        dialect,
        "balances",
        BALANCES,
        &balances,
        BALANCE_CHANGES,
    )
    .await?;

    let mut candles = Vec::with_capacity(stage.candles.len());
    for (key, staged) in &stage.candles {
        candles.push(candle_values(conn, *key, staged).await?);
    }
    rows::insert(conn, dialect, "candles", CANDLES, &candles, CANDLE_CHANGES).await?;

    rows::insert(conn, dialect, "deposits", DEPOSITS, &stage.deposits, "").await?;
    let withdrawals = stage
        .withdrawals
        .iter()
        .map(|(id, w)| {
            Ok(vec![
                Value::Int(int("withdrawal id", *id)?),
                Value::Text(w.owner.clone()),
                Value::Int(i64::from(w.asset)),
                Value::Text(dec(w.amount)),
                Value::Text(w.status.name().to_owned()),
                Value::Int(w.created_seq),
                Value::Int(w.updated_seq),
                Value::Text(w.kind.name().to_owned()),
                Value::OptText(w.tx.clone()),
                Value::OptInt(w.last_valid_block_height),
            ])
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    rows::insert(
        conn,
        dialect,
        "withdrawals",
        WITHDRAWALS,
        &withdrawals,
        WITHDRAWAL_CHANGES,
    )
    .await?;
    let floors = stage
        .nonce_floors
        .iter()
        .map(|(owner, (floor, seq))| {
            vec![
                Value::Text(owner.clone()),
                Value::Text(dec(floor)),
                Value::Int(*seq),
            ]
        })
        .collect::<Vec<_>>();
    rows::insert(
        conn,
        dialect,
        "nonce_floors",
        NONCE_FLOORS,
        &floors,
        NONCE_FLOOR_CHANGES,
    )
    .await?;
    Ok(())
}

/// The candle bucket `key` with this batch's part merged into its stored row, if any.
async fn candle_values(
    conn: &mut AnyConnection,
    (market, interval, open_time): (u32, u64, u64),
    staged: &StagedCandle,
) -> Result<Vec<Value>, StoreError> {
    let key = (
        i64::from(market),
        int("interval_secs", interval)?,
        int("open_time", open_time)?,
    );
    let stored = sqlx::query(
        "SELECT CAST(open_ticks AS TEXT) AS open_ticks, CAST(high_ticks AS TEXT) AS high_ticks, \
         CAST(low_ticks AS TEXT) AS low_ticks, CAST(volume_lots AS TEXT) AS volume_lots, \
         CAST(quote_volume AS TEXT) AS quote_volume, trades FROM candles \
         WHERE market = $1 AND interval_secs = $2 AND open_time = $3",
    )
    .bind(key.0)
    .bind(key.1)
    .bind(key.2)
    .fetch_optional(&mut *conn)
    .await?;
    let (open, high, low, volume, quote_volume, trades) = match stored {
        None => (
            staged.open,
            staged.high,
            staged.low,
            staged.volume,
            staged.quote_volume,
            staged.trades,
        ),
        Some(row) => {
            let high: u64 = get_dec(&row, "high_ticks")?;
            let low: u64 = get_dec(&row, "low_ticks")?;
            let volume: u128 = get_dec(&row, "volume_lots")?;
            let quote_volume: u128 = get_dec(&row, "quote_volume")?;
            let trades: u64 = get_int(&row, "trades")?;
            (
                get_dec(&row, "open_ticks")?,
                high.max(staged.high),
                low.min(staged.low),
                volume
                    .checked_add(staged.volume)
                    .ok_or(StoreError::Overflow("candle volume"))?,
                quote_volume
                    .checked_add(staged.quote_volume)
                    .ok_or(StoreError::Overflow("candle quote volume"))?,
                trades
                    .checked_add(staged.trades)
                    .ok_or(StoreError::Overflow("candle trades"))?,
            )
        }
    };
    Ok(vec![
        Value::Int(key.0),
        Value::Int(key.1),
        Value::Int(key.2),
        Value::Text(dec(open)),
        Value::Text(dec(high)),
        Value::Text(dec(low)),
        Value::Text(dec(staged.close)),
        Value::Text(dec(volume)),
        Value::Text(dec(quote_volume)),
        Value::Int(int("trades", trades)?),
        Value::Int(staged.updated_seq),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_upsert_names_only_columns_of_its_table() {
        for (columns, tail) in [
            (ORDERS, ORDER_CHANGES),
            (OUTBOX, OUTBOX_CHANGES),
            (BALANCES, BALANCE_CHANGES),
            (CANDLES, CANDLE_CHANGES),
            (WITHDRAWALS, WITHDRAWAL_CHANGES),
            (NONCE_FLOORS, NONCE_FLOOR_CHANGES),
        ] {
            for part in tail.split("excluded.").skip(1) {
                let column = part.split([',', ' ']).next().unwrap_or_default();
                assert!(
                    columns.iter().any(|(name, _)| *name == column),
                    "{column} in {tail}"
                );
            }
        }
    }
}
