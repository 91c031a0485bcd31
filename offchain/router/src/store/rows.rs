//! Multi-row statements: a batch's rows for one table go out in a few `INSERT … VALUES (…),
//! (…)` statements instead of one statement per row. Through sqlx every statement is a round
//! trip to the connection's worker (for SQLite, a thread of its own), which is what the
//! projection's time went to with one statement per row.

use super::{Dialect, StoreError};
use sqlx::AnyConnection;

/// One bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    /// An INTEGER column.
    Int(i64),
    /// A nullable INTEGER column.
    OptInt(Option<i64>),
    /// A TEXT column, or a wide number as its exact decimal text.
    Text(String),
    /// A nullable TEXT column.
    OptText(Option<String>),
}

/// A column: its name and whether it holds a wide number (NUMERIC on PostgreSQL, bound as
/// text and cast there; exact decimal TEXT on SQLite).
pub(super) type Column = (&'static str, bool);

/// Most rows in one statement. Chunks are powers of two up to this, so each table has a small,
/// fixed set of statement texts and every one stays in the connection's prepared-statement
/// cache; the bound values stay far below SQLite's and PostgreSQL's limits (32,766 / 65,535).
const MAX_ROWS: usize = 128;

/// Writes `rows` into `table` (each row holds one value per column, in order), followed by
/// `tail` (e.g. an `ON CONFLICT` clause). Returns the rows affected.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: &str,
    columns: &[Column],
    rows: &[Vec<Value>],
    tail: &str,
) -> Result<u64, StoreError> {
    let mut affected = 0u64;
    let mut rest = rows;
    while !rest.is_empty() {
        let take = chunk(rest.len());
        let (now, later) = rest.split_at(take);
        let sql = statement(dialect, table, columns, take, tail);
        let mut query = sqlx::query(&sql);
        for value in now.iter().flatten() {
            query = match value {
                Value::Int(v) => query.bind(*v),
                Value::OptInt(v) => query.bind(*v),
                Value::Text(v) => query.bind(v.as_str()),
                Value::OptText(v) => query.bind(v.as_deref()),
            };
        }
        affected = affected.saturating_add(query.execute(&mut *conn).await?.rows_affected());
        rest = later;
    }
    Ok(affected)
}

/// `count` comma-separated placeholders for one list of values (e.g. an `IN (…)` list).
pub(super) fn placeholders(dialect: Dialect, count: usize) -> String {
    let one = |n: usize| match dialect {
        Dialect::Sqlite => "?".to_owned(),
        Dialect::Postgres => format!("${n}"),
    };
    (1..=count).map(one).collect::<Vec<_>>().join(", ")
}

/// The largest power of two not above `left` nor [`MAX_ROWS`].
fn chunk(left: usize) -> usize {
    let mut size = MAX_ROWS;
    while size > left {
        size /= 2;
    }
    size.max(1)
}

fn statement(dialect: Dialect, table: &str, columns: &[Column], rows: usize, tail: &str) -> String {
    let names = columns.iter().map(|(name, _)| *name).collect::<Vec<_>>();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
    let mut n = 0usize;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, (_, wide)) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            match dialect {
                // Anonymous parameters: sqlx looks every named one up by index in SQLite, which
                // walks the statement's list of names each time (quadratic in a wide statement).
                Dialect::Sqlite => sql.push('?'),
                Dialect::Postgres => {
                    n = n.saturating_add(1);
                    sql.push('$');
                    sql.push_str(&n.to_string());
                    if *wide {
                        sql.push_str("::numeric");
                    }
                }
            }
        }
        sql.push(')');
    }
    if !tail.is_empty() {
        sql.push(' ');
        sql.push_str(tail);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_up_to_the_limit() {
        assert_eq!(chunk(1), 1);
        assert_eq!(chunk(3), 2);
        assert_eq!(chunk(100), 64);
        assert_eq!(chunk(128), 128);
        assert_eq!(chunk(1_000), 128);
    }

    #[test]
    fn postgres_numbers_placeholders_and_casts_wide_columns_sqlite_leaves_them_anonymous() {
        let columns = [("a", false), ("b", true)];
        assert_eq!(
            statement(Dialect::Postgres, "t", &columns, 2, "ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($1, $2::numeric), ($3, $4::numeric) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            statement(Dialect::Sqlite, "t", &columns, 2, ""),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }
}
