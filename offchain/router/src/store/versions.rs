//! What a settlement relayer reads besides the outbox: every signed version of an order (a
//! fill settles under the terms it matched, even after a replace) and the balances as they
//! should stand on-chain (the ledger without the fills not yet confirmed there), and the
//! deposits credited per balance, to compare with the on-chain cumulative counters.

use super::codec::{dec, get_dec, get_int, get_owner, get_text, owner_hex};
use super::{Store, StoreError};
use crate::model::{Owner, Seq};
use crate::state::FEE_ACCOUNT;
use serde::Serialize;
use std::collections::BTreeMap;

/// One signed version of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderVersionRow {
    /// Wallet.
    pub owner: Owner,
    /// Nonce of these terms.
    pub nonce: u64,
    /// Router order id (shared by every version of a replaced order).
    pub order_id: u64,
    /// Canonical signed bytes (hex).
    pub signed: String,
    /// Signature (hex).
    pub signature: String,
    /// Sequence number of the command that introduced these terms.
    pub seq: Seq,
}

impl Store {
    /// The signed terms `owner` gave under `nonce`, whether current or since replaced.
    pub async fn order_version(
        &self,
        owner: &Owner,
        nonce: u64,
    ) -> Result<Option<OrderVersionRow>, StoreError> {
        let sql = self.sql(
            "SELECT owner, CAST(nonce AS TEXT) AS nonce, order_id, signed, signature, seq \
             FROM order_versions WHERE owner = $1 AND nonce = $2::N",
        );
        let row = sqlx::query(&sql)
            .bind(owner_hex(owner))
            .bind(dec(nonce))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(OrderVersionRow {
                owner: get_owner(&row, "owner")?,
                nonce: get_dec(&row, "nonce")?,
                order_id: get_int(&row, "order_id")?,
                signed: get_text(&row, "signed")?,
                signature: get_text(&row, "signature")?,
                seq: get_int(&row, "seq")?,
            })
        })
        .transpose()
    }

    /// Per `(owner, asset)`, the user's total (available + frozen) as it should stand on-chain:
    /// the ledger's balance minus every fill ledger change whose fill is not confirmed on-chain
    /// yet (pending, submitted or quarantined). The fee pseudo-account is left out: its
    /// on-chain counterpart is the markets' accrued fees, not a user balance.
    pub async fn settled_balances(&self) -> Result<BTreeMap<(Owner, u8), u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT owner, asset, CAST(available AS TEXT) AS available, \
             CAST(frozen AS TEXT) AS frozen FROM balances",
        )
        .fetch_all(&self.pool)
        .await?;
        let fee_account = owner_hex(&FEE_ACCOUNT);
        let mut totals: BTreeMap<(Owner, u8), i128> = BTreeMap::new();
        for row in &rows {
            if get_text(row, "owner")? == fee_account {
                continue;
            }
            let available: u64 = get_dec(row, "available")?;
            let frozen: u64 = get_dec(row, "frozen")?;
            let total = i128::from(available)
                .checked_add(i128::from(frozen))
                .ok_or(StoreError::Overflow("balance"))?;
            totals.insert((get_owner(row, "owner")?, get_int(row, "asset")?), total);
        }
        let unsettled = sqlx::query(
            "SELECT l.owner AS owner, l.asset AS asset, \
             CAST(l.available_delta AS TEXT) AS available_delta, \
             CAST(l.frozen_delta AS TEXT) AS frozen_delta \
             FROM ledger_entries l JOIN settlement_outbox o \
             ON l.business_id = CAST(o.market AS TEXT) || ':' || CAST(o.fill_id AS TEXT) \
             WHERE l.business IN ('fill_pay', 'fill_receive', 'fill_fee') \
             AND o.status <> 'confirmed'",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in &unsettled {
            let key = (get_owner(row, "owner")?, get_int(row, "asset")?);
            let Some(total) = totals.get_mut(&key) else {
                continue;
            };
            let available: i128 = get_dec(row, "available_delta")?;
            let frozen: i128 = get_dec(row, "frozen_delta")?;
            *total = available
                .checked_add(frozen)
                .and_then(|delta| total.checked_sub(delta))
                .ok_or(StoreError::Overflow("settled balance"))?;
        }
        totals
            .into_iter()
            .map(|(key, total)| {
                u64::try_from(total)
                    .map(|total| (key, total))
                    .map_err(|_| StoreError::Overflow("settled balance"))
            })
            .collect()
    }

    /// Per `(owner, asset)`, the sum of every deposit credited (each row is one
    /// `(transaction, instruction)` credited exactly once).
    pub async fn credited_deposits(&self) -> Result<BTreeMap<(Owner, u8), u64>, StoreError> {
        let rows = sqlx::query("SELECT owner, asset, CAST(amount AS TEXT) AS amount FROM deposits")
            .fetch_all(&self.pool)
            .await?;
        let mut totals: BTreeMap<(Owner, u8), u64> = BTreeMap::new();
        for row in &rows {
            let amount: u64 = get_dec(row, "amount")?;
            let total = totals
                .entry((get_owner(row, "owner")?, get_int(row, "asset")?))
                .or_default();
            *total = total
                .checked_add(amount)
                .ok_or(StoreError::Overflow("credited deposits"))?;
        }
        Ok(totals)
    }
}
