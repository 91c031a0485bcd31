//! REST routes, their extractors and the middleware (per-IP rate limit, metrics, tracing,
//! panic catching, body limit). Every failure is an [`ApiError`] with a stable code.

use super::error::{ApiCode, ApiError};
use super::intake::{self, Accepted, Kind, ReplaceBody, SignedBody};
use super::withdrawals::TransactionRequest;
use super::{openapi, ws, Shared};
use crate::decimal::Decimals;
use crate::marketdata::{hex_wallets, Interval};
use crate::model::Owner;
use crate::reject::Reject;
use crate::store::{Page, Position, StoreError};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State,
};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

type AppState = State<Arc<Shared>>;
type ApiResult = Result<Json<serde_json::Value>, ApiError>;
type CommandResult = Result<Response, ApiError>;

/// Every route of the API.
pub fn router(shared: Arc<Shared>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/markets", get(markets))
        .route("/v1/markets/{market}/book", get(book))
        .route("/v1/markets/{market}/trades", get(trades))
        .route("/v1/markets/{market}/candles", get(candles))
        .route("/v1/orders", post(place))
        .route("/v1/cancel", post(cancel))
        .route("/v1/replace", post(replace))
        .route("/v1/cancel-all", post(cancel_all))
        .route("/v1/withdrawals", post(withdraw))
        .route(
            "/v1/withdrawals/{withdrawal_id}/transaction",
            post(withdrawal_transaction),
        )
        .route("/v1/orders/{order_id}", get(order))
        .route("/v1/accounts/{owner}/orders", get(open_orders))
        .route(
            "/v1/accounts/{owner}/orders/by-client-id/{client_order_id}",
            get(order_by_client_id),
        )
        .route("/v1/accounts/{owner}/fills", get(fills))
        .route("/v1/accounts/{owner}/balances", get(balances))
        .route("/v1/accounts/{owner}/ledger", get(ledger))
        .route("/v1/accounts/{owner}/withdrawals", get(withdrawals))
        .route("/v1/deposits/{tx}", get(deposits))
        .route("/v1/settlement/{market}/{fill_id}", get(settlement))
        .route("/v1/openapi.json", get(openapi_document))
        .route("/v1/ws", get(ws::upgrade))
        .route_layer(middleware::from_fn_with_state(shared.clone(), observe))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), limit_ip))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(ApiCode::Internal, "internal error").into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(shared)
}

/// Refuses requests over the per-IP rate with 429.
async fn limit_ip(
    State(shared): AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !shared.limits.allow_ip(peer.ip()) {
        shared.metrics.rate_limited.with_label_values(&["ip"]).inc();
        return ApiError::new(ApiCode::RateLimited, "too many requests from this address")
            .into_response();
    }
    next.run(request).await
}

/// Counts requests and their latency per route.
async fn observe(State(shared): AppState, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &shared.metrics;
    metrics
        .http_requests
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .inc();
    metrics
        .http_latency
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn not_found() -> ApiError {
    ApiError::new(ApiCode::NotFound, "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ApiCode::MethodNotAllowed,
        "method not allowed on this resource",
    )
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::new(ApiCode::InvalidRequest, "invalid path parameter")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(_: QueryRejection) -> Self {
        ApiError::new(ApiCode::InvalidRequest, "invalid query parameter")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store query failed");
        ApiError::new(ApiCode::Internal, "internal error")
    }
}

/// A path extractor whose failures are API errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
struct P<T>(T);

/// A query extractor whose failures are API errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
struct Q<T>(T);

/// A JSON body whose failures are API errors: 413 over the size limit, 400 otherwise.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ApiCode::PayloadTooLarge, "body exceeds the size limit")
            } else {
                ApiError::new(ApiCode::InvalidRequest, "unreadable body")
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON with API errors: syntax → `malformed_json`, wrong shape → `invalid_request`.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => ApiCode::InvalidRequest,
            _ => ApiCode::MalformedJson,
        };
        ApiError::new(code, e.to_string())
    })
}

/// Parses a hex wallet key.
pub fn parse_owner(text: &str) -> Result<Owner, ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::new(ApiCode::InvalidRequest, "owner is not 32 bytes of hex"))
}

