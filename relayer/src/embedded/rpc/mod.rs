//! The JSON-RPC methods, on Agave's own framework (jsonrpc-core: parse errors, method-not-found
//! and batches behave as a validator's) and answering with Agave's own types.

mod accounts;
mod cluster;
mod params;
mod transactions;

use super::bank::Bank;
use jsonrpc_core::{IoHandler, Params, Value};
use std::future::Future;
use std::sync::Arc;

/// The methods' shared state.
pub(crate) struct Rpc {
    bank: Arc<Bank>,
}

/// Every supported method, registered under its JSON-RPC name.
pub(crate) fn handler(bank: Arc<Bank>) -> IoHandler {
    let rpc = Arc::new(Rpc { bank });
    let mut io = IoHandler::new();
    add(&mut io, &rpc, "getHealth", Rpc::get_health);
    add(&mut io, &rpc, "getVersion", Rpc::get_version);
    add(&mut io, &rpc, "getSlot", Rpc::get_slot);
    add(&mut io, &rpc, "getBlockHeight", Rpc::get_block_height);
    add(
        &mut io,
        &rpc,
        "getLatestBlockhash",
        Rpc::get_latest_blockhash,
    );
    add(&mut io, &rpc, "isBlockhashValid", Rpc::is_blockhash_valid);
    add(
        &mut io,
        &rpc,
        "getMinimumBalanceForRentExemption",
        Rpc::get_minimum_balance_for_rent_exemption,
    );
    add(&mut io, &rpc, "requestAirdrop", Rpc::request_airdrop);
    add(&mut io, &rpc, "getBalance", Rpc::get_balance);
    add(&mut io, &rpc, "getAccountInfo", Rpc::get_account_info);
    add(
        &mut io,
        &rpc,
        "getMultipleAccounts",
        Rpc::get_multiple_accounts,
    );
    add(
        &mut io,
        &rpc,
        "getProgramAccounts",
        Rpc::get_program_accounts,
    );
    add(
        &mut io,
        &rpc,
        "getTokenAccountBalance",
        Rpc::get_token_account_balance,
    );
    add(&mut io, &rpc, "sendTransaction", Rpc::send_transaction);
    add(
        &mut io,
        &rpc,
        "simulateTransaction",
        Rpc::simulate_transaction,
    );
    add(
        &mut io,
        &rpc,
        "getSignatureStatuses",
        Rpc::get_signature_statuses,
    );
    add(&mut io, &rpc, "getTransaction", Rpc::get_transaction);
    add(
        &mut io,
        &rpc,
        "getSignaturesForAddress",
        Rpc::get_signatures_for_address,
    );
    io
}

fn add<F, R>(io: &mut IoHandler, rpc: &Arc<Rpc>, name: &str, method: F)
where
    F: Fn(Arc<Rpc>, Params) -> R + Send + Sync + 'static,
    R: Future<Output = jsonrpc_core::Result<Value>> + Send + 'static,
{
    let rpc = rpc.clone();
    io.add_method(name, move |params| method(rpc.clone(), params));
}
