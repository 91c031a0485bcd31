//! The OpenAPI 3.1 document of the REST API, served at `/v1/openapi.json` and checked in as
//! `docs/openapi.json` (a test keeps the two equal).

use super::error::ApiCode;
use crate::reject::Reject;
use serde_json::{json, Value};

fn error_ref() -> Value {
    json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn market() -> Value {
    path_param(
        "market",
        "Market index",
        json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
    )
}

fn owner() -> Value {
    path_param(
        "owner",
        "Wallet public key, 64 hex characters",
        json!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}),
    )
}

fn page_params() -> Vec<Value> {
    vec![
        query_param(
            "limit",
            "Rows (at most 1000)",
            json!({"type": "integer", "minimum": 0}),
        ),
        query_param(
            "before_seq",
            "Page before this sequence number",
            json!({"type": "integer", "minimum": 0}),
        ),
        query_param(
            "before_index",
            "Page before this event index",
            json!({"type": "integer", "minimum": 0}),
        ),
    ]
}

fn get(summary: &str, parameters: Vec<Value>, response: Value) -> Value {
    json!({"get": {
        "summary": summary,
        "parameters": parameters,
        "responses": {"200": response, "4XX": error_ref(), "5XX": error_ref()},
    }})
}

fn signed_post(summary: &str) -> Value {
    json!({"post": {
        "summary": summary,
        "description": "Verified, sequenced and journaled before the answer; a refusal is typed \
                        (see the Error schema's codes 100-199) and, once sequenced, durable.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Signed"}}}},
        "responses": {
            "200": ok("The command is durable", json!({"$ref": "#/components/schemas/CommandResult"})),
            "4XX": error_ref(),
            "5XX": error_ref(),
        },
    }})
}

fn replace_post() -> Value {
    json!({"post": {
        "summary": "Replace a resting order: a signed cancel naming it by nonce and the signed new \
                    order (same market, side, type, self-trade mode and client id). Same price and \
                    a size not larger keeps time priority.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Replace"}}}},
        "responses": {
            "200": ok("The replace is durable", json!({"$ref": "#/components/schemas/CommandResult"})),
            "4XX": error_ref(),
            "5XX": error_ref(),
        },
    }})
}

fn transaction_post() -> Value {
    json!({"post": {
        "summary": "The co-signed withdraw transaction of a pending withdrawal",
        "description": "The operator builds the program's withdraw for exactly the withdrawal's \
                        owner, asset and amount, to the owner's token account, owner as fee payer, \
                        and signs it; the withdrawal turns broadcasting (journaled) and the \
                        partially signed transaction is returned once. The owner checks it, signs \
                        and sends it before last_valid_block_height; if it expires unlanded the \
                        withdrawal fails and the funds are released. The body proves ownership: \
                        the owner's signature of the 120-byte transaction request message \
                        (docs/protocol.md).",
        "parameters": [path_param("withdrawal_id", "Withdrawal id", json!({"type": "integer", "minimum": 0}))],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TransactionRequest"}}}},
        "responses": {
            "200": ok("Broadcasting is durable", json!({"$ref": "#/components/schemas/WithdrawalTransaction"})),
            "4XX": error_ref(),
            "5XX": error_ref(),
        },
    }})
}

/// An exact decimal string beside an integer field (null when not representable).
fn decimal() -> Value {
    json!({"type": ["string", "null"], "pattern": "^-?[0-9]+(\\.[0-9]+)?$"})
}

fn any_object() -> Value {
    json!({"type": "object"})
}

fn array_of(item: Value) -> Value {
    json!({"type": "array", "items": item})
}

