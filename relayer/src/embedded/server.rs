//! The HTTP side of the JSON-RPC server: `POST /` (single or batch requests, as Agave's), and
//! `GET /health`.

use super::Error;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use jsonrpc_core::IoHandler;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) fn spawn(
    listener: TcpListener,
    handler: IoHandler,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<Result<(), Error>> {
    let app = Router::new()
        .route("/", post(rpc))
        .route("/health", get(health))
        .with_state(Arc::new(handler));
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // An error means the chain handle is gone: stop as well.
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
            .map_err(Error::Serve)
    })
}

async fn rpc(State(handler): State<Arc<IoHandler>>, body: Bytes) -> Response {
    let answer = match std::str::from_utf8(&body) {
        Ok(request) => handler.handle_request(request).await,
        Err(_) => serde_json::to_string(&jsonrpc_core::Response::from(
            jsonrpc_core::Error::parse_error(),
            Some(jsonrpc_core::Version::V2),
        ))
        .ok(),
    };
    match answer {
        Some(answer) => ([(header::CONTENT_TYPE, "application/json")], answer).into_response(),
        // Notifications only: nothing to answer.
        None => StatusCode::OK.into_response(),
    }
}

async fn health() -> &'static str {
    "ok"
}
