//! A WebSocket client of the router's feed and order entry (`GET /v1/ws`, docs/protocol.md).
//!
//! [`WsClient::connect`] starts a background task that owns the connection and hands typed
//! [`WsEvent`]s to the caller through a channel. The task:
//!
//! - authenticates with the router's signed challenge when [`WsConfig::auth`] is set, so the
//!   private channels (orders, fills, balances, deposits, withdrawals, settlement) can be read;
//! - optionally arms the router's cancel-on-disconnect with a pre-signed cancel-all;
//! - subscribes to [`WsConfig::channels`] (plus those added later with
//!   [`WsClient::subscribe`]) and, after a reconnect, resubscribes with the last
//!   complete feed position so the router replays exactly what was missed: no gap and no
//!   duplicate. When the router can no longer resume it says so and the client reports
//!   [`WsEvent::Resync`], followed by fresh book snapshots;
//! - reconnects with capped exponential backoff and jitter ([`Backoff`]);
//! - sends a heartbeat every [`WsConfig::heartbeat_interval`] and declares the connection dead
//!   when nothing at all arrives for [`WsConfig::heartbeat_timeout`].
//!
//! Orders, cancels, replacements and cancel-alls can be sent over the same connection
//! ([`WsClient::place`], [`WsClient::replace`]).
//! Nothing here panics; failures are [`Error`]s or events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kestrel_sdk::ws::Error> {
//! use kestrel_sdk::book::L2Book;
//! use kestrel_sdk::ws::{Channel, Data, WsClient, WsConfig, WsEvent};
//! let config = WsConfig::new("ws://127.0.0.1:8080/v1/ws").subscribe(Channel::Book(0));
//! let (_client, mut events) = WsClient::connect(config)?;
//! let mut book = L2Book::new(0);
//! while let Some(event) = events.recv().await {
//!     match event {
//!         WsEvent::Snapshot(snapshot) => book.apply_snapshot(&snapshot).unwrap_or_default(),
//!         WsEvent::Update(update) => {
//!             if let Data::Book(delta) = update.data {
//!                 let _ = book.apply_delta(&delta);
//!             }
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod cursor;
mod private;
mod session;
mod types;

pub use private::{BalanceUpdate, DepositUpdate, OrderUpdate, SettlementUpdate, WithdrawalUpdate};
pub use types::{
    ApiError, BookDelta, BookSnapshot, Candle, Channel, Data, Fill, Level, Position, Trade, Update,
    CANDLE_INTERVALS,
};

use crate::backoff::Backoff;
use crate::order::SignedOrder;
use crate::protocol::{Cancel, CancelAll, CancelSide, ALL_MARKETS};
use crate::rest::hex;
use crate::signer::OrderSigner;
use solana_sdk::pubkey::Pubkey;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The 16-byte domain tag of the WebSocket authentication message.
pub const AUTH_TAG: [u8; 16] = *b"\xffkestrel-auth--1";

/// The 112 bytes a wallet signs to answer the router's challenge `nonce` for `exchange`.
pub fn auth_message(exchange: &Pubkey, owner: &Pubkey, nonce: &[u8; 32]) -> [u8; 112] {
    let mut out = [0u8; 112];
    let bytes = AUTH_TAG
        .iter()
        .chain(exchange.as_ref())
        .chain(owner.as_ref())
        .chain(nonce);
    for (slot, byte) in out.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    out
}

/// WebSocket client errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// [`WsClient::connect`] was called outside a Tokio runtime.
    #[error("no Tokio runtime to run the connection on")]
    NoRuntime,
    /// The configuration cannot work (e.g. a private channel without authentication).
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The router refused a request, or refused the connection's authentication or
    /// subscription for a reason retrying cannot cure.
    #[error("{0}")]
    Api(ApiError),
    /// The connection was lost before the router answered: the request's outcome is unknown
    /// (look it up over REST, or rely on the signed nonce when sending it again).
    #[error("disconnected before the answer")]
    Disconnected,
    /// The client has stopped (closed, or gave up reconnecting).
    #[error("the client has stopped")]
    Stopped,
    /// Reconnecting failed this many times in a row; the client gave up.
    #[error("gave up after {0} failed connection attempts")]
    GaveUp(u32),
}

/// Authentication of the connection as a wallet.
#[derive(Clone)]
pub struct WsAuth {
    /// Signs the challenge (and, over this client, cancels and cancel-alls).
    pub signer: Arc<dyn OrderSigner + Send + Sync>,
    /// The exchange the deployment runs (see [`Deployment::exchange`](crate::Deployment)).
    pub exchange: Pubkey,
    /// Arms the router's cancel-on-disconnect on every connection: a cancel-all of every
    /// order of the wallet that the router submits as soon as the connection closes.
    pub cancel_on_disconnect: bool,
}

