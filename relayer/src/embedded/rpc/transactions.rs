//! Transaction methods: send (with preflight), simulate, statuses, history by signature and by
//! address.

use super::params::{
    check_len, check_min_context_slot, json, pubkey, signature, with_context, Args, Result,
};
use super::Rpc;
use crate::embedded::bank::{Simulation, Submission};
use base64::prelude::{Engine, BASE64_STANDARD};
use bincode::Options;
use jsonrpc_core::{Params, Value};
use solana_client::rpc_config::{
    RpcEncodingConfigWrapper, RpcSendTransactionConfig, RpcSignatureStatusConfig,
    RpcSignaturesForAddressConfig, RpcSimulateTransactionConfig, RpcTransactionConfig,
};
use solana_client::rpc_custom_error::RpcCustomError;
use solana_client::rpc_response::{
    RpcBlockhash, RpcConfirmedTransactionStatusWithSignature, RpcSimulateTransactionResult,
};
use solana_sdk::signature::Signature;
use solana_sdk::transaction::{TransactionError, VersionedTransaction};
use solana_transaction_status::{
    extract_and_fmt_memos, ConfirmedTransactionWithStatusMeta, TransactionConfirmationStatus,
    TransactionStatus, TransactionWithStatusMeta, UiLoadedAddresses, UiTransactionEncoding,
    VersionedTransactionWithStatusMeta,
};
use std::sync::Arc;

/// The largest serialized transaction a validator accepts (solana-packet's `PACKET_DATA_SIZE`),
/// and its encoded sizes as Agave bounds them.
const PACKET_DATA_SIZE: usize = 1232;
const MAX_BASE58_SIZE: usize = 1683;
const MAX_BASE64_SIZE: usize = 1644;
/// Agave's bounds on `getSignatureStatuses` and `getSignaturesForAddress`.
const MAX_SIGNATURE_STATUSES: usize = 256;
const MAX_SIGNATURES_FOR_ADDRESS: usize = 1000;

