//! What the API and the relayer read: plain typed rows.

use super::codec::{
    dec, get_dec, get_int, get_named, get_opt_int, get_opt_text, get_owner, get_text, int,
    owner_hex, OrderStatus,
};
use super::{Position, Store, StoreError};
use crate::model::{Business, Owner, Seq, SettlementStatus, Sig, WithdrawalKind, WithdrawalStatus};
use serde::Serialize;
use sqlx::any::AnyRow;

/// Most rows one page returns.
pub const MAX_PAGE: u32 = 1_000;

/// A page of history, newest first: up to `limit` rows strictly before `before` (from the
/// newest when `None`). The last row's position is the next page's `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Page {
    /// Exclusive upper bound.
    pub before: Option<Position>,
    /// Rows wanted (capped at 1,000).
    pub limit: u32,
}

impl Page {
    fn bounds(&self) -> Result<(i64, i64, i64), StoreError> {
        let (seq, index) = match self.before {
            Some(p) => (int("seq", p.seq)?, i64::from(p.index)),
            None => (i64::MAX, i64::MAX),
        };
        Ok((seq, index, i64::from(self.limit.min(MAX_PAGE))))
    }
}

/// Per table: its row count and a SHA-256 of its rows in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDigest {
    /// Table name.
    pub table: &'static str,
    /// Rows.
    pub rows: usize,
    /// SHA-256 (hex) of every column of every row.
    pub sha256: String,
}

/// Every projected table: name, columns, key order.
pub(super) const TABLES: [(&str, &[&str], &str); 11] = [
    ("projection_cursor", &["id", "last_seq", "last_idx"], "id"),
    (
        "orders",
        &[
            "order_id",
            "market",
            "owner",
            "side",
            "price_ticks",
            "size_lots",
            "remaining_lots",
            "filled_lots",
            "status",
            "nonce",
            "expiry",
            "client_order_id",
            "order_type",
            "signed",
            "signature",
            "created_seq",
            "updated_seq",
        ],
        "order_id",
    ),
    (
        "fills",
        &[
            "market",
            "fill_id",
            "maker_order_id",
            "taker_order_id",
            "maker",
            "taker",
            "taker_side",
            "price_ticks",
            "size_lots",
            "notional",
            "maker_fee",
            "taker_fee",
            "maker_nonce",
            "taker_nonce",
            "seq",
            "idx",
            "timestamp_ms",
        ],
        "market, fill_id",
    ),
    (
        "ledger_entries",
        &[
            "seq",
            "idx",
            "timestamp_ms",
            "owner",
            "asset",
            "business",
            "business_id",
            "available_delta",
            "frozen_delta",
            "available",
            "frozen",
            "version",
        ],
        "seq, idx",
    ),
    (
        "balances",
        &[
            "owner",
            "asset",
            "available",
            "frozen",
            "version",
            "updated_seq",
        ],
        "owner, asset",
    ),
    (
        "deposits",
        &[
            "tx",
            "ix_index",
            "owner",
            "asset",
            "amount",
            "seq",
            "timestamp_ms",
        ],
        "tx, ix_index",
    ),
    (
        "withdrawals",
        &[
            "id",
            "owner",
            "asset",
            "amount",
            "status",
            "created_seq",
            "updated_seq",
            "kind",
            "tx",
            "last_valid_block_height",
        ],
        "id",
    ),
    (
        "settlement_outbox",
        &[
            "market",
            "fill_id",
            "status",
            "attempts",
            "seq",
            "idx",
            "updated_seq",
        ],
        "market, fill_id",
    ),
    (
        "candles",
        &[
            "market",
            "interval_secs",
            "open_time",
            "open_ticks",
            "high_ticks",
            "low_ticks",
            "close_ticks",
            "volume_lots",
            "quote_volume",
            "trades",
            "updated_seq",
        ],
        "market, interval_secs, open_time",
    ),
    ("nonce_floors", &["owner", "floor", "updated_seq"], "owner"),
    (
        "order_versions",
        &["owner", "nonce", "order_id", "signed", "signature", "seq"],
        "owner, nonce",
    ),
];