impl std::fmt::Debug for WsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsAuth")
            .field("owner", &self.signer.pubkey())
            .field("exchange", &self.exchange)
            .field("cancel_on_disconnect", &self.cancel_on_disconnect)
            .finish()
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// The feed's URL, e.g. `ws://127.0.0.1:8080/v1/ws`.
    pub url: String,
    /// Channels subscribed on every connection.
    pub channels: Vec<Channel>,
    /// Authentication, needed for private channels and order entry.
    pub auth: Option<WsAuth>,
    /// Delays between reconnection attempts.
    pub reconnect: Backoff,
    /// Consecutive failed attempts after which the client gives up (`None`: never).
    pub max_reconnect_attempts: Option<u32>,
    /// How often the client sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// A connection on which nothing arrives for this long is dead and is replaced.
    pub heartbeat_timeout: Duration,
    /// Limit on opening a connection (TCP + WebSocket handshake).
    pub connect_timeout: Duration,
    /// Events buffered for the caller; when full the client stops reading (the router then
    /// drops the connection as a slow consumer and the client resumes where it was).
    pub event_buffer: usize,
}

impl WsConfig {
    /// Defaults for the feed at `url`: no channels, no authentication, reconnect for ever
    /// (100 ms doubling to 10 s, jittered), heartbeat every 5 s, dead after 15 s of silence.
    pub fn new(url: impl Into<String>) -> WsConfig {
        WsConfig {
            url: url.into(),
            channels: Vec::new(),
            auth: None,
            reconnect: Backoff::default(),
            max_reconnect_attempts: None,
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            event_buffer: 1_024,
        }
    }

    /// Adds a channel.
    pub fn subscribe(mut self, channel: Channel) -> WsConfig {
        if !self.channels.contains(&channel) {
            self.channels.push(channel);
        }
        self
    }

    /// Authenticates as `signer`'s wallet on `exchange`.
    pub fn auth(
        mut self,
        signer: Arc<dyn OrderSigner + Send + Sync>,
        exchange: Pubkey,
        cancel_on_disconnect: bool,
    ) -> WsConfig {
        self.auth = Some(WsAuth {
            signer,
            exchange,
            cancel_on_disconnect,
        });
        self
    }
}

/// What the client tells the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    /// A connection is authenticated and subscribed. `session` counts connections from 1;
    /// `resumed` says the feed continues exactly after the last item delivered.
    Connected {
        /// Connection number.
        session: u64,
        /// Whether this connection resumed the previous one's feed.
        resumed: bool,
    },
    /// A book snapshot: replace the local book (see [`crate::book::L2Book`]).
    Snapshot(BookSnapshot),
    /// A feed item, delivered once, in order.
    Update(Update),
    /// The router could not resume from the last position: items were missed. Book snapshots
    /// follow; private history must be read over REST.
    Resync {
        /// The router's reason.
        reason: String,
    },
    /// The router armed (or disarmed) cancel-on-disconnect for this connection.
    CancelOnDisconnect {
        /// Whether it is armed.
        armed: bool,
    },
    /// The router refused something that was not a request (a subscription, a heartbeat).
    ServerError(ApiError),
    /// A message the client could not decode; it was skipped.
    Undecodable {
        /// Why.
        reason: String,
    },
    /// The connection was lost; the client reconnects after `reconnect_in`.
    Disconnected {
        /// What happened.
        reason: String,
        /// Delay before the next attempt.
        reconnect_in: Duration,
    },
    /// The client has stopped for good: closed by the caller (`None`) or after a fatal error.
    Closed(Option<Error>),
}

/// A request from a [`WsClient`] handle to the connection task.
#[derive(Debug)]
enum Command {
    /// An order-entry message: `op`, an id the task assigns, and `fields`.
    Request {
        op: &'static str,
        fields: serde_json::Map<String, serde_json::Value>,
        reply: oneshot::Sender<Result<serde_json::Value, Error>>,
    },
    Resnapshot(u32),
    Subscribe(Vec<Channel>),
    Unsubscribe(Vec<Channel>),
    Close,
}

/// A handle on the connection task. Cheap to clone; the task stops when every handle is
/// dropped or [`WsClient::close`] is called.
#[derive(Debug, Clone)]
pub struct WsClient {
    commands: mpsc::Sender<Command>,
    auth: Option<WsAuth>,
}

