//! The outbound side of one WebSocket connection, written by the connection's own task (no
//! separate writer task, so no second wake-up per message): messages queue in a bounded buffer
//! while the task handles an input, then go out together, one flush (one `write`) per burst.
//! Market-data payloads are serialised once per event and shared by every connection.
//!
//! A queue that overflows within one burst, or a write that the client does not take within the
//! timeout, closes the connection as a slow consumer; a connection that stops reading also
//! stops taking the feed's broadcast, which drops it once it lags (see `ws.rs`).

use super::error::ApiError;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use std::collections::VecDeque;
use std::time::Duration;

/// How long the close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages waiting for the next flush, and a pending close.
pub(super) struct Outbox {
    queue: VecDeque<Message>,
    capacity: usize,
    close: Option<(u16, &'static str)>,
}

/// Why a flush ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// A close frame with this reason was sent (or the client took too long to read).
    Closed(&'static str),
    /// The connection failed while writing.
    Broken,
}

impl Ended {
    /// The reason recorded in the metrics, if any.
    pub(super) fn reason(self) -> Option<&'static str> {
        match self {
            Ended::Closed(reason) => Some(reason),
            Ended::Broken => None,
        }
    }
}

impl Outbox {
    /// An empty outbox holding at most `capacity` messages between flushes.
    pub(super) fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: VecDeque::with_capacity(capacity.clamp(1, 64)),
            capacity: capacity.max(1),
            close: None,
        }
    }

    /// Queues a message; false once the connection is closing (a full queue closes it as a
    /// slow consumer).
    pub(super) fn send(&mut self, message: Message) -> bool {
        if self.close.is_some() {
            return false;
        }
        if self.queue.len() >= self.capacity {
            self.close(1008, "slow_consumer");
            return false;
        }
        self.queue.push_back(message);
        true
    }

    /// Queues a JSON text message.
    pub(super) fn json(&mut self, value: serde_json::Value) -> bool {
        self.send(Message::Text(value.to_string().into()))
    }

    /// Queues an error message.
    pub(super) fn error(&mut self, error: &ApiError) -> bool {
        self.json(serde_json::json!({"type": "error", "error": error.to_json()}))
    }

    /// Asks for the connection to be closed with `code` and `reason` at the next flush; the
    /// first request wins.
    pub(super) fn close(&mut self, code: u16, reason: &'static str) {
        self.close.get_or_insert((code, reason));
    }

    /// Writes everything queued with one flush, within `timeout`; then, if a close was asked
    /// for, drops whatever is left and sends the close frame. `Err` ends the connection.
    pub(super) async fn flush(
        &mut self,
        socket: &mut SplitSink<WebSocket, Message>,
        timeout: Duration,
    ) -> Result<(), Ended> {
        if let Some((code, reason)) = self.close {
            self.queue.clear();
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
            return Err(Ended::Closed(reason));
        }
        if self.queue.is_empty() {
            return Ok(());
        }
        let queue = &mut self.queue;
        let write = async {
            while let Some(message) = queue.pop_front() {
                socket.feed(message).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ended::Broken),
            Err(_) => Err(Ended::Closed("slow_consumer")),
        }
    }
}
