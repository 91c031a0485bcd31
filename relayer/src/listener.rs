//! Follows the kestrel program's successful transactions and turns their instructions into
//! [`ChainEvent`]s: deposits (credited with what the vault actually received), withdrawals
//! (immediate, requested, executed) and on-chain cancel floors.
//!
//! Natively run programs' logs never reach an RPC node's answers on the embedded chain, and
//! logs are truncated on real clusters, so the listener never reads events from logs: it decodes
//! the top-level kestrel instructions of each successful transaction and takes amounts that
//! move tokens from the vault's token balances before and after the transaction.
//!
//! History is read with `getSignaturesForAddress` (newest first, paged with `before`, down to
//! the listener's cursor with `until`) and processed oldest first. The cursor advances after
//! each transaction's events are emitted; a crash between the two re-emits that transaction's
//! events, which the consumer deduplicates by (signature, instruction index).

use anchor_lang::{AnchorDeserialize, Discriminator};
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_client::GetConfirmedSignaturesForAddress2Config;
use solana_client::rpc_config::RpcTransactionConfig;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_transaction_status::option_serializer::OptionSerializer;
use solana_transaction_status::{
    EncodedConfirmedTransactionWithStatusMeta, UiTransactionEncoding, UiTransactionTokenBalance,
};
use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;

/// Where an event comes from: its transaction, the instruction's position in it, the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The transaction's first signature.
    pub tx_signature: Signature,
    /// Index of the kestrel instruction among the transaction's top-level instructions.
    pub ix_index: u8,
    /// Slot the transaction landed in.
    pub slot: u64,
}

/// What a successful kestrel transaction did, as the off-chain side needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainEvent {
    /// `amount` atoms of `asset` arrived in the vault for `owner`.
    Deposit {
        /// Depositor.
        owner: Pubkey,
        /// Asset index.
        asset: u8,
        /// What the vault received (post − pre token balance).
        amount: u64,
        /// The transaction's first signature.
        tx_signature: Signature,
        /// Instruction index: with the signature, the deposit's unique key.
        ix_index: u8,
        /// Slot.
        slot: u64,
    },
    /// Immediate withdrawal co-signed by the operator.
    Withdrawn {
        /// Owner.
        owner: Pubkey,
        /// Asset index.
        asset: u8,
        /// What left the vault.
        amount: u64,
        /// The operator's signature in the transaction: it identifies the co-signed transaction
        /// the operator handed out, before the owner's signature (the transaction's id) existed.
        cosignature: Signature,
        /// Origin.
        origin: Origin,
    },
    /// First step of the operator-free exit: `amount` set aside on-chain.
    WithdrawalRequested {
        /// Owner.
        owner: Pubkey,
        /// Asset index.
        asset: u8,
        /// Amount added to the pending withdrawal.
        amount: u64,
        /// Origin.
        origin: Origin,
    },
    /// Second step of the operator-free exit: the pending amount left the vault. The off-chain
    /// ledger already took the amount out at the request; this closes it.
    WithdrawalExecuted {
        /// Owner.
        owner: Pubkey,
        /// Asset index.
        asset: u8,
        /// What left the vault; `None` when several delayed withdrawals of one asset in one
        /// transaction cannot be told apart.
        amount: Option<u64>,
        /// Origin.
        origin: Origin,
    },
    /// Every order of `owner` with a nonce below `floor` is dead on-chain.
    NonceFloor {
        /// Owner.
        owner: Pubkey,
        /// New floor.
        floor: u64,
        /// Origin.
        origin: Origin,
    },
}

/// The consumer could not take an event; the listener stops and retries from its cursor.
#[derive(Debug, thiserror::Error)]
#[error("chain sink: {0}")]
pub struct SinkError(pub Box<dyn std::error::Error + Send + Sync>);

/// Where the listener's events go (the node wires this to the sequencer).
pub trait ChainSink: Send + Sync {
    /// Takes one event; events arrive in chain order.
    fn emit(&self, event: ChainEvent) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Why a listener step failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The RPC node failed or refused.
    #[error("rpc: {0}")]
    Rpc(#[from] Box<solana_client::client_error::ClientError>),
    /// The node answered with something that cannot be decoded.
    #[error("transaction {signature}: {reason}")]
    Malformed {
        /// Transaction.
        signature: Signature,
        /// What was wrong.
        reason: &'static str,
    },
    /// The node listed a signature that does not parse.
    #[error("unparseable signature {0}")]
    BadSignature(String),
    /// The sink refused an event.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl From<solana_client::client_error::ClientError> for ListenerError {
    fn from(err: solana_client::client_error::ClientError) -> Self {
        ListenerError::Rpc(Box::new(err))
    }
}

/// How the listener reads the chain. It follows history at the commitment of the `RpcClient`
/// it is given (`RpcClient::new` defaults to finalized).
#[derive(Debug, Clone, Copy)]
pub struct ListenerConfig {
    /// Signatures per `getSignaturesForAddress` page (at most 1,000).
    pub page_size: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig { page_size: 1_000 }
    }
}

