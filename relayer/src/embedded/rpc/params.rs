//! Reading positional parameters and shaping answers and errors as Agave does.

use crate::embedded::Error;
use jsonrpc_core::{Params, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;
use solana_client::rpc_custom_error::RpcCustomError;
use solana_client::rpc_response::{Response, RpcResponseContext};
use solana_sdk::clock::Slot;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use std::str::FromStr;

pub(super) type Result<T> = std::result::Result<T, jsonrpc_core::Error>;

/// A method's positional parameters.
pub(super) struct Args(Vec<Value>);

impl Args {
    pub fn new(params: Params) -> Result<Args> {
        match params {
            Params::None => Ok(Args(Vec::new())),
            Params::Array(values) => Ok(Args(values)),
            Params::Map(_) => Err(jsonrpc_core::Error::invalid_params(
                "parameters must be an array",
            )),
        }
    }

    /// The parameter at `position`, which must be present.
    pub fn required<T: DeserializeOwned>(&self, position: usize, name: &str) -> Result<T> {
        self.optional(position)?.ok_or_else(|| {
            jsonrpc_core::Error::invalid_params(format!("missing parameter: {name}"))
        })
    }

    /// The parameter at `position`; absent or `null` is `None`.
    pub fn optional<T: DeserializeOwned>(&self, position: usize) -> Result<Option<T>> {
        match self.0.get(position) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::deserialize(value).map(Some).map_err(|err| {
                jsonrpc_core::Error::invalid_params(format!("Invalid params: {err}."))
            }),
        }
    }
}

pub(super) fn pubkey(text: &str) -> Result<Pubkey> {
    Pubkey::from_str(text)
        .map_err(|err| jsonrpc_core::Error::invalid_params(format!("Invalid param: {err}")))
}

pub(super) fn signature(text: &str) -> Result<Signature> {
    Signature::from_str(text)
        .map_err(|err| jsonrpc_core::Error::invalid_params(format!("Invalid param: {err}")))
}

pub(super) fn hash(text: &str) -> Result<Hash> {
    Hash::from_str(text)
        .map_err(|err| jsonrpc_core::Error::invalid_params(format!("Invalid param: {err}")))
}

pub(super) fn json<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|err| {
        tracing::error!(%err, "embedded chain: an answer did not serialize");
        jsonrpc_core::Error::internal_error()
    })
}

/// `{ context: { slot, apiVersion }, value }`.
pub(super) fn with_context<T: Serialize>(slot: Slot, value: T) -> Result<Value> {
    json(&Response {
        context: RpcResponseContext::new(slot),
        value,
    })
}

/// Agave's answer when the bank has not reached the slot the client asks for.
pub(super) fn check_min_context_slot(min_context_slot: Option<Slot>, slot: Slot) -> Result<()> {
    match min_context_slot {
        Some(min) if min > slot => {
            Err(RpcCustomError::MinContextSlotNotReached { context_slot: slot }.into())
        }
        _ => Ok(()),
    }
}

/// A bound on a list parameter.
pub(super) fn check_len(len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(jsonrpc_core::Error::invalid_params(format!(
            "Too many inputs provided; max {max}"
        )));
    }
    Ok(())
}

impl From<Error> for jsonrpc_core::Error {
    fn from(err: Error) -> Self {
        tracing::error!(%err, "embedded chain");
        jsonrpc_core::Error::internal_error()
    }
}
