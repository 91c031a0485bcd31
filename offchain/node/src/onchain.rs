//! The deployment as the chain has it: the exchange account's asset table and every market
//! account, read through `RpcClient`, so a separately run router mirrors the chain instead of
//! a configuration that could disagree with it.

use anchor_lang::AccountDeserialize;
use kestrel::state::{Exchange, Market};
use kestrel_router::market::MarketSpec;
use kestrel_router::state::Rules;
use kestrel_sdk::Deployment;
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use spl_token_interface::state::Mint;

/// Reading the deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum OnChainError {
    /// The RPC node failed.
    #[error("rpc: {0}")]
    Rpc(#[from] Box<ClientError>),
    /// An account is missing or is not what it should be.
    #[error("account {address} is not a kestrel {what}")]
    Account {
        /// Address.
        address: Pubkey,
        /// Expected account type.
        what: &'static str,
    },
}

impl From<ClientError> for OnChainError {
    fn from(err: ClientError) -> Self {
        OnChainError::Rpc(Box::new(err))
    }
}

/// Router-side limits that have no on-chain counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterLimits {
    /// Largest order size in lots.
    pub max_size_lots: u64,
    /// Highest limit price in ticks.
    pub max_price_ticks: u64,
    /// Resting orders per market.
    pub max_orders: u32,
    /// Open orders per owner.
    pub max_open_orders: u32,
    /// Latest signed expiry accepted, seconds from now.
    pub max_expiry_horizon_secs: u64,
    /// Orders stop matching this many seconds before their signed expiry.
    pub expiry_margin_secs: u64,
}

impl Default for RouterLimits {
    fn default() -> Self {
        RouterLimits {
            max_size_lots: 1_000_000_000,
            max_price_ticks: 1_000_000_000,
            max_orders: 65_536,
            max_open_orders: 256,
            max_expiry_horizon_secs: 86_400 * 365,
            expiry_margin_secs: 30,
        }
    }
}

/// A deployment read from the chain.
#[derive(Debug, Clone)]
pub struct OnChain {
    /// Addresses, with the mints of the registered assets.
    pub deployment: Deployment,
    /// The markets, by index.
    pub markets: Vec<Market>,
    /// Each asset's mint decimals, by asset index (for the API's decimal strings).
    pub asset_decimals: Vec<u8>,
}

impl OnChain {
    /// Reads the exchange of `domain_id` and every market it has created.
    pub async fn load(rpc: &RpcClient, domain_id: u64) -> Result<OnChain, OnChainError> {
        let address = Deployment::exchange_address(domain_id);
        let exchange: Exchange = account(rpc, address, "exchange").await?;
        let mints: Vec<Pubkey> = exchange
            .assets
            .iter()
            .take(usize::from(exchange.num_assets))
            .map(|a| a.mint)
            .collect();
        let mut asset_decimals = Vec::with_capacity(mints.len());
        for mint in &mints {
            asset_decimals.push(mint_decimals(rpc, *mint).await?);
        }
        let deployment = Deployment::new(domain_id, mints);
        let mut markets = Vec::new();
        for index in 0..exchange.num_markets {
            let market: Market = account(rpc, deployment.market_address(index), "market").await?;
            markets.push(market);
        }
        Ok(OnChain {
            deployment,
            markets,
            asset_decimals,
        })
    }

    /// The router's rules: the chain's assets and markets (sizes, ticks, current fees) within
    /// `limits`.
    pub fn rules(&self, limits: &RouterLimits) -> Rules {
        Rules {
            exchange: self.deployment.exchange,
            assets: self.deployment.mints.clone(),
            markets: self
                .markets
                .iter()
                .map(|m| MarketSpec {
                    index: m.index,
                    base_asset: m.base_asset,
                    quote_asset: m.quote_asset,
                    base_lot_size: m.base_lot_size,
                    tick_size: m.tick_size,
                    min_size_lots: m.min_size_lots,
                    max_size_lots: limits.max_size_lots.max(m.min_size_lots),
                    min_price_ticks: 1,
                    max_price_ticks: limits.max_price_ticks,
                    maker_fee_bps: m.maker_fee_bps,
                    taker_fee_bps: m.taker_fee_bps,
                    max_orders: limits.max_orders,
                })
                .collect(),
            max_expiry_horizon_secs: limits.max_expiry_horizon_secs,
            expiry_margin_secs: limits.expiry_margin_secs,
            max_open_orders: limits.max_open_orders,
        }
    }
}

async fn account<T: AccountDeserialize>(
    rpc: &RpcClient,
    address: Pubkey,
    what: &'static str,
) -> Result<T, OnChainError> {
    let missing = || OnChainError::Account { address, what };
    let account = rpc
        .get_account_with_commitment(&address, rpc.commitment())
        .await?
        .value
        .ok_or_else(missing)?;
    if account.owner != kestrel::ID {
        return Err(missing());
    }
    T::try_deserialize(&mut account.data.as_slice()).map_err(|_| missing())
}

async fn mint_decimals(rpc: &RpcClient, address: Pubkey) -> Result<u8, OnChainError> {
    let missing = || OnChainError::Account {
        address,
        what: "SPL Token mint",
    };
    let account = rpc
        .get_account_with_commitment(&address, rpc.commitment())
        .await?
        .value
        .ok_or_else(missing)?;
    if account.owner != spl_token_interface::ID {
        return Err(missing());
    }
    Mint::unpack(&account.data)
        .map(|mint| mint.decimals)
        .map_err(|_| missing())
}
