//! One engine thread per market. The sequencer hands each command to a [`Pipeline`] in
//! sequence order; a new order that is certain to pass its checks at its turn
//! ([`State::admit`]), and a cancel of an order open now ([`State::admit_cancel`]), go to
//! their market's engine thread, which matches them while the sequencer goes on journaling
//! the next commands and syncing the journal; everything else is applied on the sequencer's
//! thread once the commands before it are. Every command's events are then
//! produced in sequence order by the same code a serial replay runs, so the events and the
//! state are exactly those of [`State::apply`] on the same commands: recovery replays the
//! journal serially and reaches the same state.
//!
//! Why the result cannot differ: each engine sees its market's commands in sequence order
//! (admitted commands are matched in their market's queue, and a command applied on the
//! sequencer's thread first has every command queued before it matched); the engine reads
//! nothing but its own book; and every ledger, order and nonce change is made on the
//! sequencer's thread in sequence order. Only the admission decision is taken early, and it
//! is conservative ([`State::admit`]); a cancel whose order was filled by a command ahead of
//! it is left by the engine thread, which checks that the order still rests, and refused at
//! its turn ([`State::admit_cancel`]).

use super::book::match_on;
use super::{EngineCell, State};
use crate::model::{Command, Event, Owner, Seq, Sig};
use kestrel::encoding::{Cancel, Order};
use kestrel_matcher as m;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a wait for an engine thread checks that it still runs.
const STOPPED_CHECK: Duration = Duration::from_millis(100);

/// The pipeline cannot go on; the sequencer stops and recovery rebuilds the state from the
/// journal.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A market's engine thread is gone (it panicked).
    #[error("the engine thread of market {0} stopped")]
    EngineStopped(u32),
    /// A command matched ahead of its turn disagreed with its turn (an admitted order was
    /// refused). The admission rules (module docs) rule this out; the state is not used
    /// after it.
    #[error("command {0} was matched ahead of its turn but its turn disagrees")]
    Diverged(Seq),
    /// An engine thread could not be spawned.
    #[error("spawning an engine thread: {0}")]
    Spawn(std::io::Error),
}

/// What an admitted order reserves until it is applied, and its engine command.
pub(super) struct Admitted {
    pub(super) owner: Owner,
    pub(super) nonce: u64,
    pub(super) hold_asset: u8,
    pub(super) hold: u64,
    pub(super) market: u32,
    pub(super) command: m::Command,
}

/// What the admitted orders not yet applied will take: holds per (owner, asset), open
/// orders per owner, nonces.
#[derive(Default)]
pub(super) struct InFlight {
    held: HashMap<(Owner, u8), u128>,
    opening: HashMap<Owner, usize>,
    nonces: HashSet<(Owner, u64)>,
}

impl InFlight {
    pub(super) fn held(&self, owner: &Owner, asset: u8) -> u128 {
        self.held.get(&(*owner, asset)).copied().unwrap_or(0)
    }

    pub(super) fn opening(&self, owner: &Owner) -> usize {
        self.opening.get(owner).copied().unwrap_or(0)
    }

    pub(super) fn uses_nonce(&self, owner: &Owner, nonce: u64) -> bool {
        self.nonces.contains(&(*owner, nonce))
    }

    fn add(&mut self, a: &Admitted) {
        let held = self.held.entry((a.owner, a.hold_asset)).or_default();
        *held = held.saturating_add(u128::from(a.hold));
        let opening = self.opening.entry(a.owner).or_default();
        *opening = opening.saturating_add(1);
        self.nonces.insert((a.owner, a.nonce));
    }

    fn clear(&mut self) {
        self.held.clear();
        self.opening.clear();
        self.nonces.clear();
    }
}

/// A command handed to the pipeline, in sequence order.
enum Slot {
    /// Applied: its events.
    Applied(Seq, Vec<Event>),
    /// An admitted command, applied once its engine's outcome is back.
    Matching(Box<Matching>),
}

