//! Node and cluster methods: health, version, slot, block height, blockhashes, rent, faucet.

use super::params::{check_min_context_slot, hash, json, pubkey, with_context, Args, Result};
use super::Rpc;
use crate::embedded::bank::Submission;
use jsonrpc_core::{ErrorCode, Params, Value};
use solana_client::rpc_config::{RpcContextConfig, RpcRequestAirdropConfig};
use solana_client::rpc_response::{RpcBlockhash, RpcVersionInfo};
use solana_sdk::transaction::TransactionError;
use std::sync::Arc;

impl Rpc {
    pub(super) async fn get_health(self: Arc<Self>, _params: Params) -> Result<Value> {
        Ok(Value::from("ok"))
    }

    pub(super) async fn get_version(self: Arc<Self>, _params: Params) -> Result<Value> {
        let version = solana_version::Version::default();
        json(&RpcVersionInfo {
            solana_core: version.to_string(),
            feature_set: Some(version.feature_set),
        })
    }

    pub(super) async fn get_slot(self: Arc<Self>, params: Params) -> Result<Value> {
        let config: Option<RpcContextConfig> = Args::new(params)?.optional(0)?;
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.and_then(|config| config.min_context_slot), slot)?;
        Ok(Value::from(slot))
    }

    pub(super) async fn get_block_height(self: Arc<Self>, params: Params) -> Result<Value> {
        let config: Option<RpcContextConfig> = Args::new(params)?.optional(0)?;
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.and_then(|config| config.min_context_slot), slot)?;
        Ok(Value::from(self.bank.block_height().await?))
    }

    pub(super) async fn get_latest_blockhash(self: Arc<Self>, params: Params) -> Result<Value> {
        let config: Option<RpcContextConfig> = Args::new(params)?.optional(0)?;
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.and_then(|config| config.min_context_slot), slot)?;
        let (blockhash, last_valid_block_height) = self.bank.latest_blockhash().await?;
        with_context(
            slot,
            RpcBlockhash {
                blockhash: blockhash.to_string(),
                last_valid_block_height,
            },
        )
    }

    pub(super) async fn is_blockhash_valid(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let blockhash = hash(&args.required::<String>(0, "blockhash")?)?;
        let config: Option<RpcContextConfig> = args.optional(1)?;
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.and_then(|config| config.min_context_slot), slot)?;
        with_context(slot, self.bank.is_blockhash_valid(&blockhash).await?)
    }

    pub(super) async fn get_minimum_balance_for_rent_exemption(
        self: Arc<Self>,
        params: Params,
    ) -> Result<Value> {
        let data_len: usize = Args::new(params)?.required(0, "data length")?;
        let rent = self.bank.rent().await?;
        Ok(Value::from(rent.minimum_balance(data_len)))
    }

    pub(super) async fn request_airdrop(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let to = pubkey(&args.required::<String>(0, "pubkey")?)?;
        let lamports: u64 = args.required(1, "lamports")?;
        // The blockhash and commitment a client may name change nothing here: the faucet signs
        // with the latest blockhash and every commit is final.
        let _config: Option<RpcRequestAirdropConfig> = args.optional(2)?;
        let max = self.bank.max_airdrop_lamports();
        if lamports > max {
            return Err(jsonrpc_core::Error::invalid_params(format!(
                "airdrop of {lamports} lamports exceeds the faucet's limit of {max} lamports"
            )));
        }
        let (signature, submission) = self.bank.airdrop(&to, lamports).await?;
        match submission {
            Submission::Committed(Ok(())) => Ok(Value::from(signature.to_string())),
            Submission::Committed(Err(err)) | Submission::Rejected(err) => Err(airdrop_failed(err)),
        }
    }
}

fn airdrop_failed(err: TransactionError) -> jsonrpc_core::Error {
    jsonrpc_core::Error {
        code: ErrorCode::InternalError,
        message: format!("airdrop request failed: {err}"),
        data: None,
    }
}
