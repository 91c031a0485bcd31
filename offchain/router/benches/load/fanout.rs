//! The `fanout` phase: S WebSocket subscribers to `book:1` in a child process (the
//! file-descriptor limit is per process), a stream of book-changing orders, and the delivery
//! latency from each order's send and acknowledgement to every subscriber's receipt.
//!
//! The subscribers (tokio-tungstenite, a task each, as the SDK's client) share the machine's
//! cores with the server, and on loopback a send also runs the receiver's TCP stack and
//! wake-up, so what the machine itself costs is part of every figure. The phase therefore
//! measures a reference in the same run: the same subscribers connected to a WebSocket server
//! that does nothing but the handshake and, for each round, write one pre-framed text frame of
//! the size of a book delta to every connection (one thread per core, blocking writes): the
//! least a server must do per change. The report gives the router's p99 against it.

use super::{histogram, percentiles, unix_ns, Args, Wallet, MID};
use kestrel::encoding::{OrderType, Side};
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The child's modes: subscribers of the router, or of the reference server.
const ROUTER: &str = "router";
const REFERENCE: &str = "reference";

/// What the parent reads back from a child after the report lines.
struct ChildReport {
    /// Payload bytes of the last book delta received.
    payload: usize,
    /// Delivery p99 from the acknowledgement (from the write, for the reference), µs.
    p99_us: u64,
}

/// Runs the phase against the router at `addr` / `base`, then the reference.
pub(crate) fn fanout(
    args: &Args,
    client_rt: &tokio::runtime::Runtime,
    addr: &str,
    base: &str,
    maker: &mut Wallet,
) {
    let child = Child::spawn(addr, args.subs, ROUTER);
    println!(
        "fanout: {} subscribers to book:1 connected ({} failed) in {} s, in a child process",
        child.ok, child.failed, child.connect_secs
    );
    let ops: Vec<String> = (0..args.fanout_orders as u64)
        .map(|j| {
            let bytes = maker.order(1, Side::Sell, OrderType::Limit, 2 * MID + j, 1, None);
            maker.signed_json(&bytes)
        })
        .collect();
    let step = Duration::from_nanos(1_000_000_000 / args.fanout_rate.max(1));
    let acks = client_rt.block_on(async {
        let client = reqwest::Client::new();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (j, body) in ops.into_iter().enumerate() {
            tokio::time::sleep_until((start + step * j as u32).into()).await;
            let req = client
                .post(format!("{base}/v1/orders"))
                .header("content-type", "application/json")
                .body(body);
            tasks.push(tokio::spawn(async move {
                let sent = unix_ns();
                let bytes = req.send().await.unwrap().bytes().await.unwrap();
                let acked = unix_ns();
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                (v["seq"].as_u64().unwrap(), sent, acked)
            }));
        }
        let mut acks = Vec::new();
        for t in tasks {
            acks.push(t.await.unwrap());
        }
        acks
    });
    println!(
        "fanout: {} book-changing orders at {}/s, each acknowledged",
        acks.len(),
        args.fanout_rate
    );
    let server = child.finish(&acks, "fanout");
    let reference = reference(args, server.payload);
    println!(
        "fanout: delivery p99 {:.1} ms from the ack against {:.1} ms from the reference server's writes (ratio {:.2})",
        server.p99_us as f64 / 1000.0,
        reference.p99_us as f64 / 1000.0,
        server.p99_us as f64 / reference.p99_us.max(1) as f64
    );
}

