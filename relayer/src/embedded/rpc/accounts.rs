//! Account methods: balances, account data (every Agave encoding), program scans with filters,
//! token balances.

use super::params::{check_len, check_min_context_slot, json, pubkey, with_context, Args, Result};
use super::Rpc;
use crate::embedded::bank::token_account;
use jsonrpc_core::{Params, Value};
use solana_account_decoder::parse_account_data::{
    AccountAdditionalDataV3, SplTokenAdditionalDataV2,
};
use solana_account_decoder::parse_token::token_amount_to_ui_amount_v3;
use solana_account_decoder::{encode_ui_account, UiAccount, UiAccountEncoding, MAX_BASE58_BYTES};
use solana_client::rpc_config::{RpcAccountInfoConfig, RpcContextConfig, RpcProgramAccountsConfig};
use solana_client::rpc_filter::RpcFilterType;
use solana_client::rpc_response::{OptionalContext, RpcKeyedAccount};
use solana_sdk::account::Account;
use solana_sdk::pubkey::Pubkey;
use std::sync::Arc;

/// Agave's bounds on `getMultipleAccounts` keys and `getProgramAccounts` filters.
const MAX_MULTIPLE_ACCOUNTS: usize = 100;
const MAX_PROGRAM_ACCOUNT_FILTERS: usize = 4;

impl Rpc {
    pub(super) async fn get_balance(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let address = pubkey(&args.required::<String>(0, "pubkey")?)?;
        let config: Option<RpcContextConfig> = args.optional(1)?;
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.and_then(|config| config.min_context_slot), slot)?;
        let lamports = self
            .bank
            .account(&address)
            .await?
            .map_or(0, |account| account.lamports);
        with_context(slot, lamports)
    }

    pub(super) async fn get_account_info(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let address = pubkey(&args.required::<String>(0, "pubkey")?)?;
        let config: RpcAccountInfoConfig = args.optional(1)?.unwrap_or_default();
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.min_context_slot, slot)?;
        let account = match self.bank.account(&address).await? {
            Some(account) => Some(self.encode(&address, &account, &config).await?),
            None => None,
        };
        with_context(slot, account)
    }

    pub(super) async fn get_multiple_accounts(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let addresses: Vec<String> = args.required(0, "pubkeys")?;
        check_len(addresses.len(), MAX_MULTIPLE_ACCOUNTS)?;
        let addresses = addresses
            .iter()
            .map(|address| pubkey(address))
            .collect::<Result<Vec<_>>>()?;
        let config: RpcAccountInfoConfig = args.optional(1)?.unwrap_or_default();
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.min_context_slot, slot)?;
        let mut accounts = Vec::with_capacity(addresses.len());
        for address in &addresses {
            accounts.push(match self.bank.account(address).await? {
                Some(account) => Some(self.encode(address, &account, &config).await?),
                None => None,
            });
        }
        with_context(slot, accounts)
    }

    pub(super) async fn get_program_accounts(self: Arc<Self>, params: Params) -> Result<Value> {
        let args = Args::new(params)?;
        let program = pubkey(&args.required::<String>(0, "program id")?)?;
        let config: RpcProgramAccountsConfig = args.optional(1)?.unwrap_or_default();
        let mut filters = config.filters.unwrap_or_default();
        check_len(filters.len(), MAX_PROGRAM_ACCOUNT_FILTERS)?;
        for filter in &mut filters {
            filter.verify().map_err(|err| {
                jsonrpc_core::Error::invalid_params(format!("Invalid param: {err:?}"))
            })?;
            if let RpcFilterType::Memcmp(memcmp) = filter {
                memcmp.convert_to_raw_bytes().map_err(|err| {
                    jsonrpc_core::Error::invalid_params(format!("Invalid param: {err:?}"))
                })?;
            }
        }
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.account_config.min_context_slot, slot)?;
        let mut candidates = self.bank.index().await.owned_by(&program);
        if config.sort_results.unwrap_or(true) {
            candidates.sort_unstable();
        }
        let mut found = Vec::new();
        for address in candidates {
            let Some(account) = self.bank.account(&address).await? else {
                continue;
            };
            if account.owner != program || !filters.iter().all(|f| matches(f, &account)) {
                continue;
            }
            found.push(RpcKeyedAccount {
                pubkey: address.to_string(),
                account: self
                    .encode(&address, &account, &config.account_config)
                    .await?,
            });
        }
        if config.with_context.unwrap_or(false) {
            with_context(slot, found)
        } else {
            json(&OptionalContext::NoContext(found))
        }
    }

    pub(super) async fn get_token_account_balance(
        self: Arc<Self>,
        params: Params,
    ) -> Result<Value> {
        let args = Args::new(params)?;
        let address = pubkey(&args.required::<String>(0, "pubkey")?)?;
        let config: Option<RpcContextConfig> = args.optional(1)?;
        let slot = self.bank.slot().await?;
        check_min_context_slot(config.and_then(|config| config.min_context_slot), slot)?;
        let account = self
            .bank
            .account(&address)
            .await?
            .ok_or_else(|| invalid("Invalid param: could not find account"))?;
        let token =
            token_account(&account).ok_or_else(|| invalid("Invalid param: not a Token account"))?;
        let decimals = self
            .bank
            .mint_decimals(&token.mint)
            .await?
            .ok_or_else(|| invalid("Invalid param: could not find mint"))?;
        with_context(
            slot,
            token_amount_to_ui_amount_v3(
                token.amount,
                &SplTokenAdditionalDataV2::with_decimals(decimals),
            ),
        )
    }

    /// An account as Agave encodes it, with the mint's decimals for parsed token accounts.
    async fn encode(
        &self,
        address: &Pubkey,
        account: &Account,
        config: &RpcAccountInfoConfig,
    ) -> Result<UiAccount> {
        let encoding = config.encoding.unwrap_or(UiAccountEncoding::Binary);
        if matches!(
            encoding,
            UiAccountEncoding::Binary | UiAccountEncoding::Base58
        ) {
            let len = config.data_slice.map_or(account.data.len(), |slice| {
                slice
                    .length
                    .min(account.data.len().saturating_sub(slice.offset))
            });
            if len > MAX_BASE58_BYTES {
                return Err(invalid(
                    "Encoded binary (base 58) data should be less than 128 bytes, please use \
                     Base64 encoding.",
                ));
            }
        }
        let additional_data = match (encoding, token_account(account)) {
            (UiAccountEncoding::JsonParsed, Some(token)) => {
                self.bank.mint_decimals(&token.mint).await?.map(|decimals| {
                    AccountAdditionalDataV3 {
                        spl_token_additional_data: Some(SplTokenAdditionalDataV2::with_decimals(
                            decimals,
                        )),
                    }
                })
            }
            _ => None,
        };
        Ok(encode_ui_account(
            address,
            account,
            encoding,
            additional_data,
            config.data_slice,
        ))
    }
}

fn matches(filter: &RpcFilterType, account: &Account) -> bool {
    match filter {
        RpcFilterType::DataSize(size) => u64::try_from(account.data.len()) == Ok(*size),
        RpcFilterType::Memcmp(memcmp) => memcmp.bytes_match(&account.data),
        RpcFilterType::TokenAccountState => token_account(account).is_some(),
    }
}

fn invalid(message: &str) -> jsonrpc_core::Error {
    jsonrpc_core::Error::invalid_params(message)
}
