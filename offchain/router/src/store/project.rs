//! Writing events into the tables, one transaction per batch, idempotent by position.

use super::codec::{dec, get_dec, int, owner_hex, Named, OrderStatus};
use super::{sql_for, Applied, Dialect, Position, Store, StoreError, CANDLE_INTERVALS};
use crate::model::{
    Business, DoneReason, Event, Owner, Sequenced, SettlementStatus, WithdrawalKind,
    WithdrawalStatus,
};
use sqlx::AnyConnection;
use sqlx::Row;

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
            seq: super::codec::get_int(&row, "last_seq")?,
            index: super::codec::get_int(&row, "last_idx")?,
        };
        let mut writer = Writer {
            conn: &mut tx,
            dialect: self.dialect,
        };
        let mut cursor = start;
        let mut written = 0usize;
        for event in events {
            let at = Position {
                seq: event.seq,
                index: event.index,
            };
            if at <= cursor {
                continue;
            }
            writer.event(event).await?;
            cursor = at;
            written = written.saturating_add(1);
        }
        if cursor != start {
            sqlx::query("UPDATE projection_cursor SET last_seq = $1, last_idx = $2 WHERE id = 1")
                .bind(int("seq", cursor.seq)?)
                .bind(i64::from(cursor.index))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Applied {
            events: written,
            cursor,
        })
    }
}

struct Writer<'c> {
    conn: &'c mut AnyConnection,
    dialect: Dialect,
}

/// The identity of the event being written, for binds and error reports.
#[derive(Clone, Copy)]
struct At {
    seq: i64,
    index: i64,
    timestamp_ms: i64,
    /// Unix seconds of the command, for candle buckets.
    secs: u64,
    position: Position,
}

impl At {
    fn inconsistent(self, what: &'static str, id: u64) -> StoreError {
        StoreError::Inconsistent {
            seq: self.position.seq,
            index: self.position.index,
            what,
            id,
        }
    }
}

