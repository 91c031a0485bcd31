//! The operator's side of a co-signed withdrawal: build and operator-sign the program's
//! `withdraw` for exactly the withdrawal asked for ([`cosign`]).
//!
//! The transaction pays the owner's own token account of the asset's mint (checked on-chain
//! before signing), has the owner as fee payer and carries only the `withdraw` instruction, so
//! the owner can check every byte before adding the one missing signature. Its id (the fee
//! payer's signature) does not exist until then, so the operator's signature identifies it:
//! the listener reports it with the landed `withdraw` ([`crate::listener::ChainEvent`]).

use kestrel_sdk::Deployment;
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::message::Message;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::Transaction;
use spl_token_interface::state::Account as TokenAccount;

/// Why a withdrawal transaction could not be built or checked.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawalError {
    /// The RPC node failed or refused.
    #[error("rpc: {0}")]
    Rpc(#[from] Box<ClientError>),
    /// The destination is not a token account of the asset's mint owned by the owner.
    #[error("destination {0} is not the owner's token account of the asset")]
    Destination(Pubkey),
    /// The asset is not in the deployment.
    #[error("building the instruction: {0}")]
    Instruction(#[from] kestrel_sdk::Error),
    /// The operator's signature could not be added.
    #[error("signing: {0}")]
    Sign(String),
}

impl From<ClientError> for WithdrawalError {
    fn from(err: ClientError) -> Self {
        WithdrawalError::Rpc(Box::new(err))
    }
}

/// What to co-sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WithdrawalTerms {
    /// Wallet (fee payer; signs last).
    pub owner: Pubkey,
    /// Asset index.
    pub asset: u8,
    /// Atoms.
    pub amount: u64,
    /// The owner's token account of the asset's mint.
    pub destination: Pubkey,
}

/// A `withdraw` transaction signed by the operator, the owner's signature still missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedWithdrawal {
    /// The transaction.
    pub transaction: Transaction,
    /// The operator's signature in it.
    pub cosignature: Signature,
    /// Last block height at which it can land.
    pub last_valid_block_height: u64,
}

/// Builds `terms`' `withdraw` with a fresh blockhash and signs it as `operator`.
pub async fn cosign(
    rpc: &RpcClient,
    deployment: &Deployment,
    operator: &Keypair,
    terms: WithdrawalTerms,
) -> Result<CosignedWithdrawal, WithdrawalError> {
    let mint = deployment.mint(terms.asset)?;
    let destination = rpc
        .get_account_with_commitment(&terms.destination, rpc.commitment())
        .await?
        .value
        .filter(|a| a.owner == spl_token_interface::ID)
        .and_then(|a| {
            a.data
                .get(..TokenAccount::LEN)
                .and_then(|d| TokenAccount::unpack(d).ok())
        })
        .ok_or(WithdrawalError::Destination(terms.destination))?;
    if destination.mint != mint || destination.owner != terms.owner {
        return Err(WithdrawalError::Destination(terms.destination));
    }
    let ix = deployment.withdraw(
        &terms.owner,
        &operator.pubkey(),
        terms.asset,
        &terms.destination,
        terms.amount,
    )?;
    let (blockhash, last_valid_block_height) = rpc
        .get_latest_blockhash_with_commitment(rpc.commitment())
        .await?;
    let message = Message::new_with_blockhash(&[ix], Some(&terms.owner), &blockhash);
    let mut transaction = Transaction::new_unsigned(message);
    transaction
        .try_partial_sign(&[operator], blockhash)
        .map_err(|e| WithdrawalError::Sign(e.to_string()))?;
    let cosignature = transaction
        .get_signing_keypair_positions(&[operator.pubkey()])
        .ok()
        .and_then(|positions| positions.into_iter().next().flatten())
        .and_then(|i| transaction.signatures.get(i))
        .copied()
        .ok_or_else(|| WithdrawalError::Sign("the operator is not a signer".to_owned()))?;
    Ok(CosignedWithdrawal {
        transaction,
        cosignature,
        last_valid_block_height,
    })
}

impl CosignedWithdrawal {
    /// The transaction serialized and base64-encoded, as `sendTransaction` takes it.
    pub fn to_base64(&self) -> Result<String, WithdrawalError> {
        use base64::Engine;
        let bytes = bincode::serialize(&self.transaction)
            .map_err(|e| WithdrawalError::Sign(e.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}