/// Follows one deployment's kestrel transactions from a cursor.
pub struct Listener<'a> {
    rpc: &'a RpcClient,
    deployment: &'a Deployment,
    config: ListenerConfig,
    cursor: Option<Signature>,
    cursor_slot: Option<u64>,
}

impl<'a> Listener<'a> {
    /// A listener that starts after `cursor` (the last signature it processed; `None`: from
    /// the beginning of the program's history).
    pub fn new(
        rpc: &'a RpcClient,
        deployment: &'a Deployment,
        config: ListenerConfig,
        cursor: Option<Signature>,
    ) -> Self {
        Listener {
            rpc,
            deployment,
            config,
            cursor,
            cursor_slot: None,
        }
    }

    /// The last transaction processed (persist it to resume after a restart).
    pub fn cursor(&self) -> Option<Signature> {
        self.cursor
    }

    /// The slot of [`Listener::cursor`]'s transaction, once this listener processed one (a
    /// cursor given to [`Listener::new`] comes without its slot).
    pub fn cursor_slot(&self) -> Option<u64> {
        self.cursor_slot
    }

    /// Processes every transaction newer than the cursor, oldest first; returns how many
    /// events it emitted.
    pub async fn poll_once<S: ChainSink>(&mut self, sink: &S) -> Result<usize, ListenerError> {
        let mut newest_first = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .rpc
                .get_signatures_for_address_with_config(
                    &kestrel::ID,
                    GetConfirmedSignaturesForAddress2Config {
                        before,
                        until: self.cursor,
                        limit: Some(self.config.page_size),
                        commitment: Some(self.rpc.commitment()),
                    },
                )
                .await?;
            let full = page.len() >= self.config.page_size;
            for entry in page {
                let signature = Signature::from_str(&entry.signature)
                    .map_err(|_| ListenerError::BadSignature(entry.signature.clone()))?;
                newest_first.push((signature, entry.err.is_none(), entry.slot));
            }
            match newest_first.last() {
                Some((oldest, _, _)) if full => before = Some(*oldest),
                _ => break,
            }
        }
        let mut emitted = 0usize;
        for (signature, succeeded, slot) in newest_first.into_iter().rev() {
            if succeeded {
                let tx = self
                    .rpc
                    .get_transaction_with_config(
                        &signature,
                        RpcTransactionConfig {
                            encoding: Some(UiTransactionEncoding::Base64),
                            commitment: Some(self.rpc.commitment()),
                            max_supported_transaction_version: Some(0),
                        },
                    )
                    .await?;
                for event in decode_transaction(self.deployment, &signature, &tx)? {
                    sink.emit(event).await?;
                    emitted = emitted.saturating_add(1);
                }
            }
            self.cursor = Some(signature);
            self.cursor_slot = Some(slot);
        }
        Ok(emitted)
    }
}

/// One decoded kestrel instruction, before amounts are settled from token balances.
struct Decoded {
    ix_index: u8,
    kind: Kind,
    owner: Pubkey,
    asset: u8,
}

enum Kind {
    Deposit {
        vault: Pubkey,
        amount: u64,
    },
    Withdraw {
        vault: Pubkey,
        amount: u64,
        cosignature: Signature,
    },
    Execute {
        vault: Pubkey,
    },
    Request {
        amount: u64,
    },
    CancelUpTo {
        floor: u64,
    },
}

impl Kind {
    fn vault(&self) -> Option<Pubkey> {
        match self {
            Kind::Deposit { vault, .. }
            | Kind::Withdraw { vault, .. }
            | Kind::Execute { vault } => Some(*vault),
            Kind::Request { .. } | Kind::CancelUpTo { .. } => None,
        }
    }
}