struct Matching {
    seq: Seq,
    now_ms: u64,
    command: Ahead,
    /// The engine's outcome, once matched.
    outcome: Option<Outcome>,
}

/// A command matched ahead of its turn.
enum Ahead {
    Place { order: Order, signature: Sig },
    Cancel(Cancel),
}

/// What an engine made of a job: its events, or `None` if the job was left because the
/// order it cancels was no longer resting.
type Outcome = Option<Vec<m::Event>>;

/// One admitted command for an engine thread; `slot` says where its outcome goes.
struct Job {
    slot: usize,
    now_ms: u64,
    command: m::Command,
    /// Apply only if this order is resting (a cancel).
    resting: Option<u64>,
}

/// Matched jobs: each job's slot and outcome.
type Matched = Vec<(usize, Outcome)>;

fn match_jobs(engine: &EngineCell, jobs: Vec<Job>) -> Matched {
    let mut engine = engine.lock();
    jobs.into_iter()
        .map(|job| {
            let applies = job
                .resting
                .is_none_or(|id| engine.order(m::OrderId(id)).is_some());
            let outcome = applies.then(|| match_on(&mut engine, job.now_ms, &job.command));
            (job.slot, outcome)
        })
        .collect()
}

/// Where the sequencer leaves a market's batch and its engine thread leaves the result.
#[derive(Default)]
struct Handoff {
    slot: Mutex<Exchange>,
    changed: Condvar,
}

