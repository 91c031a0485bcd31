-- Kestrel SQL store: a projection of the router's event stream (PostgreSQL dialect).
--
-- Column types: values that fit i64 by construction (sequence numbers, order and fill ids,
-- timestamps, indices, versions, counters) are BIGINT. Values that may use the whole u64 range
-- (atoms, lots, ticks, nonces, client order ids) are NUMERIC(20,0); ledger deltas (i128) and
-- candle volumes (u128) are NUMERIC(39,0). The store reads them back as exact decimal text.

-- Position of the last projected event: (seq, idx). Events at or below it are skipped, which
-- makes every batch idempotent. Sequence numbers start at 1, so (0, 0) means nothing yet.
CREATE TABLE projection_cursor (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL,
    last_idx BIGINT NOT NULL
);
INSERT INTO projection_cursor (id, last_seq, last_idx) VALUES (1, 0, 0);

CREATE TABLE orders (
    order_id BIGINT PRIMARY KEY,
    market BIGINT NOT NULL,
    owner TEXT NOT NULL,
    side BIGINT NOT NULL,
    price_ticks NUMERIC(20,0) NOT NULL,
    size_lots NUMERIC(20,0) NOT NULL,
    remaining_lots NUMERIC(20,0) NOT NULL,
    filled_lots NUMERIC(20,0) NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'filled', 'cancelled', 'expired', 'self_trade', 'unmatched')),
    nonce NUMERIC(20,0) NOT NULL,
    expiry BIGINT NOT NULL,
    client_order_id NUMERIC(20,0) NOT NULL,
    order_type BIGINT NOT NULL,
    signed TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_seq BIGINT NOT NULL,
    updated_seq BIGINT NOT NULL
);
CREATE INDEX orders_owner_status ON orders (owner, status, order_id);
CREATE INDEX orders_owner_client ON orders (owner, client_order_id, order_id);

CREATE TABLE fills (
    market BIGINT NOT NULL,
    fill_id BIGINT NOT NULL,
    maker_order_id BIGINT NOT NULL,
    taker_order_id BIGINT NOT NULL,
    maker TEXT NOT NULL,
    taker TEXT NOT NULL,
    taker_side BIGINT NOT NULL,
    price_ticks NUMERIC(20,0) NOT NULL,
    size_lots NUMERIC(20,0) NOT NULL,
    notional NUMERIC(20,0) NOT NULL,
    maker_fee NUMERIC(20,0) NOT NULL,
    taker_fee NUMERIC(20,0) NOT NULL,
    maker_nonce NUMERIC(20,0) NOT NULL,
    taker_nonce NUMERIC(20,0) NOT NULL,
    seq BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (market, fill_id),
    UNIQUE (seq, idx)
);
CREATE INDEX fills_maker ON fills (maker, seq, idx);
CREATE INDEX fills_taker ON fills (taker, seq, idx);
CREATE INDEX fills_market ON fills (market, seq, idx);

CREATE TABLE ledger_entries (
    seq BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    owner TEXT NOT NULL,
    asset BIGINT NOT NULL,
    business TEXT NOT NULL,
    business_id TEXT NOT NULL,
    available_delta NUMERIC(39,0) NOT NULL,
    frozen_delta NUMERIC(39,0) NOT NULL,
    available NUMERIC(20,0) NOT NULL,
    frozen NUMERIC(20,0) NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (seq, idx)
);
CREATE INDEX ledger_owner_asset ON ledger_entries (owner, asset, seq, idx);

CREATE TABLE balances (
    owner TEXT NOT NULL,
    asset BIGINT NOT NULL,
    available NUMERIC(20,0) NOT NULL,
    frozen NUMERIC(20,0) NOT NULL,
    version BIGINT NOT NULL,
    updated_seq BIGINT NOT NULL,
    PRIMARY KEY (owner, asset)
);

CREATE TABLE deposits (
    tx TEXT NOT NULL,
    ix_index BIGINT NOT NULL,
    owner TEXT NOT NULL,
    asset BIGINT NOT NULL,
    amount NUMERIC(20,0) NOT NULL,
    seq BIGINT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (tx, ix_index)
);
CREATE INDEX deposits_owner ON deposits (owner, seq);

CREATE TABLE withdrawals (
    id BIGINT PRIMARY KEY,
    owner TEXT NOT NULL,
    asset BIGINT NOT NULL,
    amount NUMERIC(20,0) NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'broadcasting', 'confirmed', 'failed')),
    created_seq BIGINT NOT NULL,
    updated_seq BIGINT NOT NULL
);
CREATE INDEX withdrawals_owner ON withdrawals (owner, id);

-- What the relayer drains. A fill enters as pending when it is projected; a settlement update
-- for a fill the store has not seen is recorded as it came (no foreign key), never dropped.
CREATE TABLE settlement_outbox (
    market BIGINT NOT NULL,
    fill_id BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'submitted', 'confirmed', 'quarantined')),
    attempts BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    updated_seq BIGINT NOT NULL,
    PRIMARY KEY (market, fill_id)
);
CREATE INDEX settlement_outbox_status ON settlement_outbox (status, seq, idx);

CREATE TABLE candles (
    market BIGINT NOT NULL,
    interval_secs BIGINT NOT NULL,
    open_time BIGINT NOT NULL,
    open_ticks NUMERIC(20,0) NOT NULL,
    high_ticks NUMERIC(20,0) NOT NULL,
    low_ticks NUMERIC(20,0) NOT NULL,
    close_ticks NUMERIC(20,0) NOT NULL,
    volume_lots NUMERIC(39,0) NOT NULL,
    quote_volume NUMERIC(39,0) NOT NULL,
    trades BIGINT NOT NULL,
    updated_seq BIGINT NOT NULL,
    PRIMARY KEY (market, interval_secs, open_time)
);

CREATE TABLE nonce_floors (
    owner TEXT PRIMARY KEY,
    floor NUMERIC(20,0) NOT NULL,
    updated_seq BIGINT NOT NULL
);