/// An order and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRow {
    /// Router-assigned id (sequence number of the place command).
    pub order_id: u64,
    /// Market index.
    pub market: u32,
    /// Wallet.
    pub owner: Owner,
    /// 0 buy, 1 sell.
    pub side: u8,
    /// Limit price in ticks.
    pub price_ticks: u64,
    /// Size in lots as signed.
    pub size_lots: u64,
    /// Lots not filled: size minus fills while open (self-trade decrements show only once the
    /// order is done), exactly the engine's remainder once done.
    pub remaining_lots: u64,
    /// Lots filled.
    pub filled_lots: u64,
    /// Status.
    pub status: OrderStatus,
    /// Signed nonce.
    pub nonce: u64,
    /// Signed expiry (unix seconds, 0 = none).
    pub expiry: i64,
    /// Client order id as signed.
    pub client_order_id: u64,
    /// Order type byte as signed.
    pub order_type: u8,
    /// Canonical signed bytes (hex).
    pub signed: String,
    /// Signature (hex).
    pub signature: String,
    /// Sequence number that created the row.
    pub created_seq: Seq,
    /// Sequence number of the last change.
    pub updated_seq: Seq,
}

/// A fill and its settlement status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FillRow {
    /// Position of the Fill event.
    pub position: Position,
    /// Command timestamp, unix milliseconds.
    pub timestamp_ms: u64,
    /// Market index.
    pub market: u32,
    /// Per-market fill id.
    pub fill_id: u64,
    /// Maker order id.
    pub maker_order_id: u64,
    /// Taker order id.
    pub taker_order_id: u64,
    /// Maker wallet.
    pub maker: Owner,
    /// Taker wallet.
    pub taker: Owner,
    /// 0 taker bought, 1 taker sold.
    pub taker_side: u8,
    /// Execution price in ticks.
    pub price_ticks: u64,
    /// Size in lots.
    pub size_lots: u64,
    /// Quote atoms exchanged.
    pub notional: u64,
    /// Maker fee, quote atoms.
    pub maker_fee: u64,
    /// Taker fee, quote atoms.
    pub taker_fee: u64,
    /// Nonce of the maker's signed terms the fill settles under.
    pub maker_nonce: u64,
    /// Nonce of the taker's signed terms the fill settles under.
    pub taker_nonce: u64,
    /// Settlement status (from the outbox).
    pub settlement_status: SettlementStatus,
}

/// The latest balance of one owner in one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BalanceRow {
    /// Asset index.
    pub asset: u8,
    /// Available atoms.
    pub available: u64,
    /// Frozen atoms.
    pub frozen: u64,
    /// Version (number of changes).
    pub version: u64,
    /// Sequence number of the last change.
    pub updated_seq: Seq,
}

/// One balance change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntryRow {
    /// Position of the Ledger event.
    pub position: Position,
    /// Command timestamp, unix milliseconds.
    pub timestamp_ms: u64,
    /// Asset index.
    pub asset: u8,
    /// Business type.
    pub business: Business,
    /// Business id.
    pub business_id: String,
    /// Change of available atoms.
    pub available_delta: i128,
    /// Change of frozen atoms.
    pub frozen_delta: i128,
    /// Available after.
    pub available: u64,
    /// Frozen after.
    pub frozen: u64,
    /// Version after.
    pub version: u64,
}

/// A credited deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepositRow {
    /// Transaction signature (hex).
    pub tx: String,
    /// Instruction index.
    pub ix_index: u16,
    /// Wallet.
    pub owner: Owner,
    /// Asset index.
    pub asset: u8,
    /// Atoms.
    pub amount: u64,
    /// Sequence number that credited it.
    pub seq: Seq,
    /// Command timestamp, unix milliseconds.
    pub timestamp_ms: u64,
}

/// A withdrawal and its latest state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalRow {
    /// Id (sequence number of the request).
    pub id: Seq,
    /// Wallet.
    pub owner: Owner,
    /// Asset index.
    pub asset: u8,
    /// Atoms.
    pub amount: u64,
    /// State.
    pub status: WithdrawalStatus,
    /// Sequence number of the request.
    pub created_seq: Seq,
    /// Sequence number of the last change.
    pub updated_seq: Seq,
    /// How it is paid out.
    pub kind: WithdrawalKind,
    /// The paying transaction's signature (hex), once known.
    pub tx: Option<String>,
    /// Last block height at which the co-signed transaction can land.
    pub last_valid_block_height: Option<u64>,
}

/// A fill's place in the settlement outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    /// Market index.
    pub market: u32,
    /// Fill id.
    pub fill_id: u64,
    /// Settlement state.
    pub status: SettlementStatus,
    /// Submissions so far.
    pub attempts: u64,
    /// Sequence number of the last change.
    pub updated_seq: Seq,
}