/// The events of one transaction as `getTransaction` returned it; nothing for a failed one.
pub fn decode_transaction(
    deployment: &Deployment,
    signature: &Signature,
    confirmed: &EncodedConfirmedTransactionWithStatusMeta,
) -> Result<Vec<ChainEvent>, ListenerError> {
    let malformed = |reason| ListenerError::Malformed {
        signature: *signature,
        reason,
    };
    let meta = confirmed
        .transaction
        .meta
        .as_ref()
        .ok_or_else(|| malformed("no status meta"))?;
    if meta.err.is_some() || meta.status.is_err() {
        return Ok(Vec::new());
    }
    let tx = confirmed
        .transaction
        .transaction
        .decode()
        .ok_or_else(|| malformed("undecodable transaction"))?;
    let mut keys: Vec<Pubkey> = tx.message.static_account_keys().to_vec();
    if let OptionSerializer::Some(loaded) = &meta.loaded_addresses {
        for text in loaded.writable.iter().chain(&loaded.readonly) {
            keys.push(Pubkey::from_str(text).map_err(|_| malformed("bad loaded address"))?);
        }
    }
    let mut decoded = Vec::new();
    for (index, ix) in tx.message.instructions().iter().enumerate() {
        if keys.get(usize::from(ix.program_id_index)) != Some(&kestrel::ID) {
            continue;
        }
        let account = |position: usize| {
            ix.accounts
                .get(position)
                .and_then(|i| keys.get(usize::from(*i)))
                .copied()
                .ok_or_else(|| malformed("instruction account out of range"))
        };
        let ix_index = u8::try_from(index).map_err(|_| malformed("instruction index"))?;
        let signer_position = |key: &Pubkey| {
            keys.iter()
                .take(usize::from(tx.message.header().num_required_signatures))
                .position(|k| k == key)
        };
        if let Some(d) = decode_instruction(
            deployment,
            (signature, &tx.signatures),
            &ix.data,
            ix_index,
            account,
            signer_position,
        )? {
            decoded.push(d);
        }
    }
    let pre = token_balances(&meta.pre_token_balances, &keys, &malformed)?;
    let post = token_balances(&meta.post_token_balances, &keys, &malformed)?;
    let amounts = vault_amounts(&decoded, &pre, &post);
    let slot = confirmed.slot;
    Ok(decoded
        .iter()
        .zip(amounts)
        .map(|(d, amount)| {
            let origin = Origin {
                tx_signature: *signature,
                ix_index: d.ix_index,
                slot,
            };
            let (owner, asset) = (d.owner, d.asset);
            match d.kind {
                Kind::Deposit { .. } => ChainEvent::Deposit {
                    owner,
                    asset,
                    amount: amount.unwrap_or(0),
                    tx_signature: *signature,
                    ix_index: d.ix_index,
                    slot,
                },
                Kind::Withdraw { cosignature, .. } => ChainEvent::Withdrawn {
                    owner,
                    asset,
                    amount: amount.unwrap_or(0),
                    cosignature,
                    origin,
                },
                Kind::Execute { .. } => ChainEvent::WithdrawalExecuted {
                    owner,
                    asset,
                    amount,
                    origin,
                },
                Kind::Request { amount } => ChainEvent::WithdrawalRequested {
                    owner,
                    asset,
                    amount,
                    origin,
                },
                Kind::CancelUpTo { floor } => ChainEvent::NonceFloor {
                    owner,
                    floor,
                    origin,
                },
            }
        })
        .collect())
}

/// Decodes one top-level kestrel instruction of this deployment; `None` for instructions the
/// off-chain side does not follow (settlement, admin) or another deployment's.
fn decode_instruction(
    deployment: &Deployment,
    (signature, signatures): (&Signature, &[Signature]),
    data: &[u8],
    ix_index: u8,
    account: impl Fn(usize) -> Result<Pubkey, ListenerError>,
    signer_position: impl Fn(&Pubkey) -> Option<usize>,
) -> Result<Option<Decoded>, ListenerError> {
    use kestrel::instruction as ix;
    let Some((discriminator, mut args)) = data.split_first_chunk::<8>() else {
        return Ok(None);
    };
    let bad_args = |_| ListenerError::Malformed {
        signature: *signature,
        reason: "instruction arguments",
    };
    // (exchange account position, decoded) for each followed instruction.
    let (exchange_at, d) = if discriminator[..] == *ix::Deposit::DISCRIMINATOR {
        let a = ix::Deposit::deserialize(&mut args).map_err(bad_args)?;
        let kind = Kind::Deposit {
            vault: account(3)?,
            amount: a.amount,
        };
        (1, (kind, account(0)?, a.asset))
    } else if discriminator[..] == *ix::Withdraw::DISCRIMINATOR {
        let a = ix::Withdraw::deserialize(&mut args).map_err(bad_args)?;
        let operator = account(1)?;
        let cosignature = signer_position(&operator)
            .and_then(|i| signatures.get(i))
            .copied()
            .ok_or(ListenerError::Malformed {
                signature: *signature,
                reason: "the operator did not sign",
            })?;
        let kind = Kind::Withdraw {
            vault: account(4)?,
            amount: a.amount,
            cosignature,
        };
        (2, (kind, account(0)?, a.asset))
    } else if discriminator[..] == *ix::RequestWithdrawal::DISCRIMINATOR {
        let a = ix::RequestWithdrawal::deserialize(&mut args).map_err(bad_args)?;
        let kind = Kind::Request { amount: a.amount };
        (1, (kind, account(0)?, a.asset))
    } else if discriminator[..] == *ix::ExecuteWithdrawal::DISCRIMINATOR {
        let a = ix::ExecuteWithdrawal::deserialize(&mut args).map_err(bad_args)?;
        let kind = Kind::Execute { vault: account(3)? };
        (1, (kind, account(0)?, a.asset))
    } else if discriminator[..] == *ix::CancelUpTo::DISCRIMINATOR {
        let a = ix::CancelUpTo::deserialize(&mut args).map_err(bad_args)?;
        let kind = Kind::CancelUpTo {
            floor: a.nonce_floor,
        };
        (1, (kind, account(0)?, 0))
    } else {
        return Ok(None);
    };
    if account(exchange_at)? != deployment.exchange {
        return Ok(None);
    }
    let (kind, owner, asset) = d;
    Ok(Some(Decoded {
        ix_index,
        kind,
        owner,
        asset,
    }))
}