impl Rpc {
    pub(super) async fn send_transaction(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let encoded: String = args.required(0, "transaction")?;
        let config: RpcSendTransactionConfig = args.optional(1)?.unwrap_or_default();
        let tx = decode(
            &encoded,
            config.encoding.unwrap_or(UiTransactionEncoding::Base58),
        )?;
        verify_signatures(&tx)?;
        let signature = first_signature(&tx);
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.min_context_slot, slot)?;
        if !config.skip_preflight {
            let simulation = self.bank.simulate(tx.clone()).await?;
            if let Err(err) = simulation.result.clone() {
                let result = self.simulation_result(&tx, simulation).await?;
                return Err(preflight_failure(&err, result));
            }
        }
        match self.bank.submit(tx.clone()).await? {
            // A transaction refused before execution never lands, as on a cluster; without a
            // preflight the client only learns it from the missing status.
            Submission::Rejected(err) if !config.skip_preflight => {
                let simulation = Simulation {
                    result: Err(err.clone()),
                    details: None,
                };
                let result = self.simulation_result(&tx, simulation).await?;
                Err(preflight_failure(&err, result))
            }
            Submission::Rejected(_) | Submission::Committed(_) => {
                Ok(Value::from(signature.to_string()))
            }
        }
    }

    pub(super) async fn simulate_transaction(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let encoded: String = args.required(0, "transaction")?;
        let config: RpcSimulateTransactionConfig = args.optional(1)?.unwrap_or_default();
        let mut tx = decode(
            &encoded,
            config.encoding.unwrap_or(UiTransactionEncoding::Base58),
        )?;
        if config.accounts.is_some() {
            return Err(jsonrpc_core::Error::invalid_params(
                "the embedded chain cannot return accounts after a simulation",
            ));
        }
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.min_context_slot, slot)?;
        let replacement = if config.replace_recent_blockhash {
            if config.sig_verify {
                return Err(jsonrpc_core::Error::invalid_params(
                    "sigVerify may not be used with replaceRecentBlockhash",
                ));
            }
            let (blockhash, last_valid_block_height) = self.bank.latest_blockhash().await?;
            tx.message.set_recent_blockhash(blockhash);
            Some(RpcBlockhash {
                blockhash: blockhash.to_string(),
                last_valid_block_height,
            })
        } else {
            None
        };
        if config.sig_verify {
            verify_signatures(&tx)?;
        }
        let simulation = self.bank.simulate(tx.clone()).await?;
        let mut result = self.simulation_result(&tx, simulation).await?;
        result.replacement_blockhash = replacement;
        if !config.inner_instructions {
            result.inner_instructions = None;
        }
        with_context(slot, result)
    }

    pub(super) async fn get_signature_statuses(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let signatures: Vec<String> = args.required(0, "signatures")?;
        check_len(signatures.len(), MAX_SIGNATURE_STATUSES)?;
        let signatures = signatures
            .iter()
            .map(|text| signature(text))
            .collect::<Result<Vec<_>>>()?;
        // Every transaction the embedded chain has is in its index: history is always searched.
        let _config: Option<RpcSignatureStatusConfig> = args.optional(1)?;
        let slot = self.bank.slot().await?;
        let index = self.bank.index().await;
        let statuses: Vec<Option<TransactionStatus>> = signatures
            .iter()
            .map(|signature| {
                index
                    .transaction(signature)
                    .map(|record| TransactionStatus {
                        slot: record.slot,
                        confirmations: None,
                        status: record.meta.status.clone(),
                        err: record.meta.status.clone().err(),
                        confirmation_status: Some(TransactionConfirmationStatus::Finalized),
                    })
            })
            .collect();
        with_context(slot, statuses)
    }

    pub(super) async fn get_transaction(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let signature = signature(&args.required::<String>(0, "signature")?)?;
        let config = args
            .optional::<RpcEncodingConfigWrapper<RpcTransactionConfig>>(1)?
            .map(|config| config.convert_to_current())
            .unwrap_or_default();
        let Some(record) = self.bank.index().await.transaction(&signature).cloned() else {
            return Ok(Value::Null);
        };
        let confirmed = ConfirmedTransactionWithStatusMeta {
            slot: record.slot,
            tx_with_meta: TransactionWithStatusMeta::Complete(VersionedTransactionWithStatusMeta {
                transaction: record.transaction,
                meta: record.meta,
            }),
            block_time: record.block_time,
        };
        let encoded = confirmed
            .encode(
                config.encoding.unwrap_or(UiTransactionEncoding::Json),
                config.max_supported_transaction_version,
            )
            .map_err(RpcCustomError::from)?;
        json(&encoded)
    }

    pub(super) async fn get_signatures_for_address(
        self: Arc<Self>,
        params: Params,
    ) -> Result<Value> {
        let args = Args::new(params)?;
        let address = pubkey(&args.required::<String>(0, "address")?)?;
        let config: RpcSignaturesForAddressConfig = args.optional(1)?.unwrap_or_default();
        let limit = config.limit.unwrap_or(MAX_SIGNATURES_FOR_ADDRESS);
        if limit == 0 || limit > MAX_SIGNATURES_FOR_ADDRESS {
            return Err(jsonrpc_core::Error::invalid_params(format!(
                "Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}"
            )));
        }
        let before = config.before.as_deref().map(signature).transpose()?;
        let until = config.until.as_deref().map(signature).transpose()?;
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.min_context_slot, slot)?;
        let index = self.bank.index().await;
        let mut newest_first = index.signatures_for(&address).peekable();
        if let Some(before) = before {
            // Start after `before` (exclusive); an unknown `before` leaves nothing older.
            for signature in newest_first.by_ref() {
                if *signature == before {
                    break;
                }
            }
        }
        let found: Vec<RpcConfirmedTransactionStatusWithSignature> = newest_first
            .take_while(|signature| Some(**signature) != until)
            .filter_map(|signature| {
                let record = index.transaction(signature)?;
                Some(RpcConfirmedTransactionStatusWithSignature {
                    signature: signature.to_string(),
                    slot: record.slot,
                    err: record.meta.status.clone().err().map(Into::into),
                    memo: extract_and_fmt_memos(&VersionedTransactionWithStatusMeta {
                        transaction: record.transaction.clone(),
                        meta: record.meta.clone(),
                    }),
                    block_time: record.block_time,
                    confirmation_status: Some(TransactionConfirmationStatus::Finalized),
                })
            })
            .take(limit)
            .collect();
        json(&found)
    }

    /// A simulation as `simulateTransaction` (and a failed preflight) reports it.
    async fn simulation_result(
        &self,
        tx: &VersionedTransaction,
        simulation: Simulation,
    ) -> Result<RpcSimulateTransactionResult> {
        let loaded = match self.bank.resolve_keys(tx).await? {
            Ok((keys, loaded)) => Some((self.bank.fee(tx, &keys).await?, loaded)),
            Err(_) => None,
        };
        let (fee, loaded_addresses) = match loaded {
            Some((fee, loaded)) => (Some(fee), Some(UiLoadedAddresses::from(&loaded))),
            None => (None, None::<UiLoadedAddresses>),
        };
        let details = simulation.details;
        Ok(RpcSimulateTransactionResult {
            err: simulation.result.err().map(Into::into),
            logs: details.as_ref().map(|details| details.logs.clone()),
            accounts: None,
            units_consumed: details.as_ref().map(|details| details.units_consumed),
            loaded_accounts_data_size: details
                .as_ref()
                .map(|details| details.loaded_accounts_data_size),
            return_data: details
                .as_ref()
                .and_then(|details| details.return_data.clone()),
            inner_instructions: details.and_then(|details| details.inner_instructions),
            replacement_blockhash: None,
            fee,
            pre_balances: None,
            post_balances: None,
            pre_token_balances: None,
            post_token_balances: None,
            loaded_addresses,
        })
    }
}