/// OHLCV of one market over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Candle {
    /// Market index.
    pub market: u32,
    /// Interval, seconds.
    pub interval_secs: u64,
    /// Start of the interval, unix seconds.
    pub open_time: u64,
    /// First price, ticks.
    pub open_ticks: u64,
    /// Highest price, ticks.
    pub high_ticks: u64,
    /// Lowest price, ticks.
    pub low_ticks: u64,
    /// Last price, ticks.
    pub close_ticks: u64,
    /// Lots traded.
    pub volume_lots: u128,
    /// Quote atoms traded.
    pub quote_volume: u128,
    /// Number of fills.
    pub trades: u64,
}

pub(super) const ORDER_COLUMNS: &str = "order_id, market, owner, side, \
    CAST(price_ticks AS TEXT) AS price_ticks, CAST(size_lots AS TEXT) AS size_lots, \
    CAST(remaining_lots AS TEXT) AS remaining_lots, CAST(filled_lots AS TEXT) AS filled_lots, \
    status, CAST(nonce AS TEXT) AS nonce, expiry, \
    CAST(client_order_id AS TEXT) AS client_order_id, order_type, signed, signature, \
    created_seq, updated_seq";

const FILL_COLUMNS: &str = "f.seq AS seq, f.idx AS idx, f.timestamp_ms AS timestamp_ms, \
    f.market AS market, f.fill_id AS fill_id, f.maker_order_id AS maker_order_id, \
    f.taker_order_id AS taker_order_id, f.maker AS maker, f.taker AS taker, \
    f.taker_side AS taker_side, CAST(f.price_ticks AS TEXT) AS price_ticks, \
    CAST(f.size_lots AS TEXT) AS size_lots, CAST(f.notional AS TEXT) AS notional, \
    CAST(f.maker_fee AS TEXT) AS maker_fee, CAST(f.taker_fee AS TEXT) AS taker_fee, \
    CAST(f.maker_nonce AS TEXT) AS maker_nonce, CAST(f.taker_nonce AS TEXT) AS taker_nonce, \
    o.status AS settlement_status \
    FROM fills f JOIN settlement_outbox o ON o.market = f.market AND o.fill_id = f.fill_id";

const LEDGER_COLUMNS: &str = "seq, idx, timestamp_ms, asset, business, business_id, \
    CAST(available_delta AS TEXT) AS available_delta, \
    CAST(frozen_delta AS TEXT) AS frozen_delta, CAST(available AS TEXT) AS available, \
    CAST(frozen AS TEXT) AS frozen, version";

const DEPOSIT_COLUMNS: &str =
    "tx, ix_index, owner, asset, CAST(amount AS TEXT) AS amount, seq, timestamp_ms";

const WITHDRAWAL_COLUMNS: &str = "id, owner, asset, CAST(amount AS TEXT) AS amount, status, \
    created_seq, updated_seq, kind, tx, last_valid_block_height";

const CANDLE_COLUMNS: &str = "market, interval_secs, open_time, \
    CAST(open_ticks AS TEXT) AS open_ticks, CAST(high_ticks AS TEXT) AS high_ticks, \
    CAST(low_ticks AS TEXT) AS low_ticks, CAST(close_ticks AS TEXT) AS close_ticks, \
    CAST(volume_lots AS TEXT) AS volume_lots, CAST(quote_volume AS TEXT) AS quote_volume, trades";

pub(super) fn order_row(row: &AnyRow) -> Result<OrderRow, StoreError> {
    Ok(OrderRow {
        order_id: get_int(row, "order_id")?,
        market: get_int(row, "market")?,
        owner: get_owner(row, "owner")?,
        side: get_int(row, "side")?,
        price_ticks: get_dec(row, "price_ticks")?,
        size_lots: get_dec(row, "size_lots")?,
        remaining_lots: get_dec(row, "remaining_lots")?,
        filled_lots: get_dec(row, "filled_lots")?,
        status: get_named(row, "status")?,
        nonce: get_dec(row, "nonce")?,
        expiry: get_int(row, "expiry")?,
        client_order_id: get_dec(row, "client_order_id")?,
        order_type: get_int(row, "order_type")?,
        signed: get_text(row, "signed")?,
        signature: get_text(row, "signature")?,
        created_seq: get_int(row, "created_seq")?,
        updated_seq: get_int(row, "updated_seq")?,
    })
}

