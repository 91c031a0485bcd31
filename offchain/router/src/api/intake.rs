//! Signed command intake, shared by REST and WebSocket: hex decoding, signature verification on
//! the [`VerifyPool`](crate::verify::VerifyPool), the per-wallet rate limit, then the sequencer;
//! the answer comes only once the command is durable.

use super::error::{reject_name, ApiCode, ApiError};
use super::Shared;
use crate::decimal::{Annotated, Decimals};
use crate::model::{Command, Event, Owner, Seq};
use crate::sequencer::Ack;
use crate::verify::Signed;
use serde::{Deserialize, Serialize, Serializer};
use tracing::Instrument;

/// What a client sends to place, cancel, cancel all or withdraw: the canonical signed bytes
/// (docs/protocol.md) and the ed25519 signature, both hex.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedBody {
    /// Hex of the canonical message bytes.
    pub message: String,
    /// Hex of the 64-byte signature.
    pub signature: String,
}

/// A replace (`/v1/replace`): the signed cancel of the old order and the signed new order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceBody {
    /// The 104-byte cancel naming the resting order by its nonce.
    pub cancel: SignedBody,
    /// The 128-byte order with the new terms.
    pub order: SignedBody,
}

/// The kind of signed message an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An order (`/v1/orders`).
    Place,
    /// A cancel of one order (`/v1/cancel`).
    Cancel,
    /// A cancel-all (`/v1/cancel-all`).
    CancelAll,
    /// A withdrawal request (`/v1/withdrawals`).
    Withdraw,
    /// A replace (`/v1/replace`).
    Replace,
}

impl Kind {
    /// Name for metrics and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Place => "place",
            Kind::Cancel => "cancel",
            Kind::CancelAll => "cancel_all",
            Kind::Withdraw => "withdraw",
            Kind::Replace => "replace",
        }
    }
}

/// Decodes the hex of a signed body into the message `kind` expects.
pub fn parse(kind: Kind, body: &SignedBody) -> Result<Signed, ApiError> {
    let (message, signature) = unhex(body)?;
    Ok(match kind {
        Kind::Place => Signed::Order(message, signature),
        Kind::Cancel => Signed::Cancel(message, signature),
        Kind::CancelAll => Signed::CancelAll(message, signature),
        Kind::Withdraw => Signed::Withdraw(message, signature),
        Kind::Replace => {
            return Err(ApiError::new(
                ApiCode::InvalidRequest,
                "a replace takes a cancel and an order",
            ))
        }
    })
}

fn unhex(body: &SignedBody) -> Result<(Vec<u8>, [u8; 64]), ApiError> {
    let message = hex::decode(body.message.trim())
        .map_err(|_| ApiError::new(ApiCode::InvalidRequest, "message is not hex"))?;
    let signature: [u8; 64] = hex::decode(body.signature.trim())
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| {
            ApiError::new(ApiCode::InvalidRequest, "signature is not 64 bytes of hex")
        })?;
    Ok((message, signature))
}

/// Decodes a replace body.
pub fn parse_replace(body: &ReplaceBody) -> Result<Signed, ApiError> {
    Ok(Signed::Replace {
        cancel: unhex(&body.cancel)?,
        order: unhex(&body.order)?,
    })
}

/// The wallet that signed a verified command.
fn signer(command: &Command) -> Option<Owner> {
    match command {
        Command::Place { order, .. } | Command::Replace { order, .. } => {
            Some(order.owner.to_bytes())
        }
        Command::Cancel(c) => Some(c.owner.to_bytes()),
        Command::CancelAll(c) => Some(c.owner.to_bytes()),
        Command::Withdraw(w) => Some(w.owner.to_bytes()),
        _ => None,
    }
}

/// Verifies `body` as a `kind` message and submits it; returns the durable outcome.
pub async fn submit(shared: &Shared, kind: Kind, body: &SignedBody) -> Result<Accepted, ApiError> {
    submit_signed(shared, kind, parse(kind, body)).await
}

/// Verifies and submits a replace; returns the durable outcome.
pub async fn submit_replace(shared: &Shared, body: &ReplaceBody) -> Result<Accepted, ApiError> {
    submit_signed(shared, Kind::Replace, parse_replace(body)).await
}

