//! The settlement loop, shared by the devnet (in-process) and `kestrel relayer` (a separate
//! process): it reads pending fills from the store, rebuilds both signed orders from the
//! version each fill matched (a replaced order settles earlier fills under its earlier terms),
//! packs one batch at a time (orders already recorded on-chain are referenced, not
//! re-verified), lands it with the [`Submitter`] and hands every status change, in order, to a
//! [`StatusSink`]: the sequencer itself in-process, the router's internal endpoint otherwise.
//!
//! With lookup tables on ([`TablesConfig`]) every batch is a v0 transaction over the
//! operator's tables ([`crate::tables`]), which carries several times more fills than legacy.
//!
//! A round starts when the router reports fills ([`feed_wake`], in-process) or after
//! `interval` (the fallback, and the only trigger of a separate `kestrel relayer`, which polls
//! the store). After a wake the loop lingers a little so a busy period still packs many fills
//! per transaction, then waits until the store has projected the fills it was told of; a round
//! that read a full page runs the next one at once.

mod report;
mod wake;

pub use wake::{feed_wake, Wake};

use crate::tables::{Tables, TablesConfig, TablesError};
use anchor_lang::AccountDeserialize;
use kestrel::encoding::Order;
use kestrel::state::Market;
use kestrel_relayer::batcher::{Limits, PackError, Packer, PendingFill};
use kestrel_relayer::submitter::{SubmitError, Submitter, SubmitterConfig};
use kestrel_router::model::{Owner, SettlementStatus};
use kestrel_router::store::{FillRow, Position, Store, StoreError};
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::Deployment;
use report::{Counters, Reporter};
use serde::{Deserialize, Serialize};
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::message::AddressLookupTableAccount;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wake::woken;

/// Fills read from the store per settlement round.
const ROUND_FILLS: u32 = 256;

/// How often the loop checks whether the store has projected the fills it was woken for.
const PROJECTION_POLL: Duration = Duration::from_millis(1);

/// When the settlement loop runs and how it packs.
#[derive(Debug, Clone)]
pub struct SettleConfig {
    /// Longest time between rounds (the only trigger without a wake-up feed).
    pub interval: Duration,
    /// After a wake-up, how long to collect further fills before the round.
    pub linger: Duration,
    /// Lookup tables.
    pub tables: TablesConfig,
}

/// One settlement status change of one fill, as reported to the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// Market index.
    pub market: u32,
    /// Fill id within the market.
    pub fill_id: u64,
    /// New state.
    pub status: SettlementStatus,
}

/// The destination of status updates is gone for good; later updates are dropped.
#[derive(Debug, thiserror::Error)]
#[error("status sink closed: {0}")]
pub struct SinkClosed(pub String);

/// Where the settlement loop's status updates go. Updates are delivered one at a time, in
/// the order they happened; an implementation retries transient failures itself and returns
/// an error only when the destination is gone for good.
pub trait StatusSink: Send + Sync + 'static {
    /// Delivers one update and waits until the router has it durably.
    fn deliver(&self, update: StatusUpdate) -> impl Future<Output = Result<(), SinkClosed>> + Send;
}

/// A read handle on the loop's counters (for metrics). Cheap to clone.
#[derive(Clone)]
pub struct SettlementCounters(Arc<Counters>);

impl SettlementCounters {
    /// Fills confirmed on-chain by the loop so far.
    pub fn settled(&self) -> u64 {
        self.0.settled.load(Ordering::Relaxed)
    }

    /// Fills quarantined by the loop so far.
    pub fn quarantined(&self) -> u64 {
        self.0.quarantined.load(Ordering::Relaxed)
    }

