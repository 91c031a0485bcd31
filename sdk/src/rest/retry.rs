//! Retries of idempotent requests, and recognising an order placed by a try whose answer was
//! lost.

use super::{hex, Ack, Error, RestClient, SignedBody};
use crate::backoff::Backoff;
use crate::order::SignedOrder;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// The API's code for a nonce that already names an order.
const NONCE_REUSED: u16 = 106;

/// How the REST client retries idempotent requests (reads, places, cancel-alls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delays between tries.
    pub backoff: Backoff,
    /// Tries after the first (0: never retry).
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    /// Three retries, 100 ms doubling to 2 s, jittered.
    fn default() -> Self {
        RetryPolicy {
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(2),
                multiplier: 2,
                jitter: true,
            },
            max_retries: 3,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }
}

impl Error {
    /// Whether trying again may succeed: a transport failure (connection refused or reset,
    /// timeout, a response cut short), a 5xx answer or 429 (rate limited).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Http(e) => !e.is_builder() && !e.is_decode(),
            Error::Api { status, .. } => *status == 429 || (500..600).contains(status),
            Error::Decode(_) => false,
        }
    }
}

impl RestClient {
    /// Runs `call` until it succeeds, fails for good, or the retries are spent.
    pub(super) async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if e.is_retryable() && attempt < self.retry.max_retries => {
                    tokio::time::sleep(self.retry.backoff.delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
                other => return other,
            }
        }
    }

    /// Places `order`, retrying; a retry answered `nonce_reused` looks for the order.
    pub(super) async fn place_retrying(&self, order: &SignedOrder) -> Result<Ack, Error> {
        let body = SignedBody::new(&order.bytes(), &order.signature);
        let mut attempt: u32 = 0;
        loop {
            match self.post("/v1/orders", &body).await {
                Err(e) if e.is_retryable() && attempt < self.retry.max_retries => {
                    tokio::time::sleep(self.retry.backoff.delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
                Err(
                    refused @ Error::Api {
                        code: NONCE_REUSED, ..
                    },
                ) if attempt > 0 => return self.find_placed(order).await?.ok_or(refused),
                other => return other,
            }
        }
    }

    /// The acknowledgement of `order` rebuilt from the router's records, if it is there with
    /// the same signature. The SQL records trail the sequencer by a few milliseconds, so the
    /// lookup is repeated with the retry backoff.
    async fn find_placed(&self, order: &SignedOrder) -> Result<Option<Ack>, Error> {
        let signature = hex(&order.signature);
        let mut attempt = 0;
        loop {
            if let Some(ack) = self.lookup(order, &signature).await? {
                return Ok(Some(ack));
            }
            if attempt >= self.retry.max_retries {
                return Ok(None);
            }
            tokio::time::sleep(self.retry.backoff.delay(attempt)).await;
            attempt = attempt.saturating_add(1);
        }
    }

    async fn lookup(&self, order: &SignedOrder, signature: &str) -> Result<Option<Ack>, Error> {
        let o = &order.order;
        let owner = hex(o.owner.as_ref());
        let same = |row: &Value| row["signature"] == signature && row["nonce"] == o.nonce;
        let ack = |row: &Value| {
            row["order_id"].as_u64().map(|order_id| Ack {
                seq: row["created_seq"].as_u64().unwrap_or(order_id),
                timestamp_ms: 0,
                order_id: Some(order_id),
                withdrawal_id: None,
                events: Vec::new(),
                recovered: true,
            })
        };
        if o.client_order_id != 0 {
            let path = format!(
                "/v1/accounts/{owner}/orders/by-client-id/{}",
                o.client_order_id
            );
            return match self.get::<Value>(&path).await {
                Ok(row) => Ok(same(&row).then(|| ack(&row)).flatten()),
                Err(Error::Api { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            };
        }
        let open: Value = self.get(&format!("/v1/accounts/{owner}/orders")).await?;
        if let Some(row) = open
            .as_array()
            .and_then(|rows| rows.iter().find(|r| same(r)))
        {
            return Ok(ack(row));
        }
        // A fully filled order is no longer open; its fills name it by nonce.
        let fills: Value = self.get(&format!("/v1/accounts/{owner}/fills")).await?;
        let found = fills.as_array().and_then(|rows| {
            rows.iter().find_map(|fill| {
                ["maker", "taker"].into_iter().find_map(|role| {
                    (fill[role] == owner.as_str() && fill[format!("{role}_nonce")] == o.nonce)
                        .then(|| fill[format!("{role}_order_id")].as_u64())
                        .flatten()
                })
            })
        });
        Ok(found.map(|order_id| Ack {
            seq: order_id,
            timestamp_ms: 0,
            order_id: Some(order_id),
            withdrawal_id: None,
            events: Vec::new(),
            recovered: true,
        }))
    }
}