impl WsClient {
    /// Starts the connection task on the current Tokio runtime; events arrive on the returned
    /// receiver.
    pub fn connect(config: WsConfig) -> Result<(WsClient, mpsc::Receiver<WsEvent>), Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        if config.auth.is_none() && config.channels.iter().any(Channel::is_private) {
            return Err(Error::Config("private channels need auth"));
        }
        let (events_tx, events) = mpsc::channel(config.event_buffer.max(1));
        let (commands, commands_rx) = mpsc::channel(64);
        let auth = config.auth.clone();
        runtime.spawn(session::run(config, events_tx, commands_rx));
        Ok((WsClient { commands, auth }, events))
    }

    async fn request(
        &self,
        op: &'static str,
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<serde_json::Value, Error> {
        self.send_request(op, signed_fields(message, signature))
            .await
    }

    async fn send_request(
        &self,
        op: &'static str,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request { op, fields, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    fn signer(&self) -> Result<&WsAuth, Error> {
        self.auth
            .as_ref()
            .ok_or(Error::Config("cancels over the WebSocket need auth"))
    }

    /// Places a signed order; the router's result (`seq`, `order_id`, `events`) once durable.
    ///
    /// The answer travels behind the feed items that precede it, so awaiting it from the loop
    /// that reads the events only works while [`WsConfig::event_buffer`] can hold what arrives
    /// meanwhile; a busy caller sends from another task.
    pub async fn place(&self, order: &SignedOrder) -> Result<serde_json::Value, Error> {
        self.request("place", &order.bytes(), &order.signature)
            .await
    }

    /// Cancels the authenticated wallet's order `order_nonce` on `market`.
    pub async fn cancel(&self, market: u32, order_nonce: u64) -> Result<serde_json::Value, Error> {
        let auth = self.signer()?;
        let bytes = Cancel {
            exchange: auth.exchange,
            owner: auth.signer.pubkey(),
            market_index: market,
            order_nonce,
            expiry: 0,
        }
        .encode();
        let signature = auth.signer.sign_message(&bytes);
        self.request("cancel", &bytes, &signature).await
    }

    /// Moves the authenticated wallet's resting order `old_nonce` to the terms of `order` (a
    /// fresh nonce; the same market, side, order type, self-trade mode and client order id)
    /// in one step; the router's result once durable, as `POST /v1/replace` answers.
    pub async fn replace(
        &self,
        old_nonce: u64,
        order: &SignedOrder,
    ) -> Result<serde_json::Value, Error> {
        let auth = self.signer()?;
        let cancel = Cancel {
            exchange: auth.exchange,
            owner: auth.signer.pubkey(),
            market_index: order.order.market_index,
            order_nonce: old_nonce,
            expiry: 0,
        }
        .encode();
        let cancel_signature = auth.signer.sign_message(&cancel);
        let mut fields = serde_json::Map::new();
        fields.insert(
            "cancel".into(),
            signed_fields(&cancel, &cancel_signature).into(),
        );
        fields.insert(
            "order".into(),
            signed_fields(&order.bytes(), &order.signature).into(),
        );
        self.send_request("replace", fields).await
    }

    /// Cancels every order of the authenticated wallet (all markets, both sides) with a nonce
    /// below `up_to_nonce`.
    pub async fn cancel_all(&self, up_to_nonce: u64) -> Result<serde_json::Value, Error> {
        let auth = self.signer()?;
        let bytes = cancel_all_bytes(auth, up_to_nonce);
        let signature = auth.signer.sign_message(&bytes);
        self.request("cancel_all", &bytes, &signature).await
    }

    /// Asks for a fresh snapshot of `market`'s book (after a [`crate::book::BookError::Gap`]).
    pub async fn resnapshot(&self, market: u32) -> Result<(), Error> {
        self.commands
            .send(Command::Resnapshot(market))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Adds channels, now and on every later connection. A new book channel starts with a
    /// snapshot; other new channels start with the next item.
    pub async fn subscribe(&self, channels: &[Channel]) -> Result<(), Error> {
        if self.auth.is_none() && channels.iter().any(Channel::is_private) {
            return Err(Error::Config("private channels need auth"));
        }
        self.commands
            .send(Command::Subscribe(channels.to_vec()))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Removes channels, now and on every later connection.
    pub async fn unsubscribe(&self, channels: &[Channel]) -> Result<(), Error> {
        self.commands
            .send(Command::Unsubscribe(channels.to_vec()))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Closes the connection and stops the task (the router then runs cancel-on-disconnect
    /// if it is armed). The event channel ends with [`WsEvent::Closed`].
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
    }
}

/// `{"message": hex, "signature": hex}`.
fn signed_fields(
    message: &[u8],
    signature: &[u8; 64],
) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("message".into(), hex(message).into());
    fields.insert("signature".into(), hex(signature).into());
    fields
}

fn cancel_all_bytes(auth: &WsAuth, up_to_nonce: u64) -> Vec<u8> {
    CancelAll {
        exchange: auth.exchange,
        owner: auth.signer.pubkey(),
        market_index: ALL_MARKETS,
        side: CancelSide::Both,
        up_to_nonce,
        expiry: 0,
    }
    .encode()
    .to_vec()
}
