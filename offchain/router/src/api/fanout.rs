//! The market-data fan-out: a few threads (one per core by default) take the feed's
//! broadcast and write each item's frame straight to the sockets of the connections that
//! subscribe to it. A connection is in one shard, served by one thread, so its items keep
//! their order; no connection task is woken for a feed item unless its socket is full
//! (see `api/socket.rs`).
//!
//! A connection joins a shard's routes under the shard's lock, after it has queued its
//! `subscribed` answer and the snapshots or replay at the attach position, and each route
//! keeps that position: live items at or before it are skipped, later ones follow the
//! snapshots on the same writer.

use super::socket::{text_frame, Writer};
use crate::marketdata::{Interval, Item, MarketData, Position, PrivateChannel, Topic};
use crate::model::Owner;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};

/// Who receives an item: a public channel of a market, or one wallet's private channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Route {
    Book(u32),
    Trades(u32),
    Candles(u32, Interval),
    Private(PrivateChannel, Owner),
}

impl Route {
    /// The routes of an item: one, or one per wallet of a private item.
    fn of(topic: &Topic) -> [Option<Route>; 2] {
        match *topic {
            Topic::Book(m) => [Some(Route::Book(m)), None],
            Topic::Trades(m) => [Some(Route::Trades(m)), None],
            Topic::Candles(m, i) => [Some(Route::Candles(m, i)), None],
            Topic::Private(c, [a, b]) => [
                Some(Route::Private(c, a)),
                (a != b).then_some(Route::Private(c, b)),
            ],
        }
    }
}

/// The fan-out's shards.
pub struct Fanout {
    shards: Vec<Arc<Mutex<Shard>>>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Shard {
    routes: HashMap<Route, HashMap<usize, Member>>,
}

struct Member {
    /// Items at or before this position are already in the connection's snapshots or replay.
    start: Position,
    writer: Arc<Writer>,
}

impl Fanout {
    /// Starts `threads` fan-out threads (at least one) on the feed of `market_data`; they end
    /// when `stop` turns true or the feed closes.
    pub(super) fn start(
        market_data: &MarketData,
        threads: usize,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<Fanout> {
        let mut shards = Vec::new();
        for i in 0..threads.max(1) {
            let shard = Arc::new(Mutex::new(Shard::default()));
            let feed = market_data.receiver();
            let (thread_shard, stop) = (shard.clone(), stop.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()?;
            std::thread::Builder::new()
                .name(format!("ws-fanout-{i}"))
                .spawn(move || runtime.block_on(run(thread_shard, feed, stop)))?;
            shards.push(shard);
        }
        Ok(Fanout {
            shards,
            next: AtomicUsize::new(0),
        })
    }

    /// A connection's place in the fan-out, writing to `writer`.
    pub(super) fn join(&self, writer: Arc<Writer>) -> Membership {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let index = id.checked_rem(self.shards.len()).unwrap_or_default();
        Membership {
            shard: self.shards[index].clone(),
            id,
            writer,
            routes: Vec::new(),
        }
    }
}

/// One connection's routes in its shard; leaves them all when dropped.
pub(super) struct Membership {
    shard: Arc<Mutex<Shard>>,
    id: usize,
    writer: Arc<Writer>,
    routes: Vec<Route>,
}

impl Membership {
    /// Holds the shard still: no item goes to any of its connections until the guard is
    /// dropped. Waits for the round the shard's thread is writing, if any (a few
    /// milliseconds per thousand subscribers).
    pub(super) fn lock(&mut self) -> Routes<'_> {
        Routes {
            shard: lock(&self.shard),
            id: self.id,
            writer: &self.writer,
            routes: &mut self.routes,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut shard = lock(&self.shard);
        for route in &self.routes {
            shard.leave(*route, self.id);
        }
    }
}

/// A connection's routes, changed under its shard's lock.
pub(super) struct Routes<'a> {
    shard: MutexGuard<'a, Shard>,
    id: usize,
    writer: &'a Arc<Writer>,
    routes: &'a mut Vec<Route>,
}

impl Routes<'_> {
    /// Delivers `route`'s items after `start` (again from `start` if already joined).
    pub(super) fn add(&mut self, route: Route, start: Position) {
        let member = Member {
            start,
            writer: self.writer.clone(),
        };
        self.shard
            .routes
            .entry(route)
            .or_default()
            .insert(self.id, member);
        if !self.routes.contains(&route) {
            self.routes.push(route);
        }
    }

    /// Stops delivering `route`'s items.
    pub(super) fn remove(&mut self, route: Route) {
        self.shard.leave(route, self.id);
        self.routes.retain(|r| *r != route);
    }
}

impl Shard {
    fn leave(&mut self, route: Route, id: usize) {
        if let Some(members) = self.routes.get_mut(&route) {
            members.remove(&id);
            if members.is_empty() {
                self.routes.remove(&route);
            }
        }
    }