async fn submit_signed(
    shared: &Shared,
    kind: Kind,
    signed: Result<Signed, ApiError>,
) -> Result<Accepted, ApiError> {
    let span = tracing::info_span!("command", kind = kind.name(), seq = tracing::field::Empty);
    let result = async {
        admit(shared, kind)?;
        let signed = signed?;
        let command = shared
            .pool
            .verify(signed)
            .await
            .map_err(|_| unavailable())?
            .map_err(|reason| ApiError::reject(reason, None))?;
        verified(shared, command).await
    }
    .instrument(span)
    .await;
    let outcome = match &result {
        Ok(_) => "accepted".to_owned(),
        Err(e) => e.error.clone(),
    };
    shared
        .metrics
        .commands
        .with_label_values(&[kind.name(), outcome.as_str()])
        .inc();
    result
}

/// Load shedding, before any work is spent on the command: new orders wait while the SQL
/// projection is too far behind; what reduces risk (cancels, cancel-alls) and withdrawals
/// always pass.
fn admit(shared: &Shared, kind: Kind) -> Result<(), ApiError> {
    let adds_risk = matches!(kind, Kind::Place | Kind::Replace);
    let lag = u64::try_from(shared.metrics.projection_lag.get()).unwrap_or(0);
    if adds_risk && lag > shared.limits.config.max_projection_lag {
        return Err(ApiError::new(
            ApiCode::Overloaded,
            "the exchange is catching up and takes no new orders for now; cancels are taken",
        ));
    }
    Ok(())
}

/// Submits a command that already passed verification (the pre-signed cancel-all of a
/// WebSocket's cancel-on-disconnect).
pub async fn verified(shared: &Shared, command: Command) -> Result<Accepted, ApiError> {
    if let Some(owner) = signer(&command) {
        if !shared.limits.allow_key(&owner) {
            shared
                .metrics
                .rate_limited
                .with_label_values(&["key"])
                .inc();
            return Err(ApiError::new(
                ApiCode::RateLimited,
                "too many commands for this key",
            ));
        }
    }
    let ack = shared
        .sequencer
        .submit(command)
        .await
        .map_err(|_| unavailable())?;
    tracing::Span::current().record("seq", ack.seq);
    outcome(ack)
}

fn unavailable() -> ApiError {
    ApiError::new(
        ApiCode::Unavailable,
        "the exchange is not accepting commands",
    )
}

/// A command the router took, once durable: its sequence number, its events, and the order or
/// withdrawal it created.
#[derive(Debug)]
pub struct Accepted {
    ack: Ack,
    order_id: Option<u64>,
    withdrawal_id: Option<Seq>,
}

impl Accepted {
    /// The client's answer as JSON text: `{seq, timestamp_ms, events, order_id?,
    /// withdrawal_id?}`, the events with their decimal fields, serialised straight from them
    /// (see [`Annotated`]). Should that ever fail, the answer still says the command was taken,
    /// without its events: it is durable either way.
    pub fn answer(&self, decimals: &Decimals) -> String {
        let answer = Answer {
            seq: self.ack.seq,
            timestamp_ms: self.ack.timestamp_ms,
            events: Some(Events {
                events: &self.ack.events,
                decimals,
            }),
            order_id: self.order_id,
            withdrawal_id: self.withdrawal_id,
        };
        serde_json::to_string(&answer).unwrap_or_else(|error| {
            tracing::error!(seq = self.ack.seq, %error, "answer written without its events");
            let summary = Answer {
                events: None,
                ..answer
            };
            serde_json::to_string(&summary).unwrap_or_default()
        })
    }
}

#[derive(Serialize)]
struct Answer<'a> {
    seq: Seq,
    timestamp_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Events<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    withdrawal_id: Option<Seq>,
}

struct Events<'a> {
    events: &'a [Event],
    decimals: &'a Decimals,
}

impl Serialize for Events<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let decimals = self.decimals;
        serializer.collect_seq(
            self.events
                .iter()
                .map(|value| Annotated { value, decimals }),
        )
    }
}

/// The accepted command, or the typed refusal (itself durable: a refused order still consumes
/// its nonce).
fn outcome(ack: Ack) -> Result<Accepted, ApiError> {
    let mut order_id = None;
    let mut withdrawal_id = None;
    for event in &ack.events {
        match event {
            Event::Rejected { reason, .. } => {
                tracing::info!(seq = ack.seq, reason = %reject_name(*reason), "rejected");
                return Err(ApiError::reject(*reason, Some(ack.seq)));
            }
            Event::OrderAccepted { order_id: id, .. }
            | Event::OrderReplaced { order_id: id, .. } => order_id = Some(*id),
            Event::Withdrawal { id, .. } => withdrawal_id = Some(*id),
            _ => {}
        }
    }
    Ok(Accepted {
        ack,
        order_id,
        withdrawal_id,
    })
}
