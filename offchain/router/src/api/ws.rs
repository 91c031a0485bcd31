//! The WebSocket API (`/v1/ws`): public market-data channels, private wallet channels behind a
//! signed challenge, resumption from a position with no gap, heartbeats, order entry, and an
//! optional cancel-on-disconnect. The wire format is in docs/protocol.md ("WebSocket").
//!
//! The handshake is answered here and the TCP socket taken back from hyper (`api/server.rs`):
//! its writing half goes to a `Writer` (`api/socket.rs`) shared by everything that writes to
//! the connection, its reading half to tungstenite, read by the connection's task. That task
//! handles the client's messages and pings, and writes what the socket could not take at once;
//! it is not woken by the feed: the fan-out threads (`api/fanout.rs`) write feed items to the
//! socket themselves, and the tasks answering commands queue their answers on the writer.
//!
//! A consumer whose socket stays full until its queue reaches its bound, or that takes
//! nothing for the idle timeout, is disconnected with the reason `slow_consumer`, so one slow
//! client never slows the feed for the others.

use super::error::{ApiCode, ApiError};
use super::fanout::{Membership, Route};
use super::intake::{self, Kind, ReplaceBody, SignedBody};
use super::limits::{quota, Slot};
use super::rest::{parse_json, parse_owner};
use super::socket::{Ended, Socket, Writer};
use super::Shared;
use crate::marketdata::{Interval, Position, PrivateChannel, Topic};
use crate::model::{Command, Owner};
use crate::verify::Signed;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// The 16-byte domain tag of the WebSocket authentication message.
pub const AUTH_TAG: [u8; 16] = *b"\xffkestrel-auth--1";

/// WebSocket settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// Frames the socket has not taken that a connection may hold before the client counts
    /// as slow.
    pub queue: usize,
    /// Interval of server pings.
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed, and so is
    /// one whose socket takes nothing for this long.
    pub idle_timeout: Duration,
    /// Threads writing the feed to the connections; 0 is one per core.
    pub fanout_threads: usize,
    /// The kernel's send buffer of each connection, in bytes (`SO_SNDBUF`, which Linux
    /// doubles); `None` leaves it to the kernel's autotuning. Bounds the kernel memory a
    /// client that stops reading holds before its queue fills.
    pub send_buffer_bytes: Option<usize>,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            queue: 1_024,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            fanout_threads: 0,
            send_buffer_bytes: None,
        }
    }
}

/// The bytes a wallet signs to authenticate a connection.
pub fn auth_message(exchange: &[u8; 32], owner: &Owner, nonce: &[u8; 32]) -> [u8; 112] {
    let mut out = [0u8; 112];
    out[..16].copy_from_slice(&AUTH_TAG);
    out[16..48].copy_from_slice(exchange);
    out[48..80].copy_from_slice(owner);
    out[80..].copy_from_slice(nonce);
    out
}

/// `GET /v1/ws`: checks the handshake and the per-IP connection limit, then upgrades.
pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: axum::extract::Request,
) -> Response {
    let (Some(accept), Some(on_upgrade)) = (
        accept_key(request.headers()),
        request
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>(),
    ) else {
        return ApiError::new(ApiCode::InvalidRequest, "expected a WebSocket upgrade")
            .into_response();
    };
    if *shared.shutdown.borrow() {
        return ApiError::new(ApiCode::Unavailable, "shutting down").into_response();
    }
    let Some(slot) = shared.limits.ws_ip_slot(peer.ip()) else {
        return ApiError::new(
            ApiCode::TooManyConnections,
            "too many connections from this address",
        )
        .into_response();
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => return tracing::debug!(%error, "upgrade failed"),
        };
        // Always this type: every connection is served by `api/server.rs`.
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => run(shared, parts.io.into_inner(), parts.read_buf.to_vec(), slot).await,
            Err(_) => tracing::error!("upgraded connection is not a TCP stream"),
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response()
}

