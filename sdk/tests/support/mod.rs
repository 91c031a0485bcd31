//! Shared setup of the SDK's API tests: the real router API in-process on loopback (as the
//! router's own API tests start it), funded wallets, and a TCP proxy that can cut, freeze or
//! drop a response.
#![allow(dead_code)] // each test file uses its own part of the helpers

pub mod proxy;

use kestrel_router::api::{self, Api, ApiConfig};
use kestrel_router::market::MarketSpec;
use kestrel_router::model::Command;
use kestrel_router::state::Rules;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::future::Future;
use std::time::Duration;

pub const BASE: u8 = 0;
pub const QUOTE: u8 = 1;

pub fn exchange() -> Pubkey {
    Pubkey::new_from_array([9; 32])
}

fn mint(asset: u8) -> Pubkey {
    Pubkey::new_from_array([asset + 1; 32])
}

fn spec(index: u32) -> MarketSpec {
    MarketSpec {
        index,
        base_asset: BASE,
        quote_asset: QUOTE,
        base_lot_size: 1_000,
        tick_size: 10,
        min_size_lots: 1,
        max_size_lots: 1_000_000,
        min_price_ticks: 1,
        max_price_ticks: 1_000_000,
        maker_fee_bps: 2,
        taker_fee_bps: 5,
        max_orders: 4_096,
    }
}

/// The embedded router configuration with two markets and generous rate limits.
pub fn config(dir: &std::path::Path) -> ApiConfig {
    let limits = api::limits::LimitsConfig {
        per_ip_per_sec: 100_000,
        per_ip_burst: 100_000,
        per_key_per_sec: 100_000,
        per_key_burst: 100_000,
        ..Default::default()
    };
    let rules = Rules {
        exchange: exchange(),
        assets: vec![mint(BASE), mint(QUOTE)],
        markets: vec![spec(0), spec(1)],
        max_expiry_horizon_secs: 86_400 * 365,
        expiry_margin_secs: 30,
        max_open_orders: 64,
    };
    ApiConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        limits,
        ..ApiConfig::embedded(rules, dir, "127.0.0.1:0".parse().unwrap())
    }
}

/// Credits `amount` of `asset` to `owner` as the chain listener would.
pub async fn deposit(api: &Api, owner: &Keypair, asset: u8, amount: u64, tx: u8) {
    let ack = api
        .sequencer()
        .submit(Command::DepositObserved {
            owner: owner.pubkey().to_bytes(),
            asset,
            amount,
            tx: [tx; 64],
            ix_index: 0,
        })
        .await
        .unwrap();
    assert!(!ack.events.is_empty());
}

/// A running router API with a maker funded in base and a taker funded in quote.
pub struct Router {
    pub api: Api,
    pub maker: Keypair,
    pub taker: Keypair,
    _dir: tempfile::TempDir,
}

impl Router {
    pub async fn start() -> Router {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(adjust: impl FnOnce(ApiConfig) -> ApiConfig) -> Router {
        let dir = tempfile::tempdir().unwrap();
        let api = api::start(adjust(config(dir.path()))).await.unwrap();
        let (maker, taker) = (Keypair::new(), Keypair::new());
        deposit(&api, &maker, BASE, 1_000_000_000, 1).await;
        deposit(&api, &taker, QUOTE, 1_000_000_000, 2).await;
        Router {
            api,
            maker,
            taker,
            _dir: dir,
        }
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.api.local_addr())
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.api.local_addr())
    }
}

/// Polls `check` until it yields a value; fails after a generous 20 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
