//! The outbound side of one WebSocket connection, shared by everything that writes to it: the
//! market-data fan-out threads, the tasks answering the connection's commands, tungstenite's
//! own replies (pongs, the close handshake) and the connection's task.
//!
//! Frames are encoded before they get here (a feed item once per fan-out thread, for every
//! subscriber), and go out in the order they are handed over. The fan-out writes a frame at
//! once with one non-blocking `write`, without waking any task, when nothing is waiting before
//! it; whatever the socket does not take queues, and the connection's task
//! ([`Writer::drive`]) writes it when the socket can take more. Answers queue and wake that
//! task, so that a burst of them leaves in one `writev`.
//!
//! A queue that reaches its bound, or a socket that takes nothing for the stall timeout,
//! closes the connection as a slow consumer: the queue is dropped, the close frame follows what
//! the socket already took in part.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

/// Queued frames written with one `writev` at most.
const WRITEV_FRAMES: usize = 64;

/// Why a connection's writer ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// A close frame with this reason went out (or the client took too long to read).
    Closed(&'static str),
    /// The client closed, and everything queued before its close frame, with
    /// tungstenite's answer to it, went out.
    ClosedByClient,
    /// The connection failed while writing.
    Broken,
}

impl Ended {
    /// The reason recorded in the metrics, if any.
    pub(super) fn reason(self) -> Option<&'static str> {
        match self {
            Ended::Closed(reason) => Some(reason),
            Ended::ClosedByClient | Ended::Broken => None,
        }
    }
}

/// The writing half of a connection's socket, shared.
pub(super) struct Writer {
    socket: OwnedWriteHalf,
    state: Mutex<State>,
    /// Wakes [`Writer::drive`]: frames queued, or the connection is closing.
    wake: Notify,
    capacity: usize,
    stall_timeout: Duration,
}

