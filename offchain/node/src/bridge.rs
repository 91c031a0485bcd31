//! The relayer ↔ router wiring.
//!
//! - The [`Listener`] follows the program from the cursor saved in the store (from genesis the
//!   first time): deposits become
//!   `Command::DepositObserved` (keyed by transaction signature and instruction index, so a
//!   replayed history credits nothing twice), cancel floors `Command::NonceFloorObserved`, and
//!   withdrawals (co-signed `withdraw`, the exit hatch's request and execution)
//!   `Command::ChainWithdrawal`, also keyed by signature and instruction index. A withdrawal the
//!   router did not expect is an alert: logged as an error and counted
//!   ([`Bridge::withdrawal_alerts`], and the `withdrawal_alerts_total` metric).
//! - After each pass, once every command it produced is acknowledged (durable), the listener
//!   saves its cursor (last transaction and slot) in the store under the exchange's address; a
//!   restart resumes after it, so a crash re-reads at most one pass, which the sequencer
//!   deduplicates by (signature, instruction index).
//! - After each pass over the history, co-signed withdrawal transactions whose last valid
//!   block height is below the block height read before the pass can no longer land, and every
//!   transaction that landed up to that height has been fed to the router: those still
//!   Broadcasting are failed (`Command::WithdrawalFinished`, funds released). A withdrawal that
//!   landed in the meantime is already Confirmed, and the router refuses to fail it.
//! - The settlement loop ([`crate::settle`]) lands pending fills, woken by the router's fills;
//!   in-process its statuses go straight into the sequencer as `Command::SettlementUpdate`
//!   ([`SequencerStatus`]).

use crate::settle::{self, SettleConfig, Settlement, SinkClosed, StatusSink, StatusUpdate, Wake};
use kestrel_relayer::listener::{
    ChainEvent, ChainSink, Listener, ListenerConfig, ListenerError, Origin, SinkError,
};
use kestrel_router::model::{ChainWithdrawalKind, Command, Event, WithdrawalStatus};
use kestrel_router::reject::Reject;
use kestrel_router::sequencer::Handle;
use kestrel_router::store::{ListenerCursor, Store, StoreError};
use kestrel_sdk::Deployment;
use prometheus::core::Collector;
use prometheus::IntCounter;
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Broadcasting withdrawals checked for expiry per listener pass.
const EXPIRY_ROWS: u32 = 256;

/// Timing of the relayer loops.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The settlement loop.
    pub settle: SettleConfig,
    /// Time between listener polls.
    pub listen_interval: Duration,
}

/// The listener's counters, as Prometheus metrics (registered by whoever serves them).
#[derive(Clone)]
pub struct ListenerMetrics {
    /// On-chain withdrawals the router did not expect (each is an alert for an operator).
    pub withdrawal_alerts: IntCounter,
    /// Co-signed withdrawal transactions failed because they expired without landing.
    pub withdrawals_expired: IntCounter,
    /// Chain events submitted to the sequencer (a restart resuming from its cursor does not
    /// submit the history before it again).
    pub chain_events: IntCounter,
}

/// A listener metric could not be created (a programming error: an invalid name).
#[derive(Debug, thiserror::Error)]
#[error("listener metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl ListenerMetrics {
    /// Fresh counters.
    pub fn new() -> Result<ListenerMetrics, MetricsError> {
        Ok(ListenerMetrics {
            withdrawal_alerts: IntCounter::new(
                "withdrawal_alerts_total",
                "On-chain withdrawals the router did not expect",
            )?,
            withdrawals_expired: IntCounter::new(
                "withdrawals_expired_total",
                "Co-signed withdrawals that expired without landing (funds released)",
            )?,
            chain_events: IntCounter::new(
                "listener_chain_events_total",
                "Chain events the listener submitted to the sequencer",
            )?,
        })
    }

    /// The metrics, to register with a Prometheus registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.withdrawal_alerts.clone()),
            Box::new(self.withdrawals_expired.clone()),
            Box::new(self.chain_events.clone()),
        ]
    }
}

/// The running relayer loops.
pub struct Bridge {
    listener: ChainListener,
    settlement: Settlement,
}

impl Bridge {
    /// Fills confirmed on-chain so far.
    pub fn settled(&self) -> u64 {
        self.settlement.settled()
    }

    /// Fills quarantined so far.
    pub fn quarantined(&self) -> u64 {
        self.settlement.quarantined()
    }

    /// The addresses of the lookup tables settlement packs with (empty with tables off).
    pub fn lookup_tables(&self) -> Vec<Pubkey> {
        self.settlement.counters().lookup_tables()
    }

    /// On-chain withdrawals the router did not expect (an alert: each needs an operator).
    pub fn withdrawal_alerts(&self) -> u64 {
        self.listener.metrics.withdrawal_alerts.get()
    }

    /// Co-signed withdrawal transactions failed because they expired without landing.
    pub fn withdrawals_expired(&self) -> u64 {
        self.listener.metrics.withdrawals_expired.get()
    }

    /// The listener's metrics.
    pub fn listener_metrics(&self) -> &ListenerMetrics {
        &self.listener.metrics
    }

    /// Stops both loops (a settlement round in flight finishes) and drains the status updates.
    pub async fn shutdown(self) {
        self.listener.shutdown().await;
        self.settlement.shutdown().await;
    }
}