/// The `Sec-WebSocket-Accept` answer to a valid version-13 upgrade request (RFC 6455, 4.2.1).
fn accept_key(headers: &HeaderMap) -> Option<HeaderValue> {
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::CONNECTION, "upgrade")
        || !has_token(header::UPGRADE, "websocket")
        || headers.get(header::SEC_WEBSOCKET_VERSION)? != "13"
    {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok()
}

/// Read buffer of a WebSocket connection.
const READ_BUFFER_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sub {
    Book(u32),
    Trades(u32),
    Candles(u32, Interval),
    Private(PrivateChannel),
}

impl Sub {
    fn parse(name: &str) -> Option<Sub> {
        if let Some(c) = PrivateChannel::ALL.into_iter().find(|c| c.name() == name) {
            return Some(Sub::Private(c));
        }
        let mut parts = name.split(':');
        let kind = parts.next()?;
        let market: u32 = parts.next()?.parse().ok()?;
        let sub = match (kind, parts.next()) {
            ("book", None) => Sub::Book(market),
            ("trades", None) => Sub::Trades(market),
            ("candles", Some(i)) => Sub::Candles(market, Interval::parse(i)?),
            _ => return None,
        };
        parts.next().is_none().then_some(sub)
    }

    fn market(self) -> Option<u32> {
        match self {
            Sub::Book(m) | Sub::Trades(m) | Sub::Candles(m, _) => Some(m),
            Sub::Private(_) => None,
        }
    }

    /// The fan-out route of the channel; `None` for a private channel before auth.
    fn route(self, owner: Option<Owner>) -> Option<Route> {
        Some(match self {
            Sub::Book(m) => Route::Book(m),
            Sub::Trades(m) => Route::Trades(m),
            Sub::Candles(m, i) => Route::Candles(m, i),
            Sub::Private(c) => Route::Private(c, owner?),
        })
    }

