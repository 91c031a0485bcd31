//! The WebSocket API (`/v1/ws`): public market-data channels, private wallet channels behind a
//! signed challenge, resumption from a position with no gap, heartbeats, order entry, and an
//! optional cancel-on-disconnect. The wire format is in docs/protocol.md ("WebSocket").
//!
//! Each connection is a task that takes the feed (only while it subscribes to something) and
//! one input queue — the client's messages, read ahead by a second task, and the answers of
//! its commands — and writes: its outbound messages queue in a bounded outbox
//! (`api/outbox.rs`) and go out together, one flush per burst. Woken for every feed batch, it
//! polls one queue, never the socket for input it does not have. A consumer that overflows the queue, does not take a write in time, or
//! falls behind the feed's broadcast is disconnected with the reason `slow_consumer`, so one
//! slow client never slows the feed for the others.

use super::error::{ApiCode, ApiError};
use super::intake::{self, Kind, SignedBody};
use super::limits::{quota, Slot};
use super::outbox::{Ended, Outbox};
use super::rest::{parse_json, parse_owner};
use super::Shared;
use crate::marketdata::{Interval, Item, Position, PrivateChannel, Topic};
use crate::model::{Command, Owner};
use crate::verify::Signed;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};

/// The 16-byte domain tag of the WebSocket authentication message.
pub const AUTH_TAG: [u8; 16] = *b"\xffkestrel-auth--1";

/// WebSocket settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// Messages a connection's outbound queue holds before the client counts as slow.
    pub queue: usize,
    /// Interval of server pings.
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            queue: 1_024,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
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

/// `GET /v1/ws`: checks the per-IP connection limit, then upgrades.
pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
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
    let max = shared.limits.config.ws_max_message_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        // tungstenite zero-fills the read buffer's free space before every read: at the
        // default 128 KiB that memset took 5 % of the API's CPU for ~500-byte order messages.
        // Larger messages still arrive, over several reads.
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| run(shared, socket, slot))
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

struct Connection {
    shared: Arc<Shared>,
    out: Outbox,
    /// Where the tasks that submit this connection's commands leave their answers.
    inputs: mpsc::Sender<Input>,
    nonce: [u8; 32],
    owner: Option<Owner>,
    user_slot: Option<Slot<Owner>>,
    subs: HashMap<Sub, Position>,
    /// The market-data broadcast, taken at the first subscription and let go when the last
    /// one ends: a connection that only enters orders is not woken by every feed batch.
    feed: Option<broadcast::Receiver<Arc<[Item]>>>,
    cancel_on_disconnect: Option<Command>,
    limiter: DefaultDirectRateLimiter,
}

async fn run(shared: Arc<Shared>, socket: WebSocket, ip_slot: Slot<IpAddr>) {
    let config = shared.ws;
    let (mut socket, stream) = socket.split();
    let (inputs, mut inbox) = mpsc::channel(config.queue.max(1));
    let reader = tokio::spawn(read_client(stream, inputs.clone()));
    let rate = shared.limits.config.ws_messages_per_sec;
    let mut conn = Connection {
        shared: shared.clone(),
        out: Outbox::new(config.queue),
        inputs,
        nonce: rand::random(),
        owner: None,
        user_slot: None,
        subs: HashMap::new(),
        feed: None,
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
    conn.out
        .json(serde_json::json!({"type": "challenge", "nonce": crate::model::to_hex(&conn.nonce)}));
    let ended = loop {
        if let Err(ended) = conn.out.flush(&mut socket, config.idle_timeout).await {
            break Some(ended);
        }
        tokio::select! {
            batch = next_batch(&mut conn.feed) => conn.on_feed(batch),
            input = inbox.recv() => {
                // Answers already waiting behind it are taken too, to go out in one flush.
                let mut next = input;
                let mut flow = Flow::Go;
                while let Some(input) = next.take() {
                    flow = conn.take(input, &mut last_seen).await;
                    if flow != Flow::Go {
                        break;
                    }
                    next = inbox.try_recv().ok();
                }
                if flow == Flow::End {
                    break None;
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > config.idle_timeout {
                    conn.out.close(1000, "idle_timeout");
                } else {
                    conn.out.send(Message::Ping(Default::default()));
                }
            }
            () = &mut stop => conn.out.close(1001, "shutdown"),
        }
    };
    if let Some(command) = conn.cancel_on_disconnect.take() {
        let result = intake::verified(&shared, command).await;
        tracing::info!(ok = result.is_ok(), "cancel on disconnect");
    }
    // The client ended it: what is still queued (and a close asked for meanwhile) goes out.
    let ended = match ended {
        Some(ended) => Some(ended),
        None => conn
            .out
            .flush(&mut socket, Duration::from_secs(2))
            .await
            .err(),
    };
    drop(conn);
    if let Some(reason) = ended.and_then(Ended::reason) {
        shared.metrics.ws_closed.with_label_values(&[reason]).inc();
    }
    // Read on until the client answers our close frame (or 2 s pass): closing a socket with
    // unread input makes the kernel send a reset, which can discard the close frame (and its
    // reason) before the client reads it.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(input) = inbox.recv().await {
            if matches!(input, Input::Client(Message::Close(_)) | Input::ClientGone) {
                break;
            }
        }
    })
    .await;
    reader.abort();
    shared.metrics.ws_connections.dec();
    drop(ip_slot);
}