/// A wire transaction, decoded and bounded as Agave's `decode_and_deserialize` does.
fn decode(encoded: &str, encoding: UiTransactionEncoding) -> Result<VersionedTransaction> {
    let too_large = |len: usize, max: usize| {
        jsonrpc_core::Error::invalid_params(format!(
            "transaction too large: {len} bytes (max: encoded/raw {max}/{PACKET_DATA_SIZE})"
        ))
    };
    let wire = match encoding {
        UiTransactionEncoding::Base58 => {
            if encoded.len() > MAX_BASE58_SIZE {
                return Err(too_large(encoded.len(), MAX_BASE58_SIZE));
            }
            bs58::decode(encoded).into_vec().map_err(|err| {
                jsonrpc_core::Error::invalid_params(format!("invalid base58 encoding: {err:?}"))
            })?
        }
        UiTransactionEncoding::Base64 => {
            if encoded.len() > MAX_BASE64_SIZE {
                return Err(too_large(encoded.len(), MAX_BASE64_SIZE));
            }
            BASE64_STANDARD.decode(encoded).map_err(|err| {
                jsonrpc_core::Error::invalid_params(format!("invalid base64 encoding: {err:?}"))
            })?
        }
        other => {
            return Err(jsonrpc_core::Error::invalid_params(format!(
                "unsupported encoding: {other}. Supported encodings: base58, base64"
            )))
        }
    };
    if wire.len() > PACKET_DATA_SIZE {
        return Err(too_large(wire.len(), PACKET_DATA_SIZE));
    }
    let tx: VersionedTransaction = bincode::options()
        .with_limit(PACKET_DATA_SIZE as u64)
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .deserialize_from(&wire[..])
        .map_err(|err| {
            jsonrpc_core::Error::invalid_params(format!(
                "failed to deserialize the transaction: {err}"
            ))
        })?;
    tx.sanitize().map_err(|err| {
        jsonrpc_core::Error::invalid_params(format!(
            "invalid transaction: {}",
            TransactionError::from(err)
        ))
    })?;
    Ok(tx)
}

fn verify_signatures(tx: &VersionedTransaction) -> Result<()> {
    if tx.verify_with_results().iter().all(|valid| *valid) {
        Ok(())
    } else {
        Err(RpcCustomError::TransactionSignatureVerificationFailure.into())
    }
}

fn first_signature(tx: &VersionedTransaction) -> Signature {
    tx.signatures.first().copied().unwrap_or_default()
}

fn preflight_failure(
    err: &TransactionError,
    result: RpcSimulateTransactionResult,
) -> jsonrpc_core::Error {
    RpcCustomError::SendTransactionPreflightFailure {
        message: format!("Transaction simulation failed: {err}"),
        result,
    }
    .into()
}