fn position(row: &AnyRow) -> Result<Position, StoreError> {
    Ok(Position {
        seq: get_int(row, "seq")?,
        index: get_int(row, "idx")?,
    })
}

fn fill_row(row: &AnyRow) -> Result<FillRow, StoreError> {
    Ok(FillRow {
        position: position(row)?,
        timestamp_ms: get_int(row, "timestamp_ms")?,
        market: get_int(row, "market")?,
        fill_id: get_int(row, "fill_id")?,
        maker_order_id: get_int(row, "maker_order_id")?,
        taker_order_id: get_int(row, "taker_order_id")?,
        maker: get_owner(row, "maker")?,
        taker: get_owner(row, "taker")?,
        taker_side: get_int(row, "taker_side")?,
        price_ticks: get_dec(row, "price_ticks")?,
        size_lots: get_dec(row, "size_lots")?,
        notional: get_dec(row, "notional")?,
        maker_fee: get_dec(row, "maker_fee")?,
        taker_fee: get_dec(row, "taker_fee")?,
        maker_nonce: get_dec(row, "maker_nonce")?,
        taker_nonce: get_dec(row, "taker_nonce")?,
        settlement_status: get_named(row, "settlement_status")?,
    })
}

fn ledger_row(row: &AnyRow) -> Result<LedgerEntryRow, StoreError> {
    Ok(LedgerEntryRow {
        position: position(row)?,
        timestamp_ms: get_int(row, "timestamp_ms")?,
        asset: get_int(row, "asset")?,
        business: get_named(row, "business")?,
        business_id: get_text(row, "business_id")?,
        available_delta: get_dec(row, "available_delta")?,
        frozen_delta: get_dec(row, "frozen_delta")?,
        available: get_dec(row, "available")?,
        frozen: get_dec(row, "frozen")?,
        version: get_int(row, "version")?,
    })
}

fn deposit_row(row: &AnyRow) -> Result<DepositRow, StoreError> {
    Ok(DepositRow {
        tx: get_text(row, "tx")?,
        ix_index: get_int(row, "ix_index")?,
        owner: get_owner(row, "owner")?,
        asset: get_int(row, "asset")?,
        amount: get_dec(row, "amount")?,
        seq: get_int(row, "seq")?,
        timestamp_ms: get_int(row, "timestamp_ms")?,
    })
}

fn withdrawal_row(row: &AnyRow) -> Result<WithdrawalRow, StoreError> {
    Ok(WithdrawalRow {
        id: get_int(row, "id")?,
        owner: get_owner(row, "owner")?,
        asset: get_int(row, "asset")?,
        amount: get_dec(row, "amount")?,
        status: get_named(row, "status")?,
        created_seq: get_int(row, "created_seq")?,
        updated_seq: get_int(row, "updated_seq")?,
        kind: get_named(row, "kind")?,
        tx: get_opt_text(row, "tx")?,
        last_valid_block_height: get_opt_int(row, "last_valid_block_height")?,
    })
}

fn candle_row(row: &AnyRow) -> Result<Candle, StoreError> {
    Ok(Candle {
        market: get_int(row, "market")?,
        interval_secs: get_int(row, "interval_secs")?,
        open_time: get_int(row, "open_time")?,
        open_ticks: get_dec(row, "open_ticks")?,
        high_ticks: get_dec(row, "high_ticks")?,
        low_ticks: get_dec(row, "low_ticks")?,
        close_ticks: get_dec(row, "close_ticks")?,
        volume_lots: get_dec(row, "volume_lots")?,
        quote_volume: get_dec(row, "quote_volume")?,
        trades: get_int(row, "trades")?,
    })
}

