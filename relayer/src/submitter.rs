//! Lands packed settlement batches: signs with the operator key over a recent blockhash, sends,
//! and polls the signature until it is final at the `RpcClient`'s commitment.
//!
//! - A batch is re-signed (new blockhash, new signature) only once its previous blockhash has
//!   expired with no status for the previous signature: never two live transactions for one
//!   batch.
//! - A batch the program refuses is bisected into halves with fresh batch ids until the failing
//!   fill stands alone; that fill is quarantined with the program's error and the rest settle.
//! - Settlement is idempotent on-chain (batch and fill ids strictly increase per market), so a
//!   batch refused as a replay whose fills are at or below the market's `last_fill_id` counts
//!   as settled: another submitter (or an earlier attempt) landed it.
//!
//! - A batch packed as a v0 transaction is signed (and re-signed, and bisected) as v0 messages
//!   over the same lookup tables; a legacy one as legacy messages.
//!
//! Batches of one market must be given in fill-id order and are landed one after another: a
//! later fill settled first would make every earlier one unsettleable.

use crate::batcher::Packed;
use anchor_lang::AccountDeserialize;
use kestrel::error::KestrelError;
use kestrel::instructions::SettleFill;
use kestrel::state::Market;
use kestrel_sdk::settle::{versioned_message, Batch, BatchOrder};
use kestrel_sdk::Deployment;
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_config::RpcSendTransactionConfig;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::InstructionError;
use solana_sdk::message::AddressLookupTableAccount;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{TransactionError, VersionedTransaction};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// What became of one signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent; no final status yet.
    Pending,
    /// Landed and succeeded.
    Confirmed,
    /// Landed and failed; nothing of it applied.
    Failed {
        /// The runtime's error.
        error: TransactionError,
        /// The program's error code, when the settle program refused it.
        code: Option<u32>,
    },
    /// Refused as a replay, but its fills were already settled.
    AlreadySettled,
    /// Its blockhash expired without the signature ever being seen: it can never land.
    Expired,
}

/// One signed settlement transaction and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Market.
    pub market: u32,
    /// Batch id the transaction carries.
    pub batch_id: u64,
    /// Fill ids it carries.
    pub fills: Vec<u64>,
    /// Its signature.
    pub signature: Signature,
    /// The blockhash it was signed over.
    pub blockhash: Hash,
    /// What became of it.
    pub outcome: Outcome,
    /// When it was sent (or, once final, when its outcome was known).
    pub at: SystemTime,
}

/// A fill the program refuses on its own: it will never settle as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Market.
    pub market: u32,
    /// Fill id.
    pub fill_id: u64,
    /// The runtime's error for the fill alone.
    pub error: TransactionError,
    /// The program's error code (`KestrelError` numbering), if the program raised it.
    pub code: Option<u32>,
    /// The transaction that proved it.
    pub signature: Signature,
}

/// Where the submitter reports (the node wires this to the sequencer's settlement commands).
pub trait SettlementReport: Send + Sync {
    /// A transaction was sent (`attempt.outcome` is [`Outcome::Pending`]).
    fn submitted(&self, attempt: &Attempt);
    /// A transaction's outcome is known.
    fn finished(&self, attempt: &Attempt);
    /// A fill is settled on-chain; `signature` is `None` when a replay showed it settled by
    /// a transaction this submitter did not land.
    fn confirmed(&self, market: u32, fill_id: u64, signature: Option<Signature>);
    /// A fill was isolated as failing and will not be retried.
    fn quarantined(&self, fill: &Quarantined);
}