/// Starts the listener and the settlement loop, both feeding `sequencer`; the loop settles on
/// every `wake` (see [`settle::feed_wake`]) and at least every `config.settle.interval`.
pub fn start(
    rpc_url: String,
    deployment: Deployment,
    operator: Arc<Keypair>,
    (sequencer, store): (Handle, Store),
    config: BridgeConfig,
    wake: Option<Wake>,
) -> Result<Bridge, MetricsError> {
    let listener = ChainListener::start(
        RpcClient::new(rpc_url.clone()),
        deployment.clone(),
        sequencer.clone(),
        store.clone(),
        config.listen_interval,
        ListenerMetrics::new()?,
    );
    let settlement = settle::spawn(
        RpcClient::new(rpc_url),
        deployment,
        operator,
        store,
        SequencerStatus(sequencer),
        config.settle,
        wake,
    );
    Ok(Bridge {
        listener,
        settlement,
    })
}

/// Settlement statuses straight into the sequencer (the router runs in this process).
pub struct SequencerStatus(pub Handle);

impl StatusSink for SequencerStatus {
    async fn deliver(&self, update: StatusUpdate) -> Result<(), SinkClosed> {
        self.0
            .submit(Command::SettlementUpdate {
                market: update.market,
                fill_id: update.fill_id,
                status: update.status,
            })
            .await
            .map(|_| ())
            .map_err(|e| SinkClosed(e.to_string()))
    }
}

/// The chain listener feeding the sequencer, running.
pub struct ChainListener {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    metrics: ListenerMetrics,
}

impl ChainListener {
    /// Follows the program from the cursor saved in `store` (from genesis without one), at
    /// `rpc`'s commitment, submits its deposits, cancel floors and withdrawals, saves the
    /// cursor after each pass, and fails the co-signed withdrawals in `store` that expired,
    /// counting into `metrics`.
    pub fn start(
        rpc: RpcClient,
        deployment: Deployment,
        sequencer: Handle,
        store: Store,
        interval: Duration,
        metrics: ListenerMetrics,
    ) -> ChainListener {
        let (stop, stopped) = watch::channel(false);
        let sink = RouterSink {
            sequencer,
            metrics: metrics.clone(),
        };
        let task = tokio::spawn(listen(rpc, deployment, sink, store, interval, stopped));
        ChainListener {
            stop,
            task,
            metrics,
        }
    }

    /// The listener's metrics.
    pub fn metrics(&self) -> &ListenerMetrics {
        &self.metrics
    }

    /// Stops the listener after its current poll.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Chain events into the sequencer.
struct RouterSink {
    sequencer: Handle,
    metrics: ListenerMetrics,
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
        self.metrics.chain_events.inc();
        for e in &ack.events {
            if let Event::Rejected {
                reason: Reject::UnexpectedWithdrawal,
                ..
            } = e
            {
                self.metrics.withdrawal_alerts.inc();
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
    let config = ListenerConfig::default();
    let name = deployment.exchange.to_string();
    let mut resume = None;
    while !*stop.borrow() {
        match saved_cursor(&store, &name).await {
            Ok(cursor) => {
                resume = Some(cursor);
                break;
            }
            Err(error) => tracing::warn!(%error, "reading the listener cursor; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
    let Some(cursor) = resume else { return };
    let mut listener = Listener::new(&rpc, &deployment, config, cursor);
    while !*stop.borrow() {
        if let Err(error) = follow(&rpc, &mut listener, &sink, &store, &name).await {
            tracing::warn!(%error, "listener failed; resuming from its cursor");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The signature the listener saved under `name`; `None` without one, or when the saved one
/// does not parse (reading from genesis again is harmless: the router deduplicates).
async fn saved_cursor(store: &Store, name: &str) -> Result<Option<Signature>, FollowError> {
    let Some(saved) = store.listener_cursor(name).await? else {
        return Ok(None);
    };
    match Signature::from_str(&saved.signature) {
        Ok(signature) => {
            tracing::info!(%signature, slot = saved.slot, "listener resumes after its saved cursor");
            Ok(Some(signature))
        }
        Err(_) => {
            tracing::error!(
                saved = saved.signature,
                "the saved listener cursor is not a signature; reading from genesis"
            );
            Ok(None)
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
    name: &str,
) -> Result<(), FollowError> {
    let height = rpc
        .get_block_height()
        .await
        .map_err(|e| FollowError::Rpc(Box::new(e)))?;
    let before = listener.cursor();
    let polled = listener.poll_once(sink).await;
    // Whatever the pass ended with, the cursor only covers transactions whose commands were
    // acknowledged: save it before reporting a failure.
    if let (Some(signature), Some(slot)) = (listener.cursor(), listener.cursor_slot()) {
        if listener.cursor() != before {
            let cursor = ListenerCursor {
                signature: signature.to_string(),
                slot,
            };
            store.save_listener_cursor(name, &cursor).await?;
        }
    }
    polled?;
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
            sink.metrics.withdrawals_expired.inc();
            tracing::info!(
                id = row.id,
                "co-signed withdrawal expired without landing; funds released"
            );
        }
    }
    Ok(())
}
