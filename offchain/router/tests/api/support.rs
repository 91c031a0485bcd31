//! Fixture: a full API on 127.0.0.1 with a tempdir journal and SQLite store, and wallets that
//! sign protocol messages.

use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signer, SigningKey};
use kestrel::encoding::{
    Cancel, CancelAll, CancelSide, Order, OrderType, SelfTrade, Side, WithdrawRequest,
};
use kestrel_router::api::{self, Api, ApiConfig};
use kestrel_router::market::MarketSpec;
use kestrel_router::model::Command;
use kestrel_router::state::Rules;
use serde_json::{json, Value};
use std::time::Duration;

pub const BASE: u8 = 0;
pub const QUOTE: u8 = 1;

pub fn exchange() -> Pubkey {
    Pubkey::new_from_array([9; 32])
}

pub fn mint(asset: u8) -> Pubkey {
    Pubkey::new_from_array([asset + 1; 32])
}

pub fn spec(index: u32) -> MarketSpec {
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

pub struct TestApi {
    pub api: Api,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

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

impl TestApi {
    pub async fn start() -> TestApi {
        TestApi::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ApiConfig)) -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        adjust(&mut config);
        TestApi::start_in(dir, config).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: ApiConfig) -> TestApi {
        let api = api::start(config).await.unwrap();
        TestApi {
            base: format!("http://{}", api.local_addr()),
            api,
            http: reqwest::Client::new(),
            dir,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.api.local_addr())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn deposit(&self, owner: [u8; 32], asset: u8, amount: u64, tx: u8) {
        let ack = self
            .api
            .sequencer()
            .submit(Command::DepositObserved {
                owner,
                asset,
                amount,
                tx: [tx; 64],
                ix_index: 0,
            })
            .await
            .unwrap();
        assert!(!ack.events.is_empty());
    }

    /// Polls a GET until `done` holds (the SQL projection trails durability by a few ms).
    pub async fn eventually(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let (status, body) = self.get(path).await;
            if status == 200 && done(&body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{path} never satisfied the condition: {:?}",
            self.get(path).await
        );
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub struct Wallet {
    pub key: SigningKey,
    pub nonce: u64,
}

/// The first event of type `kind` in a command's answer (`events`); panics if there is none.
pub fn event_in(answer: &Value, kind: &str) -> Value {
    answer["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["type"] == kind))
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} event in {answer}"))
}

pub fn signed(message: &[u8], key: &SigningKey) -> Value {
    json!({"message": hex::encode(message), "signature": hex::encode(key.sign(message).to_bytes())})
}

impl Wallet {
    pub fn new(seed: u8) -> Wallet {
        Wallet {
            key: SigningKey::from_bytes(&[seed; 32]),
            nonce: 0,
        }
    }

    pub fn owner(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn hex(&self) -> String {
        hex::encode(self.owner())
    }

    pub fn order_terms(&mut self, side: Side, price: u64, size: u64) -> Order {
        self.nonce += 1;
        Order {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner()),
            market_index: 0,
            side,
            order_type: OrderType::Limit,
            self_trade: SelfTrade::CancelTaker,
            price_ticks: price,
            size_lots: size,
            nonce: self.nonce,
            expiry: 0,
            client_order_id: self.nonce + 1000,
        }
    }

    /// Terms under a fresh nonce that keep `of`'s client order id, as a replacement must.
    pub fn replacement_terms(&mut self, of: &Order, side: Side, price: u64, size: u64) -> Order {
        Order {
            client_order_id: of.client_order_id,
            ..self.order_terms(side, price, size)
        }
    }

    pub fn sign_order(&self, order: &Order) -> Value {
        signed(&order.encode(), &self.key)
    }

    pub fn order(&mut self, side: Side, price: u64, size: u64) -> Value {
        let order = self.order_terms(side, price, size);
        self.sign_order(&order)
    }

    pub fn cancel(&self, market: u32, order_nonce: u64) -> Value {
        let cancel = Cancel {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner()),
            market_index: market,
            order_nonce,
            expiry: 0,
        };
        signed(&cancel.encode(), &self.key)
    }

    pub fn cancel_all(&self, up_to_nonce: u64) -> Value {
        let cancel = CancelAll {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner()),
            market_index: kestrel::encoding::ALL_MARKETS,
            side: CancelSide::Both,
            up_to_nonce,
            expiry: 0,
        };
        signed(&cancel.encode(), &self.key)
    }

    pub fn withdraw(&mut self, asset: u8, amount: u64) -> Value {
        self.nonce += 1;
        let request = WithdrawRequest {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner()),
            mint: mint(asset),
            amount,
            nonce: self.nonce,
            expiry: 0,
        };
        signed(&request.encode(), &self.key)
    }

    /// The body asking for withdrawal `id`'s co-signed transaction paying `destination`, on
    /// behalf of `owner`, signed by this wallet's key (the owner's own, or a forger's).
    pub fn transaction_proof(&self, owner: &Wallet, id: u64, destination: [u8; 32]) -> Value {
        let message = api::withdrawals::transaction_request_message(
            &exchange().to_bytes(),
            &owner.owner(),
            id,
            &destination,
        );
        json!({
            "owner": owner.hex(),
            "destination": hex::encode(destination),
            "signature": hex::encode(self.key.sign(&message).to_bytes()),
        })
    }
}

/// A funded pair: `maker` sells, `taker` buys.
pub async fn funded(t: &TestApi) -> (Wallet, Wallet) {
    let maker = Wallet::new(1);
    let taker = Wallet::new(2);
    t.deposit(maker.owner(), BASE, 1_000_000_000, 1).await;
    t.deposit(taker.owner(), QUOTE, 1_000_000_000, 2).await;
    (maker, taker)
}
