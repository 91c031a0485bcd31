//! Conversions between the event model and the column types (see the migrations' header for
//! the choice of column types): checked integers, exact decimal text for wide values, hex for
//! keys, and the text names of enums.

use super::StoreError;
use crate::model::{
    Business, DoneReason, Owner, SettlementStatus, WithdrawalKind, WithdrawalStatus,
};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::str::FromStr;

/// Where an order stands in the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted and not done yet (resting, or still being matched within its command).
    Open,
    /// Completely filled.
    Filled,
    /// Cancelled by its owner (or by a raised nonce floor).
    Cancelled,
    /// Expired.
    Expired,
    /// Removed by self-trade prevention.
    SelfTrade,
    /// Remainder of an IOC/FOK/market order that did not rest.
    Unmatched,
}

impl From<DoneReason> for OrderStatus {
    fn from(reason: DoneReason) -> Self {
        match reason {
            DoneReason::Filled => OrderStatus::Filled,
            DoneReason::Cancelled => OrderStatus::Cancelled,
            DoneReason::Expired => OrderStatus::Expired,
            DoneReason::SelfTrade => OrderStatus::SelfTrade,
            DoneReason::Unmatched => OrderStatus::Unmatched,
        }
    }
}

/// An enum stored as its snake_case name.
pub(super) trait Named: Sized + Copy + 'static {
    /// Every value, to parse names back.
    const ALL: &'static [Self];
    /// The stored name.
    fn name(self) -> &'static str;
    /// The value stored as `name`.
    fn parse(column: &'static str, name: String) -> Result<Self, StoreError> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.name() == name)
            .ok_or(StoreError::Corrupt {
                column,
                value: name,
            })
    }
}

impl Named for OrderStatus {
    const ALL: &'static [Self] = &[
        OrderStatus::Open,
        OrderStatus::Filled,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
        OrderStatus::SelfTrade,
        OrderStatus::Unmatched,
    ];
    fn name(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::SelfTrade => "self_trade",
            OrderStatus::Unmatched => "unmatched",
        }
    }
}

impl Named for SettlementStatus {
    const ALL: &'static [Self] = &[
        SettlementStatus::Pending,
        SettlementStatus::Submitted,
        SettlementStatus::Confirmed,
        SettlementStatus::Quarantined,
    ];
    fn name(self) -> &'static str {
        match self {
            SettlementStatus::Pending => "pending",
            SettlementStatus::Submitted => "submitted",
            SettlementStatus::Confirmed => "confirmed",
            SettlementStatus::Quarantined => "quarantined",
        }
    }
}

impl Named for WithdrawalStatus {
    const ALL: &'static [Self] = &[
        WithdrawalStatus::Pending,
        WithdrawalStatus::Broadcasting,
        WithdrawalStatus::Confirmed,
        WithdrawalStatus::Failed,
    ];
    fn name(self) -> &'static str {
        match self {
            WithdrawalStatus::Pending => "pending",
            WithdrawalStatus::Broadcasting => "broadcasting",
            WithdrawalStatus::Confirmed => "confirmed",
            WithdrawalStatus::Failed => "failed",
        }
    }
}

impl Named for WithdrawalKind {
    const ALL: &'static [Self] = &[WithdrawalKind::Cosigned, WithdrawalKind::ExitHatch];
    fn name(self) -> &'static str {
        match self {
            WithdrawalKind::Cosigned => "cosigned",
            WithdrawalKind::ExitHatch => "exit_hatch",
        }
    }
}

impl Named for Business {
    const ALL: &'static [Self] = &[
        Business::Deposit,
        Business::OrderHold,
        Business::OrderRelease,
        Business::FillPay,
        Business::FillReceive,
        Business::FillFee,
        Business::WithdrawalHold,
        Business::WithdrawalPaid,
        Business::WithdrawalRelease,
    ];
    fn name(self) -> &'static str {
        match self {
            Business::Deposit => "deposit",
            Business::OrderHold => "order_hold",
            Business::OrderRelease => "order_release",
            Business::FillPay => "fill_pay",
            Business::FillReceive => "fill_receive",
            Business::FillFee => "fill_fee",
            Business::WithdrawalHold => "withdrawal_hold",
            Business::WithdrawalPaid => "withdrawal_paid",
            Business::WithdrawalRelease => "withdrawal_release",
        }
    }
}

/// A u64 that fits an i64 column by construction (sequence numbers, ids, timestamps); refused
/// with an error, never wrapped, if it ever does not.
pub(super) fn int(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        field,
        value: value.to_string(),
    })
}

/// A wide value as the exact decimal text its NUMERIC / TEXT column takes.
pub(super) fn dec(value: impl ToString) -> String {
    value.to_string()
}

/// A wallet as stored: lowercase hex.
pub(super) fn owner_hex(owner: &Owner) -> String {
    crate::model::to_hex(owner)
}

/// Reads an integer column into a narrower or unsigned type.
pub(super) fn get_int<T: TryFrom<i64>>(
    row: &AnyRow,
    column: &'static str,
) -> Result<T, StoreError> {
    let value: i64 = row.try_get(column)?;
    T::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}

/// Reads a wide column (selected as text) into its exact value.
pub(super) fn get_dec<T: FromStr>(row: &AnyRow, column: &'static str) -> Result<T, StoreError> {
    let value: String = row.try_get(column)?;
    value
        .parse()
        .map_err(|_| StoreError::Corrupt { column, value })
}

/// Reads a text column.
pub(super) fn get_text(row: &AnyRow, column: &'static str) -> Result<String, StoreError> {
    Ok(row.try_get(column)?)
}

/// Reads an enum stored by name.
pub(super) fn get_named<T: Named>(row: &AnyRow, column: &'static str) -> Result<T, StoreError> {
    T::parse(column, row.try_get(column)?)
}

/// Reads a wallet stored as hex.
pub(super) fn get_owner(row: &AnyRow, column: &'static str) -> Result<Owner, StoreError> {
    let value: String = row.try_get(column)?;
    let mut owner = [0u8; 32];
    match hex::decode_to_slice(&value, &mut owner) {
        Ok(()) => Ok(owner),
        Err(_) => Err(StoreError::Corrupt { column, value }),
    }
}

/// A nullable TEXT column.
pub(super) fn get_opt_text(
    row: &AnyRow,
    column: &'static str,
) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

/// A nullable integer column, checked into `T`.
pub(super) fn get_opt_int<T: TryFrom<i64>>(
    row: &AnyRow,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| {
            T::try_from(v).map_err(|_| StoreError::Corrupt {
                column,
                value: v.to_string(),
            })
        })
        .transpose()
}