fn all<T>(
    rows: Vec<AnyRow>,
    f: fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

impl Store {
    /// An order by id.
    pub async fn order(&self, order_id: u64) -> Result<Option<OrderRow>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1");
        let row = sqlx::query(&sql)
            .bind(int("order_id", order_id)?)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_row).transpose()
    }

    /// The latest order of `owner` with `client_order_id` (unique among open orders only).
    pub async fn order_by_client_id(
        &self,
        owner: &Owner,
        client_order_id: u64,
    ) -> Result<Option<OrderRow>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE owner = $1 AND client_order_id = $2::N \
             ORDER BY order_id DESC LIMIT 1"
        );
        let sql = self.sql(&sql);
        let row = sqlx::query(&sql)
            .bind(owner_hex(owner))
            .bind(dec(client_order_id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_row).transpose()
    }

    /// Open orders of `owner`, oldest first.
    pub async fn open_orders(&self, owner: &Owner) -> Result<Vec<OrderRow>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE owner = $1 AND status = 'open' \
             ORDER BY order_id"
        );
        let rows = sqlx::query(&sql)
            .bind(owner_hex(owner))
            .fetch_all(&self.pool)
            .await?;
        all(rows, order_row)
    }

    /// Fills where `owner` was maker or taker, newest first.
    pub async fn fills_of_owner(
        &self,
        owner: &Owner,
        page: Page,
    ) -> Result<Vec<FillRow>, StoreError> {
        let (seq, index, limit) = page.bounds()?;
        let sql = format!(
            "SELECT {FILL_COLUMNS} WHERE (f.maker = $1 OR f.taker = $1) \
             AND (f.seq, f.idx) < ($2, $3) ORDER BY f.seq DESC, f.idx DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(owner_hex(owner))
            .bind(seq)
            .bind(index)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        all(rows, fill_row)
    }

    /// The latest `limit` fills of a market, newest first (not capped at `MAX_PAGE`: the
    /// market-data projection seeds its recent trades from it at start-up).
    pub async fn recent_trades(
        &self,
        market: u32,
        limit: usize,
    ) -> Result<Vec<FillRow>, StoreError> {
        let sql = format!(
            "SELECT {FILL_COLUMNS} WHERE f.market = $1 ORDER BY f.seq DESC, f.idx DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(market))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        all(rows, fill_row)
    }

    /// Up to `limit` fills awaiting settlement, in stream order (per market, fill id order,
    /// which the chain requires): what the relayer drains next.
    pub async fn next_pending_settlements(&self, limit: u32) -> Result<Vec<FillRow>, StoreError> {
        let sql = format!(
            "SELECT {FILL_COLUMNS} WHERE o.status = 'pending' ORDER BY f.seq, f.idx LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit.min(MAX_PAGE)))
            .fetch_all(&self.pool)
            .await?;
        all(rows, fill_row)
    }

    /// Up to `limit` fills after `after` reported submitted and not yet final, in stream
    /// order: after a relayer restart, the batches they were in may or may not have landed.
    pub async fn submitted_settlements(
        &self,
        after: Position,
        limit: u32,
    ) -> Result<Vec<FillRow>, StoreError> {
        self.fills_after("o.status = 'submitted'", after, limit)
            .await
    }

    /// Up to `limit` fills after `after` whose settlement is not final (pending or
    /// submitted), in stream order: the parties market data routes settlement updates to
    /// after a restart.
    pub async fn unsettled_fills(
        &self,
        after: Position,
        limit: u32,
    ) -> Result<Vec<FillRow>, StoreError> {
        self.fills_after("o.status IN ('pending', 'submitted')", after, limit)
            .await
    }

    /// Up to `limit` fills after `after` whose outbox row matches `status`, in stream order.
    async fn fills_after(
        &self,
        status: &str,
        after: Position,
        limit: u32,
    ) -> Result<Vec<FillRow>, StoreError> {
        let sql = format!(
            "SELECT {FILL_COLUMNS} WHERE {status} AND (f.seq, f.idx) > ($1, $2) \
             ORDER BY f.seq, f.idx LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(int("seq", after.seq)?)
            .bind(i64::from(after.index))
            .bind(i64::from(limit.min(MAX_PAGE)))
            .fetch_all(&self.pool)
            .await?;
        all(rows, fill_row)
    }

    /// The settlement state of one fill.
    pub async fn settlement(
        &self,
        market: u32,
        fill_id: u64,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let row = sqlx::query(
            "SELECT market, fill_id, status, attempts, updated_seq FROM settlement_outbox \
             WHERE market = $1 AND fill_id = $2",
        )
        .bind(i64::from(market))
        .bind(int("fill_id", fill_id)?)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(OutboxRow {
                market: get_int(&row, "market")?,
                fill_id: get_int(&row, "fill_id")?,
                status: get_named(&row, "status")?,
                attempts: get_int(&row, "attempts")?,
                updated_seq: get_int(&row, "updated_seq")?,
            })
        })
        .transpose()
    }

    /// Every balance of `owner`, by asset.
    pub async fn balances(&self, owner: &Owner) -> Result<Vec<BalanceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT asset, CAST(available AS TEXT) AS available, CAST(frozen AS TEXT) AS frozen, \
             version, updated_seq FROM balances WHERE owner = $1 ORDER BY asset",
        )
        .bind(owner_hex(owner))
        .fetch_all(&self.pool)
        .await?;
        all(rows, |row| {
            Ok(BalanceRow {
                asset: get_int(row, "asset")?,
                available: get_dec(row, "available")?,
                frozen: get_dec(row, "frozen")?,
                version: get_int(row, "version")?,
                updated_seq: get_int(row, "updated_seq")?,
            })
        })
    }

    /// Balance changes of `owner` in `asset`, newest first.
    pub async fn ledger_history(
        &self,
        owner: &Owner,
        asset: u8,
        page: Page,
    ) -> Result<Vec<LedgerEntryRow>, StoreError> {
        let (seq, index, limit) = page.bounds()?;
        let sql = format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE owner = $1 AND asset = $2 \
             AND (seq, idx) < ($3, $4) ORDER BY seq DESC, idx DESC LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(owner_hex(owner))
            .bind(i64::from(asset))
            .bind(seq)
            .bind(index)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        all(rows, ledger_row)
    }

    /// Deposits credited from transaction `tx`, by instruction index.
    pub async fn deposits_by_tx(&self, tx: &Sig) -> Result<Vec<DepositRow>, StoreError> {
        let sql = format!("SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE tx = $1 ORDER BY ix_index");
        let rows = sqlx::query(&sql)
            .bind(crate::model::to_hex(tx))
            .fetch_all(&self.pool)
            .await?;
        all(rows, deposit_row)
    }

    /// Withdrawals of `owner`, newest first.
    pub async fn withdrawals(&self, owner: &Owner) -> Result<Vec<WithdrawalRow>, StoreError> {
        let sql = format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE owner = $1 ORDER BY id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(owner_hex(owner))
            .fetch_all(&self.pool)
            .await?;
        all(rows, withdrawal_row)
    }

    /// One withdrawal by id.
    pub async fn withdrawal(&self, id: Seq) -> Result<Option<WithdrawalRow>, StoreError> {
        let sql = format!("SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(int("withdrawal id", id)?)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(withdrawal_row).transpose()
    }

    /// Withdrawals whose co-signed transaction is out (Broadcasting), oldest first: what the
    /// expiry watcher checks.
    pub async fn broadcasting_withdrawals(
        &self,
        limit: u32,
    ) -> Result<Vec<WithdrawalRow>, StoreError> {
        let sql = format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE status = 'broadcasting' \
             ORDER BY id LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        all(rows, withdrawal_row)
    }

    /// Candles of a market and interval with `from <= open_time < to` (unix seconds), oldest
    /// first.
    pub async fn candles(
        &self,
        market: u32,
        interval_secs: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<Candle>, StoreError> {
        let sql = format!(
            "SELECT {CANDLE_COLUMNS} FROM candles WHERE market = $1 AND interval_secs = $2 \
             AND open_time >= $3 AND open_time < $4 ORDER BY open_time"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(market))
            .bind(int("interval_secs", interval_secs)?)
            .bind(int("from", from)?)
            .bind(i64::try_from(to).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        all(rows, candle_row)
    }

    /// The latest `limit` candles of a market and interval, newest first (the market-data
    /// projection seeds its candles from them at start-up).
    pub async fn latest_candles(
        &self,
        market: u32,
        interval_secs: u64,
        limit: usize,
    ) -> Result<Vec<Candle>, StoreError> {
        let sql = format!(
            "SELECT {CANDLE_COLUMNS} FROM candles WHERE market = $1 AND interval_secs = $2 \
             ORDER BY open_time DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(market))
            .bind(int("interval_secs", interval_secs)?)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        all(rows, candle_row)
    }

    /// The on-chain cancel floor of `owner`, if it was ever raised.
    pub async fn nonce_floor(&self, owner: &Owner) -> Result<Option<u64>, StoreError> {
        let row =
            sqlx::query("SELECT CAST(floor AS TEXT) AS floor FROM nonce_floors WHERE owner = $1")
                .bind(owner_hex(owner))
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| get_dec(&row, "floor")).transpose()
    }
}
