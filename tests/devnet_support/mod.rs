//! What the in-process devnet tests share: polling for a condition and a plain REST client.
//! Each test file sets its own `TIMEOUT` (the crate root's), sized for what it waits on.
#![allow(dead_code)]

use super::TIMEOUT;
use serde_json::Value;
use solana_sdk::pubkey::Pubkey;
use std::future::Future;
use std::time::Duration;

/// Polls `check` until it yields a value, failing after the test file's `TIMEOUT`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    kestrel_e2e::eventually(TIMEOUT, Duration::from_millis(25), what, check).await
}

/// The router's REST API, as raw JSON.
pub struct Rest {
    pub base: String,
    pub http: reqwest::Client,
}

impl Rest {
    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The router's (available, frozen) of `owner` in `asset`, if it has a balance row.
    pub async fn balance(&self, owner: &Pubkey, asset: u8) -> Option<(u64, u64)> {
        let rows = self
            .get(&format!(
                "/v1/accounts/{}/balances",
                hex::encode(owner.to_bytes())
            ))
            .await;
        rows.as_array()?
            .iter()
            .find(|row| row["asset"] == u64::from(asset))
            .map(|row| {
                (
                    row["available"].as_u64().unwrap(),
                    row["frozen"].as_u64().unwrap(),
                )
            })
    }
}
