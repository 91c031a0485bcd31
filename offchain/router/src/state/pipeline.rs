//! One engine thread per market. The sequencer hands each command to a [`Pipeline`] in
//! sequence order. A command whose turn cannot be decided differently from now, whatever the
//! commands in flight ahead of it do ([`State::admit`], in `admission.rs`), goes ahead: its
//! engine commands (a new order, a cancel, a replacement, each order a cancel-all covers, a
//! tick's expiries) are queued for their markets' engine threads, which match them while the
//! sequencer goes on journaling the next commands and syncing the journal; a command that needs
//! no engine (a deposit, a withdrawal request or outcome, a settlement update, a command
//! certain to be refused before it reaches one) just waits for its turn. Any other command is
//! applied on the sequencer's thread once every command before it is. Every command's events are produced in sequence order by the same code a serial
//! replay runs, so the events and the state are exactly those of [`State::apply`] on the same
//! commands: recovery replays the journal serially and reaches the same state.
//!
//! Why the result cannot differ: each engine sees its market's commands in sequence order
//! (queued commands are matched in their market's queue, and a command applied on the
//! sequencer's thread first has every command queued before it matched); the engine reads
//! nothing but its own book; and every ledger, order and nonce change is made on the
//! sequencer's thread in sequence order. Only the admission is decided early, and it is
//! conservative. A cancel or replacement whose order a command ahead of it closed is left by
//! the engine, which checks that the order still rests when it comes to the command, and is
//! refused at its turn as serially: at that point the order rests in its engine exactly when
//! the router holds it open at the command's turn. A cancel-all's orders in one market are
//! checked together before the first of them is cancelled, as a serial run lists them before
//! cancelling them (a cancel can expire a later one on its way).

use super::admission::{pipelines, InFlight, Part};
use super::book::match_on;
use super::{EngineCell, State};
use crate::model::{Command, Event, Seq};
use kestrel_matcher as m;
use std::collections::BTreeMap;
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
    /// A command that went ahead of its turn disagreed with its turn (an admitted order was
    /// refused). The admission rules (module docs) rule this out; the state is not used
    /// after it.
    #[error("command {0} was matched ahead of its turn but its turn disagrees")]
    Diverged(Seq),
    /// An engine thread could not be spawned.
    #[error("spawning an engine thread: {0}")]
    Spawn(std::io::Error),
}

/// A command handed to the pipeline, in sequence order.
enum Slot {
    /// Applied: its events.
    Applied(Seq, Vec<Event>),
    /// A command that went ahead, applied at its turn once its engine work is back.
    Ahead(Box<Ahead>),
}

struct Ahead {
    seq: Seq,
    now_ms: u64,
    command: Command,
    /// Its engine commands, in serial order (none: it needs no engine).
    parts: Vec<Outcome>,
}

/// One engine command of a command that went ahead, and what its engine made of it.
struct Outcome {
    market: u32,
    /// The order it acts on (a cancel or a replacement).
    order: Option<u64>,
    /// Once back: its events, or `None` if it was left because its order no longer rested.
    matched: Option<Option<Vec<m::Event>>>,
}

/// A command's engine commands in one market, for that market's engine thread; `slot` says
/// where their outcomes go.
struct Job {
    slot: usize,
    now_ms: u64,
    /// Each command's part index, the order that must rest for it to run, and the command.
    items: Vec<(usize, Option<u64>, m::Command)>,
}

/// Matched jobs: each item's slot, part and outcome.
type Matched = Vec<(usize, usize, Option<Vec<m::Event>>)>;

