//! The relayer ↔ router wiring.
//!
//! - The [`Listener`] follows the program from genesis: deposits become
//!   `Command::DepositObserved` (keyed by transaction signature and instruction index, so a
//!   replayed history credits nothing twice), cancel floors `Command::NonceFloorObserved`, and
//!   withdrawals (co-signed `withdraw`, the exit hatch's request and execution)
//!   `Command::ChainWithdrawal`, also keyed by signature and instruction index. A withdrawal the
//!   router did not expect is an alert: logged as an error and counted
//!   ([`Bridge::withdrawal_alerts`]).
//! - After each pass over the history, co-signed withdrawal transactions whose last valid
//!   block height is below the block height read before the pass can no longer land, and every
//!   transaction that landed up to that height has been fed to the router: those still
//!   Broadcasting are failed (`Command::WithdrawalFinished`, funds released). A withdrawal that
//!   landed in the meantime is already Confirmed, and the router refuses to fail it.
//! - The settlement loop reads pending fills from the store, rebuilds both signed orders from
//!   the orders' signed bytes, packs one batch at a time (orders already recorded on-chain are
//!   referenced, not re-verified), lands it with the [`Submitter`] and reports every status
//!   back as `Command::SettlementUpdate`.
//!
//! A fill made before its order was replaced settles under the old terms, whose signed bytes
//! the store no longer holds (its row carries the current terms): such fills are quarantined.

use anchor_lang::AccountDeserialize;
use kestrel::encoding::Order;
use kestrel::state::Market;
use kestrel_relayer::batcher::{Limits, PackError, Packer, PendingFill};
use kestrel_relayer::listener::{
    ChainEvent, ChainSink, Listener, ListenerConfig, ListenerError, Origin, SinkError,
};
use kestrel_relayer::submitter::{
    Attempt, Quarantined, SettlementReport, SubmitError, Submitter, SubmitterConfig,
};
use kestrel_router::model::{
    ChainWithdrawalKind, Command, Event, SettlementStatus, WithdrawalStatus,
};
use kestrel_router::reject::Reject;
use kestrel_router::sequencer::Handle;
use kestrel_router::store::{FillRow, Store, StoreError};
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::Deployment;
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Fills read from the store per settlement round.
const ROUND_FILLS: u32 = 256;
/// Broadcasting withdrawals checked for expiry per listener pass.
const EXPIRY_ROWS: u32 = 256;

/// Timing of the relayer loops.
#[derive(Debug, Clone, Copy)]
pub struct BridgeConfig {
    /// Time between settlement rounds.
    pub settle_interval: Duration,
    /// Time between listener polls.
    pub listen_interval: Duration,
}

#[derive(Default)]
struct Counters {
    settled: AtomicU64,
    quarantined: AtomicU64,
    withdrawal_alerts: AtomicU64,
    withdrawals_expired: AtomicU64,
}

/// The running relayer loops.
pub struct Bridge {
    stop: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
    forwarder: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl Bridge {
    /// Fills confirmed on-chain so far.
    pub fn settled(&self) -> u64 {
        self.counters.settled.load(Ordering::Relaxed)
    }

    /// Fills quarantined so far.
    pub fn quarantined(&self) -> u64 {
        self.counters.quarantined.load(Ordering::Relaxed)
    }

    /// On-chain withdrawals the router did not expect (an alert: each needs an operator).
    pub fn withdrawal_alerts(&self) -> u64 {
        self.counters.withdrawal_alerts.load(Ordering::Relaxed)
    }

    /// Co-signed withdrawal transactions failed because they expired without landing.
    pub fn withdrawals_expired(&self) -> u64 {
        self.counters.withdrawals_expired.load(Ordering::Relaxed)
    }

    /// Stops both loops (a settlement round in flight finishes) and drains the status updates.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for task in self.loops {
            let _ = task.await;
        }
        let _ = self.forwarder.await;
    }
}

/// Starts the listener, the settlement loop and the forwarder of their commands.
pub fn start(
    rpc_url: String,
    deployment: Deployment,
    operator: Arc<Keypair>,
    sequencer: Handle,
    store: Store,
    config: BridgeConfig,
) -> Bridge {
    let (stop, stopped) = watch::channel(false);
    let (updates, mut updates_rx) = mpsc::unbounded_channel::<Command>();
    let counters = Arc::new(Counters::default());
    let forward_to = sequencer.clone();
    let forwarder = tokio::spawn(async move {
        while let Some(command) = updates_rx.recv().await {
            if forward_to.submit(command).await.is_err() {
                tracing::warn!("sequencer stopped; settlement statuses dropped");
                return;
            }
        }
    });
    let listener = tokio::spawn(listen(
        RpcClient::new(rpc_url.clone()),
        deployment.clone(),
        RouterSink {
            sequencer,
            counters: counters.clone(),
        },
        store.clone(),
        config.listen_interval,
        stopped.clone(),
    ));
    let settler = Settler {
        rpc: RpcClient::new(rpc_url),
        deployment,
        operator,
        store,
        reporter: Reporter {
            updates,
            counters: counters.clone(),
            state: Mutex::default(),
        },
        next_batch: HashMap::new(),
    };
    let settle = tokio::spawn(settler.run(config.settle_interval, stopped));
    Bridge {
        stop,
        loops: vec![listener, settle],
        forwarder,
        counters,
    }
}