    /// Writes each item's frame, encoded once, to every member of its routes: a
    /// connection's frames from all the batches, in order, with one write.
    fn deliver(&self, batches: &[Arc<[Item]>]) {
        let mut out: Vec<(usize, &Writer, Bytes)> = Vec::new();
        let mut items = 0usize;
        for item in batches.iter().flat_map(|batch| batch.iter()) {
            let mut frame: Option<Bytes> = None;
            for route in Route::of(&item.topic).into_iter().flatten() {
                let Some(members) = self.routes.get(&route) else {
                    continue;
                };
                for (id, member) in members {
                    if item.position > member.start {
                        let frame = frame.get_or_insert_with(|| text_frame(item.text().as_bytes()));
                        out.push((*id, &member.writer, frame.clone()));
                    }
                }
            }
            items = items.saturating_add(usize::from(frame.is_some()));
        }
        if items > 1 {
            // Stable: each connection's frames stay in the feed's order.
            out.sort_by_key(|(id, _, _)| *id);
        }
        // Behind the feed (a backlog coalesced), the shard would otherwise keep its core for
        // the whole sweep while the readers of the sockets it fills wait for one.
        let behind = batches.len() > 1;
        let mut rest = &out[..];
        let mut writes = 0usize;
        while let Some((id, writer, _)) = rest.first() {
            writes = writes.wrapping_add(1);
            if behind && writes.is_multiple_of(WRITES_BEFORE_YIELD) {
                std::thread::yield_now();
            }
            let len = rest.iter().take_while(|(other, _, _)| other == id).count();
            let (group, tail) = rest.split_at(len);
            if let [(_, _, frame)] = group {
                writer.send(std::slice::from_ref(frame));
            } else {
                let frames: Vec<Bytes> = group.iter().map(|(_, _, frame)| frame.clone()).collect();
                writer.send(&frames);
            }
            rest = tail;
        }
    }

    /// The shard fell so far behind the feed that items were lost: every connection in it
    /// is closed, to resume from its last position.
    fn lagged(&self) {
        for members in self.routes.values() {
            for member in members.values() {
                member.writer.close(1013, "fanout_lagged");
            }
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while delivering leaves the routes themselves intact.
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

/// Connections written to between two yields of a shard's thread while it is behind the
/// feed (docs/benchmarks.md, session 9).
const WRITES_BEFORE_YIELD: usize = 256;

/// Batches taken together at most: the delivery of a backlog is coalesced into one write
/// per connection, so a fan-out that fell behind catches up with fewer system calls.
const COALESCED_BATCHES: usize = 256;

async fn run(
    shard: Arc<Mutex<Shard>>,
    mut feed: broadcast::Receiver<Arc<[Item]>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut batches = Vec::new();
    loop {
        let first = tokio::select! {
            batch = feed.recv() => batch,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut lagged = false;
        match first {
            Ok(items) => batches.push(items),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "fan-out lagged behind the feed");
                lagged = true;
            }
            Err(RecvError::Closed) => return,
        }
        while !lagged && batches.len() < COALESCED_BATCHES {
            match feed.try_recv() {
                Ok(items) => batches.push(items),
                Err(TryRecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fan-out lagged behind the feed");
                    lagged = true;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let shard = lock(&shard);
        shard.deliver(&batches);
        if lagged {
            shard.lagged();
        }
        drop(shard);
        batches.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::socket::Ended;
    use crate::marketdata::MarketDataConfig;
    use crate::model::{Event, Sequenced};
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    const OWNER: Owner = [7; 32];
    const DEPOSITS: Route = Route::Private(PrivateChannel::Deposits, OWNER);

    /// A command whose one event is a deposit of `seq` atoms to [`OWNER`].
    fn deposit(seq: u64) -> Vec<Sequenced> {
        vec![Sequenced {
            seq,
            index: 0,
            timestamp_ms: 0,
            event: Event::DepositCredited {
                owner: OWNER,
                asset: 0,
                amount: seq,
                tx: String::new(),
                ix_index: 0,
            },
        }]
    }

    async fn connected() -> Result<(Arc<Writer>, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (client, accepted) = tokio::join!(
            TcpStream::connect(listener.local_addr()?),
            listener.accept()
        );
        let (_read, write) = accepted?.0.into_split();
        Ok((Writer::new(write, 1_000, Duration::from_secs(10)), client?))
    }

    /// Reads one unmasked text frame's JSON.
    async fn next_json(client: &mut TcpStream) -> Result<serde_json::Value> {
        let mut header = [0u8; 2];
        client.read_exact(&mut header).await?;
        assert_eq!(header[0], 0x81, "a final text frame");
        let len = match header[1] {
            126 => usize::from(client.read_u16().await?),
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        client.read_exact(&mut payload).await?;
        Ok(serde_json::from_slice(&payload)?)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_get_items_after_their_start_and_a_lagging_shard_closes_them() -> Result {
        let (_stop_tx, stop) = watch::channel(false);
        let config = MarketDataConfig {
            broadcast_capacity: 2,
            ..Default::default()
        };
        let market_data = MarketData::new(config, [0]);
        let fanout = Fanout::start(&market_data, 1, &stop)?;
        let (writer, mut client) = connected().await?;
        // As the connection's task does: writes what the socket could not take at once.
        let drive = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.drive().await })
        };
        let mut member = fanout.join(writer);
        market_data.apply(&deposit(1));
        member.lock().add(DEPOSITS, Position { seq: 1, index: 0 });
        // The item at the start position is skipped; the later ones come in order (one at a
        // time: the broadcast keeps only two batches).
        for seq in [2, 3] {
            market_data.apply(&deposit(seq));
            let item = next_json(&mut client).await?;
            assert_eq!(
                (item["channel"].as_str(), item["seq"].as_u64()),
                (Some("deposits"), Some(seq)),
                "{item}"
            );
        }
        // The shard held while more batches than the broadcast keeps are published: its
        // thread misses some, and closes its connections instead of leaving a gap.
        // The thread takes the first and waits for the shard; the rest overflow its receiver.
        let held = member.lock();
        market_data.apply(&deposit(4));
        tokio::time::sleep(Duration::from_millis(100)).await;
        for seq in 5..12 {
            market_data.apply(&deposit(seq));
        }
        drop(held);
        let ended = tokio::time::timeout(Duration::from_secs(5), drive).await??;
        assert_eq!(ended, Ended::Closed("fanout_lagged"));
        Ok(())
    }
}
