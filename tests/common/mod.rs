//! Reading settle transactions back from the chain, shared by the end-to-end tests.

use anchor_lang::Discriminator;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_config::RpcTransactionConfig;
use solana_sdk::message::VersionedMessage;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_transaction_status::UiTransactionEncoding;
use std::str::FromStr;

/// The settle transactions that touched `market` (newest first), as `getTransaction` returns
/// them: for each, the lookup tables its v0 message uses, or `None` for a legacy transaction.
pub async fn settle_transactions(rpc: &RpcClient, market: &Pubkey) -> Vec<Option<Vec<Pubkey>>> {
    let mut out = Vec::new();
    for status in rpc.get_signatures_for_address(market).await.unwrap() {
        let signature = Signature::from_str(&status.signature).unwrap();
        let tx = rpc
            .get_transaction_with_config(
                &signature,
                RpcTransactionConfig {
                    encoding: Some(UiTransactionEncoding::Base64),
                    max_supported_transaction_version: Some(0),
                    ..RpcTransactionConfig::default()
                },
            )
            .await
            .unwrap();
        let decoded = tx.transaction.transaction.decode().unwrap();
        let keys = decoded.message.static_account_keys();
        let settles = decoded.message.instructions().iter().any(|ix| {
            keys.get(usize::from(ix.program_id_index)) == Some(&kestrel::ID)
                && ix
                    .data
                    .starts_with(kestrel::instruction::Settle::DISCRIMINATOR)
        });
        if !settles {
            continue;
        }
        out.push(match &decoded.message {
            VersionedMessage::Legacy(_) => None,
            VersionedMessage::V0(message) => Some(
                message
                    .address_table_lookups
                    .iter()
                    .map(|lookup| lookup.account_key)
                    .collect(),
            ),
        });
    }
    out
}
