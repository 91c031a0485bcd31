//! The router's operator-only internal endpoint, and the relayer's client of it.
//!
//! `kestrel router` serves `POST /internal/v1/settlement` on its own listen address (loopback by
//! default, never the public API's): a separate `kestrel relayer` reports each fill's settlement
//! status there, and the router sequences it as `Command::SettlementUpdate`. Every request
//! carries `Authorization: Bearer <token>`, the token both sides read from the environment or a
//! file. The reply comes once the command is durable in the journal.

use crate::settle::{SinkClosed, StatusSink, StatusUpdate};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kestrel_router::model::Command;
use kestrel_router::sequencer::Handle;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Path of the settlement status endpoint.
pub const SETTLEMENT_PATH: &str = "/internal/v1/settlement";

/// The shared secret of the internal endpoint.
#[derive(Clone)]
pub struct Token(Arc<str>);

/// The token is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Neither the value nor a file was given.
    #[error("no internal token: set KESTREL_INTERNAL_TOKEN or KESTREL_INTERNAL_TOKEN_FILE")]
    Missing,
    /// The file could not be read.
    #[error("reading the internal token file: {0}")]
    Io(#[from] std::io::Error),
    /// Too short to be a secret.
    #[error("the internal token must be at least 16 characters")]
    TooShort,
}

impl Token {
    /// The token given directly, else the first line of `file`; at least 16 characters.
    pub fn load(value: Option<&str>, file: Option<&Path>) -> Result<Token, TokenError> {
        let text = match (value, file) {
            (Some(value), _) => value.to_owned(),
            (None, Some(file)) => std::fs::read_to_string(file)?,
            (None, None) => return Err(TokenError::Missing),
        };
        let token = text.trim();
        if token.chars().count() < 16 {
            return Err(TokenError::TooShort);
        }
        Ok(Token(token.into()))
    }

    /// Compares with a presented token in time independent of where they differ.
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

#[derive(Clone)]
struct Internal {
    sequencer: Handle,
    token: Token,
}

/// The internal endpoint, running.
pub struct InternalServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl InternalServer {
    /// Binds `listen` and serves the internal endpoint into `sequencer`.
    pub async fn start(
        listen: SocketAddr,
        sequencer: Handle,
        token: Token,
    ) -> std::io::Result<InternalServer> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route(SETTLEMENT_PATH, post(settlement))
            .with_state(Internal { sequencer, token });
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        Ok(InternalServer { addr, stop, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Checks the token before looking at the body, so nothing about the endpoint is revealed to
/// a caller without it; a body that is not a status update is refused and changes nothing.
async fn settlement(
    State(internal): State<Internal>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| internal.token.matches(p)) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(update) = serde_json::from_slice::<StatusUpdate>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let command = Command::SettlementUpdate {
        market: update.market,
        fill_id: update.fill_id,
        status: update.status,
    };
    match internal.sequencer.submit(command).await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Settlement statuses to a router's internal endpoint over HTTP. A refused token is final;
/// another refused request is logged and skipped (sending it again cannot help); anything else (the router restarting, a network error) is retried with backoff up to 30 s
/// apart, until the update is in, or until shutdown has started and a last attempt failed.
pub struct HttpStatus {
    url: String,
    token: Token,
    http: reqwest::Client,
    stopping: watch::Receiver<bool>,
}

impl HttpStatus {
    /// A client of the endpoint at `base_url` (e.g. `http://127.0.0.1:8081`); `stopping` turns
    /// true when the relayer shuts down.
    pub fn new(base_url: &str, token: Token, stopping: watch::Receiver<bool>) -> HttpStatus {
        HttpStatus {
            url: format!("{}{SETTLEMENT_PATH}", base_url.trim_end_matches('/')),
            token,
            http: reqwest::Client::new(),
            stopping,
        }
    }

    async fn post(&self, update: &StatusUpdate) -> Result<StatusCode, reqwest::Error> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&*self.token.0)
            .timeout(Duration::from_secs(30))
            .json(update)
            .send()
            .await?;
        Ok(response.status())
    }
}

impl StatusSink for HttpStatus {
    async fn deliver(&self, update: StatusUpdate) -> Result<(), SinkClosed> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let error = match self.post(&update).await {
                Ok(status) if status.is_success() => return Ok(()),
                Ok(StatusCode::UNAUTHORIZED) => {
                    return Err(SinkClosed("the router refused the internal token".into()))
                }
                Ok(status) if status.is_client_error() => {
                    tracing::error!(%status, ?update, "the router refused a settlement status");
                    return Ok(());
                }
                Ok(status) => format!("router answered {status}"),
                Err(error) => error.to_string(),
            };
            if *self.stopping.borrow() {
                return Err(SinkClosed(format!("shutting down; last error: {error}")));
            }
            tracing::warn!(%error, ?update, "settlement status not delivered; retrying");
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(Duration::from_secs(30));
        }
    }
}