/// A response body: wallet keys as hex, decimal fields added.
fn to_json(decimals: &Decimals, value: &impl Serialize) -> Json<serde_json::Value> {
    let mut value = decimals.json(value);
    match &mut value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(hex_wallets),
        other => hex_wallets(other),
    }
    Json(value)
}

fn unknown_market() -> ApiError {
    ApiError::reject(Reject::UnknownMarket, None)
}

async fn markets(State(shared): AppState) -> ApiResult {
    let rules = &shared.rules;
    let decimals = &shared.decimals;
    let markets: Vec<serde_json::Value> = rules
        .markets
        .iter()
        .map(|spec| {
            let mut value = serde_json::to_value(spec).unwrap_or_default();
            let (tick, lot) = decimals.increments(spec.index).unzip();
            if let serde_json::Value::Object(map) = &mut value {
                map.insert("tick_size_decimal".into(), tick.into());
                map.insert("base_lot_size_decimal".into(), lot.into());
                for (key, asset) in [
                    ("base_decimals", spec.base_asset),
                    ("quote_decimals", spec.quote_asset),
                ] {
                    let d = decimals.asset_decimals(usize::from(asset));
                    map.insert(key.into(), d.into());
                }
            }
            value
        })
        .collect();
    Ok(Json(serde_json::json!({
        "exchange": crate::model::to_hex(&rules.exchange.to_bytes()),
        "assets": rules.assets.iter().enumerate().map(|(index, mint)| serde_json::json!({
            "index": index,
            "mint": mint.to_string(),
            "decimals": decimals.asset_decimals(index),
        })).collect::<Vec<_>>(),
        "markets": markets,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepthQuery {
    depth: Option<u16>,
}

async fn book(State(shared): AppState, P(market): P<u32>, Q(q): Q<DepthQuery>) -> ApiResult {
    let depth = usize::from(q.depth.unwrap_or(100));
    let book = shared
        .market_data
        .book(market, depth)
        .ok_or_else(unknown_market)?;
    Ok(to_json(&shared.decimals, &book))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<u16>,
}

async fn trades(State(shared): AppState, P(market): P<u32>, Q(q): Q<LimitQuery>) -> ApiResult {
    let limit = usize::from(q.limit.unwrap_or(100));
    let trades = shared
        .market_data
        .trades(market, limit)
        .ok_or_else(unknown_market)?;
    Ok(to_json(&shared.decimals, &trades))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CandleQuery {
    interval: String,
    limit: Option<u16>,
}

async fn candles(State(shared): AppState, P(market): P<u32>, Q(q): Q<CandleQuery>) -> ApiResult {
    let interval = Interval::parse(&q.interval).ok_or_else(|| {
        ApiError::new(ApiCode::InvalidRequest, "interval must be 1m, 5m, 1h or 1d")
    })?;
    let limit = usize::from(q.limit.unwrap_or(100));
    let candles = shared
        .market_data
        .candles(market, interval, limit)
        .ok_or_else(unknown_market)?;
    Ok(to_json(&shared.decimals, &candles))
}

/// A command's answer, with the decimal fields of its events.
fn command_result(shared: &Shared, accepted: &Accepted) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        accepted.answer(&shared.decimals),
    )
        .into_response()
}

async fn signed(shared: &Shared, kind: Kind, body: &SignedBody) -> CommandResult {
    let accepted = intake::submit(shared, kind, body).await?;
    Ok(command_result(shared, &accepted))
}

async fn place(State(shared): AppState, JsonBody(body): JsonBody<SignedBody>) -> CommandResult {
    signed(&shared, Kind::Place, &body).await
}

async fn cancel(State(shared): AppState, JsonBody(body): JsonBody<SignedBody>) -> CommandResult {
    signed(&shared, Kind::Cancel, &body).await
}

async fn replace(State(shared): AppState, JsonBody(body): JsonBody<ReplaceBody>) -> CommandResult {
    let accepted = intake::submit_replace(&shared, &body).await?;
    Ok(command_result(&shared, &accepted))
}

async fn cancel_all(
    State(shared): AppState,
    JsonBody(body): JsonBody<SignedBody>,
) -> CommandResult {
    signed(&shared, Kind::CancelAll, &body).await
}

async fn withdraw(State(shared): AppState, JsonBody(body): JsonBody<SignedBody>) -> CommandResult {
    signed(&shared, Kind::Withdraw, &body).await
}

fn found<T: Serialize>(decimals: &Decimals, row: Option<T>, what: &str) -> ApiResult {
    row.map(|r| to_json(decimals, &r))
        .ok_or_else(|| ApiError::new(ApiCode::NotFound, format!("no such {what}")))
}

async fn order(State(shared): AppState, P(order_id): P<u64>) -> ApiResult {
    let order = shared.caught_up_store().await.order(order_id).await?;
    found(&shared.decimals, order, "order")
}

async fn order_by_client_id(
    State(shared): AppState,
    P((owner, client_order_id)): P<(String, u64)>,
) -> ApiResult {
    let owner = parse_owner(&owner)?;
    let order = shared
        .caught_up_store()
        .await
        .order_by_client_id(&owner, client_order_id)
        .await?;
    found(&shared.decimals, order, "order")
}

async fn open_orders(State(shared): AppState, P(owner): P<String>) -> ApiResult {
    let owner = parse_owner(&owner)?;
    Ok(to_json(
        &shared.decimals,
        &shared.caught_up_store().await.open_orders(&owner).await?,
    ))
}

/// A page of history: newest first, strictly before (`before_seq`, `before_index`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<u32>,
    before_seq: Option<u64>,
    before_index: Option<u32>,
    asset: Option<u8>,
}

impl PageQuery {
    fn page(&self) -> Page {
        Page {
            before: self.before_seq.map(|seq| Position {
                seq,
                index: self.before_index.unwrap_or(0),
            }),
            limit: self.limit.unwrap_or(100),
        }
    }
}

async fn fills(State(shared): AppState, P(owner): P<String>, Q(q): Q<PageQuery>) -> ApiResult {
    let owner = parse_owner(&owner)?;
    Ok(to_json(
        &shared.decimals,
        &shared
            .caught_up_store()
            .await
            .fills_of_owner(&owner, q.page())
            .await?,
    ))
}

async fn balances(State(shared): AppState, P(owner): P<String>) -> ApiResult {
    let owner = parse_owner(&owner)?;
    Ok(to_json(
        &shared.decimals,
        &shared.caught_up_store().await.balances(&owner).await?,
    ))
}

async fn ledger(State(shared): AppState, P(owner): P<String>, Q(q): Q<PageQuery>) -> ApiResult {
    let owner = parse_owner(&owner)?;
    let asset = q
        .asset
        .ok_or_else(|| ApiError::new(ApiCode::InvalidRequest, "asset is required"))?;
    Ok(to_json(
        &shared.decimals,
        &shared
            .caught_up_store()
            .await
            .ledger_history(&owner, asset, q.page())
            .await?,
    ))
}

async fn withdrawal_transaction(
    State(shared): AppState,
    P(id): P<u64>,
    JsonBody(body): JsonBody<TransactionRequest>,
) -> ApiResult {
    super::withdrawals::transaction(&shared, id, &body)
        .await
        .map(Json)
}

async fn withdrawals(State(shared): AppState, P(owner): P<String>) -> ApiResult {
    let owner = parse_owner(&owner)?;
    Ok(to_json(
        &shared.decimals,
        &shared.caught_up_store().await.withdrawals(&owner).await?,
    ))
}

async fn deposits(State(shared): AppState, P(tx): P<String>) -> ApiResult {
    let tx: [u8; 64] = hex::decode(&tx)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::new(ApiCode::InvalidRequest, "tx is not 64 bytes of hex"))?;
    let rows = shared.caught_up_store().await.deposits_by_tx(&tx).await?;
    if rows.is_empty() {
        return Err(ApiError::new(
            ApiCode::NotFound,
            "no deposit credited from this transaction",
        ));
    }
    let mut value = serde_json::json!({
        "tx": crate::model::to_hex(&tx),
        "status": "credited",
        "deposits": rows,
    });
    shared.decimals.annotate(&mut value);
    if let Some(serde_json::Value::Array(items)) = value.get_mut("deposits") {
        items.iter_mut().for_each(hex_wallets);
    }
    Ok(Json(value))
}

async fn settlement(State(shared): AppState, P((market, fill_id)): P<(u32, u64)>) -> ApiResult {
    let fill = shared
        .caught_up_store()
        .await
        .settlement(market, fill_id)
        .await?;
    found(&shared.decimals, fill, "fill")
}

async fn openapi_document() -> Json<serde_json::Value> {
    Json(openapi::document())
}