    /// The addresses of the lookup tables the loop packs with (empty with tables off).
    pub fn lookup_tables(&self) -> Vec<Pubkey> {
        self.0
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The running settlement loop and the forwarder of its statuses.
pub struct Settlement {
    stop: watch::Sender<bool>,
    settler: JoinHandle<()>,
    forwarder: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl Settlement {
    /// Fills confirmed on-chain by this loop so far.
    pub fn settled(&self) -> u64 {
        self.counters().settled()
    }

    /// Fills quarantined by this loop so far.
    pub fn quarantined(&self) -> u64 {
        self.counters().quarantined()
    }

    /// A handle on the counters that outlives borrows of the loop.
    pub fn counters(&self) -> SettlementCounters {
        SettlementCounters(self.counters.clone())
    }

    /// Stops the loop (a round in flight finishes) and delivers the statuses still queued.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.settler.await;
        let _ = self.forwarder.await;
    }
}

/// Starts the settlement loop: a round on every `wake` (if any) and at least every
/// `config.interval`, statuses delivered to `sink`; fills count as settled at `rpc`'s
/// commitment.
pub fn spawn<S: StatusSink>(
    rpc: RpcClient,
    deployment: Deployment,
    operator: Arc<Keypair>,
    store: Store,
    sink: S,
    config: SettleConfig,
    wake: Option<Wake>,
) -> Settlement {
    let (stop, stopped) = watch::channel(false);
    let (updates, mut updates_rx) = mpsc::unbounded_channel::<StatusUpdate>();
    let counters = Arc::new(Counters::default());
    let forwarder = tokio::spawn(async move {
        while let Some(update) = updates_rx.recv().await {
            if let Err(error) = sink.deliver(update).await {
                tracing::warn!(%error, "settlement statuses dropped");
                return;
            }
        }
    });
    let settler = Settler {
        rpc,
        deployment,
        operator,
        store,
        reporter: Reporter {
            updates,
            counters: counters.clone(),
            state: Mutex::default(),
        },
        next_batch: HashMap::new(),
        tables: None,
    };
    Settlement {
        stop,
        settler: tokio::spawn(settler.run(config, wake, stopped)),
        forwarder,
        counters,
    }
}

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("rpc: {0}")]
    Rpc(#[from] Box<ClientError>),
    #[error("market {0} account cannot be decoded")]
    Market(u32),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Tables(#[from] TablesError),
}

impl From<ClientError> for RoundError {
    fn from(err: ClientError) -> Self {
        RoundError::Rpc(Box::new(err))
    }
}

struct Settler {
    rpc: RpcClient,
    deployment: Deployment,
    operator: Arc<Keypair>,
    store: Store,
    reporter: Reporter,
    /// Next batch id per market (raised to the chain's `last_batch_id + 1` every round).
    next_batch: HashMap<u32, u64>,
    /// The lookup tables, once opened (tables on).
    tables: Option<Tables>,
}

/// Sleeps `duration` unless `stop` is raised first; returns whether to stop.
async fn pause(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stop.changed() => {}
    }
    *stop.borrow()
}

impl Settler {
    async fn run(
        mut self,
        config: SettleConfig,
        mut wake: Option<Wake>,
        mut stop: watch::Receiver<bool>,
    ) {
        let interval = config.interval;
        while let Err(error) = self.resume_submitted().await {
            tracing::warn!(%error, "cannot read the submitted fills; retrying");
            if pause(interval, &mut stop).await {
                return;
            }
        }
        while config.tables.enabled && self.tables.is_none() {
            let published = self.reporter.counters.tables.clone();
            match Tables::open(&self.rpc, config.tables.file.clone(), published).await {
                Ok(tables) => self.tables = Some(tables),
                Err(error) => {
                    tracing::error!(%error, "cannot reopen the lookup tables; retrying");
                    if pause(interval, &mut stop).await {
                        return;
                    }
                }
            }
        }
        let mut backlog = false;
        loop {
            if !backlog {
                let fills = tokio::select! {
                    _ = tokio::time::sleep(interval) => false,
                    _ = woken(&mut wake) => true,
                    _ = stop.changed() => false,
                };
                if *stop.borrow() || (fills && pause(config.linger, &mut stop).await) {
                    return;
                }
                if fills {
                    self.await_projection(&mut wake, interval).await;
                }
            } else if *stop.borrow() {
                return;
            }
            backlog = match self.round().await {
                Ok(full) => full,
                Err(error) => {
                    tracing::warn!(%error, "settlement round failed; retrying");
                    false
                }
            };
        }
    }

    /// Waits (at most `limit`) until the store has projected the newest fill `wake` reported.
    async fn await_projection(&self, wake: &mut Option<Wake>, limit: Duration) {
        let Some(target) = wake.as_mut().map(|rx| *rx.borrow_and_update()) else {
            return;
        };
        let deadline = Instant::now().checked_add(limit);
        loop {
            match self.store.cursor().await {
                Ok(cursor) if cursor >= target => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot read the store's cursor");
                    return;
                }
            }
            if deadline.is_none_or(|d| Instant::now() >= d) {
                return;
            }
            tokio::time::sleep(PROJECTION_POLL).await;
        }
    }

    /// Fills a previous run reported submitted but never saw final (it stopped or crashed
    /// meanwhile) go back to pending: they are settled again, and a fill that did land is
    /// counted confirmed by the submitter, never applied twice by the chain.
    async fn resume_submitted(&self) -> Result<(), StoreError> {
        let mut after = Position::default();
        loop {
            let rows = self.store.submitted_settlements(after, ROUND_FILLS).await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.position;
            for row in &rows {
                self.reporter
                    .update(row.market, row.fill_id, SettlementStatus::Pending);
            }
        }
    }

    /// One round over a page of pending fills; returns whether the page was full (more are
    /// waiting).
    async fn round(&mut self) -> Result<bool, RoundError> {
        let rows = self.store.next_pending_settlements(ROUND_FILLS).await?;
        let page_full = u32::try_from(rows.len()).is_ok_and(|n| n >= ROUND_FILLS);
        let rows = self.reporter.unfinished(rows);
        // Fills finished but not yet marked in the store are no backlog to hurry for.
        let full = page_full && !rows.is_empty();
        let mut by_market: BTreeMap<u32, Vec<PendingFill>> = BTreeMap::new();
        for row in rows {
            match self.pending_fill(&row).await? {
                Some(fill) => by_market.entry(row.market).or_default().push(fill),
                None => {
                    tracing::warn!(
                        market = row.market,
                        fill_id = row.fill_id,
                        "the fill's signed terms are not in the store or do not decode; quarantined"
                    );
                    self.reporter
                        .finish(row.market, row.fill_id, SettlementStatus::Quarantined);
                }
            }
        }
        for (market, fills) in by_market {
            self.settle_market(market, &fills).await?;
        }
        Ok(full)
    }