/// Matches `jobs` in order. Whether a job's orders rest is read before any of its commands
/// runs.
fn match_jobs(engine: &EngineCell, jobs: Vec<Job>) -> Matched {
    let mut engine = engine.lock();
    let mut matched = Vec::new();
    for job in jobs {
        let rests: Vec<bool> = job
            .items
            .iter()
            .map(|(_, order, _)| order.is_none_or(|id| engine.order(m::OrderId(id)).is_some()))
            .collect();
        for ((part, _, command), rests) in job.items.into_iter().zip(rests) {
            let outcome = rests.then(|| match_on(&mut engine, job.now_ms, &command));
            matched.push((job.slot, part, outcome));
        }
    }
    matched
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
    /// Whether any command may go ahead ([`pipelines`]).
    enabled: bool,
    slots: Vec<Slot>,
    queued: BTreeMap<u32, Vec<Job>>,
    /// Markets whose batch was handed over and is not back yet.
    awaiting: Vec<u32>,
    inflight: InFlight,
    /// How many commands in `slots` went ahead and are not applied yet.
    ahead: usize,
    admitted: u64,
    threaded: u64,
    waited: u64,
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
            enabled: pipelines(state),
            slots: Vec::new(),
            queued: BTreeMap::new(),
            awaiting: Vec::new(),
            inflight: InFlight::default(),
            ahead: 0,
            admitted: 0,
            threaded: 0,
            waited: 0,
        })
    }

    /// Takes command `seq`: an admitted command goes ahead (its engine commands queued for
    /// their engine threads); any other command is applied at once, after every command
    /// before it.
    pub fn submit(
        &mut self,
        state: &mut State,
        seq: Seq,
        now_ms: u64,
        command: &Command,
    ) -> Result<(), PipelineError> {
        let admitted = if self.enabled {
            state.admit(seq, now_ms, command, &mut self.inflight)
        } else {
            None
        };
        if let Some(parts) = admitted {
            if parts.is_empty() && self.ahead == 0 {
                // It needs no engine and nothing is in flight: applied now, it waits for
                // nothing and the commands behind it see its credits.
                self.inflight.clear();
                let events = state.apply(seq, now_ms, command);
                self.slots.push(Slot::Applied(seq, events));
                return Ok(());
            }
            if !parts.is_empty()
                && matches!(
                    command,
                    Command::Place { .. }
                        | Command::Cancel(_)
                        | Command::Replace { .. }
                        | Command::CancelAll(_)
                )
            {
                self.admitted = self.admitted.saturating_add(1);
            }
            self.queue(seq, now_ms, command, parts);
            return Ok(());
        }
        if self.ahead > 0 {
            self.waited = self.waited.saturating_add(1);
        }
        self.collect()?;
        self.match_queued_here();
        self.apply_ahead(state)?;
        let events = state.apply(seq, now_ms, command);
        self.slots.push(Slot::Applied(seq, events));
        Ok(())
    }

    /// Queues an admitted command's engine commands, one job per market.
    fn queue(&mut self, seq: Seq, now_ms: u64, command: &Command, parts: Vec<Part>) {
        let slot = self.slots.len();
        let mut jobs: BTreeMap<u32, Job> = BTreeMap::new();
        let mut outcomes = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            jobs.entry(part.market)
                .or_insert_with(|| Job {
                    slot,
                    now_ms,
                    items: Vec::new(),
                })
                .items
                .push((index, part.resting, part.command));
            outcomes.push(Outcome {
                market: part.market,
                order: part.resting,
                matched: None,
            });
        }
        for (market, job) in jobs {
            self.queued.entry(market).or_default().push(job);
        }
        self.ahead = self.ahead.saturating_add(1);
        self.slots.push(Slot::Ahead(Box::new(Ahead {
            seq,
            now_ms,
            command: command.clone(),
            parts: outcomes,
        })));
    }

    /// How many orders, cancels, replacements and cancel-alls went ahead of their turn so far.
    pub fn admitted(&self) -> u64 {
        self.admitted
    }

    /// How many commands could not go ahead and had to wait for every command in flight to
    /// be matched and applied.
    pub fn waited(&self) -> u64 {
        self.waited
    }

    /// How many engine commands their market's engine thread matched (the others were
    /// matched on the sequencer's thread: a command applied there came right after them, or
    /// the sequencer got back to them before their engine thread did).
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
        self.apply_ahead(state)?;
        let applied = std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|slot| match slot {
                Slot::Applied(seq, events) => Some((seq, events)),
                Slot::Ahead(_) => None,
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
        for (slot, part, outcome) in matched {
            if let Some(Slot::Ahead(ahead)) = self.slots.get_mut(slot) {
                if let Some(p) = ahead.parts.get_mut(part) {
                    p.matched = Some(outcome);
                }
            }
        }
    }

    /// Applies every command that went ahead, in sequence order (all are matched by now).
    fn apply_ahead(&mut self, state: &mut State) -> Result<(), PipelineError> {
        for slot in &mut self.slots {
            let Slot::Ahead(ahead) = slot else {
                continue;
            };
            let seq = ahead.seq;
            let events = at_turn(state, ahead).ok_or(PipelineError::Diverged(seq))?;
            *slot = Slot::Applied(seq, events);
        }
        self.ahead = 0;
        self.inflight.clear();
        Ok(())
    }
}