/// The reference: a WebSocket server that answers the handshake and a snapshot, then writes
/// each round's pre-framed text frame of `payload` bytes to every subscriber at the phase's
/// rate, by one thread per core with blocking writes (latency from the start of the round).
fn reference(args: &Args, payload: usize) -> ChildReport {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Until every subscriber is in, or none has come for 5 s (one whose connect failed).
    listener.set_nonblocking(true).unwrap();
    let accept = std::thread::spawn({
        let subs = args.subs;
        move || {
            let mut sockets = Vec::with_capacity(subs);
            let mut last = Instant::now();
            while sockets.len() < subs && last.elapsed() < Duration::from_secs(5) {
                match listener.accept() {
                    Ok((socket, _)) => {
                        last = Instant::now();
                        sockets.extend(handshake(socket).ok());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            sockets
        }
    });
    let child = Child::spawn(&addr, args.subs, REFERENCE);
    let sockets = accept.join().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "fanout reference: {} subscribers connected ({} failed), {payload}-byte frames written by {cores} threads",
        child.ok, child.failed
    );
    let step = Duration::from_nanos(1_000_000_000 / args.fanout_rate.max(1));
    let start = Instant::now();
    let mut rounds = Vec::with_capacity(args.fanout_orders);
    for j in 0..args.fanout_orders as u64 {
        if let Some(wait) = (start + step * j as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let seq = j + 1;
        let frame = text_frame(seq, payload);
        let sent = unix_ns();
        std::thread::scope(|scope| {
            for part in sockets.chunks(sockets.len().div_ceil(cores).max(1)) {
                let frame = &frame;
                scope.spawn(move || {
                    for mut socket in part {
                        socket.write_all(frame).unwrap();
                    }
                });
            }
        });
        rounds.push((seq, sent, sent));
    }
    child.finish(&rounds, "fanout reference")
}

/// The server's side of the WebSocket handshake (RFC 6455 §4.2), then a snapshot message, as
/// the router sends one after a subscription (the subscription itself is left unread).
fn handshake(mut socket: TcpStream) -> std::io::Result<TcpStream> {
    socket.set_nonblocking(false)?;
    socket.set_nodelay(true)?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        let n = socket.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let request = String::from_utf8_lossy(&request);
    let key = request
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim())
        })
        .ok_or_else(|| std::io::Error::other("no Sec-WebSocket-Key"))?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        socket,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    socket.write_all(&frame_of(br#"{"type":"snapshot","channel":"book:1"}"#))?;
    Ok(socket)
}

/// The round's message: a feed item carrying `seq`, padded to `payload` bytes, framed.
fn text_frame(seq: u64, payload: usize) -> Vec<u8> {
    let head = format!(r#"{{"type":"event","channel":"book:1","seq":{seq},"pad":""#);
    let pad = payload.saturating_sub(head.len() + 2);
    let mut text = head.into_bytes();
    text.resize(text.len() + pad, b' ');
    text.extend_from_slice(b"\"}");
    frame_of(&text)
}

/// An unmasked WebSocket text frame (server to client) of less than 64 KiB.
fn frame_of(text: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x81];
    match text.len() {
        n if n < 126 => frame.push(n as u8),
        n => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(text);
    frame
}

/// The parent's end of a subscriber child process.
struct Child {
    process: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    ok: usize,
    failed: usize,
    connect_secs: String,
}

impl Child {
    /// Starts the child and waits for its `READY ok failed secs` line.
    fn spawn(addr: &str, subs: usize, mode: &str) -> Child {
        let mut process = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--fanout-child", addr, &subs.to_string(), "1", mode])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(process.stdout.take().unwrap()).lines();
        let ready = lines.next().unwrap().unwrap();
        let parts: Vec<&str> = ready.split(' ').collect();
        Child {
            process,
            lines,
            ok: parts[1].parse().unwrap(),
            failed: parts[2].parse().unwrap(),
            connect_secs: parts[3].to_owned(),
        }
    }

    /// Sends the rounds (`seq send_ns ack_ns`) and `END`, prints the child's report lines under
    /// `label`, and returns its figures.
    fn finish(mut self, rounds: &[(u64, u64, u64)], label: &str) -> ChildReport {
        let mut stdin = self.process.stdin.take().unwrap();
        for (seq, sent, acked) in rounds {
            writeln!(stdin, "{seq} {sent} {acked}").unwrap();
        }
        writeln!(stdin, "END").unwrap();
        drop(stdin);
        let mut report = ChildReport {
            payload: 0,
            p99_us: 0,
        };
        for line in self.lines {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("=payload ") {
                report.payload = n.parse().unwrap();
            } else if let Some(n) = line.strip_prefix("=p99 ") {
                report.p99_us = n.parse().unwrap();
            } else {
                println!("{label}: {line}");
            }
        }
        self.process.wait().unwrap();
        report
    }
}

// ---------------------------------------------------------------- the child

/// What the child's subscribers share: deliveries counted and the last delta's payload size.
#[derive(Default)]
struct Progress {
    received: AtomicU64,
    payload: AtomicUsize,
}

/// The subscriber side, in its own process: connects `subs` subscribers to `book:<market>`
/// (on the router, or on the reference server: `mode`), prints `READY`, records
/// every delta's seq and receipt time, and after reading the rounds (`seq send_ns ack_ns`
/// lines and `END`) on stdin prints the delivery latencies.
pub(crate) fn child(addr: &str, subs: usize, market: u32, mode: &str) {
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let (ok, finish) = subscribers(addr, subs, market, &progress);
    println!(
        "READY {ok} {} {:.2}",
        subs - ok,
        started.elapsed().as_secs_f64()
    );
    std::io::stdout().flush().unwrap();
    let mut rounds = HashMap::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line == "END" {
            break;
        }
        let v: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        rounds.insert(v[0], (v[1], v[2]));
    }
    let expected = (rounds.len() * ok) as u64;
    let mut last = (progress.received.load(Ordering::Relaxed), Instant::now());
    let wait_from = Instant::now();
    while progress.received.load(Ordering::Relaxed) < expected
        && wait_from.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
        let now = progress.received.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let (mut from_send, mut from_ack) = (histogram(), histogram());
    let mut delivered = 0u64;
    for (seq, at) in finish() {
        if let Some((sent, acked)) = rounds.get(&seq) {
            delivered += 1;
            from_send.saturating_record((at.saturating_sub(*sent) / 1_000).max(1));
            from_ack.saturating_record((at.saturating_sub(*acked) / 1_000).max(1));
        }
    }
    println!(
        "DELIVERED {delivered} of {expected} ({} rounds x {ok} subscribers)",
        rounds.len()
    );
    if mode == REFERENCE {
        println!(
            "  delivery latency from the round's first write: {}",
            percentiles(&from_ack)
        );
    } else {
        println!(
            "  delivery latency from order send: {}",
            percentiles(&from_send)
        );
        println!(
            "  delivery latency from order ack:  {}",
            percentiles(&from_ack)
        );
    }
    println!("=payload {}", progress.payload.load(Ordering::Relaxed));
    println!("=p99 {}", from_ack.value_at_quantile(0.99));
    std::io::stdout().flush().unwrap();
}

/// The `"seq":N` of a feed item.
fn seq_of(text: &str) -> Option<u64> {
    let at = text.find(r#""seq":"#)? + 6;
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// One subscriber's receipts: (seq, unix ns).
type Log = Arc<Mutex<Vec<(u64, u64)>>>;

/// tokio-tungstenite subscribers, a task each (at most 256 connecting at once). Returns how
/// many subscribed and a function that stops the runtime and gives every receipt.
fn subscribers(
    addr: &str,
    subs: usize,
    market: u32,
    progress: &Arc<Progress>,
) -> (usize, impl FnOnce() -> Vec<(u64, u64)>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("ws://{addr}/v1/ws");
    let logs: Arc<Mutex<Vec<Log>>> = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(subs.max(1));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut handles = Vec::new();
    for _ in 0..subs {
        let log = Arc::new(Mutex::new(Vec::with_capacity(256)));
        logs.lock().unwrap().push(log.clone());
        let (url, progress, ready, gate) = (
            url.clone(),
            progress.clone(),
            ready_tx.clone(),
            gate.clone(),
        );
        handles.push(rt.spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async_with_config(
                &url,
                Some(super::client_ws_config()),
                true,
            )
            .await
            else {
                let _ = ready.send(false).await;
                return;
            };
            let sub = format!(r#"{{"op":"subscribe","channels":["book:{market}"]}}"#);
            ws.send(Message::text(sub)).await.unwrap();
            let mut permit = Some(permit);
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let now = unix_ns();
                let text = text.as_str();
                if permit.is_some() {
                    if text.contains(r#""type":"snapshot""#) {
                        drop(permit.take());
                        let _ = ready.send(true).await;
                    }
                    continue;
                }
                if let Some(seq) = seq_of(text) {
                    log.lock().unwrap().push((seq, now));
                    progress.payload.store(text.len(), Ordering::Relaxed);
                    progress.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    drop(ready_tx);
    let ok = rt.block_on(async {
        let (mut ok, mut failed) = (0usize, 0usize);
        while let Some(r) = ready_rx.recv().await {
            if r {
                ok += 1;
            } else {
                failed += 1;
            }
            if ok + failed == subs {
                break;
            }
        }
        ok
    });
    let finish = move || {
        for h in &handles {
            h.abort();
        }
        rt.block_on(async {
            for h in handles {
                let _ = h.await;
            }
        });
        drop(rt);
        let logs = std::mem::take(&mut *logs.lock().unwrap());
        logs.iter()
            .flat_map(|log| std::mem::take(&mut *log.lock().unwrap()))
            .collect()
    };
    (ok, finish)
}