/// Why settlement stopped (the unsettled fills stay pending for a later run).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The RPC node failed.
    #[error("rpc: {0}")]
    Rpc(#[from] Box<ClientError>),
    /// The SDK could not build a (sub-)batch.
    #[error(transparent)]
    Sdk(#[from] kestrel_sdk::Error),
    /// The operator key could not sign the message.
    #[error("signing: {0}")]
    Sign(#[from] solana_sdk::signer::SignerError),
    /// The market account cannot be read.
    #[error("market {market}: {reason}")]
    Market {
        /// Market.
        market: u32,
        /// Why.
        reason: String,
    },
    /// The transaction failed for a reason no fill is responsible for (fees, accounts...).
    #[error("batch {batch_id} failed outside the program: {error}")]
    Transaction {
        /// Batch.
        batch_id: u64,
        /// The runtime's error.
        error: TransactionError,
    },
}

impl From<ClientError> for SubmitError {
    fn from(err: ClientError) -> Self {
        SubmitError::Rpc(Box::new(err))
    }
}

/// Timing of the confirmation loop.
#[derive(Debug, Clone, Copy)]
pub struct SubmitterConfig {
    /// Time between status polls.
    pub poll_interval: Duration,
    /// Time before the same signed transaction is sent again (same signature: harmless).
    pub rebroadcast_interval: Duration,
    /// Retries of a failed RPC read (blockhash, status, market) before the run stops.
    pub rpc_retries: u32,
    /// Wait before the first retry; doubles each time.
    pub rpc_backoff: Duration,
}

impl Default for SubmitterConfig {
    fn default() -> Self {
        SubmitterConfig {
            poll_interval: Duration::from_millis(200),
            rebroadcast_interval: Duration::from_secs(2),
            rpc_retries: 6,
            rpc_backoff: Duration::from_millis(100),
        }
    }
}

/// What one [`Submitter::settle`] call achieved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settled {
    /// `(market, fill id)` settled on-chain, in order.
    pub confirmed: Vec<(u32, u64)>,
    /// Fills isolated as failing.
    pub quarantined: Vec<Quarantined>,
}

/// Lands batches for one operator, at the commitment of the `RpcClient` it is given.
pub struct Submitter<'a, R: SettlementReport> {
    rpc: &'a RpcClient,
    deployment: &'a Deployment,
    operator: &'a Keypair,
    report: &'a R,
    config: SubmitterConfig,
    /// Highest batch id used per market (fresh ids go above it).
    used: HashMap<u32, u64>,
    attempts: Vec<Attempt>,
}

impl<'a, R: SettlementReport> Submitter<'a, R> {
    /// A submitter signing with `operator`.
    pub fn new(
        rpc: &'a RpcClient,
        deployment: &'a Deployment,
        operator: &'a Keypair,
        report: &'a R,
        config: SubmitterConfig,
    ) -> Self {
        Submitter {
            rpc,
            deployment,
            operator,
            report,
            config,
            used: HashMap::new(),
            attempts: Vec::new(),
        }
    }

    /// Every transaction sent so far, with its outcome.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Lands `packed` in order: every fill ends confirmed or quarantined, or an error stops
    /// the run (what was not reported stays pending).
    pub async fn settle(&mut self, packed: &[Packed]) -> Result<Settled, SubmitError> {
        let mut settled = Settled::default();
        for p in packed {
            self.settle_batch(p.batch.clone(), &p.lookup_tables, &mut settled)
                .await?;
        }
        Ok(settled)
    }

