//! The co-signed withdrawal's transaction: `POST /v1/withdrawals/{id}/transaction`.
//!
//! The router holds no keys: the node injects a [`WithdrawalCosigner`] that builds the
//! program's `withdraw` for exactly the withdrawal's owner, asset and amount, to the owner's
//! token account, with the owner as fee payer, and signs it as the operator. The router hands it
//! out only after sequencing `WithdrawalBroadcast` (Pending → Broadcasting, journaled), which
//! succeeds once per withdrawal: at most one co-signed transaction per withdrawal ever leaves
//! the server. A transaction that expires without landing fails the withdrawal and releases the
//! funds (the relayer's expiry watcher); the owner then requests a new withdrawal.
//!
//! The caller proves it speaks for the owner, and names the token account to pay, by signing
//! the 120-byte message [`transaction_request_message`] (docs/protocol.md).

use super::error::{ApiCode, ApiError};
use super::rest::parse_owner;
use super::Shared;
use crate::model::{Command, Event, Owner, Seq, Sig, WithdrawalKind, WithdrawalStatus};
use crate::reject::Reject;
use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;

/// The 16-byte domain tag of the transaction request message.
pub const TX_REQUEST_TAG: [u8; 16] = *b"\xffkestrel-wdtx--1";

/// The bytes an owner signs to obtain withdrawal `id`'s co-signed transaction paying
/// `destination` (the owner's token account of the asset's mint).
pub fn transaction_request_message(
    exchange: &[u8; 32],
    owner: &Owner,
    id: Seq,
    destination: &[u8; 32],
) -> [u8; 120] {
    let mut out = [0u8; 120];
    out[..16].copy_from_slice(&TX_REQUEST_TAG);
    out[16..48].copy_from_slice(exchange);
    out[48..80].copy_from_slice(owner);
    out[80..88].copy_from_slice(&id.to_le_bytes());
    out[88..].copy_from_slice(destination);
    out
}

/// What the operator is asked to co-sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CosignRequest {
    /// The withdrawal's id.
    pub id: Seq,
    /// Wallet paid (and fee payer).
    pub owner: Pubkey,
    /// Asset index.
    pub asset: u8,
    /// Mint of the asset.
    pub mint: Pubkey,
    /// Atoms.
    pub amount: u64,
    /// The owner's token account of `mint` to pay (the co-signer checks it on-chain).
    pub destination: Pubkey,
}

/// A partially signed transaction: the operator's signature present, the owner's missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The serialized transaction, base64 (as `sendTransaction` takes it).
    pub transaction_base64: String,
    /// The operator's signature in it, which identifies it (its id, the fee-paying owner's
    /// signature, exists only once the owner signs).
    pub cosignature: Sig,
    /// Last block height at which it can land.
    pub last_valid_block_height: u64,
}

/// Why the operator side did not co-sign.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    /// Reconciliation found a difference: withdrawals are halted until a clean run.
    #[error("withdrawals are halted by reconciliation")]
    Halted,
    /// The destination is not the owner's token account of the asset's mint.
    #[error("destination is not the owner's token account of the asset")]
    Destination,
    /// The chain could not be read (blockhash, accounts).
    #[error("chain unavailable: {0}")]
    Chain(String),
}

/// The boxed future a [`WithdrawalCosigner`] returns.
pub type CosignFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Cosigned, CosignError>> + Send + 'a>>;

/// Builds and operator-signs a withdrawal's `withdraw` transaction (implemented by the node
/// with the operator key; the router has no keys).
pub trait WithdrawalCosigner: Send + Sync + std::fmt::Debug {
    /// Co-signs `request`.
    fn cosign(&self, request: CosignRequest) -> CosignFuture<'_>;
}

/// The caller's proof of ownership and the account to pay.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionRequest {
    /// The owner (64 hex).
    pub owner: String,
    /// The owner's token account of the asset's mint (64 hex).
    pub destination: String,
    /// Hex signature of [`transaction_request_message`] by the owner.
    pub signature: String,
}

/// Checks ownership and state, co-signs, sequences Broadcasting, hands out the transaction.
pub async fn transaction(
    shared: &Shared,
    id: Seq,
    body: &TransactionRequest,
) -> Result<serde_json::Value, ApiError> {
    let owner = parse_owner(&body.owner)?;
    let destination = hex::decode(body.destination.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ApiError::new(
                ApiCode::InvalidRequest,
                "destination is not 32 bytes of hex",
            )
        })?;
    let denied = || ApiError::new(ApiCode::Unauthorized, "not the withdrawal's owner");
    let signature: [u8; 64] = hex::decode(body.signature.trim())
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(denied)?;
    let message =
        transaction_request_message(&shared.rules.exchange.to_bytes(), &owner, id, &destination);
    VerifyingKey::from_bytes(&owner)
        .and_then(|key| key.verify_strict(&message, &Signature::from_bytes(&signature)))
        .map_err(|_| denied())?;
    let row = shared
        .caught_up_store()
        .await
        .withdrawal(id)
        .await?
        .ok_or_else(|| ApiError::new(ApiCode::NotFound, "no such withdrawal"))?;
    if row.owner != owner {
        return Err(denied());
    }
    if row.status != WithdrawalStatus::Pending || row.kind != WithdrawalKind::Cosigned {
        return Err(ApiError::reject(Reject::WithdrawalNotPending, None));
    }
    let cosigner = shared
        .cosigner
        .as_ref()
        .ok_or_else(|| ApiError::new(ApiCode::Unavailable, "withdrawals are not co-signed here"))?;
    let mint = *shared
        .rules
        .assets
        .get(usize::from(row.asset))
        .ok_or_else(|| ApiError::new(ApiCode::Internal, "internal error"))?;
    let cosigned = cosigner
        .cosign(CosignRequest {
            id,
            owner: Pubkey::new_from_array(owner),
            asset: row.asset,
            mint,
            amount: row.amount,
            destination: Pubkey::new_from_array(destination),
        })
        .await
        .map_err(|e| match e {
            CosignError::Halted => ApiError::new(
                ApiCode::WithdrawalsHalted,
                "withdrawals are halted until reconciliation is clean",
            ),
            CosignError::Destination => ApiError::new(
                ApiCode::InvalidRequest,
                "destination is not the owner's token account of the asset",
            ),
            CosignError::Chain(detail) => {
                tracing::warn!(id, %detail, "co-signing failed");
                ApiError::new(ApiCode::Unavailable, "the chain is unavailable; retry")
            }
        })?;
    let ack = shared
        .sequencer
        .submit(Command::WithdrawalBroadcast {
            id,
            tx: cosigned.cosignature,
            last_valid_block_height: cosigned.last_valid_block_height,
        })
        .await
        .map_err(|_| {
            ApiError::new(
                ApiCode::Unavailable,
                "the exchange is not accepting commands",
            )
        })?;
    if let Some(reason) = ack.events.iter().find_map(|e| match e {
        Event::Rejected { reason, .. } => Some(*reason),
        _ => None,
    }) {
        return Err(ApiError::reject(reason, Some(ack.seq)));
    }
    Ok(serde_json::json!({
        "withdrawal_id": id,
        "seq": ack.seq,
        "transaction": cosigned.transaction_base64,
        "cosignature": crate::model::to_hex(&cosigned.cosignature),
        "last_valid_block_height": cosigned.last_valid_block_height,
    }))
}