/// Applies a command that went ahead, at its turn, with its engine outcomes: exactly what
/// [`State::apply`] does. `None`: an outcome is missing or disagrees with the turn.
fn at_turn(state: &mut State, ahead: &mut Ahead) -> Option<Vec<Event>> {
    let (seq, now_ms) = (ahead.seq, ahead.now_ms);
    if ahead.parts.is_empty() {
        // No engine work: applied at its turn as serially.
        return Some(state.apply(seq, now_ms, &ahead.command));
    }
    let mut parts = Vec::with_capacity(ahead.parts.len());
    for part in &mut ahead.parts {
        parts.push((part.market, part.order, part.matched.take()?));
    }
    let only = |mut parts: Vec<(u32, Option<u64>, Option<Vec<m::Event>>)>| {
        let (_, _, matched) = parts.pop()?;
        parts.is_empty().then_some(matched)
    };
    match &ahead.command {
        Command::Place { order, signature } => {
            state.place_matched(seq, now_ms, order, signature, only(parts)??)
        }
        Command::Cancel(c) => state.cancel_matched(seq, now_ms, c, only(parts)?),
        Command::Replace {
            cancel,
            order,
            signature,
        } => state.replace_matched(seq, now_ms, (cancel, order, signature), only(parts)?),
        Command::CancelAll(c) => {
            let candidates = parts
                .into_iter()
                .map(|(_, order, matched)| Some((order?, matched)))
                .collect::<Option<Vec<_>>>()?;
            state.cancel_all_matched(seq, now_ms, c, candidates)
        }
        Command::Tick => {
            let expired = parts
                .into_iter()
                .map(|(market, _, matched)| Some((market, matched?)))
                .collect::<Option<Vec<_>>>()?;
            Some(state.tick_matched(seq, expired))
        }
        _ => None,
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
    use kestrel::encoding::{Order, OrderType, SelfTrade, Side};

    const NOW_MS: u64 = 1_800_000_000_000;

    fn state() -> State {
        state_with_fees(&[0])
    }

    /// One market per taker fee, all trading asset 0 against asset 1.
    fn state_with_fees(taker_fees_bps: &[u16]) -> State {
        let spec = |index: u32, taker_fee_bps: u16| MarketSpec {
            index,
            base_asset: 0,
            quote_asset: 1,
            base_lot_size: 10,
            tick_size: 1,
            min_size_lots: 1,
            max_size_lots: 1_000,
            min_price_ticks: 1,
            max_price_ticks: 1_000,
            maker_fee_bps: 0,
            taker_fee_bps,
            max_orders: 16,
        };
        State::new(Rules {
            exchange: Pubkey::new_from_array([9; 32]),
            assets: vec![
                Pubkey::new_from_array([1; 32]),
                Pubkey::new_from_array([2; 32]),
            ],
            markets: (0..)
                .zip(taker_fees_bps)
                .map(|(index, fee)| spec(index, *fee))
                .collect(),
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

    /// A fee above the notional in any market (a fill there could debit a seller's available
    /// atoms, which the admission assumes fills never do) keeps every command of every market
    /// on the sequencer's thread.
    #[test]
    fn a_fee_above_the_notional_anywhere_keeps_every_command_in_turn() {
        for (fees, admitted) in [(&[0, 0][..], 1), (&[0, 20_000][..], 0)] {
            let mut state = state_with_fees(fees);
            let mut pipeline = Pipeline::start(&state).unwrap();
            pipeline.submit(&mut state, 1, NOW_MS, &deposit()).unwrap();
            pipeline.submit(&mut state, 2, NOW_MS, &sell()).unwrap();
            pipeline.dispatch();
            pipeline.finish(&mut state).unwrap();
            assert_eq!(pipeline.admitted(), admitted, "fees {fees:?}");
        }
    }
}
