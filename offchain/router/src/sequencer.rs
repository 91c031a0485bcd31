//! The single sequencer: assigns the global sequence, journals every command (group commit),
//! applies it to [`State`] through the [`Pipeline`] (new orders and cancels match on their
//! market's engine thread while the sequencer journals the next commands and syncs the
//! journal), and only then — once the command is durable — acknowledges the client and
//! publishes the command's events to the projections.
//!
//! It runs on its own thread. Intake talks to it through a [`Handle`]; when every handle is
//! dropped it commits what is pending, acknowledges it and stops (graceful shutdown).

use crate::codec;
use crate::model::{Command, Event, Seq, Sequenced};
use crate::recovery::{self, sequenced, Recovery, RecoveryError};
use crate::snapshot::{Schedule, SnapshotConfig};
use crate::state::{Pipeline, PipelineError, Rules, State};
use kestrel_matcher::journal::{JournalConfig, JournalError, JournalWriter};
use kestrel_matcher::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc as tmpsc, oneshot};

/// What a client gets back once its command is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The command's sequence number.
    pub seq: Seq,
    /// Timestamp the command was applied with, unix milliseconds.
    pub timestamp_ms: u64,
    /// Its events (a single `Rejected` if it was refused).
    pub events: Vec<Event>,
}

/// The sequencer is gone (stopped, or its journal failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sequencer is not running")]
pub struct Stopped;

/// Starting the sequencer failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state could not be recovered from its snapshots and journal.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// A thread could not be spawned.
    #[error("spawning the sequencer thread: {0}")]
    Spawn(std::io::Error),
    /// The engine threads could not be started.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Why a running sequencer stopped early. Nothing after the failure was acknowledged; a
/// restart recovers every journaled command.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The journal could not be written or synced.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// An engine thread stopped, or pipelined matching disagreed with its turn.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Commands and their events went out of step (a bug; nothing was acknowledged).
    #[error("command {0} got the events of another command")]
    OutOfStep(Seq),
}

struct Request {
    command: Command,
    reply: oneshot::Sender<Ack>,
}

/// Submits commands to the sequencer. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
    durable: Arc<Mutex<EventAt>>,
}

/// Where an event stands in the stream: its command's sequence number and its index among
/// that command's events.
pub type EventAt = (Seq, u32);

impl Handle {
    /// The last event of the commands made durable so far. It is raised before those commands
    /// are acknowledged, so every event of every acknowledged command is at or before it.
    pub fn durable_event(&self) -> EventAt {
        *self
            .durable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sequences `command` and waits until it is durable.
    pub async fn submit(&self, command: Command) -> Result<Ack, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { command, reply })
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}

/// Sequencer settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Journal directory and group-commit window.
    pub journal: JournalConfig,
    /// How often expiries are checked (a journaled `Tick`).
    pub tick_interval: Duration,
    /// When router-state snapshots are taken (they live in the journal directory).
    pub snapshots: SnapshotConfig,
    /// Below this many commands per second (over the last 100 ms) a group is committed as
    /// soon as its commands are applied, so a command's ack waits for one `fdatasync` and not
    /// for the group-commit window; at or above it the window batches commits (fewer syncs
    /// and feed batches when that saves more than it delays). 0: always the window.
    pub light_load_below: u32,
}

/// How the sequencer's commands went through the engine threads ([`Pipeline`]), as totals
/// since start. Read by the metrics; holding it does not keep the sequencer running.
#[derive(Debug, Default)]
pub struct PipelineStats {
    ahead: AtomicU64,
    threaded: AtomicU64,
    waited: AtomicU64,
}

impl PipelineStats {
    /// Orders, cancels, replacements and cancel-alls that went to their engines ahead of
    /// their turn.
    pub fn ahead(&self) -> u64 {
        self.ahead.load(Ordering::Relaxed)
    }

    /// How many engine commands of the commands that went ahead (a cancel-all has one per
    /// order, a tick one per market) their market's engine thread matched (the sequencer
    /// matched the rest itself: a command it had to apply came right after them, or it was
    /// back for them before their engine thread was).
    pub fn threaded(&self) -> u64 {
        self.threaded.load(Ordering::Relaxed)
    }

    /// Commands that could not go ahead while others were in flight, and waited for all of
    /// them to be matched and applied.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }

    fn record(&self, pipeline: &Pipeline) {
        self.ahead.store(pipeline.admitted(), Ordering::Relaxed);
        self.threaded.store(pipeline.threaded(), Ordering::Relaxed);
        self.waited.store(pipeline.waited(), Ordering::Relaxed);
    }
}