    fn matches(self, topic: &Topic, owner: Option<&Owner>) -> bool {
        match (self, topic) {
            (Sub::Book(a), Topic::Book(b)) | (Sub::Trades(a), Topic::Trades(b)) => a == *b,
            (Sub::Candles(a, i), Topic::Candles(b, j)) => a == *b && i == *j,
            (Sub::Private(a), Topic::Private(b, owners)) => {
                a == *b && owner.is_some_and(|o| owners.contains(o))
            }
            _ => false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum ClientMessage {
    Ping,
    Auth {
        owner: String,
        signature: String,
    },
    Subscribe {
        channels: Vec<String>,
        resume: Option<Position>,
    },
    Unsubscribe {
        channels: Vec<String>,
    },
    Place(Request),
    Cancel(Request),
    CancelAll(Request),
    Withdraw(Request),
    Replace(ReplaceRequest),
    CancelOnDisconnect {
        message: Option<String>,
        signature: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
struct Request {
    id: Option<serde_json::Value>,
    message: String,
    signature: String,
}

/// A replace: the signed cancel of the old order and the signed new order, as `/v1/replace`
/// takes them.
#[derive(Debug, Deserialize)]
struct ReplaceRequest {
    id: Option<serde_json::Value>,
    cancel: SignedBody,
    order: SignedBody,
}

/// A signed command sent over the socket.
enum Entry {
    Signed(Kind, SignedBody),
    Replace(ReplaceBody),
}

struct Connection {
    shared: Arc<Shared>,
    writer: Arc<Writer>,
    /// The connection's routes in the fan-out.
    membership: Membership,
    nonce: [u8; 32],
    owner: Option<Owner>,
    user_slot: Option<Slot<Owner>>,
    cancel_on_disconnect: Option<Command>,
    limiter: DefaultDirectRateLimiter,
}

/// How the connection's loop ended.
enum Exit {
    /// The writer ended it (our close frame went out, or the socket failed or stalled).
    Writer(Ended),
    /// The client sent its close frame.
    ClientClosed,
    /// The client's side is gone without a close frame.
    ClientGone,
}

async fn run(shared: Arc<Shared>, tcp: TcpStream, read_ahead: Vec<u8>, ip_slot: Slot<IpAddr>) {
    let config = shared.ws;
    if let Some(bytes) = config.send_buffer_bytes {
        if let Err(error) = socket2::SockRef::from(&tcp).set_send_buffer_size(bytes) {
            tracing::debug!(%error, "SO_SNDBUF not set");
        }
    }
    let (read, write) = tcp.into_split();
    let writer = Writer::new(write, config.queue, config.idle_timeout);
    let max = shared.limits.config.ws_max_message_bytes;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        // tungstenite zero-fills the read buffer's free space before every read: at the
        // default 128 KiB that memset took 5 % of the API's CPU for ~500-byte order messages.
        // Larger messages still arrive, over several reads.
        .read_buffer_size(READ_BUFFER_BYTES);
    let socket = Socket {
        read,
        writer: writer.clone(),
    };
    let mut ws =
        WebSocketStream::from_partially_read(socket, read_ahead, Role::Server, Some(ws_config))
            .await;
    let rate = shared.limits.config.ws_messages_per_sec;
    let mut conn = Connection {
        shared: shared.clone(),
        membership: shared.fanout.join(writer.clone()),
        writer: writer.clone(),
        nonce: rand::random(),
        owner: None,
        user_slot: None,
        cancel_on_disconnect: None,
        limiter: RateLimiter::direct(quota(rate, rate)),
    };
    shared.metrics.ws_connections.inc();
    let mut shutdown = shared.shutdown.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    let mut ping = tokio::time::interval(config.ping_interval);
    let mut last_seen = Instant::now();
    writer.json(
        &serde_json::json!({"type": "challenge", "nonce": crate::model::to_hex(&conn.nonce)}),
    );
    let exit = loop {
        tokio::select! {
            ended = writer.drive() => break Exit::Writer(ended),
            message = ws.next() => match message {
                Some(Ok(Message::Close(_))) => break Exit::ClientClosed,
                Some(Ok(message)) => {
                    last_seen = Instant::now();
                    conn.on_message(message).await;
                }
                Some(Err(_)) | None => break Exit::ClientGone,
            },
            _ = ping.tick() => {
                if last_seen.elapsed() > config.idle_timeout {
                    writer.close(1000, "idle_timeout");
                } else {
                    writer.ping();
                }
            }
            () = &mut stop => writer.close(1001, "shutdown"),
        }
    };
    // Out of the fan-out before anything is waited for.
    let cancel_on_disconnect = conn.cancel_on_disconnect.take();
    drop(conn);
    if let Some(command) = cancel_on_disconnect {
        let result = intake::verified(&shared, command).await;
        tracing::info!(ok = result.is_ok(), "cancel on disconnect");
    }
    match exit {
        Exit::Writer(ended) => {
            if let Some(reason) = ended.reason() {
                shared.metrics.ws_closed.with_label_values(&[reason]).inc();
            }
            // Read on until the client answers our close frame (or 2 s pass): closing a
            // socket with unread input makes the kernel send a reset, which can discard the
            // close frame (and its reason) before the client reads it.
            if matches!(ended, Ended::Closed(_)) {
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while let Some(Ok(message)) = ws.next().await {
                        if matches!(message, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
            }
        }
        Exit::ClientClosed => {
            // What was queued before the client's close goes out, then tungstenite's answer.
            writer.closed_by_client();
            let _ = ws.flush().await;
            let _ = tokio::time::timeout(CLOSE_WAIT, writer.drive()).await;
        }
        Exit::ClientGone => {}
    }
    shared.metrics.ws_connections.dec();
    drop(ip_slot);
}

/// How long the end of a close handshake is waited for.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

impl Connection {
    /// Handles one client message (the loop takes close frames itself).
    async fn on_message(&mut self, message: Message) {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                self.writer
                    .error(&ApiError::new(ApiCode::InvalidRequest, "send JSON text"));
                return;
            }
            Message::Close(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return,
        };
        if self.limiter.check().is_err() {
            self.shared
                .metrics
                .rate_limited
                .with_label_values(&["ws"])
                .inc();
            self.writer.error(&ApiError::new(
                ApiCode::RateLimited,
                "too many messages on this connection",
            ));
            return;
        }
        let message: ClientMessage = match parse_json(text.as_bytes()) {
            Ok(m) => m,
            Err(e) => {
                self.writer.error(&e);
                return;
            }
        };
        let result = match message {
            ClientMessage::Ping => {
                self.writer.json(&serde_json::json!({"type": "pong"}));
                Ok(())
            }
            ClientMessage::Auth { owner, signature } => self.auth(&owner, &signature),
            ClientMessage::Subscribe { channels, resume } => self.subscribe(&channels, resume),
            ClientMessage::Unsubscribe { channels } => {
                self.unsubscribe(&channels);
                Ok(())
            }
            ClientMessage::Place(r) => self.submit_signed(Kind::Place, r),
            ClientMessage::Cancel(r) => self.submit_signed(Kind::Cancel, r),
            ClientMessage::CancelAll(r) => self.submit_signed(Kind::CancelAll, r),
            ClientMessage::Withdraw(r) => self.submit_signed(Kind::Withdraw, r),
            ClientMessage::Replace(r) => {
                let body = ReplaceBody {
                    cancel: r.cancel,
                    order: r.order,
                };
                self.submit(r.id, Entry::Replace(body));
                Ok(())
            }
            ClientMessage::CancelOnDisconnect { message, signature } => {
                self.arm_cancel(message, signature).await
            }
        };
        if let Err(e) = result {
            self.writer.error(&e);
        }
    }

    fn auth(&mut self, owner: &str, signature: &str) -> Result<(), ApiError> {
        if self.owner.is_some() {
            return Err(ApiError::new(
                ApiCode::InvalidRequest,
                "already authenticated",
            ));
        }
        let owner = parse_owner(owner)?;
        let failed = || ApiError::new(ApiCode::Unauthorized, "authentication failed");
        let signature: [u8; 64] = hex::decode(signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(failed)?;
        let message = auth_message(&self.shared.rules.exchange.to_bytes(), &owner, &self.nonce);
        VerifyingKey::from_bytes(&owner)
            .and_then(|key| key.verify_strict(&message, &Signature::from_bytes(&signature)))
            .map_err(|_| failed())?;
        let slot = self.shared.limits.ws_user_slot(owner).ok_or_else(|| {
            ApiError::new(
                ApiCode::TooManyConnections,
                "too many connections for this wallet",
            )
        })?;
        self.owner = Some(owner);
        self.user_slot = Some(slot);
        self.writer.json(
            &serde_json::json!({"type": "authenticated", "owner": crate::model::to_hex(&owner)}),
        );
        Ok(())
    }

    fn subscribe(&mut self, channels: &[String], resume: Option<Position>) -> Result<(), ApiError> {
        let mut subs = Vec::with_capacity(channels.len());
        for name in channels {
            let sub = Sub::parse(name).ok_or_else(|| {
                ApiError::new(ApiCode::InvalidRequest, format!("unknown channel {name}"))
            })?;
            if let Some(m) = sub.market() {
                if !self.shared.rules.markets.iter().any(|s| s.index == m) {
                    return Err(ApiError::reject(crate::reject::Reject::UnknownMarket, None));
                }
            }
            let route = sub.route(self.owner).ok_or_else(|| {
                ApiError::new(ApiCode::Unauthorized, "private channels need auth")
            })?;
            subs.push((sub, route));
        }
        let books: Vec<u32> = subs
            .iter()
            .filter_map(|(s, _)| match s {
                Sub::Book(m) => Some(*m),
                _ => None,
            })
            .collect();
        // The shard is held from the attach until the routes are joined: its thread delivers
        // nothing to this connection in between, and afterwards only items after the attach
        // position, behind the answer and snapshots queued here.
        let mut routes = self.membership.lock();
        let attach = self.shared.market_data.attach(resume, &books);
        let writer = &self.writer;
        writer.json(&serde_json::json!({
            "type": "subscribed",
            "channels": channels,
            "position": attach.position,
        }));
        let snapshots = match (resume, attach.replay) {
            (Some(_), Some(items)) => {
                for item in &items {
                    if subs
                        .iter()
                        .any(|(s, _)| s.matches(&item.topic, self.owner.as_ref()))
                    {
                        writer.text(item.text());
                    }
                }
                false
            }
            (Some(_), None) => {
                writer.json(&serde_json::json!({
                    "type": "resync",
                    "reason": "resume_position_too_old",
                    "position": attach.position,
                }));
                true
            }
            (None, _) => true,
        };
        if snapshots {
            for book in &attach.books {
                writer.json(&serde_json::json!({
                    "type": "snapshot",
                    "channel": format!("book:{}", book.market),
                    "data": self.shared.decimals.json(book),
                }));
            }
        }
        for (_, route) in subs {
            routes.add(route, attach.position);
        }
        Ok(())
    }

    fn unsubscribe(&mut self, channels: &[String]) {
        let mut routes = self.membership.lock();
        for name in channels {
            if let Some(route) = Sub::parse(name).and_then(|sub| sub.route(self.owner)) {
                routes.remove(route);
            }
        }
        drop(routes);
        self.writer
            .json(&serde_json::json!({"type": "unsubscribed", "channels": channels}));
    }

    fn submit_signed(&self, kind: Kind, request: Request) -> Result<(), ApiError> {
        let body = SignedBody {
            message: request.message,
            signature: request.signature,
        };
        self.submit(request.id, Entry::Signed(kind, body));
        Ok(())
    }

    /// Submits a signed command; its answer is written once it is durable (or refused).
    fn submit(&self, id: Option<serde_json::Value>, entry: Entry) {
        let shared = self.shared.clone();
        let writer = self.writer.clone();
        tokio::spawn(async move {
            let result = match &entry {
                Entry::Signed(kind, body) => intake::submit(&shared, *kind, body).await,
                Entry::Replace(body) => intake::submit_replace(&shared, body).await,
            };
            let reply = match result {
                // The same answer, decimal fields included, as REST gives the same command.
                Ok(accepted) => {
                    let id = id.unwrap_or(serde_json::Value::Null);
                    let result = accepted.answer(&shared.decimals);
                    format!(r#"{{"type":"result","id":{id},"ok":true,"result":{result}}}"#)
                }
                Err(error) => serde_json::json!({
                    "type": "result", "id": id, "ok": false, "error": error.to_json(),
                })
                .to_string(),
            };
            writer.text(&reply);
        });
    }

    async fn arm_cancel(
        &mut self,
        message: Option<String>,
        signature: Option<String>,
    ) -> Result<(), ApiError> {
        let owner = self.owner.ok_or_else(|| {
            ApiError::new(ApiCode::Unauthorized, "cancel-on-disconnect needs auth")
        })?;
        let (Some(message), Some(signature)) = (message, signature) else {
            self.cancel_on_disconnect = None;
            self.writer
                .json(&serde_json::json!({"type": "cancel_on_disconnect", "armed": false}));
            return Ok(());
        };
        let signed = intake::parse(Kind::CancelAll, &SignedBody { message, signature })?;
        let Signed::CancelAll(bytes, sig) = signed else {
            return Err(ApiError::new(
                ApiCode::InvalidRequest,
                "expected a cancel-all",
            ));
        };
        let command = self
            .shared
            .pool
            .verify(Signed::CancelAll(bytes, sig))
            .await
            .map_err(|_| ApiError::new(ApiCode::Unavailable, "shutting down"))?
            .map_err(|r| ApiError::reject(r, None))?;
        match &command {
            Command::CancelAll(c) if c.owner.to_bytes() == owner => {}
            _ => {
                return Err(ApiError::new(
                    ApiCode::Unauthorized,
                    "the cancel-all must be signed by the authenticated wallet",
                ))
            }
        }
        self.cancel_on_disconnect = Some(command);
        self.writer
            .json(&serde_json::json!({"type": "cancel_on_disconnect", "armed": true}));
        Ok(())
    }
}