    /// The fill with both orders' signed terms, as they were when it matched.
    async fn pending_fill(&self, row: &FillRow) -> Result<Option<PendingFill>, StoreError> {
        let maker = self.signed_order(&row.maker, row.maker_nonce).await?;
        let taker = self.signed_order(&row.taker, row.taker_nonce).await?;
        Ok(maker.zip(taker).map(|(maker, taker)| PendingFill {
            market: row.market,
            fill_id: row.fill_id,
            maker,
            taker,
            price_ticks: row.price_ticks,
            size_lots: row.size_lots,
        }))
    }

    async fn signed_order(
        &self,
        owner: &Owner,
        nonce: u64,
    ) -> Result<Option<SignedOrder>, StoreError> {
        let Some(row) = self.store.order_version(owner, nonce).await? else {
            return Ok(None);
        };
        let order = hex::decode(&row.signed)
            .ok()
            .and_then(|bytes| Order::decode(&bytes).ok());
        let signature = hex::decode(&row.signature)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok());
        Ok(order
            .zip(signature)
            .map(|(order, signature)| SignedOrder { order, signature }))
    }

    /// Lands `fills` (one market, in fill-id order) one batch at a time.
    async fn settle_market(
        &mut self,
        market: u32,
        fills: &[PendingFill],
    ) -> Result<(), RoundError> {
        let account = self
            .rpc
            .get_account(&self.deployment.market_address(market))
            .await?;
        let on_chain = Market::try_deserialize(&mut account.data.as_slice())
            .map_err(|_| RoundError::Market(market))?;
        let next = self.next_batch.entry(market).or_insert(1);
        *next = (*next).max(on_chain.last_batch_id.saturating_add(1));
        let mut next_id = *next;
        let tables = match &mut self.tables {
            Some(tables) => tables
                .prepare(&self.rpc, &self.operator, &self.deployment, market, fills)
                .await?
                .to_vec(),
            None => Vec::new(),
        };
        let mut remaining = fills;
        let result = loop {
            if remaining.is_empty() {
                break Ok(());
            }
            match self
                .settle_first_batch(remaining, &tables, &mut next_id)
                .await
            {
                Ok(count) => remaining = remaining.get(count..).unwrap_or_default(),
                Err(error) => break Err(error),
            }
        };
        self.next_batch.insert(market, next_id);
        if result.is_err() {
            self.reporter.revert_submitted();
        }
        result
    }

    /// Packs `fills` (v0 over `tables`, legacy without) and lands the first batch; returns how
    /// many fills it carried.
    async fn settle_first_batch(
        &self,
        fills: &[PendingFill],
        tables: &[AddressLookupTableAccount],
        next_id: &mut u64,
    ) -> Result<usize, RoundError> {
        let recorded = self.recorded(fills).await?;
        let packer = Packer {
            deployment: &self.deployment,
            operator: self.operator.pubkey(),
            limits: Limits::default(),
        };
        let mut ids = *next_id;
        let packed = packer.pack_with_tables(fills, &recorded, &mut ids, tables)?;
        let Some(first) = packed.into_iter().next() else {
            return Ok(fills.len());
        };
        let count = first.batch.fills.len().max(1);
        *next_id = first.batch.batch_id.saturating_add(1);
        let mut submitter = Submitter::new(
            &self.rpc,
            &self.deployment,
            &self.operator,
            &self.reporter,
            SubmitterConfig {
                poll_interval: Duration::from_millis(50),
                ..SubmitterConfig::default()
            },
        );
        let result = submitter.settle(std::slice::from_ref(&first)).await;
        // Bisection takes fresh batch ids above the first one.
        for attempt in submitter.attempts() {
            *next_id = (*next_id).max(attempt.batch_id.saturating_add(1));
        }
        result?;
        Ok(count)
    }

    /// The `(owner, nonce)` of the fills' orders that already have an on-chain record.
    async fn recorded(&self, fills: &[PendingFill]) -> Result<HashSet<(Pubkey, u64)>, RoundError> {
        let keys: Vec<(Pubkey, u64)> = fills
            .iter()
            .flat_map(|f| [f.maker, f.taker])
            .map(|o| (o.order.owner, o.order.nonce))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut recorded = HashSet::new();
        for chunk in keys.chunks(100) {
            let addresses: Vec<Pubkey> = chunk
                .iter()
                .map(|(owner, nonce)| self.deployment.order_address(owner, *nonce))
                .collect();
            let accounts = self.rpc.get_multiple_accounts(&addresses).await?;
            for (key, account) in chunk.iter().zip(accounts) {
                if account.is_some() {
                    recorded.insert(*key);
                }
            }
        }
        Ok(recorded)
    }
}
