//! A batch of events folded in memory, in stream order, into the rows they leave behind: the
//! orders they create or change (final state), the rows they append, the last value of every
//! balance, withdrawal, nonce floor and settlement they touch, and the candle buckets their
//! fills add to. Writing the result ([`super::project`]) takes a few statements per table
//! instead of several per event, with the same tables as projecting one event at a time.

use super::codec::{dec, int, owner_hex, Named, OrderStatus};
use super::query::OrderRow;
use super::rows::Value;
use super::{Position, StoreError, CANDLE_INTERVALS};
use crate::model::{Event, Sequenced, SettlementStatus, WithdrawalKind, WithdrawalStatus};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Where an event sits, for its rows and its error reports.
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
    fn of(e: &Sequenced) -> Result<At, StoreError> {
        Ok(At {
            seq: int("seq", e.seq)?,
            index: i64::from(e.index),
            timestamp_ms: int("timestamp_ms", e.timestamp_ms)?,
            secs: e.timestamp_ms / 1000,
            position: Position {
                seq: e.seq,
                index: e.index,
            },
        })
    }

    fn inconsistent(self, what: &'static str, id: u64) -> StoreError {
        StoreError::Inconsistent {
            seq: self.position.seq,
            index: self.position.index,
            what,
            id,
        }
    }

    fn duplicate(self, what: &'static str, id: u64) -> StoreError {
        StoreError::Duplicate {
            seq: self.position.seq,
            index: self.position.index,
            what,
            id,
        }
    }
}

/// An order's row as the batch leaves it, and whether the batch created it.
pub(super) struct StagedOrder {
    pub row: OrderRow,
    pub created: bool,
}

/// A settlement outbox row as the batch leaves it.
pub(super) struct StagedOutbox {
    pub status: SettlementStatus,
    /// Submissions counted in this batch (added to the stored count for an existing row).
    pub attempts: i64,
    pub seq: i64,
    pub index: i64,
    pub updated_seq: i64,
    /// Created by a fill in this batch (inserted), or named by a status update (upserted).
    pub created: bool,
}

/// What the batch's fills add to one candle bucket.
pub(super) struct StagedCandle {
    pub open: u64,
    pub high: u64,
    pub low: u64,
    pub close: u64,
    pub volume: u128,
    pub quote_volume: u128,
    pub trades: u64,
    pub updated_seq: i64,
}

/// A withdrawal's row as the batch leaves it (the insert columns from its first event here).
pub(super) struct StagedWithdrawal {
    pub owner: String,
    pub asset: u8,
    pub amount: u64,
    pub kind: WithdrawalKind,
    pub created_seq: i64,
    pub status: WithdrawalStatus,
    pub updated_seq: i64,
    pub tx: Option<String>,
    pub last_valid_block_height: Option<i64>,
}

/// The batch's effect on every table.
#[derive(Default)]
pub(super) struct Stage {
    pub orders: BTreeMap<u64, StagedOrder>,
    /// order_versions rows; the first version of an (owner, nonce) wins.
    pub versions: Vec<Vec<Value>>,
    pub fills: Vec<Vec<Value>>,
    pub outbox: BTreeMap<(u32, u64), StagedOutbox>,
    pub ledger: Vec<Vec<Value>>,
    /// (owner, asset) → (available, frozen, version, updated_seq).
    pub balances: BTreeMap<(String, u8), (u64, u64, i64, i64)>,
    /// (market, interval, open time) → the bucket's part from this batch.
    pub candles: BTreeMap<(u32, u64, u64), StagedCandle>,
    pub deposits: Vec<Vec<Value>>,
    pub withdrawals: BTreeMap<u64, StagedWithdrawal>,
    /// owner → (floor, updated_seq).
    pub nonce_floors: BTreeMap<String, (u64, i64)>,
    version_keys: HashSet<(String, u64)>,
}

/// The orders `events` change without creating them: their stored rows are read before the
/// fold.
pub(super) fn referenced_orders(events: &[&Sequenced]) -> BTreeSet<u64> {
    let mut created = HashSet::new();
    let mut referenced = BTreeSet::new();
    for e in events {
        match &e.event {
            Event::OrderAccepted { order_id, .. } => {
                created.insert(*order_id);
            }
            Event::OrderReplaced { order_id, .. } | Event::OrderDone { order_id, .. } => {
                referenced.insert(*order_id);
            }
            Event::Fill {
                maker_order_id,
                taker_order_id,
                ..
            } => {
                referenced.insert(*maker_order_id);
                referenced.insert(*taker_order_id);
            }
            _ => {}
        }
    }
    referenced.retain(|id| !created.contains(id));
    referenced
}