struct State {
    /// Frames the socket has not taken yet; the first may be partly written.
    queue: VecDeque<Bytes>,
    /// Bytes of the first queued frame already written.
    written: usize,
    /// Since when queued bytes have waited without the socket taking any.
    stalled_since: Option<Instant>,
    close: Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Open,
    /// The client sent its close frame: tungstenite's answer may still go out, nothing else.
    ByClient,
    /// Our close frame is queued: nothing more goes out.
    Sent(&'static str),
    /// A write failed.
    Broken,
}

impl Writer {
    /// A writer over `socket` holding at most `capacity` frames the socket has not taken, and
    /// waiting at most `stall_timeout` for it to take any.
    pub(super) fn new(
        socket: OwnedWriteHalf,
        capacity: usize,
        stall_timeout: Duration,
    ) -> Arc<Writer> {
        Arc::new(Writer {
            socket,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                written: 0,
                stalled_since: None,
                close: Close::Open,
            }),
            wake: Notify::new(),
            capacity: capacity.max(1),
            stall_timeout,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state holds no invariant a panic half-way could break beyond this connection.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `frames` at once when nothing is queued before them, and queues what the
    /// socket does not take; false once the connection is closing. For the fan-out: no task
    /// is woken unless the socket is full.
    pub(super) fn send(&self, frames: &[Bytes]) -> bool {
        let mut state = self.lock();
        if state.close != Close::Open {
            return false;
        }
        let was_empty = state.queue.is_empty();
        state.queue.extend(frames.iter().cloned());
        if was_empty {
            if self.write_queued(&mut state).is_err() {
                drop(state);
                self.wake.notify_one();
                return false;
            }
            if state.queue.is_empty() {
                return true;
            }
            state.stalled_since = Some(Instant::now());
            self.wake.notify_one();
        }
        if state.queue.len() > self.capacity {
            self.close_locked(&mut state, 1008, "slow_consumer");
            return false;
        }
        true
    }

    /// Queues `frame` for the connection's task to write; false once the connection is
    /// closing. Frames queued together leave together.
    pub(super) fn queue(&self, frame: Bytes) -> bool {
        let mut state = self.lock();
        if !self.admit(&mut state) {
            return false;
        }
        state.queue.push_back(frame);
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Queues a text message.
    pub(super) fn text(&self, text: &str) -> bool {
        self.queue(text_frame(text.as_bytes()))
    }

    /// Queues a JSON text message.
    pub(super) fn json(&self, value: &serde_json::Value) -> bool {
        self.text(&value.to_string())
    }

    /// Queues an error message.
    pub(super) fn error(&self, error: &super::error::ApiError) -> bool {
        self.json(&serde_json::json!({"type": "error", "error": error.to_json()}))
    }

    /// Queues a ping.
    pub(super) fn ping(&self) -> bool {
        self.queue(frame(OPCODE_PING, &[]))
    }

    /// Whether a frame may be queued; at the bound, closes the connection as a slow consumer.
    fn admit(&self, state: &mut State) -> bool {
        if state.close != Close::Open {
            return false;
        }
        if state.queue.len() >= self.capacity {
            self.close_locked(state, 1008, "slow_consumer");
            return false;
        }
        true
    }

    /// Closes the connection with `code` and `reason`: what is queued and not yet begun is
    /// dropped and the close frame goes out next. The first close wins.
    pub(super) fn close(&self, code: u16, reason: &'static str) {
        let mut state = self.lock();
        if matches!(state.close, Close::Open | Close::ByClient) {
            self.close_locked(&mut state, code, reason);
        }
    }

    fn close_locked(&self, state: &mut State, code: u16, reason: &'static str) {
        let keep = usize::from(state.written > 0);
        state.queue.truncate(keep);
        if state.close == Close::Open {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            state.queue.push_back(frame(OPCODE_CLOSE, &payload));
        }
        state.close = Close::Sent(reason);
        state.stalled_since.get_or_insert_with(Instant::now);
        self.wake.notify_one();
    }

    /// The client sent its close frame: from now on only tungstenite's answer goes out.
    pub(super) fn closed_by_client(&self) {
        let mut state = self.lock();
        if state.close == Close::Open {
            state.close = Close::ByClient;
        }
    }

    /// Bytes tungstenite writes (pongs, its close answer): whole frames, in order with the
    /// rest; dropped once our own close frame is queued.
    fn protocol(&self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        match state.close {
            Close::Open | Close::ByClient => {
                state.queue.push_back(Bytes::copy_from_slice(bytes));
                drop(state);
                self.wake.notify_one();
                Ok(())
            }
            Close::Sent(_) => Ok(()),
            Close::Broken => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Writes what is queued whenever the socket can take it. Returns when the connection
    /// ends: our close frame went out, all was written after the client's close, a write
    /// failed, or the socket took nothing for the stall timeout. Cancel-safe: everything
    /// lives in the writer.
    pub(super) async fn drive(&self) -> Ended {
        loop {
            let stalled_since = {
                let mut state = self.lock();
                if let Err(ended) = self.write_queued(&mut state) {
                    return ended;
                }
                if state.queue.is_empty() {
                    state.stalled_since = None;
                    match state.close {
                        Close::Sent(reason) => return Ended::Closed(reason),
                        Close::ByClient => return Ended::ClosedByClient,
                        Close::Open | Close::Broken => None,
                    }
                } else {
                    Some(*state.stalled_since.get_or_insert_with(Instant::now))
                }
            };
            match stalled_since {
                None => self.wake.notified().await,
                Some(since) => {
                    let left = self.stall_timeout.saturating_sub(since.elapsed());
                    match tokio::time::timeout(left, self.socket.writable()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return self.broken(),
                        Err(_) => return self.stalled(),
                    }
                }
            }
        }
    }

    /// Writes queued frames until the socket takes no more or nothing is left.
    fn write_queued(&self, state: &mut State) -> Result<(), Ended> {
        if state.close == Close::Broken {
            return Err(Ended::Broken);
        }
        while let Some(front) = state.queue.front() {
            let written = if state.queue.len() == 1 {
                // The common case, one frame: a plain `send`, without an iovec.
                self.socket.try_write(&front[state.written..])
            } else {
                let slices: Vec<IoSlice<'_>> = state
                    .queue
                    .iter()
                    .take(WRITEV_FRAMES)
                    .enumerate()
                    .map(|(i, frame)| {
                        IoSlice::new(if i == 0 {
                            &frame[state.written..]
                        } else {
                            frame
                        })
                    })
                    .collect();
                self.socket.try_write_vectored(&slices)
            };
            match written {
                // A socket that takes no byte of a non-empty write is gone.
                Ok(0) => {
                    state.close = Close::Broken;
                    return Err(Ended::Broken);
                }
                Ok(n) => {
                    state.stalled_since = None;
                    advance(state, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => {
                    state.close = Close::Broken;
                    return Err(Ended::Broken);
                }
            }
        }
        Ok(())
    }

    /// The socket took nothing for the stall timeout: nothing more is queued or written.
    fn stalled(&self) -> Ended {
        let mut state = self.lock();
        state.queue.clear();
        state.close = Close::Sent("slow_consumer");
        Ended::Closed("slow_consumer")
    }

    fn broken(&self) -> Ended {
        self.lock().close = Close::Broken;
        Ended::Broken
    }
}

/// Drops `n` written bytes from the front of the queue.
fn advance(state: &mut State, mut n: usize) {
    while let Some(front) = state.queue.front() {
        let left = front.len().saturating_sub(state.written);
        if n < left {
            state.written = state.written.saturating_add(n);
            return;
        }
        n = n.saturating_sub(left);
        state.written = 0;
        state.queue.pop_front();
    }
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;

/// A server's (unmasked) WebSocket text frame.
pub(super) fn text_frame(text: &[u8]) -> Bytes {
    frame(OPCODE_TEXT, text)
}

/// One final, unmasked frame (RFC 6455, 5.2): a server's frames are never masked, so the
/// header is the opcode byte and the payload length in 7, 7+16 or 7+64 bits.
fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut out = Vec::with_capacity(len.saturating_add(10));
    out.push(0x80 | opcode);
    // The arms bound `len`, so each cast is exact.
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The socket tungstenite reads a connection's frames from: reads come from the TCP socket
/// (after the bytes hyper had already read), writes go through the shared [`Writer`].
pub(super) struct Socket {
    pub(super) read: OwnedReadHalf,
    pub(super) writer: Arc<Writer>,
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.writer.protocol(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn tungstenite(frame: Frame) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        frame.format(&mut out)?;
        Ok(out)
    }

    #[test]
    fn frames_match_tungstenite_at_every_length_boundary() -> Result {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = vec![b'x'; len];
            let theirs = Frame::message(payload.clone(), OpCode::Data(Data::Text), true);
            assert_eq!(
                &text_frame(&payload)[..],
                tungstenite(theirs)?,
                "length {len}"
            );
        }
        assert_eq!(
            &frame(OPCODE_PING, &[])[..],
            tungstenite(Frame::ping(Vec::new()))?
        );
        let mut close = 1008u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"slow_consumer");
        let theirs = Frame::close(Some(CloseFrame {
            code: CloseCode::from(1008),
            reason: "slow_consumer".into(),
        }));
        assert_eq!(&frame(OPCODE_CLOSE, &close)[..], tungstenite(theirs)?);
        Ok(())
    }

    /// A connected pair: the writer's end (small send buffer) and the reader's end (small
    /// receive buffer), so that the socket fills after a few frames.
    async fn pair(capacity: usize, stall: Duration) -> Result<(Arc<Writer>, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = tokio::net::TcpSocket::new_v4()?;
        client.set_recv_buffer_size(4_096)?;
        let (client, accepted) =
            tokio::join!(client.connect(listener.local_addr()?), listener.accept());
        let server = accepted?.0;
        socket2::SockRef::from(&server).set_send_buffer_size(4_096)?;
        let (_read, write) = server.into_split();
        Ok((Writer::new(write, capacity, stall), client?))
    }

    fn numbered(i: u32) -> Bytes {
        let mut payload = i.to_be_bytes().to_vec();
        payload.resize(1_000, b'.');
        text_frame(&payload)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_keep_their_order_through_a_full_socket() -> Result {
        let (writer, mut client) = pair(10_000, Duration::from_secs(10)).await?;
        let count = 5_000u32;
        let drive = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.drive().await })
        };
        let header = text_frame(&[0; 1_000]).len() - 1_000;
        let reader = tokio::spawn(async move {
            let mut frame = vec![0u8; header + 1_000];
            for i in 0..count {
                client.read_exact(&mut frame).await?;
                assert_eq!(frame[header..header + 4], i.to_be_bytes(), "frame {i}");
            }
            std::io::Result::Ok(())
        });
        // Immediate writes (as the fan-out's) and queued ones (as answers) interleaved, with
        // pauses that let the socket drain, so that both meet an empty and a full queue.
        for i in 0..count {
            let frame = numbered(i);
            assert!(if i % 3 == 0 {
                writer.queue(frame)
            } else {
                writer.send(&[frame])
            });
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        reader.await??;
        writer.close(1000, "done");
        assert_eq!(drive.await?, Ended::Closed("done"));
        Ok(())
    }

    #[tokio::test]
    async fn a_full_queue_closes_as_a_slow_consumer() -> Result {
        let (writer, mut client) = pair(16, Duration::from_secs(10)).await?;
        let mut accepted = 0;
        while writer.send(&[numbered(accepted)]) {
            accepted += 1;
            assert!(accepted < 10_000, "the queue never filled");
        }
        // Nothing more is taken, answers included; the close frame follows what the socket
        // took, after the frame it had taken in part.
        assert!(!writer.queue(numbered(0)));
        let drive = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.drive().await })
        };
        let close = frame(
            OPCODE_CLOSE,
            &[&1008u16.to_be_bytes()[..], b"slow_consumer"].concat(),
        );
        let mut received = Vec::new();
        while !received.ends_with(&close) {
            let mut chunk = [0u8; 4_096];
            let n = client.read(&mut chunk).await?;
            assert!(n > 0, "the close frame never came");
            received.extend_from_slice(&chunk[..n]);
        }
        let frame_len = numbered(0).len();
        let frames = received.len() - close.len();
        assert_eq!(frames % frame_len, 0, "whole frames");
        assert!(frames / frame_len < usize::try_from(accepted)?);
        assert_eq!(drive.await?, Ended::Closed("slow_consumer"));
        Ok(())
    }

    #[tokio::test]
    async fn a_socket_that_takes_nothing_ends_after_the_stall_timeout() -> Result {
        let (writer, _client) = pair(100_000, Duration::from_millis(200)).await?;
        let drive = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.drive().await })
        };
        let mut sent = 0u32;
        while !drive.is_finished() {
            writer.send(&[numbered(sent)]);
            sent += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(drive.await?, Ended::Closed("slow_consumer"));
        assert!(
            !writer.send(&[numbered(sent)]),
            "nothing is taken after the stall"
        );
        assert!(writer.lock().queue.is_empty());
        Ok(())
    }
}
