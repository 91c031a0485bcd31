//! The API's HTTP/1 server: one hyper connection per accepted socket, serving the axum router.
//!
//! `axum::serve` hands an upgraded connection over as hyper-util's private `Rewind` type, so a
//! WebSocket could only be driven through hyper's `Upgraded` and written by the task that owns
//! it. Serving the connections here, over [`TokioIo<TcpStream>`], lets the WebSocket handler
//! take the TCP socket itself back (`Upgraded::downcast`), which the market-data fan-out then
//! writes from its own threads (`api/socket.rs`, `api/fanout.rs`).

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

/// Serves `app` on `listener` until `stop` turns true, then lets every open request finish
/// (each connection closes once idle) and returns. Upgraded connections live on in their
/// own tasks, which watch `stop` themselves.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    // Each connection's task holds a sender: the receiver ends once all of them have ended.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed(error).await;
                continue;
            }
        };
        // Answers and feed messages are small writes, often several per connection in
        // flight: with Nagle's algorithm each one after the first waits for the client's
        // (delayed) ACK.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        tokio::spawn(connection(
            tcp,
            peer,
            app.clone(),
            stop.clone(),
            open_tx.clone(),
        ));
    }
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

/// Serves one connection until it closes or, once `stop` turns true, finishes its request.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stop: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
) {
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::trace!(%error, "connection ended with an error");
    }
}

/// A failed accept: a connection that died in the backlog is skipped; anything else (out of
/// file descriptors, most likely) is logged and retried after a second, as `axum::serve` does.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
