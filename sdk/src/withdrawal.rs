//! Co-signed withdrawals, the wallet's side: prove ownership to obtain the operator's
//! partially signed `withdraw` transaction, check that it is exactly the withdrawal asked for,
//! then add the owner's signature. Never sign blindly: [`sign_cosigned`] refuses any
//! transaction that is not, byte for byte, the program's `withdraw` of this owner, asset and
//! amount to this destination with the owner paying the fee, signed by the operator.
//!
//! The flow over the router's REST API (docs/protocol.md, "Withdrawal transaction request"):
//! `POST /v1/withdrawals` with the signed 136-byte request → `withdrawal_id`
//! ([`RestClient::request_withdrawal`](crate::rest::RestClient::request_withdrawal));
//! `POST /v1/withdrawals/{id}/transaction` with [`transaction_request`] → the base64
//! transaction ([`RestClient::withdrawal_transaction`](crate::rest::RestClient::withdrawal_transaction));
//! [`sign_cosigned`]; send it (e.g. `RpcClient::send_and_confirm_transaction`)
//! before its `last_valid_block_height`. If it expires unsent, the withdrawal fails and the
//! funds return to the available balance; request a new withdrawal.

use crate::rest::hex;
use crate::{Deployment, OrderSigner};
use base64::Engine;
use solana_sdk::message::Message;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;

/// The 16-byte domain tag of the transaction request message.
pub const TX_REQUEST_TAG: [u8; 16] = *b"\xffkestrel-wdtx--1";

/// Length of the transaction request message.
pub const TX_REQUEST_LEN: usize = 120;

/// The bytes an owner signs to obtain withdrawal `id`'s co-signed transaction paying
/// `destination`.
pub fn transaction_request_message(
    exchange: &Pubkey,
    owner: &Pubkey,
    id: u64,
    destination: &Pubkey,
) -> [u8; TX_REQUEST_LEN] {
    let mut out = [0u8; TX_REQUEST_LEN];
    out[..16].copy_from_slice(&TX_REQUEST_TAG);
    out[16..48].copy_from_slice(exchange.as_ref());
    out[48..80].copy_from_slice(owner.as_ref());
    out[80..88].copy_from_slice(&id.to_le_bytes());
    out[88..].copy_from_slice(destination.as_ref());
    out
}

/// The JSON body of `POST /v1/withdrawals/{id}/transaction`, signed by `owner`
/// ([`RestClient::withdrawal_transaction`](crate::rest::RestClient::withdrawal_transaction)
/// sends it).
pub fn transaction_request(
    exchange: &Pubkey,
    owner: &impl OrderSigner,
    id: u64,
    destination: &Pubkey,
) -> serde_json::Value {
    let message = transaction_request_message(exchange, &owner.pubkey(), id, destination);
    let signature = owner.sign_message(&message);
    serde_json::json!({
        "owner": hex(owner.pubkey().as_ref()),
        "destination": hex(destination.as_ref()),
        "signature": hex(&signature),
    })
}

/// The withdrawal the wallet asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedWithdrawal {
    /// Asset index.
    pub asset: u8,
    /// Atoms.
    pub amount: u64,
    /// The owner's token account to be paid.
    pub destination: Pubkey,
    /// The exchange's operator (the co-signer).
    pub operator: Pubkey,
}

/// Why a co-signed transaction was not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WithdrawalTxError {
    /// Not base64 of a serialized transaction.
    #[error("not a serialized transaction")]
    Encoding,
    /// The transaction is not exactly the withdrawal asked for.
    #[error("not the withdrawal asked for: {0}")]
    Mismatch(&'static str),
    /// The operator's signature is missing or does not verify.
    #[error("the operator's signature is missing or invalid")]
    OperatorSignature,
    /// The expected instruction could not be built (unknown asset).
    #[error(transparent)]
    Instruction(#[from] crate::Error),
    /// The owner's signature could not be added.
    #[error("signing: {0}")]
    Sign(String),
}

/// Decodes the router's base64 transaction.
pub fn decode(transaction_base64: &str) -> Result<Transaction, WithdrawalTxError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(transaction_base64.trim())
        .map_err(|_| WithdrawalTxError::Encoding)?;
    bincode::deserialize(&bytes).map_err(|_| WithdrawalTxError::Encoding)
}

/// Checks that `tx` is exactly `expected`'s `withdraw` for `owner` (program, accounts and
/// their roles, data, fee payer, nothing else) and that the operator signed it.
pub fn check(
    tx: &Transaction,
    deployment: &Deployment,
    owner: &Pubkey,
    expected: &ExpectedWithdrawal,
) -> Result<(), WithdrawalTxError> {
    let ix = deployment.withdraw(
        owner,
        &expected.operator,
        expected.asset,
        &expected.destination,
        expected.amount,
    )?;
    let message = Message::new_with_blockhash(&[ix], Some(owner), &tx.message.recent_blockhash);
    if tx.message != message {
        return Err(WithdrawalTxError::Mismatch(
            "program, accounts, amount, destination or fee payer differ",
        ));
    }
    let signed = tx.message.serialize();
    let operator_signed = tx
        .message
        .account_keys
        .iter()
        .position(|k| *k == expected.operator)
        .and_then(|i| tx.signatures.get(i))
        .is_some_and(|s| s.verify(expected.operator.as_ref(), &signed));
    if !operator_signed {
        return Err(WithdrawalTxError::OperatorSignature);
    }
    Ok(())
}

/// Decodes, [`check`]s and signs the co-signed transaction as `owner`; the result is ready to
/// send.
pub fn sign_cosigned(
    transaction_base64: &str,
    deployment: &Deployment,
    owner: &Keypair,
    expected: &ExpectedWithdrawal,
) -> Result<Transaction, WithdrawalTxError> {
    let mut tx = decode(transaction_base64)?;
    check(&tx, deployment, &Signer::pubkey(owner), expected)?;
    let blockhash = tx.message.recent_blockhash;
    tx.try_partial_sign(&[owner], blockhash)
        .map_err(|e| WithdrawalTxError::Sign(e.to_string()))?;
    Ok(tx)
}