impl Stage {
    /// Folds `events` (in stream order, all after the cursor) over the stored rows of the
    /// orders they reference (`existing`).
    pub(super) fn fold(
        events: &[&Sequenced],
        existing: BTreeMap<u64, OrderRow>,
    ) -> Result<Stage, StoreError> {
        let mut stage = Stage {
            orders: existing
                .into_iter()
                .map(|(id, row)| {
                    (
                        id,
                        StagedOrder {
                            row,
                            created: false,
                        },
                    )
                })
                .collect(),
            ..Stage::default()
        };
        for e in events {
            stage.event(e)?;
        }
        Ok(stage)
    }

    fn order(&mut self, at: At, order_id: u64) -> Result<&mut OrderRow, StoreError> {
        self.orders
            .get_mut(&order_id)
            .map(|staged| &mut staged.row)
            .ok_or(at.inconsistent("order", order_id))
    }

    fn version(
        &mut self,
        at: At,
        owner: &str,
        nonce: u64,
        order_id: u64,
        signed: &str,
        signature: &str,
    ) -> Result<(), StoreError> {
        // The chain records an order by (owner, nonce) once: those are the only terms any fill
        // under that nonce settles with, so a later version under the same nonce is not kept.
        if self.version_keys.insert((owner.to_owned(), nonce)) {
            self.versions.push(vec![
                Value::Text(owner.to_owned()),
                Value::Text(dec(nonce)),
                Value::Int(int("order_id", order_id)?),
                Value::Text(signed.to_owned()),
                Value::Text(signature.to_owned()),
                Value::Int(at.seq),
            ]);
        }
        Ok(())
    }