/// A running sequencer.
pub struct Sequencer {
    /// Submit handle.
    pub handle: Handle,
    /// Engine-thread counters.
    pub stats: Arc<PipelineStats>,
    /// The thread; joins with the reason it failed, if it did.
    pub thread: JoinHandle<Result<(), Failure>>,
    /// Commands replayed from the journal at start.
    pub replayed: u64,
    /// Sequence of the snapshot recovery started from (0: the whole journal was replayed).
    pub snapshot_seq: Seq,
    /// State digest after replay.
    pub recovered_hash: u64,
}

/// Receivers of every sequenced event, in order, after durability. Replayed events are
/// delivered again at start; projections skip what they already have by sequence number.
pub type Subscriber = tmpsc::UnboundedSender<Arc<[Sequenced]>>;

/// Recovers the state (newest usable snapshot + journal tail) and starts the sequencer.
pub fn start(
    rules: Rules,
    config: Config,
    subscribers: Vec<Subscriber>,
) -> Result<Sequencer, StartError> {
    start_with(rules, config, subscribers, Recovery::default())
}

/// [`start`] with recovery constrained by what the subscribers already hold.
pub fn start_with(
    rules: Rules,
    config: Config,
    subscribers: Vec<Subscriber>,
    recovery: Recovery,
) -> Result<Sequencer, StartError> {
    let recovery::Recovered {
        state,
        writer,
        snapshot_seq,
        replayed,
        events: replayed_events,
    } = recovery::recover(rules, config.journal.clone(), recovery)?;
    let schedule = Schedule::start(config.journal.dir.clone(), config.snapshots, snapshot_seq)
        .map_err(StartError::Spawn)?;
    let recovered_hash = state.state_hash();
    let replayed_at = replayed_events.last().map_or((0, 0), |e| (e.seq, e.index));
    if !replayed_events.is_empty() {
        let batch: Arc<[Sequenced]> = replayed_events.into();
        for s in &subscribers {
            let _ = s.send(batch.clone());
        }
    }
    let pipeline = Pipeline::start(&state)?;
    let (tx, rx) = mpsc::channel();
    let durable = Arc::new(Mutex::new(replayed_at));
    let raised = durable.clone();
    let stats = Arc::new(PipelineStats::default());
    let counted = stats.clone();
    let thread = std::thread::Builder::new()
        .name("kestrel-sequencer".into())
        .spawn(move || {
            let outputs = Outputs {
                subscribers,
                durable: &raised,
                stats: &counted,
            };
            run(state, pipeline, writer, rx, config, schedule, &outputs)
        })
        .map_err(StartError::Spawn)?;
    Ok(Sequencer {
        handle: Handle { tx, durable },
        stats,
        thread,
        replayed,
        snapshot_seq,
        recovered_hash,
    })
}

struct Pending {
    seq: Seq,
    timestamp_ms: u64,
    events: Vec<Event>,
    reply: Option<oneshot::Sender<Ack>>,
}

fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by).unwrap_or(now)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Where the sequencer reports: the projections, the durable position, the counters.
struct Outputs<'a> {
    subscribers: Vec<Subscriber>,
    durable: &'a Mutex<EventAt>,
    stats: &'a PipelineStats,
}