/// What the connection's loop takes besides the feed, in one queue (one poll per wake-up).
enum Input {
    /// A client message, read ahead by [`read_client`].
    Client(Message),
    /// The client's side ended (it closed, or the socket failed).
    ClientGone,
    /// The answer to one of the connection's commands.
    Reply(Message),
}

/// What taking an input leaves the loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Take what else is waiting.
    Go,
    /// Flush before taking more: after a client message (as many answers as messages may be
    /// queued, one message's worth at a time), or when the outbox is closing.
    Flush,
    /// End the connection.
    End,
}

impl Connection {
    /// Takes one input.
    async fn take(&mut self, input: Input, last_seen: &mut Instant) -> Flow {
        match input {
            Input::Client(message) => {
                *last_seen = Instant::now();
                if self.on_message(message).await {
                    Flow::Flush
                } else {
                    Flow::End
                }
            }
            Input::ClientGone => Flow::End,
            Input::Reply(reply) => {
                if self.out.send(reply) {
                    Flow::Go
                } else {
                    Flow::Flush
                }
            }
        }
    }

    /// Handles one client message; false ends the connection.
    async fn on_message(&mut self, message: Message) -> bool {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .out
                    .error(&ApiError::new(ApiCode::InvalidRequest, "send JSON text"));
            }
            Message::Close(_) => return false,
            Message::Ping(_) | Message::Pong(_) => return true,
        };
        if self.limiter.check().is_err() {
            self.shared
                .metrics
                .rate_limited
                .with_label_values(&["ws"])
                .inc();
            return self.out.error(&ApiError::new(
                ApiCode::RateLimited,
                "too many messages on this connection",
            ));
        }
        let message: ClientMessage = match parse_json(text.as_bytes()) {
            Ok(m) => m,
            Err(e) => return self.out.error(&e),
        };
        let result = match message {
            ClientMessage::Ping => Ok(self.out.json(serde_json::json!({"type": "pong"}))),
            ClientMessage::Auth { owner, signature } => self.auth(&owner, &signature),
            ClientMessage::Subscribe { channels, resume } => self.subscribe(&channels, resume),
            ClientMessage::Unsubscribe { channels } => {
                for name in &channels {
                    if let Some(sub) = Sub::parse(name) {
                        self.subs.remove(&sub);
                    }
                }
                if self.subs.is_empty() {
                    self.feed = None;
                }
                Ok(self
                    .out
                    .json(serde_json::json!({"type": "unsubscribed", "channels": channels})))
            }
            ClientMessage::Place(r) => Ok(self.submit(Kind::Place, r)),
            ClientMessage::Cancel(r) => Ok(self.submit(Kind::Cancel, r)),
            ClientMessage::CancelAll(r) => Ok(self.submit(Kind::CancelAll, r)),
            ClientMessage::Withdraw(r) => Ok(self.submit(Kind::Withdraw, r)),
            ClientMessage::CancelOnDisconnect { message, signature } => {
                self.arm_cancel(message, signature).await
            }
        };
        match result {
            Ok(open) => open,
            Err(e) => self.out.error(&e),
        }
    }

    fn auth(&mut self, owner: &str, signature: &str) -> Result<bool, ApiError> {
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
        Ok(self.out.json(
            serde_json::json!({"type": "authenticated", "owner": crate::model::to_hex(&owner)}),
        ))
    }

    fn subscribe(
        &mut self,
        channels: &[String],
        resume: Option<Position>,
    ) -> Result<bool, ApiError> {
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
            if matches!(sub, Sub::Private(_)) && self.owner.is_none() {
                return Err(ApiError::new(
                    ApiCode::Unauthorized,
                    "private channels need auth",
                ));
            }
            subs.push(sub);
        }
        let books: Vec<u32> = subs
            .iter()
            .filter_map(|s| match s {
                Sub::Book(m) => Some(*m),
                _ => None,
            })
            .collect();
        // The receiver is taken before the attach: a batch sent in between is in both, and the
        // subscription's start position drops its copy from the receiver.
        if self.feed.is_none() {
            self.feed = Some(self.shared.market_data.receiver());
        }
        let attach = self.shared.market_data.attach(resume, &books);
        let mut open = self.out.json(serde_json::json!({
            "type": "subscribed",
            "channels": channels,
            "position": attach.position,
        }));
        let snapshots = match (resume, attach.replay) {
            (Some(_), Some(items)) => {
                for item in &items {
                    if open
                        && subs
                            .iter()
                            .any(|s| s.matches(&item.topic, self.owner.as_ref()))
                    {
                        open = self.out.send(Message::Text(item.text()));
                    }
                }
                false
            }
            (Some(_), None) => {
                open = open
                    && self.out.json(serde_json::json!({
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
                open = open
                    && self.out.json(serde_json::json!({
                        "type": "snapshot",
                        "channel": format!("book:{}", book.market),
                        "data": self.shared.decimals.json(book),
                    }));
            }
        }
        for sub in subs {
            self.subs.insert(sub, attach.position);
        }
        Ok(open)
    }

    fn submit(&self, kind: Kind, request: Request) -> bool {
        let shared = self.shared.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let body = SignedBody {
                message: request.message,
                signature: request.signature,
            };
            let reply = match intake::submit(&shared, kind, &body).await {
                // The same answer, decimal fields included, as REST gives the same command.
                Ok(accepted) => {
                    let id = request.id.unwrap_or(serde_json::Value::Null);
                    let result = accepted.answer(&shared.decimals);
                    format!(r#"{{"type":"result","id":{id},"ok":true,"result":{result}}}"#)
                }
                Err(error) => serde_json::json!({
                    "type": "result", "id": request.id, "ok": false, "error": error.to_json(),
                })
                .to_string(),
            };
            // Waits for room rather than dropping an answer: the connection drains replies
            // with every flush, and closing the connection ends the wait.
            let _ = inputs.send(Input::Reply(Message::Text(reply.into()))).await;
        });
        true
    }

    async fn arm_cancel(
        &mut self,
        message: Option<String>,
        signature: Option<String>,
    ) -> Result<bool, ApiError> {
        let owner = self.owner.ok_or_else(|| {
            ApiError::new(ApiCode::Unauthorized, "cancel-on-disconnect needs auth")
        })?;
        let (Some(message), Some(signature)) = (message, signature) else {
            self.cancel_on_disconnect = None;
            return Ok(self
                .out
                .json(serde_json::json!({"type": "cancel_on_disconnect", "armed": false})));
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
        Ok(self
            .out
            .json(serde_json::json!({"type": "cancel_on_disconnect", "armed": true})))
    }

    /// Queues what the feed delivered, and every batch already waiting behind it, so that
    /// they go out in one flush.
    fn on_feed(&mut self, mut batch: Result<Arc<[Item]>, RecvError>) {
        loop {
            match batch {
                Ok(items) => {
                    if !self.deliver(&items) {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => return self.out.close(1008, "slow_consumer"),
                Err(RecvError::Closed) => return self.out.close(1001, "shutdown"),
            }
            let Some(feed) = self.feed.as_mut() else {
                return;
            };
            batch = match feed.try_recv() {
                Ok(items) => Ok(items),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
        }
    }

    /// Queues the items of a live batch this connection subscribed to; false once closing.
    fn deliver(&mut self, items: &Arc<[Item]>) -> bool {
        let owner = self.owner.as_ref();
        for item in items.iter() {
            let wanted = self
                .subs
                .iter()
                .any(|(sub, start)| item.position > *start && sub.matches(&item.topic, owner));
            if wanted && !self.out.send(Message::Text(item.text())) {
                return false;
            }
        }
        true
    }
}

/// Reads the client's messages into the connection's inputs, on its own task: the
/// connection's loop, woken for every feed batch, then polls its queue instead of the socket
/// (each poll of the socket zero-fills the read buffer and re-registers for readiness).
/// Reading stops (and TCP pushes back) while the queue is full.
async fn read_client(mut stream: SplitStream<WebSocket>, inputs: mpsc::Sender<Input>) {
    while let Some(Ok(message)) = stream.next().await {
        if inputs.send(Input::Client(message)).await.is_err() {
            return;
        }
    }
    let _ = inputs.send(Input::ClientGone).await;
}

/// The next batch of the feed; never ready while the connection subscribes to nothing.
async fn next_batch(
    feed: &mut Option<broadcast::Receiver<Arc<[Item]>>>,
) -> Result<Arc<[Item]>, RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}