/// The document.
pub fn document() -> Value {
    let codes: Vec<Value> = ALL_REJECTS
        .iter()
        .map(|r| json!({"code": r.code(), "error": super::error::reject_name(*r), "status": r.http_status()}))
        .chain(ApiCode::ALL.iter().map(|c| json!({"code": c.code(), "error": c.name(), "status": c.status().as_u16()})))
        .collect();
    let mut ledger = page_params();
    ledger.push(query_param(
        "asset",
        "Asset index (required)",
        json!({"type": "integer", "minimum": 0, "maximum": 255}),
    ));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Kestrel API",
            "version": "1",
            "description": "REST API of the Kestrel router. Signed message layouts: docs/protocol.md. \
                            WebSocket: /v1/ws (docs/protocol.md, \"WebSocket\"). Prices are integer \
                            ticks, sizes integer base lots, amounts integer atoms; beside each such \
                            field of an output is an exact decimal string named `<field>_decimal` \
                            (price in quote units per base unit, size in base units, amounts in \
                            units of their mint; null if not representable). Inputs stay in ticks \
                            and lots: the signed bytes are the order.",
        },
        "paths": {
            "/v1/markets": get("Exchange, assets and markets", vec![], ok("Markets", any_object())),
            "/v1/markets/{market}/book": get("L2 book snapshot", vec![market(),
                query_param("depth", "Levels per side (default 100)", json!({"type": "integer", "minimum": 0, "maximum": 65535}))],
                ok("Book", json!({"$ref": "#/components/schemas/Book"}))),
            "/v1/markets/{market}/trades": get("Recent trades, newest first", vec![market(),
                query_param("limit", "Trades (default 100)", json!({"type": "integer", "minimum": 0, "maximum": 65535}))],
                ok("Trades", array_of(any_object()))),
            "/v1/markets/{market}/candles": get("Recent candles, newest first", vec![market(),
                json!({"name": "interval", "in": "query", "required": true, "schema": {"type": "string", "enum": ["1m", "5m", "1h", "1d"]}}),
                query_param("limit", "Candles (default 100)", json!({"type": "integer", "minimum": 0, "maximum": 65535}))],
                ok("Candles", array_of(any_object()))),
            "/v1/orders": signed_post("Place a signed order (128-byte order message)"),
            "/v1/cancel": signed_post("Cancel one order (104-byte cancel message)"),
            "/v1/replace": replace_post(),
            "/v1/cancel-all": signed_post("Cancel all orders below a nonce (104-byte cancel-all message)"),
            "/v1/withdrawals": signed_post("Request a withdrawal (136-byte withdrawal message)"),
            "/v1/withdrawals/{withdrawal_id}/transaction": transaction_post(),
            "/v1/orders/{order_id}": get("An order by id", vec![path_param("order_id", "Order id", json!({"type": "integer", "minimum": 0}))],
                ok("Order", json!({"$ref": "#/components/schemas/Order"}))),
            "/v1/accounts/{owner}/orders": get("Open orders of a wallet", vec![owner()],
                ok("Orders", array_of(json!({"$ref": "#/components/schemas/Order"})))),
            "/v1/accounts/{owner}/orders/by-client-id/{client_order_id}": get("Latest order of a wallet with a client order id",
                vec![owner(), path_param("client_order_id", "Client order id", json!({"type": "integer", "minimum": 0}))],
                ok("Order", json!({"$ref": "#/components/schemas/Order"}))),
            "/v1/accounts/{owner}/fills": get("Fills of a wallet with their settlement status, newest first",
                [vec![owner()], page_params()].concat(), ok("Fills", array_of(any_object()))),
            "/v1/accounts/{owner}/balances": get("Balances of a wallet", vec![owner()], ok("Balances", array_of(any_object()))),
            "/v1/accounts/{owner}/ledger": get("Balance changes of a wallet in one asset, newest first",
                [vec![owner()], ledger].concat(), ok("Ledger entries", array_of(any_object()))),
            "/v1/accounts/{owner}/withdrawals": get("Withdrawals of a wallet", vec![owner()], ok("Withdrawals", array_of(any_object()))),
            "/v1/deposits/{tx}": get("Deposits credited from a transaction", vec![path_param("tx", "Transaction signature, 128 hex characters", json!({"type": "string", "pattern": "^[0-9a-fA-F]{128}$"}))],
                ok("Deposits", any_object())),
            "/v1/settlement/{market}/{fill_id}": get("Settlement status of a fill",
                vec![market(), path_param("fill_id", "Per-market fill id", json!({"type": "integer", "minimum": 0}))],
                ok("Settlement", any_object())),
            "/v1/openapi.json": get("This document", vec![], ok("OpenAPI document", any_object())),
        },
        "components": {"schemas": {
            "Replace": {
                "type": "object",
                "required": ["cancel", "order"],
                "additionalProperties": false,
                "properties": {
                    "cancel": {"$ref": "#/components/schemas/Signed"},
                    "order": {"$ref": "#/components/schemas/Signed"},
                },
            },
            "Signed": {
                "type": "object",
                "required": ["message", "signature"],
                "additionalProperties": false,
                "properties": {
                    "message": {"type": "string", "description": "Hex of the canonical signed bytes"},
                    "signature": {"type": "string", "description": "Hex of the 64-byte ed25519 signature"},
                },
            },
            "TransactionRequest": {
                "type": "object",
                "required": ["owner", "destination", "signature"],
                "additionalProperties": false,
                "properties": {
                    "owner": {"type": "string", "description": "Wallet public key, 64 hex characters"},
                    "destination": {"type": "string", "description": "The owner's token account of the asset's mint, 64 hex characters"},
                    "signature": {"type": "string", "description": "Hex of the owner's signature of the transaction request message"},
                },
            },
            "WithdrawalTransaction": {
                "type": "object",
                "required": ["withdrawal_id", "seq", "transaction", "cosignature", "last_valid_block_height"],
                "properties": {
                    "withdrawal_id": {"type": "integer"},
                    "seq": {"type": "integer"},
                    "transaction": {"type": "string", "description": "Base64 of the serialized transaction, signed by the operator, the owner's signature missing"},
                    "cosignature": {"type": "string", "description": "Hex of the operator's signature in it, which identifies it until the owner's signature (its id) exists"},
                    "last_valid_block_height": {"type": "integer"},
                },
            },
            "CommandResult": {
                "type": "object",
                "required": ["seq", "timestamp_ms", "events"],
                "properties": {
                    "seq": {"type": "integer"},
                    "timestamp_ms": {"type": "integer"},
                    "order_id": {"type": "integer"},
                    "withdrawal_id": {"type": "integer"},
                    "events": array_of(any_object()),
                },
            },
            "Book": {
                "type": "object",
                "properties": {
                    "market": {"type": "integer"},
                    "market_seq": {"type": "integer"},
                    "position": {"type": "object", "properties": {"seq": {"type": "integer"}, "index": {"type": "integer"}}},
                    "bids": array_of(json!({"$ref": "#/components/schemas/Level"})),
                    "asks": array_of(json!({"$ref": "#/components/schemas/Level"})),
                },
            },
            "Level": {
                "type": "object",
                "properties": {
                    "price_ticks": {"type": "integer"},
                    "price_ticks_decimal": decimal(),
                    "size_lots": {"type": "integer"},
                    "size_lots_decimal": decimal(),
                    "orders": {"type": "integer"},
                },
            },
            "Order": {"type": "object", "properties": {
                "order_id": {"type": "integer"}, "market": {"type": "integer"}, "owner": {"type": "string"},
                "side": {"type": "integer"}, "price_ticks": {"type": "integer"}, "size_lots": {"type": "integer"},
                "remaining_lots": {"type": "integer"}, "filled_lots": {"type": "integer"},
                "price_ticks_decimal": decimal(), "size_lots_decimal": decimal(),
                "remaining_lots_decimal": decimal(), "filled_lots_decimal": decimal(),
                "status": {"type": "string", "enum": ["open", "filled", "cancelled", "expired", "self_trade", "unmatched"]},
                "nonce": {"type": "integer"}, "expiry": {"type": "integer"}, "client_order_id": {"type": "integer"},
            }},
            "Error": {
                "type": "object",
                "required": ["code", "error", "message"],
                "properties": {
                    "code": {"type": "integer", "description": "Stable numeric code (x-codes)"},
                    "error": {"type": "string", "description": "Stable snake_case name"},
                    "message": {"type": "string"},
                    "seq": {"type": "integer", "description": "Sequence number of a refused command that was journaled"},
                },
                "x-codes": codes,
            },
        }},
    })
}

/// Every refusal, for the error code table.
const ALL_REJECTS: [Reject; 22] = [
    Reject::MalformedMessage,
    Reject::BadSignature,
    Reject::WrongExchange,
    Reject::UnknownMarket,
    Reject::Expired,
    Reject::ExpiryTooFar,
    Reject::NonceReused,
    Reject::NonceCancelled,
    Reject::PriceOutOfRange,
    Reject::SizeOutOfRange,
    Reject::NotionalOverflow,
    Reject::InsufficientBalance,
    Reject::TooManyOpenOrders,
    Reject::PostOnlyWouldCross,
    Reject::FillOrKillUnfillable,
    Reject::BookFull,
    Reject::UnknownOrder,
    Reject::DuplicateClientOrderId,
    Reject::ReplaceMismatch,
    Reject::InvalidAmount,
    Reject::WithdrawalNotPending,
    Reject::UnexpectedWithdrawal,
];