    async fn settle_batch(
        &mut self,
        batch: Batch,
        tables: &[AddressLookupTableAccount],
        out: &mut Settled,
    ) -> Result<(), SubmitError> {
        let market = batch.market_index;
        // Left halves are landed before right halves: fill ids must keep increasing.
        let mut work = vec![batch];
        while let Some(mut batch) = work.pop() {
            let used = self.used.get(&market).copied();
            if used.is_some_and(|used| batch.batch_id <= used) {
                batch = self.renumber(&batch)?;
            }
            self.used.insert(market, batch.batch_id);
            let (signature, result) = self.land(&batch, tables).await?;
            let error = match result {
                Ok(()) => {
                    self.finish(Outcome::Confirmed);
                    self.confirm(&batch.fills, market, Some(signature), out);
                    continue;
                }
                Err(error) => error,
            };
            let code = program_code(&error);
            let failed = Outcome::Failed {
                error: error.clone(),
                code,
            };
            let replay = [
                KestrelError::SettlementBatchReplayed,
                KestrelError::SettlementFillReplayed,
            ]
            .map(u32::from);
            if code.is_some_and(|code| replay.contains(&code)) {
                let on_chain = self.market(market).await?;
                let used = self.used.entry(market).or_default();
                *used = (*used).max(on_chain.last_batch_id);
                let (done, rest): (Vec<SettleFill>, Vec<SettleFill>) = batch
                    .fills
                    .iter()
                    .partition(|f| f.fill_id <= on_chain.last_fill_id);
                self.finish(if rest.is_empty() {
                    Outcome::AlreadySettled
                } else {
                    failed
                });
                self.confirm(&done, market, None, out);
                if !rest.is_empty() {
                    // Retried under a fresh batch id (taken when it is popped).
                    work.push(sub_batch(&batch, &rest, batch.batch_id));
                }
                continue;
            }
            self.finish(failed);
            if !matches!(error, TransactionError::InstructionError(..)) {
                return Err(SubmitError::Transaction {
                    batch_id: batch.batch_id,
                    error,
                });
            }
            match batch.fills.as_slice() {
                [fill] => {
                    let q = Quarantined {
                        market,
                        fill_id: fill.fill_id,
                        error,
                        code,
                        signature,
                    };
                    self.report.quarantined(&q);
                    out.quarantined.push(q);
                }
                fills => {
                    let (left, right) = fills.split_at(fills.len() / 2);
                    work.push(sub_batch(&batch, right, batch.batch_id));
                    work.push(sub_batch(&batch, left, batch.batch_id));
                }
            }
        }
        Ok(())
    }

    /// `batch` under the next unused batch id of its market.
    fn renumber(&self, batch: &Batch) -> Result<Batch, SubmitError> {
        let used = self.used.get(&batch.market_index).copied().unwrap_or(0);
        let batch_id = used.checked_add(1).ok_or(SubmitError::Market {
            market: batch.market_index,
            reason: "batch ids exhausted".into(),
        })?;
        Ok(Batch {
            batch_id,
            ..batch.clone()
        })
    }

    fn confirm(
        &self,
        fills: &[SettleFill],
        market: u32,
        signature: Option<Signature>,
        out: &mut Settled,
    ) {
        for fill in fills {
            self.report.confirmed(market, fill.fill_id, signature);
            out.confirmed.push((market, fill.fill_id));
        }
    }

    async fn market(&self, market: u32) -> Result<Market, SubmitError> {
        let address = self.deployment.market_address(market);
        let account = self
            .retry(|| {
                self.rpc
                    .get_account_with_commitment(&address, self.rpc.commitment())
            })
            .await?
            .value
            .ok_or_else(|| SubmitError::Market {
                market,
                reason: "no such account".into(),
            })?;
        Market::try_deserialize(&mut account.data.as_slice()).map_err(|err| SubmitError::Market {
            market,
            reason: err.to_string(),
        })
    }