    fn event(&mut self, e: &Sequenced) -> Result<(), StoreError> {
        let at = At::of(e)?;
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
                if self.orders.contains_key(order_id) {
                    return Err(at.duplicate("order", *order_id));
                }
                let row = OrderRow {
                    order_id: *order_id,
                    market: *market,
                    owner: *owner,
                    side: *side,
                    price_ticks: *price_ticks,
                    size_lots: *size_lots,
                    remaining_lots: *size_lots,
                    filled_lots: 0,
                    status: OrderStatus::Open,
                    nonce: *nonce,
                    expiry: *expiry,
                    client_order_id: *client_order_id,
                    order_type: *order_type,
                    signed: signed.clone(),
                    signature: signature.clone(),
                    created_seq: e.seq,
                    updated_seq: e.seq,
                };
                self.orders
                    .insert(*order_id, StagedOrder { row, created: true });
                self.version(at, &owner_hex(owner), *nonce, *order_id, signed, signature)?;
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
                let row = self.order(at, *order_id)?;
                row.nonce = *nonce;
                row.price_ticks = *price_ticks;
                row.size_lots = *size_lots;
                row.remaining_lots = *size_lots;
                row.expiry = *expiry;
                row.signed.clone_from(signed);
                row.signature.clone_from(signature);
                row.updated_seq = e.seq;
                self.version(at, &owner_hex(owner), *nonce, *order_id, signed, signature)?;
            }
            Event::OrderDone {
                order_id,
                reason,
                remaining_lots,
                ..
            } => {
                let row = self.order(at, *order_id)?;
                row.status = OrderStatus::from(*reason);
                row.remaining_lots = *remaining_lots;
                row.updated_seq = e.seq;
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
                self.fills.push(vec![
                    Value::Int(i64::from(*market)),
                    Value::Int(int("fill_id", *fill_id)?),
                    Value::Int(int("maker_order_id", *maker_order_id)?),
                    Value::Int(int("taker_order_id", *taker_order_id)?),
                    Value::Text(owner_hex(maker)),
                    Value::Text(owner_hex(taker)),
                    Value::Int(i64::from(*taker_side)),
                    Value::Text(dec(price_ticks)),
                    Value::Text(dec(size_lots)),
                    Value::Text(dec(notional)),
                    Value::Text(dec(maker_fee)),
                    Value::Text(dec(taker_fee)),
                    Value::Int(at.seq),
                    Value::Int(at.index),
                    Value::Int(at.timestamp_ms),
                    Value::Text(dec(maker_nonce)),
                    Value::Text(dec(taker_nonce)),
                ]);
                if self.outbox.contains_key(&(*market, *fill_id)) {
                    return Err(at.duplicate("settlement outbox row of fill", *fill_id));
                }
                self.outbox.insert(
                    (*market, *fill_id),
                    StagedOutbox {
                        status: SettlementStatus::Pending,
                        attempts: 0,
                        seq: at.seq,
                        index: at.index,
                        updated_seq: at.seq,
                        created: true,
                    },
                );
                for order_id in [*maker_order_id, *taker_order_id] {
                    let row = self.order(at, order_id)?;
                    row.remaining_lots = row
                        .remaining_lots
                        .checked_sub(*size_lots)
                        .ok_or(StoreError::Overflow("order remaining lots"))?;
                    row.filled_lots = row
                        .filled_lots
                        .checked_add(*size_lots)
                        .ok_or(StoreError::Overflow("order filled lots"))?;
                    row.updated_seq = e.seq;
                }
                for interval in CANDLE_INTERVALS {
                    self.candle(at, *market, interval, *price_ticks, *size_lots, *notional)?;
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
                let owner = owner_hex(owner);
                let version = int("version", *version)?;
                self.ledger.push(vec![
                    Value::Int(at.seq),
                    Value::Int(at.index),
                    Value::Int(at.timestamp_ms),
                    Value::Text(owner.clone()),
                    Value::Int(i64::from(*asset)),
                    Value::Text(business.name().to_owned()),
                    Value::Text(business_id.clone()),
                    Value::Text(dec(available_delta)),
                    Value::Text(dec(frozen_delta)),
                    Value::Text(dec(available)),
                    Value::Text(dec(frozen)),
                    Value::Int(version),
                ]);
                self.balances
                    .insert((owner, *asset), (*available, *frozen, version, at.seq));
            }
            Event::DepositCredited {
                owner,
                asset,
                amount,
                tx,
                ix_index,
            } => self.deposits.push(vec![
                Value::Text(tx.clone()),
                Value::Int(i64::from(*ix_index)),
                Value::Text(owner_hex(owner)),
                Value::Int(i64::from(*asset)),
                Value::Text(dec(amount)),
                Value::Int(at.seq),
                Value::Int(at.timestamp_ms),
            ]),
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
                let last_valid = last_valid_block_height
                    .map(|h| int("last valid block height", h))
                    .transpose()?;
                let staged = self
                    .withdrawals
                    .entry(*id)
                    .or_insert_with(|| StagedWithdrawal {
                        owner: owner_hex(owner),
                        asset: *asset,
                        amount: *amount,
                        kind: *kind,
                        created_seq: at.seq,
                        status: *status,
                        updated_seq: at.seq,
                        tx: None,
                        last_valid_block_height: None,
                    });
                staged.status = *status;
                staged.updated_seq = at.seq;
                staged.tx.clone_from(tx);
                staged.last_valid_block_height = last_valid;
            }
            Event::Settlement {
                market,
                fill_id,
                status,
            } => {
                // A submission is an attempt. A fill the store has not seen is recorded as it
                // came rather than dropped; the relayer only drains pending rows.
                let staged = self
                    .outbox
                    .entry((*market, *fill_id))
                    .or_insert(StagedOutbox {
                        status: *status,
                        attempts: 0,
                        seq: at.seq,
                        index: at.index,
                        updated_seq: at.seq,
                        created: false,
                    });
                staged.status = *status;
                staged.attempts = staged
                    .attempts
                    .saturating_add(i64::from(*status == SettlementStatus::Submitted));
                staged.updated_seq = at.seq;
            }
            Event::NonceFloor { owner, floor } => {
                self.nonce_floors.insert(owner_hex(owner), (*floor, at.seq));
            }
            // Refusals are answered to the sender synchronously and change nothing; book
            // levels feed the in-memory market-data projection. Neither has a table.
            Event::Rejected { .. } | Event::BookLevel { .. } => {}
        }
        Ok(())
    }

    fn candle(
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
        let staged = self
            .candles
            .entry((market, interval, open_time))
            .or_insert(StagedCandle {
                open: price,
                high: price,
                low: price,
                close: price,
                volume: 0,
                quote_volume: 0,
                trades: 0,
                updated_seq: at.seq,
            });
        staged.high = staged.high.max(price);
        staged.low = staged.low.min(price);
        staged.close = price;
        staged.volume = staged
            .volume
            .checked_add(u128::from(lots))
            .ok_or(StoreError::Overflow("candle volume"))?;
        staged.quote_volume = staged
            .quote_volume
            .checked_add(u128::from(notional))
            .ok_or(StoreError::Overflow("candle quote volume"))?;
        staged.trades = staged
            .trades
            .checked_add(1)
            .ok_or(StoreError::Overflow("candle trades"))?;
        staged.updated_seq = at.seq;
        Ok(())
    }
}