/// Chain events into the sequencer.
struct RouterSink {
    sequencer: Handle,
    counters: Arc<Counters>,
}

fn signature_bytes(signature: &Signature) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(signature.as_ref());
    out
}

/// The router command for a chain event.
fn command(event: ChainEvent) -> Command {
    let withdrawal = |owner: Pubkey, asset, origin: Origin, kind| Command::ChainWithdrawal {
        owner: owner.to_bytes(),
        asset,
        tx: signature_bytes(&origin.tx_signature),
        ix_index: u16::from(origin.ix_index),
        kind,
    };
    match event {
        ChainEvent::Deposit {
            owner,
            asset,
            amount,
            tx_signature,
            ix_index,
            ..
        } => Command::DepositObserved {
            owner: owner.to_bytes(),
            asset,
            amount,
            tx: signature_bytes(&tx_signature),
            ix_index: u16::from(ix_index),
        },
        ChainEvent::NonceFloor { owner, floor, .. } => Command::NonceFloorObserved {
            owner: owner.to_bytes(),
            floor,
        },
        ChainEvent::Withdrawn {
            owner,
            asset,
            amount,
            cosignature,
            origin,
        } => withdrawal(
            owner,
            asset,
            origin,
            ChainWithdrawalKind::Immediate {
                amount,
                cosignature: signature_bytes(&cosignature),
            },
        ),
        ChainEvent::WithdrawalRequested {
            owner,
            asset,
            amount,
            origin,
        } => withdrawal(
            owner,
            asset,
            origin,
            ChainWithdrawalKind::Requested { amount },
        ),
        ChainEvent::WithdrawalExecuted {
            owner,
            asset,
            origin,
            ..
        } => withdrawal(owner, asset, origin, ChainWithdrawalKind::Executed),
    }
}

impl ChainSink for RouterSink {
    async fn emit(&self, event: ChainEvent) -> Result<(), SinkError> {
        let ack = self
            .sequencer
            .submit(command(event))
            .await
            .map_err(|e| SinkError(Box::new(e)))?;
        for e in &ack.events {
            if let Event::Rejected {
                reason: Reject::UnexpectedWithdrawal,
                ..
            } = e
            {
                self.counters
                    .withdrawal_alerts
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    ?event,
                    seq = ack.seq,
                    "ALERT: on-chain withdrawal the router did not expect"
                );
            }
        }
        Ok(())
    }
}