    /// Signs and sends `batch` until one signature lands; returns it with its result (the
    /// caller records the last attempt's outcome).
    async fn land(
        &mut self,
        batch: &Batch,
        tables: &[AddressLookupTableAccount],
    ) -> Result<(Signature, Result<(), TransactionError>), SubmitError> {
        let instructions = self
            .deployment
            .settle_instructions(&self.operator.pubkey(), batch)?;
        let commitment = self.rpc.commitment();
        let send_config = RpcSendTransactionConfig {
            // The status is the only truth: a program error must land to be final.
            skip_preflight: true,
            ..RpcSendTransactionConfig::default()
        };
        loop {
            let (blockhash, _) = self
                .retry(|| self.rpc.get_latest_blockhash_with_commitment(commitment))
                .await?;
            let message =
                versioned_message(&instructions, &self.operator.pubkey(), tables, blockhash)?;
            let tx = VersionedTransaction::try_new(message, &[self.operator])?;
            let signature = tx.signatures.first().copied().unwrap_or_default();
            let attempt = Attempt {
                market: batch.market_index,
                batch_id: batch.batch_id,
                fills: batch.fills.iter().map(|f| f.fill_id).collect(),
                signature,
                blockhash,
                outcome: Outcome::Pending,
                at: SystemTime::now(),
            };
            self.report.submitted(&attempt);
            self.attempts.push(attempt);
            // A send error does not mean the node did not take it: the status decides.
            let _ = self
                .rpc
                .send_transaction_with_config(&tx, send_config)
                .await;
            let mut last_send = Instant::now();
            let result = loop {
                tokio::time::sleep(self.config.poll_interval).await;
                match self.status(&signature).await? {
                    Some(Some(result)) => break Some(result),
                    // Seen but not yet at our commitment: it may still land, wait.
                    Some(None) => continue,
                    None => {}
                }
                if !self
                    .retry(|| self.rpc.is_blockhash_valid(&blockhash, commitment))
                    .await?
                {
                    // Expired; one last look closes the race with a late landing.
                    match self.status(&signature).await? {
                        Some(Some(result)) => break Some(result),
                        Some(None) => continue,
                        None => break None,
                    }
                }
                if last_send.elapsed() >= self.config.rebroadcast_interval {
                    let _ = self
                        .rpc
                        .send_transaction_with_config(&tx, send_config)
                        .await;
                    last_send = Instant::now();
                }
            };
            match result {
                Some(result) => return Ok((signature, result)),
                None => self.finish(Outcome::Expired),
            }
        }
    }

    /// Runs an idempotent RPC read, retrying with exponential backoff when the node (or the
    /// network to it) fails; only a failure that outlasts every retry stops the run.
    async fn retry<T, F, Fut>(&self, mut call: F) -> Result<T, SubmitError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut delay = self.config.rpc_backoff;
        let mut tries = 0u32;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(err) if tries >= self.config.rpc_retries => return Err(err.into()),
                Err(err) => {
                    tracing::debug!(%err, tries, "rpc read failed; retrying");
                    tries = tries.saturating_add(1);
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
            }
        }
    }

    /// Records and reports the outcome of the last attempt.
    fn finish(&mut self, outcome: Outcome) {
        if let Some(last) = self.attempts.last_mut() {
            last.outcome = outcome;
            last.at = SystemTime::now();
            self.report.finished(last);
        }
    }

    /// `None`: unknown to the node; `Some(None)`: seen, not yet at the commitment;
    /// `Some(Some(result))`: final.
    async fn status(
        &self,
        signature: &Signature,
    ) -> Result<Option<Option<Result<(), TransactionError>>>, SubmitError> {
        let signatures = [*signature];
        let statuses = self
            .retry(|| self.rpc.get_signature_statuses(&signatures))
            .await?;
        Ok(statuses.value.into_iter().next().flatten().map(|status| {
            status
                .satisfies_commitment(self.rpc.commitment())
                .then_some(status.status)
        }))
    }
}

/// The program's error code in a failed transaction, if a program raised one.
pub fn program_code(error: &TransactionError) -> Option<u32> {
    match error {
        TransactionError::InstructionError(_, InstructionError::Custom(code)) => Some(*code),
        _ => None,
    }
}

/// The batch of `fills` (a subset of `batch`'s), with only the orders they reference.
fn sub_batch(batch: &Batch, fills: &[SettleFill], batch_id: u64) -> Batch {
    let mut orders: Vec<BatchOrder> = Vec::new();
    let mut index = |i: u8| -> u8 {
        let Some(order) = batch.orders.get(usize::from(i)) else {
            return i;
        };
        let at = match orders.iter().position(|o| o == order) {
            Some(at) => at,
            None => {
                orders.push(*order);
                orders.len().saturating_sub(1)
            }
        };
        u8::try_from(at).unwrap_or(u8::MAX)
    };
    let fills = fills
        .iter()
        .map(|f| SettleFill {
            maker: index(f.maker),
            taker: index(f.taker),
            ..*f
        })
        .collect();
    Batch {
        market_index: batch.market_index,
        batch_id,
        orders,
        fills,
    }
}
