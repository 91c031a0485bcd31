//! The connection task: connect, authenticate, arm cancel-on-disconnect, subscribe (resuming
//! after a reconnect), then read the feed, answer requests and watch the heartbeat until the
//! connection dies; then back off and start again.

use super::cursor::Cursor;
use super::types::{ApiError, BookSnapshot, Channel, Data, Position, Update};
use super::{auth_message, cancel_all_bytes, Command, Error, WsConfig, WsEvent};
use crate::rest::{hex, unhex};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Read buffer of the connection. tungstenite zero-fills the buffer's free space before every
/// read, including the one that finds nothing more to read: at its 128 KiB default that was
/// most of a subscriber's CPU per book delta (a profile of 10,000 subscribers: 40 % of the
/// machine in memset). Larger messages still arrive, over several reads.
const READ_BUFFER_BYTES: usize = 8 * 1024;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

type Reply = oneshot::Sender<Result<Value, Error>>;

/// How a connection ended.
enum End {
    /// The caller closed the client or dropped every handle or the event receiver.
    Stopped,
    /// Retrying cannot help (the router refused the wallet's authentication).
    Fatal(Error),
    /// The connection failed or broke; `established` says it got as far as subscribing.
    Lost { reason: String, established: bool },
}

fn lost(reason: impl std::fmt::Display) -> End {
    End::Lost {
        reason: reason.to_string(),
        established: false,
    }
}

struct Runner {
    config: WsConfig,
    events: mpsc::Sender<WsEvent>,
    commands: mpsc::Receiver<Command>,
    cursor: Cursor,
    pending: HashMap<u64, Reply>,
    next_id: u64,
    sessions: u64,
    /// Snapshots asked for while disconnected, requested once connected again.
    snapshots_due: Vec<u32>,
}

/// Runs connections until the client stops.
pub(super) async fn run(
    config: WsConfig,
    events: mpsc::Sender<WsEvent>,
    commands: mpsc::Receiver<Command>,
) {
    let mut runner = Runner {
        config,
        events,
        commands,
        cursor: Cursor::default(),
        pending: HashMap::new(),
        next_id: 0,
        sessions: 0,
        snapshots_due: Vec::new(),
    };
    let mut failures: u32 = 0;
    let error = loop {
        let end = runner.session().await;
        for (_, reply) in runner.pending.drain() {
            let _ = reply.send(Err(Error::Disconnected));
        }
        let (reason, established) = match end {
            End::Stopped => break None,
            End::Fatal(error) => break Some(error),
            End::Lost {
                reason,
                established,
            } => (reason, established),
        };
        if established {
            failures = 0;
        }
        if runner
            .config
            .max_reconnect_attempts
            .is_some_and(|max| failures >= max)
        {
            break Some(Error::GaveUp(failures));
        }
        let delay = runner.config.reconnect.delay(failures);
        failures = failures.saturating_add(1);
        let told = runner
            .events
            .send(WsEvent::Disconnected {
                reason,
                reconnect_in: delay,
            })
            .await;
        if told.is_err() || !runner.wait(delay).await {
            break None;
        }
    };
    let _ = runner.events.send(WsEvent::Closed(error)).await;
}