impl Writer<'_> {
    /// Records one signed version of an order. A nonce already recorded for the owner keeps
    /// its first terms: the chain records an order by (owner, nonce) once, so those are the
    /// only terms any fill under that nonce can settle with.
    async fn order_version(
        &mut self,
        at: At,
        owner: &Owner,
        nonce: u64,
        order_id: u64,
        signed: &str,
        signature: &str,
    ) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO order_versions (owner, nonce, order_id, signed, signature, seq) \
             VALUES ($1, $2::N, $3, $4, $5, $6) ON CONFLICT (owner, nonce) DO NOTHING",
        );
        sqlx::query(&sql)
            .bind(owner_hex(owner))
            .bind(dec(nonce))
            .bind(int("order_id", order_id)?)
            .bind(signed)
            .bind(signature)
            .bind(at.seq)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn event(&mut self, e: &Sequenced) -> Result<(), StoreError> {
        let at = At {
            seq: int("seq", e.seq)?,
            index: i64::from(e.index),
            timestamp_ms: int("timestamp_ms", e.timestamp_ms)?,
            secs: e.timestamp_ms / 1000,
            position: Position {
                seq: e.seq,
                index: e.index,
            },
        };
        match &e.event {
            Event::OrderAccepted {
                order_id,
                market,
                owner,
                side,
                price_ticks,
                size_lots,
                nonce,
                expiry,
                client_order_id,
                order_type,
                signed,
                signature,
            } => {
                let sql = self.sql(
                    "INSERT INTO orders (order_id, market, owner, side, price_ticks, size_lots, \
                     remaining_lots, filled_lots, status, nonce, expiry, client_order_id, \
                     order_type, signed, signature, created_seq, updated_seq) VALUES \
                     ($1, $2, $3, $4, $5::N, $6::N, $6::N, $7::N, $8, $9::N, $10, $11::N, $12, \
                     $13, $14, $15, $15)",
                );
                sqlx::query(&sql)
                    .bind(int("order_id", *order_id)?)
                    .bind(i64::from(*market))
                    .bind(owner_hex(owner))
                    .bind(i64::from(*side))
                    .bind(dec(price_ticks))
                    .bind(dec(size_lots))
                    .bind(dec(0u64))
                    .bind(OrderStatus::Open.name())
                    .bind(dec(nonce))
                    .bind(*expiry)
                    .bind(dec(client_order_id))
                    .bind(i64::from(*order_type))
                    .bind(signed.as_str())
                    .bind(signature.as_str())
                    .bind(at.seq)
                    .execute(&mut *self.conn)
                    .await?;
                self.order_version(at, owner, *nonce, *order_id, signed, signature)
                    .await?;
            }
            Event::OrderReplaced {
                order_id,
                owner,
                nonce,
                price_ticks,
                size_lots,
                expiry,
                signed,
                signature,
                ..
            } => {
                let sql = self.sql(
                    "UPDATE orders SET nonce = $1::N, price_ticks = $2::N, size_lots = $3::N, \
                     remaining_lots = $3::N, expiry = $4, signed = $5, signature = $6, \
                     updated_seq = $7 WHERE order_id = $8",
                );
                let done = sqlx::query(&sql)
                    .bind(dec(nonce))
                    .bind(dec(price_ticks))
                    .bind(dec(size_lots))
                    .bind(*expiry)
                    .bind(signed.as_str())
                    .bind(signature.as_str())
                    .bind(at.seq)
                    .bind(int("order_id", *order_id)?)
                    .execute(&mut *self.conn)
                    .await?;
                if done.rows_affected() != 1 {
                    return Err(at.inconsistent("order", *order_id));
                }
                self.order_version(at, owner, *nonce, *order_id, signed, signature)
                    .await?;
            }
            Event::OrderDone {
                order_id,
                reason,
                remaining_lots,
                ..
            } => {
                self.order_done(at, *order_id, *reason, *remaining_lots)
                    .await?
            }
            Event::Fill {
                market,
                fill_id,
                maker_order_id,
                taker_order_id,
                maker,
                taker,
                taker_side,
                price_ticks,
                size_lots,
                notional,
                maker_fee,
                taker_fee,
                maker_nonce,
                taker_nonce,
            } => {
                let sql = self.sql(
                    "INSERT INTO fills (market, fill_id, maker_order_id, taker_order_id, maker, \
                     taker, taker_side, price_ticks, size_lots, notional, maker_fee, taker_fee, \
                     seq, idx, timestamp_ms, maker_nonce, taker_nonce) VALUES ($1, $2, $3, $4, \
                     $5, $6, $7, $8::N, $9::N, $10::N, $11::N, $12::N, $13, $14, $15, $16::N, \
                     $17::N)",
                );
                sqlx::query(&sql)
                    .bind(i64::from(*market))
                    .bind(int("fill_id", *fill_id)?)
                    .bind(int("maker_order_id", *maker_order_id)?)
                    .bind(int("taker_order_id", *taker_order_id)?)
                    .bind(owner_hex(maker))
                    .bind(owner_hex(taker))
                    .bind(i64::from(*taker_side))
                    .bind(dec(price_ticks))
                    .bind(dec(size_lots))
                    .bind(dec(notional))
                    .bind(dec(maker_fee))
                    .bind(dec(taker_fee))
                    .bind(at.seq)
                    .bind(at.index)
                    .bind(at.timestamp_ms)
                    .bind(dec(maker_nonce))
                    .bind(dec(taker_nonce))
                    .execute(&mut *self.conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO settlement_outbox (market, fill_id, status, attempts, seq, idx, \
                     updated_seq) VALUES ($1, $2, $3, 0, $4, $5, $4)",
                )
                .bind(i64::from(*market))
                .bind(int("fill_id", *fill_id)?)
                .bind(SettlementStatus::Pending.name())
                .bind(at.seq)
                .bind(at.index)
                .execute(&mut *self.conn)
                .await?;
                for order_id in [*maker_order_id, *taker_order_id] {
                    self.order_filled(at, order_id, *size_lots).await?;
                }
                for interval in CANDLE_INTERVALS {
                    self.candle(at, *market, interval, *price_ticks, *size_lots, *notional)
                        .await?;
                }
            }
            Event::Ledger {
                owner,
                asset,
                business,
                business_id,
                available_delta,
                frozen_delta,
                available,
                frozen,
                version,
            } => {
                self.ledger(
                    at,
                    (owner, *asset),
                    (*business, business_id),
                    (*available_delta, *frozen_delta),
                    (*available, *frozen, *version),
                )
                .await?
            }
            Event::DepositCredited {
                owner,
                asset,
                amount,
                tx,
                ix_index,
            } => {
                let sql = self.sql(
                    "INSERT INTO deposits (tx, ix_index, owner, asset, amount, seq, timestamp_ms) \
                     VALUES ($1, $2, $3, $4, $5::N, $6, $7)",
                );
                sqlx::query(&sql)
                    .bind(tx.as_str())
                    .bind(i64::from(*ix_index))
                    .bind(owner_hex(owner))
                    .bind(i64::from(*asset))
                    .bind(dec(amount))
                    .bind(at.seq)
                    .bind(at.timestamp_ms)
                    .execute(&mut *self.conn)
                    .await?;
            }
            Event::Withdrawal {
                id,
                owner,
                asset,
                amount,
                status,
                kind,
                tx,
                last_valid_block_height,
            } => {
                let row = WithdrawalUpdate {
                    id: *id,
                    owner,
                    asset: *asset,
                    amount: *amount,
                    status: *status,
                    kind: *kind,
                    tx: tx.as_deref(),
                    last_valid_block_height: *last_valid_block_height,
                };
                self.withdrawal(at, row).await?
            }
            Event::Settlement {
                market,
                fill_id,
                status,
            } => {
                // A submission is an attempt. A fill the store has not seen is recorded as it
                // came rather than dropped; the relayer only drains pending rows.
                let attempts = i64::from(*status == SettlementStatus::Submitted);
                sqlx::query(
                    "INSERT INTO settlement_outbox (market, fill_id, status, attempts, seq, idx, \
                     updated_seq) VALUES ($1, $2, $3, $4, $5, $6, $5) \
                     ON CONFLICT (market, fill_id) DO UPDATE SET status = excluded.status, \
                     attempts = settlement_outbox.attempts + excluded.attempts, \
                     updated_seq = excluded.updated_seq",
                )
                .bind(i64::from(*market))
                .bind(int("fill_id", *fill_id)?)
                .bind(status.name())
                .bind(attempts)
                .bind(at.seq)
                .bind(at.index)
                .execute(&mut *self.conn)
                .await?;
            }
            Event::NonceFloor { owner, floor } => {
                let sql = self.sql(
                    "INSERT INTO nonce_floors (owner, floor, updated_seq) VALUES ($1, $2::N, $3) \
                     ON CONFLICT (owner) DO UPDATE SET floor = excluded.floor, \
                     updated_seq = excluded.updated_seq",
                );
                sqlx::query(&sql)
                    .bind(owner_hex(owner))
                    .bind(dec(floor))
                    .bind(at.seq)
                    .execute(&mut *self.conn)
                    .await?;
            }
            // Refusals are answered to the sender synchronously and change nothing; book
            // levels feed the in-memory market-data projection. Neither has a table.
            Event::Rejected { .. } | Event::BookLevel { .. } => {}
        }
        Ok(())
    }

    fn sql<'t>(&self, template: &'t str) -> std::borrow::Cow<'t, str> {
        sql_for(self.dialect, template)
    }

    async fn order_done(
        &mut self,
        at: At,
        order_id: u64,
        reason: DoneReason,
        remaining: u64,
    ) -> Result<(), StoreError> {
        let sql = self.sql(
            "UPDATE orders SET status = $1, remaining_lots = $2::N, updated_seq = $3 \
             WHERE order_id = $4",
        );
        let done = sqlx::query(&sql)
            .bind(OrderStatus::from(reason).name())
            .bind(dec(remaining))
            .bind(at.seq)
            .bind(int("order_id", order_id)?)
            .execute(&mut *self.conn)
            .await?;
        if done.rows_affected() != 1 {
            return Err(at.inconsistent("order", order_id));
        }
        Ok(())
    }

    async fn order_filled(&mut self, at: At, order_id: u64, lots: u64) -> Result<(), StoreError> {
        let id = int("order_id", order_id)?;
        let row = sqlx::query(
            "SELECT CAST(remaining_lots AS TEXT) AS remaining_lots, \
             CAST(filled_lots AS TEXT) AS filled_lots FROM orders WHERE order_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.conn)
        .await?
        .ok_or(at.inconsistent("order", order_id))?;
        let remaining: u64 = get_dec(&row, "remaining_lots")?;
        let filled: u64 = get_dec(&row, "filled_lots")?;
        let remaining = remaining
            .checked_sub(lots)
            .ok_or(StoreError::Overflow("order remaining lots"))?;
        let filled = filled
            .checked_add(lots)
            .ok_or(StoreError::Overflow("order filled lots"))?;
        let sql = self.sql(
            "UPDATE orders SET remaining_lots = $1::N, filled_lots = $2::N, updated_seq = $3 \
             WHERE order_id = $4",
        );
        sqlx::query(&sql)
            .bind(dec(remaining))
            .bind(dec(filled))
            .bind(at.seq)
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn candle(
        &mut self,
        at: At,
        market: u32,
        interval: u64,
        price: u64,
        lots: u64,
        notional: u64,
    ) -> Result<(), StoreError> {
        let open_time = at
            .secs
            .checked_div(interval)
            .and_then(|n| n.checked_mul(interval))
            .ok_or(StoreError::Overflow("candle open time"))?;
        let key = (
            i64::from(market),
            int("interval_secs", interval)?,
            int("open_time", open_time)?,
        );
        let existing = sqlx::query(
            "SELECT CAST(high_ticks AS TEXT) AS high_ticks, CAST(low_ticks AS TEXT) AS low_ticks, \
             CAST(volume_lots AS TEXT) AS volume_lots, \
             CAST(quote_volume AS TEXT) AS quote_volume, trades FROM candles \
             WHERE market = $1 AND interval_secs = $2 AND open_time = $3",
        )
        .bind(key.0)
        .bind(key.1)
        .bind(key.2)
        .fetch_optional(&mut *self.conn)
        .await?;
        let Some(row) = existing else {
            let sql = self.sql(
                "INSERT INTO candles (market, interval_secs, open_time, open_ticks, high_ticks, \
                 low_ticks, close_ticks, volume_lots, quote_volume, trades, updated_seq) VALUES \
                 ($1, $2, $3, $4::N, $4::N, $4::N, $4::N, $5::N, $6::N, 1, $7)",
            );
            sqlx::query(&sql)
                .bind(key.0)
                .bind(key.1)
                .bind(key.2)
                .bind(dec(price))
                .bind(dec(lots))
                .bind(dec(notional))
                .bind(at.seq)
                .execute(&mut *self.conn)
                .await?;
            return Ok(());
        };
        let high: u64 = get_dec(&row, "high_ticks")?;
        let low: u64 = get_dec(&row, "low_ticks")?;
        let volume: u128 = get_dec(&row, "volume_lots")?;
        let quote_volume: u128 = get_dec(&row, "quote_volume")?;
        let trades: i64 = row.try_get("trades")?;
        let sql = self.sql(
            "UPDATE candles SET high_ticks = $1::N, low_ticks = $2::N, close_ticks = $3::N, \
             volume_lots = $4::N, quote_volume = $5::N, trades = $6, updated_seq = $7 \
             WHERE market = $8 AND interval_secs = $9 AND open_time = $10",
        );
        sqlx::query(&sql)
            .bind(dec(high.max(price)))
            .bind(dec(low.min(price)))
            .bind(dec(price))
            .bind(dec(volume
                .checked_add(u128::from(lots))
                .ok_or(StoreError::Overflow("candle volume"))?))
            .bind(dec(quote_volume
                .checked_add(u128::from(notional))
                .ok_or(StoreError::Overflow("candle quote volume"))?))
            .bind(
                trades
                    .checked_add(1)
                    .ok_or(StoreError::Overflow("candle trades"))?,
            )
            .bind(at.seq)
            .bind(key.0)
            .bind(key.1)
            .bind(key.2)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn ledger(
        &mut self,
        at: At,
        (owner, asset): (&Owner, u8),
        (business, business_id): (Business, &str),
        (available_delta, frozen_delta): (i128, i128),
        (available, frozen, version): (u64, u64, u64),
    ) -> Result<(), StoreError> {
        let owner = owner_hex(owner);
        let version = int("version", version)?;
        let sql = self.sql(
            "INSERT INTO ledger_entries (seq, idx, timestamp_ms, owner, asset, business, \
             business_id, available_delta, frozen_delta, available, frozen, version) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8::N, $9::N, $10::N, $11::N, $12)",
        );
        sqlx::query(&sql)
            .bind(at.seq)
            .bind(at.index)
            .bind(at.timestamp_ms)
            .bind(owner.as_str())
            .bind(i64::from(asset))
            .bind(business.name())
            .bind(business_id)
            .bind(dec(available_delta))
            .bind(dec(frozen_delta))
            .bind(dec(available))
            .bind(dec(frozen))
            .bind(version)
            .execute(&mut *self.conn)
            .await?;
        let sql = self.sql(
            "INSERT INTO balances (owner, asset, available, frozen, version, updated_seq) \
             VALUES ($1, $2, $3::N, $4::N, $5, $6) ON CONFLICT (owner, asset) DO UPDATE SET \
             available = excluded.available, frozen = excluded.frozen, \
             version = excluded.version, updated_seq = excluded.updated_seq",
        );
        sqlx::query(&sql)
            .bind(owner)
            .bind(i64::from(asset))
            .bind(dec(available))
            .bind(dec(frozen))
            .bind(version)
            .bind(at.seq)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn withdrawal(&mut self, at: At, w: WithdrawalUpdate<'_>) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO withdrawals (id, owner, asset, amount, status, created_seq, updated_seq, \
             kind, tx, last_valid_block_height) \
             VALUES ($1, $2, $3, $4::N, $5, $6, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET \
             status = excluded.status, updated_seq = excluded.updated_seq, \
             tx = excluded.tx, last_valid_block_height = excluded.last_valid_block_height",
        );
        let last_valid = w
            .last_valid_block_height
            .map(|h| int("last valid block height", h))
            .transpose()?;
        sqlx::query(&sql)
            .bind(int("withdrawal id", w.id)?)
            .bind(owner_hex(w.owner))
            .bind(i64::from(w.asset))
            .bind(dec(w.amount))
            .bind(w.status.name())
            .bind(at.seq)
            .bind(w.kind.name())
            .bind(w.tx.map(str::to_owned))
            .bind(last_valid)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}

/// A withdrawal's state as an event carries it.
struct WithdrawalUpdate<'a> {
    id: u64,
    owner: &'a Owner,
    asset: u8,
    amount: u64,
    status: WithdrawalStatus,
    kind: WithdrawalKind,
    tx: Option<&'a str>,
    last_valid_block_height: Option<u64>,
}