#[derive(Default)]
struct Exchange {
    /// A batch the engine thread has not taken yet.
    jobs: Option<Vec<Job>>,
    /// The engine thread's result.
    matched: Option<Matched>,
    /// No more batches: the thread ends.
    closed: bool,
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, Exchange> {
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Worker {
    engine: EngineCell,
    handoff: Arc<Handoff>,
    thread: Option<JoinHandle<()>>,
}

/// The engine threads, one per market, and the commands handed over since the last
/// [`Pipeline::finish`].
pub struct Pipeline {
    workers: BTreeMap<u32, Worker>,
    slots: Vec<Slot>,
    queued: BTreeMap<u32, Vec<Job>>,
    /// Markets whose batch was handed over and is not back yet.
    awaiting: Vec<u32>,
    inflight: InFlight,
    admitted: u64,
    threaded: u64,
}

impl Pipeline {
    /// Starts one engine thread for each market of `state`.
    pub fn start(state: &State) -> Result<Pipeline, PipelineError> {
        let mut workers = BTreeMap::new();
        for (index, (_, engine)) in &state.engines {
            let handoff = Arc::new(Handoff::default());
            let market = *index;
            let thread = {
                let (engine, handoff) = (engine.clone(), handoff.clone());
                std::thread::Builder::new()
                    .name(format!("kestrel-engine-{market}"))
                    .spawn(move || work(&engine, &handoff))
                    .map_err(PipelineError::Spawn)?
            };
            workers.insert(
                market,
                Worker {
                    engine: engine.clone(),
                    handoff,
                    thread: Some(thread),
                },
            );
        }
        Ok(Pipeline {
            workers,
            slots: Vec::new(),
            queued: BTreeMap::new(),
            awaiting: Vec::new(),
            inflight: InFlight::default(),
            admitted: 0,
            threaded: 0,
        })
    }

    /// Takes command `seq`: an admitted order is queued for its engine thread; any other
    /// command is applied at once, after the orders queued before it.
    pub fn submit(
        &mut self,
        state: &mut State,
        seq: Seq,
        now_ms: u64,
        command: &Command,
    ) -> Result<(), PipelineError> {
        let ahead = match command {
            Command::Place { order, signature } => state
                .admit(seq, now_ms, order, &self.inflight)
                .map(|admitted| {
                    self.inflight.add(&admitted);
                    let job = (admitted.market, admitted.command, None);
                    let ahead = Ahead::Place {
                        order: *order,
                        signature: *signature,
                    };
                    (job, ahead)
                }),
            Command::Cancel(c) => {
                state
                    .admit_cancel(now_ms, c)
                    .map(|(market, order_id, engine_command)| {
                        ((market, engine_command, Some(order_id)), Ahead::Cancel(*c))
                    })
            }
            _ => None,
        };
        if let Some(((market, engine_command, resting), ahead)) = ahead {
            self.admitted = self.admitted.saturating_add(1);
            self.queued.entry(market).or_default().push(Job {
                slot: self.slots.len(),
                now_ms,
                command: engine_command,
                resting,
            });
            self.slots.push(Slot::Matching(Box::new(Matching {
                seq,
                now_ms,
                command: ahead,
                outcome: None,
            })));
            return Ok(());
        }
        self.collect()?;
        self.match_queued_here();
        self.apply_matched(state)?;
        let events = state.apply(seq, now_ms, command);
        self.slots.push(Slot::Applied(seq, events));
        Ok(())
    }

    /// How many orders and cancels were admitted ahead of their turn so far.
    pub fn admitted(&self) -> u64 {
        self.admitted
    }

    /// How many of them their market's engine thread matched (the others were matched on
    /// the sequencer's thread: a command applied there came right after them, or the
    /// sequencer got back to them before their engine thread did).
    pub fn threaded(&self) -> u64 {
        self.threaded
    }

    /// Hands the queued commands to their engine threads. A market whose previous batch is
    /// still out keeps its queue (matched after that batch, in [`Pipeline::finish`]).
    pub fn dispatch(&mut self) {
        let queued = std::mem::take(&mut self.queued);
        for (market, jobs) in queued {
            let worker = self.workers.get(&market);
            match worker {
                Some(worker) if !self.awaiting.contains(&market) => {
                    worker.handoff.lock().jobs = Some(jobs);
                    worker.handoff.changed.notify_all();
                    self.awaiting.push(market);
                }
                _ => {
                    self.queued.insert(market, jobs);
                }
            }
        }
    }

    /// Collects the engine threads' results (matching on this thread a batch its engine
    /// thread has not started) and applies what is left, in sequence order; returns the
    /// events of every command submitted since the last call, in sequence order.
    pub fn finish(&mut self, state: &mut State) -> Result<Vec<(Seq, Vec<Event>)>, PipelineError> {
        self.collect()?;
        self.match_queued_here();
        self.apply_matched(state)?;
        let applied = std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|slot| match slot {
                Slot::Applied(seq, events) => Some((seq, events)),
                Slot::Matching(_) => None,
            })
            .collect();
        Ok(applied)
    }

    /// Waits for every batch handed to an engine thread, or takes it back and matches it here
    /// if its thread has not started it.
    fn collect(&mut self) -> Result<(), PipelineError> {
        for market in std::mem::take(&mut self.awaiting) {
            let Some(worker) = self.workers.get(&market) else {
                continue;
            };
            let matched = {
                let mut exchange = worker.handoff.lock();
                match exchange.jobs.take() {
                    Some(jobs) => {
                        drop(exchange);
                        match_jobs(&worker.engine, jobs)
                    }
                    None => {
                        let matched = wait_matched(market, worker, exchange)?;
                        self.threaded = self
                            .threaded
                            .saturating_add(u64::try_from(matched.len()).unwrap_or(u64::MAX));
                        matched
                    }
                }
            };
            self.store(matched);
        }
        Ok(())
    }

    /// Matches the commands still queued on this thread (a command that must be applied here
    /// comes next, and needs the books as they are after them).
    fn match_queued_here(&mut self) {
        for (market, jobs) in std::mem::take(&mut self.queued) {
            if let Some(worker) = self.workers.get(&market) {
                let matched = match_jobs(&worker.engine, jobs);
                self.store(matched);
            }
        }
    }

    fn store(&mut self, matched: Matched) {
        for (slot, outcome) in matched {
            if let Some(Slot::Matching(m)) = self.slots.get_mut(slot) {
                m.outcome = Some(outcome);
            }
        }
    }

    /// Applies every admitted command, in sequence order (all are matched by now).
    fn apply_matched(&mut self, state: &mut State) -> Result<(), PipelineError> {
        for slot in &mut self.slots {
            let Slot::Matching(m) = slot else {
                continue;
            };
            let (seq, now_ms) = (m.seq, m.now_ms);
            let outcome = m.outcome.take().ok_or(PipelineError::Diverged(seq))?;
            let events = match &m.command {
                Ahead::Place { order, signature } => outcome.and_then(|matched| {
                    state
                        .place_matched(seq, now_ms, order, signature, matched)
                        .ok()
                }),
                Ahead::Cancel(c) => state.cancel_matched(seq, now_ms, c, outcome),
            };
            *slot = Slot::Applied(seq, events.ok_or(PipelineError::Diverged(seq))?);
        }
        self.inflight.clear();
        Ok(())
    }
}

/// Waits for the batch `market`'s engine thread took; an error if the thread has ended
/// without answering (it panicked).
fn wait_matched(
    market: u32,
    worker: &Worker,
    mut exchange: MutexGuard<'_, Exchange>,
) -> Result<Matched, PipelineError> {
    loop {
        if let Some(matched) = exchange.matched.take() {
            return Ok(matched);
        }
        if worker.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            return Err(PipelineError::EngineStopped(market));
        }
        exchange = worker
            .handoff
            .changed
            .wait_timeout(exchange, STOPPED_CHECK)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
}

impl Drop for Pipeline {
    /// Stops the engine threads and waits for them.
    fn drop(&mut self) {
        for worker in self.workers.values() {
            worker.handoff.lock().closed = true;
            worker.handoff.changed.notify_all();
        }
        for worker in self.workers.values_mut() {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// A market's engine thread: matches each batch it is handed, unless the sequencer took it
/// back first, and leaves the result.
fn work(engine: &EngineCell, handoff: &Handoff) {
    loop {
        let jobs = {
            let mut exchange = handoff.lock();
            loop {
                if let Some(jobs) = exchange.jobs.take() {
                    break jobs;
                }
                if exchange.closed {
                    return;
                }
                exchange = handoff
                    .changed
                    .wait(exchange)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let matched = match_jobs(engine, jobs);
        handoff.lock().matched = Some(matched);
        handoff.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::market::MarketSpec;
    use crate::state::Rules;
    use anchor_lang::prelude::Pubkey;
    use kestrel::encoding::{OrderType, SelfTrade, Side};

    const NOW_MS: u64 = 1_800_000_000_000;

    fn state() -> State {
        let spec = MarketSpec {
            index: 0,
            base_asset: 0,
            quote_asset: 1,
            base_lot_size: 10,
            tick_size: 1,
            min_size_lots: 1,
            max_size_lots: 1_000,
            min_price_ticks: 1,
            max_price_ticks: 1_000,
            maker_fee_bps: 0,
            taker_fee_bps: 0,
            max_orders: 16,
        };
        State::new(Rules {
            exchange: Pubkey::new_from_array([9; 32]),
            assets: vec![
                Pubkey::new_from_array([1; 32]),
                Pubkey::new_from_array([2; 32]),
            ],
            markets: vec![spec],
            max_expiry_horizon_secs: 86_400,
            expiry_margin_secs: 0,
            max_open_orders: 8,
        })
        .unwrap()
    }

    fn deposit() -> Command {
        deposit_in(1)
    }

    fn deposit_in(tx: u8) -> Command {
        Command::DepositObserved {
            owner: [7; 32],
            asset: 0,
            amount: 1_000,
            tx: [tx; 64],
            ix_index: 0,
        }
    }

    fn sell() -> Command {
        sell_nonce(1)
    }

    fn sell_nonce(nonce: u64) -> Command {
        Command::Place {
            order: Order {
                exchange: Pubkey::new_from_array([9; 32]),
                owner: Pubkey::new_from_array([7; 32]),
                market_index: 0,
                side: Side::Sell,
                order_type: OrderType::Limit,
                self_trade: SelfTrade::CancelTaker,
                price_ticks: 100,
                size_lots: 2,
                nonce,
                expiry: 0,
                client_order_id: 0,
            },
            signature: [0; 64],
        }
    }

    /// A pipeline whose market's engine thread has ended, handed a deposit (applied) and a
    /// sell (admitted, dispatched).
    fn handed_over_without_engine_thread() -> (State, Pipeline) {
        let mut state = state();
        let mut pipeline = Pipeline::start(&state).unwrap();
        let worker = pipeline.workers.get_mut(&0).unwrap();
        worker.handoff.lock().closed = true;
        worker.handoff.changed.notify_all();
        worker.thread.take().unwrap().join().unwrap();
        pipeline.submit(&mut state, 1, NOW_MS, &deposit()).unwrap();
        pipeline.submit(&mut state, 2, NOW_MS, &sell()).unwrap();
        pipeline.dispatch();
        (state, pipeline)
    }

    /// A batch its engine thread never takes is matched by the sequencer: same events.
    #[test]
    fn a_batch_no_engine_thread_takes_is_matched_by_the_sequencer() {
        let mut serial = state();
        let want = [
            serial.apply(1, NOW_MS, &deposit()),
            serial.apply(2, NOW_MS, &sell()),
        ];
        let (mut state, mut pipeline) = handed_over_without_engine_thread();
        let applied = pipeline.finish(&mut state).unwrap();
        assert_eq!(applied, vec![(1, want[0].clone()), (2, want[1].clone())]);
        assert_eq!((pipeline.admitted(), pipeline.threaded()), (1, 0));
        assert_eq!(state.state_hash(), serial.state_hash());
    }

    /// An engine thread that took a batch and ended without answering (it panicked) stops
    /// the pipeline with a typed error instead of waiting forever.
    #[test]
    fn an_engine_thread_gone_with_a_batch_stops_the_pipeline() {
        let (mut state, mut pipeline) = handed_over_without_engine_thread();
        // As if the thread had taken the batch before it died.
        let taken = pipeline.workers[&0].handoff.lock().jobs.take();
        assert!(taken.is_some());
        match pipeline.finish(&mut state) {
            Err(PipelineError::EngineStopped(0)) => {}
            other => panic!("expected EngineStopped(0), got {other:?}"),
        }
    }

    /// Commands handed over while a batch is still out (the sequencer does not, but nothing
    /// in the type stops it) are matched after that batch, and a command applied on this
    /// thread waits for it: same events as serially.
    #[test]
    fn commands_handed_over_while_a_batch_is_out_keep_their_order() {
        let commands = [
            deposit(),
            sell_nonce(1),
            sell_nonce(2),
            deposit_in(2),
            sell_nonce(3),
        ];
        let mut serial = state();
        let want: Vec<(Seq, Vec<Event>)> = (1..)
            .zip(&commands)
            .map(|(seq, c)| (seq, serial.apply(seq, NOW_MS, c)))
            .collect();
        let mut state = state();
        let mut pipeline = Pipeline::start(&state).unwrap();
        for (seq, command) in (1..).zip(&commands) {
            pipeline.submit(&mut state, seq, NOW_MS, command).unwrap();
            pipeline.dispatch();
        }
        assert_eq!(pipeline.finish(&mut state).unwrap(), want);
        assert_eq!(pipeline.admitted(), 3);
        assert_eq!(state.state_hash(), serial.state_hash());
    }
}
