//! The chain listener's resume point, kept beside the projection (but not part of it: it is
//! not rebuilt from the journal).

use super::codec::{get_int, get_text};
use super::{Store, StoreError};

/// The last transaction a chain listener fully processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerCursor {
    /// The transaction's first signature, base58.
    pub signature: String,
    /// The slot it landed in.
    pub slot: u64,
}

impl Store {
    /// The cursor saved under `name`, if any.
    pub async fn listener_cursor(&self, name: &str) -> Result<Option<ListenerCursor>, StoreError> {
        let row = sqlx::query("SELECT signature, slot FROM listener_cursor WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(ListenerCursor {
                signature: get_text(&row, "signature")?,
                slot: get_int(&row, "slot")?,
            })
        })
        .transpose()
    }

    /// Saves `cursor` under `name`, replacing the previous one.
    pub async fn save_listener_cursor(
        &self,
        name: &str,
        cursor: &ListenerCursor,
    ) -> Result<(), StoreError> {
        let slot = i64::try_from(cursor.slot).map_err(|_| StoreError::OutOfRange {
            field: "slot",
            value: cursor.slot.to_string(),
        })?;
        sqlx::query(
            "INSERT INTO listener_cursor (name, signature, slot) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET signature = excluded.signature, slot = excluded.slot",
        )
        .bind(name)
        .bind(cursor.signature.as_str())
        .bind(slot)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