impl Runner {
    /// Waits `delay` before reconnecting, refusing requests meanwhile; false if the client
    /// stopped.
    async fn wait(&mut self, delay: std::time::Duration) -> bool {
        let until = later(delay);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                command = self.commands.recv() => match command {
                    Some(Command::Request { reply, .. }) => {
                        let _ = reply.send(Err(Error::Disconnected));
                    }
                    Some(Command::Resnapshot(market)) => self.snapshots_due.push(market),
                    Some(Command::Subscribe(channels)) => self.add(channels),
                    Some(Command::Unsubscribe(channels)) => self.remove(&channels),
                    Some(Command::Close) | None => return false,
                },
            }
        }
    }

    async fn emit(&self, event: WsEvent) -> Result<(), End> {
        self.events.send(event).await.map_err(|_| End::Stopped)
    }

    async fn session(&mut self) -> End {
        // Nagle off: an order or cancel is one small frame that must leave at once, not wait
        // for the server's delayed ACK of the previous one.
        let connect = tokio_tungstenite::connect_async_with_config(
            self.config.url.as_str(),
            Some(WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES)),
            true,
        );
        let mut socket = match timeout(self.config.connect_timeout, connect).await {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(e)) => return lost(format!("connect: {e}")),
            Err(_) => return lost("connect: timed out"),
        };
        let established = match self.handshake(&mut socket).await {
            Ok(()) => self.feed(&mut socket).await,
            Err(end) => end,
        };
        let _ = timeout(self.config.heartbeat_interval, socket.close(None)).await;
        established
    }

    /// Challenge, authentication, cancel-on-disconnect, subscription.
    async fn handshake(&mut self, socket: &mut Socket) -> Result<(), End> {
        let challenge = self.expect(socket, "challenge").await?;
        let nonce: [u8; 32] = challenge["nonce"]
            .as_str()
            .and_then(unhex)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| lost("challenge without a 32-byte nonce"))?;
        if let Some(auth) = self.config.auth.clone() {
            let owner = auth.signer.pubkey();
            let signature = auth
                .signer
                .sign_message(&auth_message(&auth.exchange, &owner, &nonce));
            self.send(
                socket,
                json!({"op": "auth", "owner": hex(owner.as_ref()), "signature": hex(&signature)}),
            )
            .await?;
            self.expect(socket, "authenticated").await?;
            if auth.cancel_on_disconnect {
                let bytes = cancel_all_bytes(&auth, u64::MAX);
                let signature = auth.signer.sign_message(&bytes);
                self.send(
                    socket,
                    json!({"op": "cancel_on_disconnect", "message": hex(&bytes), "signature": hex(&signature)}),
                )
                .await?;
                let armed = self.expect(socket, "cancel_on_disconnect").await?;
                self.emit(WsEvent::CancelOnDisconnect {
                    armed: armed["armed"].as_bool().unwrap_or(false),
                })
                .await?;
            }
        }
        let channels: Vec<String> = self.config.channels.iter().map(Channel::name).collect();
        let resume = self.cursor.resume();
        let mut request = json!({"op": "subscribe", "channels": channels});
        if let Some(position) = resume {
            request["resume"] = json!(position);
        }
        self.send(socket, request).await?;
        let subscribed = self.expect(socket, "subscribed").await?;
        let position: Position = serde_json::from_value(subscribed["position"].clone())
            .map_err(|e| lost(format!("subscribed: {e}")))?;
        if resume.is_none() {
            self.cursor.start(position);
        }
        self.sessions = self.sessions.saturating_add(1);
        self.emit(WsEvent::Connected {
            session: self.sessions,
            resumed: resume.is_some(),
        })
        .await
    }

    /// Reads until a message of `kind`, skipping others; an API error ends the connection.
    async fn expect(&mut self, socket: &mut Socket, kind: &str) -> Result<Value, End> {
        loop {
            let message = self.receive(socket).await?;
            if message["type"] == kind {
                return Ok(message);
            }
            if message["type"] == "error" {
                return Err(refused(api_error(&message)));
            }
        }
    }

    /// The next JSON text message, within the heartbeat timeout.
    async fn receive(&mut self, socket: &mut Socket) -> Result<Value, End> {
        loop {
            let next = timeout(self.config.heartbeat_timeout, socket.next()).await;
            let message = match next {
                Err(_) => return Err(lost("heartbeat timeout")),
                Ok(None) => return Err(lost("connection closed")),
                Ok(Some(Err(e))) => return Err(lost(e)),
                Ok(Some(Ok(message))) => message,
            };
            if let Some(value) = decode(message)? {
                return Ok(value);
            }
        }
    }

    async fn send(&self, socket: &mut Socket, value: Value) -> Result<(), End> {
        let message = Message::Text(value.to_string().into());
        match timeout(self.config.heartbeat_timeout, socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(lost(format!("send: {e}"))),
            Err(_) => Err(lost("send: timed out")),
        }
    }

    /// The subscribed connection's life: feed items, requests, heartbeats.
    async fn feed(&mut self, socket: &mut Socket) -> End {
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        let mut deadline = later(self.config.heartbeat_timeout);
        for market in std::mem::take(&mut self.snapshots_due) {
            if let Err(end) = self
                .on_command(socket, Some(Command::Resnapshot(market)))
                .await
            {
                return established(end);
            }
        }
        let ended = loop {
            let step = tokio::select! {
                biased;
                incoming = socket.next() => match incoming {
                    None => Err(lost("connection closed")),
                    Some(Err(e)) => Err(lost(e)),
                    Some(Ok(message)) => {
                        deadline = later(self.config.heartbeat_timeout);
                        match decode(message) {
                            Ok(Some(value)) => self.on_message(value).await,
                            Ok(None) => Ok(()),
                            Err(end) => Err(end),
                        }
                    }
                },
                command = self.commands.recv() => self.on_command(socket, command).await,
                _ = heartbeat.tick() => self.send(socket, json!({"op": "ping"})).await,
                () = tokio::time::sleep_until(deadline) => Err(lost("heartbeat timeout")),
            };
            if let Err(end) = step {
                break end;
            }
        };
        established(ended)
    }

    async fn on_command(
        &mut self,
        socket: &mut Socket,
        command: Option<Command>,
    ) -> Result<(), End> {
        match command {
            Some(Command::Request {
                op,
                mut fields,
                reply,
            }) => {
                self.next_id = self.next_id.wrapping_add(1);
                let id = self.next_id;
                self.pending.insert(id, reply);
                fields.insert("op".into(), op.into());
                fields.insert("id".into(), id.into());
                self.send(socket, serde_json::Value::Object(fields)).await
            }
            Some(Command::Resnapshot(market)) => {
                let channel = Channel::Book(market).name();
                self.send(socket, json!({"op": "subscribe", "channels": [channel]}))
                    .await
            }
            Some(Command::Subscribe(channels)) => {
                let names: Vec<String> = channels.iter().map(Channel::name).collect();
                self.add(channels);
                self.send(socket, json!({"op": "subscribe", "channels": names}))
                    .await
            }
            Some(Command::Unsubscribe(channels)) => {
                let names: Vec<String> = channels.iter().map(Channel::name).collect();
                self.remove(&channels);
                self.send(socket, json!({"op": "unsubscribe", "channels": names}))
                    .await
            }
            Some(Command::Close) | None => Err(End::Stopped),
        }
    }

    /// Adds channels to those subscribed on every connection.
    fn add(&mut self, channels: Vec<Channel>) {
        for channel in channels {
            if !self.config.channels.contains(&channel) {
                self.config.channels.push(channel);
            }
        }
    }

    /// Removes channels from those subscribed on every connection.
    fn remove(&mut self, channels: &[Channel]) {
        self.config.channels.retain(|c| !channels.contains(c));
    }

    async fn on_message(&mut self, message: Value) -> Result<(), End> {
        match message["type"].as_str().unwrap_or_default() {
            "event" => self.on_item(message).await,
            "snapshot" => match serde_json::from_value::<BookSnapshot>(message["data"].clone()) {
                Ok(snapshot) => self.emit(WsEvent::Snapshot(snapshot)).await,
                Err(e) => self.undecodable(format!("snapshot: {e}")).await,
            },
            "resync" => {
                let position = serde_json::from_value(message["position"].clone())
                    .map_err(|e| lost(format!("resync: {e}")))?;
                self.cursor.start(position);
                let reason = message["reason"].as_str().unwrap_or_default().to_owned();
                self.emit(WsEvent::Resync { reason }).await
            }
            "result" => {
                let reply = message["id"]
                    .as_u64()
                    .and_then(|id| self.pending.remove(&id));
                if let Some(reply) = reply {
                    let answer = if message["ok"] == true {
                        Ok(message["result"].clone())
                    } else {
                        Err(Error::Api(api_error(&message)))
                    };
                    let _ = reply.send(answer);
                }
                Ok(())
            }
            "error" => self.emit(WsEvent::ServerError(api_error(&message))).await,
            "cancel_on_disconnect" => {
                let armed = message["armed"].as_bool().unwrap_or(false);
                self.emit(WsEvent::CancelOnDisconnect { armed }).await
            }
            _ => Ok(()),
        }
    }

    async fn on_item(&mut self, message: Value) -> Result<(), End> {
        let name = message["channel"].as_str().unwrap_or_default();
        let Some(channel) = Channel::parse(name) else {
            return self.undecodable(format!("unknown channel {name}")).await;
        };
        let (Some(seq), Some(index)) = (message["seq"].as_u64(), message["index"].as_u64()) else {
            return self.undecodable("item without a position".to_owned()).await;
        };
        let position = Position {
            seq,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        };
        if !self.cursor.admit(position, name) {
            return Ok(());
        }
        let data = message["data"].clone();
        let data = match channel {
            Channel::Book(_) => serde_json::from_value(data).map(Data::Book),
            Channel::Trades(_) => serde_json::from_value(data).map(Data::Trade),
            Channel::Candles(..) => serde_json::from_value(data).map(Data::Candle),
            Channel::Fills => serde_json::from_value(data).map(Data::Fill),
            Channel::Orders => Ok(private(data, Data::Order)),
            Channel::Balances => Ok(private(data, Data::Balance)),
            Channel::Deposits => Ok(private(data, Data::Deposit)),
            Channel::Withdrawals => Ok(private(data, Data::Withdrawal)),
            Channel::Settlement => Ok(private(data, Data::Settlement)),
        };
        match data {
            Ok(data) => {
                self.emit(WsEvent::Update(Update {
                    channel,
                    position,
                    timestamp_ms: message["timestamp_ms"].as_u64().unwrap_or_default(),
                    data,
                }))
                .await
            }
            Err(e) => self.undecodable(format!("{name}: {e}")).await,
        }
    }

    async fn undecodable(&self, reason: String) -> Result<(), End> {
        self.emit(WsEvent::Undecodable { reason }).await
    }
}