/// Token balances by account, from a meta's pre/post list (absent accounts hold nothing).
fn token_balances(
    list: &OptionSerializer<Vec<UiTransactionTokenBalance>>,
    keys: &[Pubkey],
    malformed: &impl Fn(&'static str) -> ListenerError,
) -> Result<HashMap<Pubkey, u64>, ListenerError> {
    let mut out = HashMap::new();
    if let OptionSerializer::Some(list) = list {
        for balance in list {
            let key = keys
                .get(usize::from(balance.account_index))
                .ok_or_else(|| malformed("token balance index out of range"))?;
            let amount = balance
                .ui_token_amount
                .amount
                .parse::<u64>()
                .map_err(|_| malformed("token amount"))?;
            out.insert(*key, amount);
        }
    } else {
        return Err(malformed("no token balances in the meta"));
    }
    Ok(out)
}

/// The amount of each decoded instruction, from the vault's token balances where the tokens
/// moved. Tokens anyone transfers straight into a vault in the same transaction are nobody's
/// deposit, so a deposit is credited at most its argument, and at most what the vault gained.
/// A delayed withdrawal's amount is `None` when the transaction's other movements of the same
/// vault make it ambiguous (several delayed withdrawals of one asset in one transaction).
fn vault_amounts(
    decoded: &[Decoded],
    pre: &HashMap<Pubkey, u64>,
    post: &HashMap<Pubkey, u64>,
) -> Vec<Option<u64>> {
    decoded
        .iter()
        .map(|d| {
            let Some(vault) = d.kind.vault() else {
                return match d.kind {
                    Kind::Request { amount } => Some(amount),
                    _ => Some(0),
                };
            };
            let delta = i128::from(post.get(&vault).copied().unwrap_or(0))
                .saturating_sub(i128::from(pre.get(&vault).copied().unwrap_or(0)));
            let sharing: Vec<&Kind> = decoded
                .iter()
                .map(|o| &o.kind)
                .filter(|k| k.vault() == Some(vault))
                .collect();
            let alone = sharing.len() == 1;
            let clamp = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
            match &d.kind {
                Kind::Deposit { amount, .. } if alone => Some((*amount).min(clamp(delta))),
                Kind::Deposit { amount, .. } | Kind::Withdraw { amount, .. } => Some(*amount),
                Kind::Execute { .. } if alone => Some(clamp(delta.saturating_neg())),
                Kind::Execute { .. } => {
                    let mut known_inflow = 0i128;
                    let mut executes = 0usize;
                    for kind in &sharing {
                        match kind {
                            Kind::Deposit { amount, .. } => {
                                known_inflow = known_inflow.saturating_add(i128::from(*amount));
                            }
                            Kind::Withdraw { amount, .. } => {
                                known_inflow = known_inflow.saturating_sub(i128::from(*amount));
                            }
                            Kind::Execute { .. } => executes = executes.saturating_add(1),
                            Kind::Request { .. } | Kind::CancelUpTo { .. } => {}
                        }
                    }
                    (executes == 1).then(|| clamp(known_inflow.saturating_sub(delta)))
                }
                Kind::Request { .. } | Kind::CancelUpTo { .. } => Some(0),
            }
        })
        .collect()
}
