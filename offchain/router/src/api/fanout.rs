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
    /// dropped.
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
        let mut rest = &out[..];
        while let Some((id, writer, _)) = rest.first() {
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
