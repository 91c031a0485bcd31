-- Kestrel SQL store: a projection of the router's event stream (SQLite dialect).
--
-- Column types: values that fit i64 by construction (sequence numbers, order and fill ids,
-- timestamps, indices, versions, counters) are INTEGER. Values that may use the whole u64
-- range (atoms, lots, ticks, nonces, client order ids) and the i128/u128 ones (ledger deltas,
-- candle volumes) are TEXT holding the exact decimal: SQLite's INTEGER is i64 and its NUMERIC
-- affinity would turn larger values into lossy REALs. The PostgreSQL schema uses NUMERIC.

-- Position of the last projected event: (seq, idx). Events at or below it are skipped, which
-- makes every batch idempotent. Sequence numbers start at 1, so (0, 0) means nothing yet.
CREATE TABLE projection_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL,
    last_idx INTEGER NOT NULL
);
INSERT INTO projection_cursor (id, last_seq, last_idx) VALUES (1, 0, 0);

CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    market INTEGER NOT NULL,
    owner TEXT NOT NULL,
    side INTEGER NOT NULL,
    price_ticks TEXT NOT NULL,
    size_lots TEXT NOT NULL,
    remaining_lots TEXT NOT NULL,
    filled_lots TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'filled', 'cancelled', 'expired', 'self_trade', 'unmatched')),
    nonce TEXT NOT NULL,
    expiry INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    order_type INTEGER NOT NULL,
    signed TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_seq INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL
);
CREATE INDEX orders_owner_status ON orders (owner, status, order_id);
CREATE INDEX orders_owner_client ON orders (owner, client_order_id, order_id);

CREATE TABLE fills (
    market INTEGER NOT NULL,
    fill_id INTEGER NOT NULL,
    maker_order_id INTEGER NOT NULL,
    taker_order_id INTEGER NOT NULL,
    maker TEXT NOT NULL,
    taker TEXT NOT NULL,
    taker_side INTEGER NOT NULL,
    price_ticks TEXT NOT NULL,
    size_lots TEXT NOT NULL,
    notional TEXT NOT NULL,
    maker_fee TEXT NOT NULL,
    taker_fee TEXT NOT NULL,
    maker_nonce TEXT NOT NULL,
    taker_nonce TEXT NOT NULL,
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (market, fill_id),
    UNIQUE (seq, idx)
);
CREATE INDEX fills_maker ON fills (maker, seq, idx);
CREATE INDEX fills_taker ON fills (taker, seq, idx);
CREATE INDEX fills_market ON fills (market, seq, idx);

CREATE TABLE ledger_entries (
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    owner TEXT NOT NULL,
    asset INTEGER NOT NULL,
    business TEXT NOT NULL,
    business_id TEXT NOT NULL,
    available_delta TEXT NOT NULL,
    frozen_delta TEXT NOT NULL,
    available TEXT NOT NULL,
    frozen TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (seq, idx)
);
CREATE INDEX ledger_owner_asset ON ledger_entries (owner, asset, seq, idx);

CREATE TABLE balances (
    owner TEXT NOT NULL,
    asset INTEGER NOT NULL,
    available TEXT NOT NULL,
    frozen TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL,
    PRIMARY KEY (owner, asset)
);

CREATE TABLE deposits (
    tx TEXT NOT NULL,
    ix_index INTEGER NOT NULL,
    owner TEXT NOT NULL,
    asset INTEGER NOT NULL,
    amount TEXT NOT NULL,
    seq INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (tx, ix_index)
);
CREATE INDEX deposits_owner ON deposits (owner, seq);

CREATE TABLE withdrawals (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    asset INTEGER NOT NULL,
    amount TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'broadcasting', 'confirmed', 'failed')),
    created_seq INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL
);
CREATE INDEX withdrawals_owner ON withdrawals (owner, id);

-- What the relayer drains. A fill enters as pending when it is projected; a settlement update
-- for a fill the store has not seen is recorded as it came (no foreign key), never dropped.
CREATE TABLE settlement_outbox (
    market INTEGER NOT NULL,
    fill_id INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'submitted', 'confirmed', 'quarantined')),
    attempts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL,
    PRIMARY KEY (market, fill_id)
);
CREATE INDEX settlement_outbox_status ON settlement_outbox (status, seq, idx);

CREATE TABLE candles (
    market INTEGER NOT NULL,
    interval_secs INTEGER NOT NULL,
    open_time INTEGER NOT NULL,
    open_ticks TEXT NOT NULL,
    high_ticks TEXT NOT NULL,
    low_ticks TEXT NOT NULL,
    close_ticks TEXT NOT NULL,
    volume_lots TEXT NOT NULL,
    quote_volume TEXT NOT NULL,
    trades INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL,
    PRIMARY KEY (market, interval_secs, open_time)
);

CREATE TABLE nonce_floors (
    owner TEXT PRIMARY KEY,
    floor TEXT NOT NULL,
    updated_seq INTEGER NOT NULL
);