fn run(
    mut state: State,
    mut pipeline: Pipeline,
    mut writer: JournalWriter,
    rx: mpsc::Receiver<Request>,
    config: Config,
    mut schedule: Schedule,
    outputs: &Outputs<'_>,
) -> Result<(), Failure> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut last_ms = 0u64;
    let mut next_tick = later(Instant::now(), config.tick_interval);
    let mut scratch = Vec::with_capacity(512);
    let mut open = true;
    // When the oldest record not yet committed was appended.
    let mut group_since: Option<Instant> = None;
    let mut load = Load::new(Instant::now());
    while open {
        let mut batch = Vec::new();
        match group_since {
            None => {
                let wait = next_tick.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(request) => {
                        batch.push(request);
                        batch.extend(rx.try_iter().take(config.journal.group_max_records));
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
            Some(since) => {
                // A group is open: sleep until its window closes and take what arrived
                // meanwhile, rather than being woken by every request (a context switch per
                // command, the largest cost under load on a small machine). Nothing is
                // acknowledged before the commit anyway.
                let window = if load.light(config.light_load_below) {
                    Duration::ZERO
                } else {
                    config.journal.group_window
                };
                let due = later(since, window);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                while batch.len() < config.journal.group_max_records {
                    match rx.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
            }
        }
        let now = Instant::now();
        load.record(now, batch.len());
        let mut commands: Vec<(Command, Option<oneshot::Sender<Ack>>)> = batch
            .into_iter()
            .map(|r| (r.command, Some(r.reply)))
            .collect();
        if now >= next_tick {
            commands.push((Command::Tick, None));
            next_tick = later(now, config.tick_interval);
        }
        let first = pending.len();
        for (command, reply) in commands {
            let seq = writer.last_seq().saturating_add(1);
            let timestamp_ms = now_ms().max(last_ms);
            last_ms = timestamp_ms;
            scratch.clear();
            codec::encode(&command, &mut scratch);
            writer.append_bytes(
                seq,
                Timestamp(timestamp_ms.saturating_mul(1_000_000)),
                &scratch,
                now,
            )?;
            pipeline.submit(&mut state, seq, timestamp_ms, &command)?;
            group_since.get_or_insert(now);
            pending.push(Pending {
                seq,
                timestamp_ms,
                events: Vec::new(),
                reply,
            });
        }
        // The engine threads match while the journal syncs.
        pipeline.dispatch();
        let committed = if !open || (load.light(config.light_load_below) && !pending.is_empty()) {
            Some(writer.commit()?)
        } else {
            writer.commit_if_due(Instant::now())?
        };
        let applied = pipeline.finish(&mut state)?;
        outputs.stats.record(&pipeline);
        let fresh = pending.get_mut(first..).unwrap_or_default();
        if fresh.len() != applied.len() {
            return Err(Failure::OutOfStep(fresh.first().map_or(0, |p| p.seq)));
        }
        for (p, (seq, events)) in fresh.iter_mut().zip(applied) {
            if p.seq != seq {
                return Err(Failure::OutOfStep(p.seq));
            }
            p.events = events;
        }
        if committed.is_some() {
            group_since = None;
            if !pending.is_empty() {
                publish(&mut pending, &outputs.subscribers, outputs.durable);
            }
            schedule.after_commit(&state, Instant::now());
        }
    }
    schedule.finish(&state);
    Ok(())
}

/// The recent command rate, counted in 100 ms buckets.
struct Load {
    bucket_start: Instant,
    in_bucket: u64,
    /// Commands per second over the last full bucket (or the idle gap before it).
    rate: u64,
}

impl Load {
    const BUCKET: Duration = Duration::from_millis(100);

    fn new(now: Instant) -> Load {
        Load {
            bucket_start: now,
            in_bucket: 0,
            rate: 0,
        }
    }

    fn record(&mut self, now: Instant, commands: usize) {
        let elapsed = now.saturating_duration_since(self.bucket_start);
        if elapsed >= Self::BUCKET {
            let ms = u64::try_from(elapsed.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            self.rate = self
                .in_bucket
                .saturating_mul(1_000)
                .checked_div(ms)
                .unwrap_or(0);
            self.bucket_start = now;
            self.in_bucket = 0;
        }
        self.in_bucket = self
            .in_bucket
            .saturating_add(u64::try_from(commands).unwrap_or(u64::MAX));
    }

    fn light(&self, below: u32) -> bool {
        self.rate < u64::from(below)
    }
}

/// Acknowledges every pending command (all durable now) and publishes their events; the
/// last of them becomes `durable` before the first acknowledgement leaves.
fn publish(pending: &mut Vec<Pending>, subscribers: &[Subscriber], durable: &Mutex<EventAt>) {
    // The last event, numbered as `sequenced` numbers it (its index among its command's).
    let last = pending.iter().rev().find_map(|p| {
        let index = p.events.len().checked_sub(1)?;
        Some((p.seq, u32::try_from(index).unwrap_or(u32::MAX)))
    });
    if let Some(last) = last {
        *durable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = last;
    }
    let mut events = Vec::new();
    for p in pending.drain(..) {
        events.extend(sequenced(p.seq, p.timestamp_ms, p.events.clone()));
        if let Some(reply) = p.reply {
            let _ = reply.send(Ack {
                seq: p.seq,
                timestamp_ms: p.timestamp_ms,
                events: p.events,
            });
        }
    }
    let batch: Arc<[Sequenced]> = events.into();
    for s in subscribers {
        let _ = s.send(batch.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_light_below_the_rate_over_the_last_bucket() {
        let t0 = Instant::now();
        let at = |ms| t0.checked_add(Duration::from_millis(ms)).unwrap_or(t0);
        let mut load = Load::new(t0);
        assert!(load.light(5_000), "no history: light");
        // 300 commands in 100 ms: 3,000/s.
        load.record(at(50), 300);
        load.record(at(100), 0);
        assert_eq!(load.rate, 3_000);
        assert!(load.light(5_000) && !load.light(3_000));
        // 600 in the next 100 ms: 6,000/s, heavy.
        load.record(at(150), 600);
        load.record(at(200), 0);
        assert!(!load.light(5_000));
        // A long idle gap counts as the rate over the gap.
        load.record(at(10_200), 1);
        assert!(load.light(5_000));
        // 0 turns light commits off.
        assert!(!Load::new(t0).light(0));
    }
}