/// A connection that got as far as subscribing ended this way.
fn established(end: End) -> End {
    match end {
        End::Lost { reason, .. } => End::Lost {
            reason,
            established: true,
        },
        other => other,
    }
}

/// The instant `delay` from now (a year at most, so absurd settings cannot overflow).
fn later(delay: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay.min(std::time::Duration::from_secs(365 * 86_400)))
        .unwrap_or(now)
}

/// A text message as JSON; `None` for control frames; a close frame ends the connection.
fn decode(message: Message) -> Result<Option<Value>, End> {
    match message {
        Message::Text(text) => Ok(serde_json::from_str(text.as_str()).ok()),
        Message::Close(frame) => Err(lost(format!(
            "closed by the server: {}",
            frame.map(|f| f.reason.to_string()).unwrap_or_default()
        ))),
        _ => Ok(None),
    }
}

/// A private update as `typed`, or as JSON when it is of a kind this SDK does not know.
fn private<T: serde::de::DeserializeOwned>(data: Value, typed: fn(T) -> Data) -> Data {
    match serde_json::from_value(data.clone()) {
        Ok(update) => typed(update),
        Err(_) => Data::Private(data),
    }
}

/// How a refusal during the handshake ends the connection: transient ones are retried, the
/// rest (bad authentication, unknown channel or market) stop the client.
fn refused(error: ApiError) -> End {
    if error.is_retryable() {
        lost(error)
    } else {
        End::Fatal(Error::Api(error))
    }
}

fn api_error(message: &Value) -> ApiError {
    serde_json::from_value(message["error"].clone()).unwrap_or_else(|_| ApiError {
        code: 0,
        error: "unknown".to_owned(),
        message: message.to_string(),
    })
}