/// Why one pass of the listener failed.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error(transparent)]
    Listener(#[from] ListenerError),
    #[error("rpc: {0}")]
    Rpc(#[from] Box<ClientError>),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the sequencer stopped")]
    Stopped,
}

async fn listen(
    rpc: RpcClient,
    deployment: Deployment,
    sink: RouterSink,
    store: Store,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let config = ListenerConfig {
        poll_interval: interval,
        ..ListenerConfig::default()
    };
    let mut listener = Listener::new(&rpc, &deployment, config, None);
    while !*stop.borrow() {
        if let Err(error) = follow(&rpc, &mut listener, &sink, &store).await {
            tracing::warn!(%error, "listener failed; resuming from its cursor");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One pass over the new history, then the expiry of co-signed withdrawals up to the block
/// height read before the pass.
async fn follow(
    rpc: &RpcClient,
    listener: &mut Listener<'_>,
    sink: &RouterSink,
    store: &Store,
) -> Result<(), FollowError> {
    let height = rpc
        .get_block_height()
        .await
        .map_err(|e| FollowError::Rpc(Box::new(e)))?;
    listener.poll_once(sink).await?;
    for row in store.broadcasting_withdrawals(EXPIRY_ROWS).await? {
        if row.last_valid_block_height.is_none_or(|h| h >= height) {
            continue;
        }
        let ack = sink
            .sequencer
            .submit(Command::WithdrawalFinished {
                id: row.id,
                confirmed: false,
            })
            .await
            .map_err(|_| FollowError::Stopped)?;
        if ack.events.iter().any(|e| {
            matches!(
                e,
                Event::Withdrawal {
                    status: WithdrawalStatus::Failed,
                    ..
                }
            )
        }) {
            sink.counters
                .withdrawals_expired
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                id = row.id,
                "co-signed withdrawal expired without landing; funds released"
            );
        }
    }
    Ok(())
}

/// Where the submitter's outcomes go: status commands, counters, and which fills are done.
struct Reporter {
    updates: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    state: Mutex<ReportState>,
}

#[derive(Default)]
struct ReportState {
    /// Reported `Submitted`, not yet final.
    submitted: HashSet<(u32, u64)>,
    /// Confirmed or quarantined (the store may still list them as pending for a moment).
    finished: HashSet<(u32, u64)>,
}

impl Reporter {
    fn state(&self) -> std::sync::MutexGuard<'_, ReportState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, market: u32, fill_id: u64, status: SettlementStatus) {
        let _ = self.updates.send(Command::SettlementUpdate {
            market,
            fill_id,
            status,
        });
    }

    fn finish(&self, market: u32, fill_id: u64, status: SettlementStatus) {
        let fresh = {
            let mut state = self.state();
            state.submitted.remove(&(market, fill_id));
            state.finished.insert((market, fill_id))
        };
        if fresh {
            let counter = match status {
                SettlementStatus::Quarantined => &self.counters.quarantined,
                _ => &self.counters.settled,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.update(market, fill_id, status);
        }
    }

    /// Fills submitted but not final when a run stopped go back to pending (retried later).
    fn revert_submitted(&self) {
        let pending: Vec<(u32, u64)> = self.state().submitted.drain().collect();
        for (market, fill_id) in pending {
            self.update(market, fill_id, SettlementStatus::Pending);
        }
    }

    /// Keeps only the pending rows not yet finished; forgets finished fills the store no
    /// longer lists as pending.
    fn unfinished(&self, rows: Vec<FillRow>) -> Vec<FillRow> {
        let mut state = self.state();
        let listed: HashSet<(u32, u64)> = rows.iter().map(|r| (r.market, r.fill_id)).collect();
        state.finished.retain(|key| listed.contains(key));
        rows.into_iter()
            .filter(|r| !state.finished.contains(&(r.market, r.fill_id)))
            .collect()
    }
}

impl SettlementReport for Reporter {
    fn submitted(&self, attempt: &Attempt) {
        let fresh: Vec<u64> = {
            let mut state = self.state();
            attempt
                .fills
                .iter()
                .copied()
                .filter(|id| state.submitted.insert((attempt.market, *id)))
                .collect()
        };
        for fill_id in fresh {
            self.update(attempt.market, fill_id, SettlementStatus::Submitted);
        }
    }

    fn finished(&self, attempt: &Attempt) {
        tracing::debug!(batch = attempt.batch_id, outcome = ?attempt.outcome, "settle transaction");
    }

    fn confirmed(&self, market: u32, fill_id: u64, _signature: Option<Signature>) {
        self.finish(market, fill_id, SettlementStatus::Confirmed);
    }

    fn quarantined(&self, fill: &Quarantined) {
        tracing::warn!(
            market = fill.market,
            fill_id = fill.fill_id,
            code = ?fill.code,
            error = %fill.error,
            "fill quarantined"
        );
        self.finish(fill.market, fill.fill_id, SettlementStatus::Quarantined);
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
}

impl Settler {
    async fn run(mut self, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
            if let Err(error) = self.round().await {
                tracing::warn!(%error, "settlement round failed; retrying");
            }
        }
    }

    async fn round(&mut self) -> Result<(), RoundError> {
        let rows = self.store.next_pending_settlements(ROUND_FILLS).await?;
        let rows = self.reporter.unfinished(rows);
        let mut by_market: BTreeMap<u32, Vec<PendingFill>> = BTreeMap::new();
        for row in rows {
            match self.pending_fill(&row).await? {
                Some(fill) => by_market.entry(row.market).or_default().push(fill),
                None => {
                    tracing::warn!(
                        market = row.market,
                        fill_id = row.fill_id,
                        "the fill's signed terms are not in the store (replaced order); quarantined"
                    );
                    self.reporter
                        .finish(row.market, row.fill_id, SettlementStatus::Quarantined);
                }
            }
        }
        for (market, fills) in by_market {
            self.settle_market(market, &fills).await?;
        }
        Ok(())
    }

    /// The fill with both orders' signed terms, if the store still holds them.
    async fn pending_fill(&self, row: &FillRow) -> Result<Option<PendingFill>, StoreError> {
        let maker = self
            .signed_order(row.maker_order_id, row.maker_nonce)
            .await?;
        let taker = self
            .signed_order(row.taker_order_id, row.taker_nonce)
            .await?;
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
        order_id: u64,
        nonce: u64,
    ) -> Result<Option<SignedOrder>, StoreError> {
        let Some(row) = self.store.order(order_id).await? else {
            return Ok(None);
        };
        if row.nonce != nonce {
            return Ok(None);
        }
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
        let mut remaining = fills;
        let result = loop {
            if remaining.is_empty() {
                break Ok(());
            }
            match self.settle_first_batch(remaining, &mut next_id).await {
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

    /// Packs `fills` and lands the first batch; returns how many fills it carried.
    async fn settle_first_batch(
        &self,
        fills: &[PendingFill],
        next_id: &mut u64,
    ) -> Result<usize, RoundError> {
        let recorded = self.recorded(fills).await?;
        let packer = Packer {
            deployment: &self.deployment,
            operator: self.operator.pubkey(),
            limits: Limits::default(),
        };
        let mut ids = *next_id;
        let Some(first) = packer.pack(fills, &recorded, &mut ids)?.into_iter().next() else {
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
