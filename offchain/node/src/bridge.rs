//! The relayer ↔ router wiring.
//!
//! - The [`Listener`] follows the program from genesis: deposits become
//!   `Command::DepositObserved` (keyed by transaction signature and instruction index, so a
//!   replayed history credits nothing twice) and cancel floors `Command::NonceFloorObserved`.
//!   Withdrawal events are logged only: the router has no command for them yet.
//! - The settlement loop ([`crate::settle`]) lands pending fills; in-process its statuses go
//!   straight into the sequencer as `Command::SettlementUpdate` ([`SequencerStatus`]).

use crate::settle::{self, Settlement, SinkClosed, StatusSink, StatusUpdate};
use kestrel_relayer::listener::{ChainEvent, ChainSink, Listener, ListenerConfig, SinkError};
use kestrel_router::model::Command;
use kestrel_router::sequencer::Handle;
use kestrel_router::store::Store;
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::signature::{Keypair, Signature};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Timing of the relayer loops.
#[derive(Debug, Clone, Copy)]
pub struct BridgeConfig {
    /// Time between settlement rounds.
    pub settle_interval: Duration,
    /// Time between listener polls.
    pub listen_interval: Duration,
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

    /// Stops both loops (a settlement round in flight finishes) and drains the status updates.
    pub async fn shutdown(self) {
        self.listener.shutdown().await;
        self.settlement.shutdown().await;
    }
}

/// Starts the listener and the settlement loop, both feeding `sequencer`.
pub fn start(
    rpc_url: String,
    deployment: Deployment,
    operator: Arc<Keypair>,
    sequencer: Handle,
    store: Store,
    config: BridgeConfig,
) -> Bridge {
    let listener = ChainListener::start(
        RpcClient::new(rpc_url.clone()),
        deployment.clone(),
        sequencer.clone(),
        config.listen_interval,
    );
    let settlement = settle::spawn(
        RpcClient::new(rpc_url),
        deployment,
        operator,
        store,
        SequencerStatus(sequencer),
        config.settle_interval,
    );
    Bridge {
        listener,
        settlement,
    }
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
}

impl ChainListener {
    /// Follows the program from genesis, at `rpc`'s commitment, and submits its deposits and
    /// cancel floors.
    pub fn start(
        rpc: RpcClient,
        deployment: Deployment,
        sequencer: Handle,
        interval: Duration,
    ) -> ChainListener {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(listen(
            rpc,
            deployment,
            RouterSink { sequencer },
            interval,
            stopped,
        ));
        ChainListener { stop, task }
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
}

fn signature_bytes(signature: &Signature) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(signature.as_ref());
    out
}

impl ChainSink for RouterSink {
    async fn emit(&self, event: ChainEvent) -> Result<(), SinkError> {
        let command = match event {
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
            other => {
                tracing::info!(event = ?other, "chain event not forwarded to the router");
                return Ok(());
            }
        };
        self.sequencer
            .submit(command)
            .await
            .map(|_| ())
            .map_err(|e| SinkError(Box::new(e)))
    }
}

async fn listen(
    rpc: RpcClient,
    deployment: Deployment,
    sink: RouterSink,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let config = ListenerConfig {
        poll_interval: interval,
        ..ListenerConfig::default()
    };
    let mut cursor = None;
    while !*stop.borrow() {
        let mut listener = Listener::new(&rpc, &deployment, config, cursor);
        let result = listener.run(&sink, stop.clone()).await;
        cursor = listener.cursor();
        if let Err(error) = result {
            tracing::warn!(%error, "listener failed; resuming from its cursor");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
