//! An async client for the router's REST API (`docs/openapi.json`).
//!
//! Orders are signed by the caller ([`OrderBuilder::sign`](crate::OrderBuilder::sign)) and sent
//! with [`RestClient::place`]; cancels, cancel-alls and replaces are signed here with an
//! [`OrderSigner`] for the exchange given at construction. Reads return the API's JSON as
//! [`serde_json::Value`]; commands return an [`Ack`]. Every failure is an [`Error`]: a
//! transport failure, the API's typed refusal (`{"code", "error", "message"}`), or a body
//! that does not decode.
//!
//! Reads, places and cancel-alls are retried ([`RetryPolicy`]) after transport failures and
//! 5xx/429 answers. A place is safe to send again because its signed nonce names one order
//! for ever: when a retry hears `nonce_reused`, the client looks the order up and, if it is
//! the one with the same signature, answers as if the lost response had arrived
//! ([`Ack::recovered`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kestrel_sdk::rest::Error> {
//! use kestrel_sdk::rest::RestClient;
//! let client = RestClient::connect("http://127.0.0.1:8080").await?;
//! let book = client.book(0).await?;
//! # let _ = book; Ok(()) }
//! ```

mod retry;

pub use retry::RetryPolicy;

use crate::order::SignedOrder;
use crate::protocol::{Cancel, CancelAll, CancelSide, WithdrawRequest, ALL_MARKETS};
use crate::signer::OrderSigner;
use crate::withdrawal;
use serde::{Deserialize, Serialize};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;

/// REST client errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request did not complete (connection, timeout, TLS, invalid URL).
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The API refused the request. `code` and `error` are the API's stable code and name
    /// (e.g. 106 `nonce_reused`); a non-2xx answer whose body is not an API error has code 0.
    #[error("api error {code} {error} (HTTP {status}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable numeric code.
        code: u16,
        /// Stable snake_case name.
        error: String,
        /// Human-readable explanation.
        message: String,
    },
    /// A successful answer whose body is not what the API documents.
    #[error("decode: {0}")]
    Decode(String),
}

/// The durable outcome of an accepted command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Sequence number of the command.
    pub seq: u64,
    /// Sequencer time of the command.
    pub timestamp_ms: u64,
    /// The id of the placed (or replacing) order, if any.
    #[serde(default)]
    pub order_id: Option<u64>,
    /// The id of the requested withdrawal, if any.
    #[serde(default)]
    pub withdrawal_id: Option<u64>,
    /// The events the command produced (accepted, fills, cancels, ...).
    #[serde(default)]
    pub events: Vec<serde_json::Value>,
    /// True when the response was lost and this acknowledgement was rebuilt from the order
    /// the router stored: `seq` is then the order's creating sequence, `timestamp_ms` is 0
    /// and `events` is empty.
    #[serde(default)]
    pub recovered: bool,
}

/// The operator's co-signed `withdraw` transaction for a pending withdrawal
/// (`POST /v1/withdrawals/{id}/transaction`). Check and sign it with
/// [`withdrawal::sign_cosigned`], then send it before `last_valid_block_height`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CosignedWithdrawal {
    /// The withdrawal's id.
    pub withdrawal_id: u64,
    /// Sequence number of the command that recorded it as broadcasting.
    pub seq: u64,
    /// Base64 of the serialized transaction, signed by the operator, the owner's signature
    /// missing.
    pub transaction: String,
    /// Hex of the operator's signature in it.
    pub cosignature: String,
    /// The last block height at which the transaction can land; after it, the withdrawal
    /// fails and its funds return to the available balance.
    pub last_valid_block_height: u64,
}

#[derive(Debug, Deserialize)]
struct ApiErrorBody {
    code: u16,
    error: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct SignedBody {
    message: String,
    signature: String,
}

impl SignedBody {
    fn new(message: &[u8], signature: &[u8; 64]) -> SignedBody {
        SignedBody {
            message: hex(message),
            signature: hex(signature),
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.bytes().all(|c| c.is_ascii_hexdigit()) || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i.checked_add(2)?)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// A client of one router API for one exchange.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    exchange: Pubkey,
    retry: RetryPolicy,
}

impl RestClient {
    /// A client of the API at `base_url` (e.g. `http://127.0.0.1:8080`) for the exchange
    /// account `exchange` (see [`Deployment::exchange`](crate::Deployment)), which cancels
    /// are signed for.
    pub fn new(base_url: impl Into<String>, exchange: Pubkey) -> RestClient {
        RestClient::with_client(reqwest::Client::new(), base_url, exchange)
    }

    /// Like [`RestClient::new`] with a configured `reqwest::Client` (timeouts, proxies).
    pub fn with_client(
        http: reqwest::Client,
        base_url: impl Into<String>,
        exchange: Pubkey,
    ) -> RestClient {
        let base = base_url.into().trim_end_matches('/').to_owned();
        RestClient {
            http,
            base,
            exchange,
            retry: RetryPolicy::default(),
        }
    }

    /// The same client with another retry policy ([`RetryPolicy::none`] to never retry).
    pub fn with_retry(mut self, retry: RetryPolicy) -> RestClient {
        self.retry = retry;
        self
    }

    /// A client whose exchange is read from the API (`GET /v1/markets`).
    pub async fn connect(base_url: impl Into<String>) -> Result<RestClient, Error> {
        let mut client = RestClient::new(base_url, Pubkey::default());
        let markets = client.markets().await?;
        let exchange = markets
            .get("exchange")
            .and_then(|e| e.as_str())
            .and_then(unhex)
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| Error::Decode("markets: no exchange".to_owned()))?;
        client.exchange = Pubkey::new_from_array(exchange);
        Ok(client)
    }

    /// The exchange cancels are signed for.
    pub fn exchange(&self) -> Pubkey {
        self.exchange
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, Error> {
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ApiErrorBody>(&bytes) {
                Ok(body) => Error::Api {
                    status: status.as_u16(),
                    code: body.code,
                    error: body.error,
                    message: body.message,
                },
                Err(_) => Error::Api {
                    status: status.as_u16(),
                    code: 0,
                    error: status.canonical_reason().unwrap_or("http_error").to_owned(),
                    message: String::from_utf8_lossy(&bytes).chars().take(512).collect(),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.retrying(|| async {
            let response = self.http.get(format!("{}{path}", self.base)).send().await?;
            Self::answer(response).await
        })
        .await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        Self::answer(response).await
    }

    /// `GET /v1/markets`: the exchange, its assets and its markets.
    pub async fn markets(&self) -> Result<serde_json::Value, Error> {
        self.get("/v1/markets").await
    }

    /// `GET /v1/markets/{market}/book`: the aggregated book.
    pub async fn book(&self, market: u32) -> Result<serde_json::Value, Error> {
        self.get(&format!("/v1/markets/{market}/book")).await
    }

    /// `POST /v1/orders`: places a signed order, retried per the [`RetryPolicy`]; a retry
    /// that finds the order already placed returns its [`Ack::recovered`] acknowledgement.
    /// Give orders a client id so that even a fully filled or unmatched one is found.
    pub async fn place(&self, order: &SignedOrder) -> Result<Ack, Error> {
        self.place_retrying(order).await
    }

    fn cancel_body(&self, signer: &impl OrderSigner, market: u32, order_nonce: u64) -> SignedBody {
        let cancel = Cancel {
            exchange: self.exchange,
            owner: signer.pubkey(),
            market_index: market,
            order_nonce,
            expiry: 0,
        };
        let bytes = cancel.encode();
        SignedBody::new(&bytes, &signer.sign_message(&bytes))
    }

    /// `POST /v1/cancel`: cancels `signer`'s order `order_nonce` on `market` (not retried: a
    /// second try after a lost answer would report the order as no longer open).
    pub async fn cancel(
        &self,
        signer: &impl OrderSigner,
        market: u32,
        order_nonce: u64,
    ) -> Result<Ack, Error> {
        self.post("/v1/cancel", &self.cancel_body(signer, market, order_nonce))
            .await
    }

    /// `POST /v1/cancel-all`: cancels every order of `signer`, on every market and both sides,
    /// with a nonce up to `up_to_nonce`. Retried: cancelling twice changes nothing.
    pub async fn cancel_all(
        &self,
        signer: &impl OrderSigner,
        up_to_nonce: u64,
    ) -> Result<Ack, Error> {
        let cancel = CancelAll {
            exchange: self.exchange,
            owner: signer.pubkey(),
            market_index: ALL_MARKETS,
            side: CancelSide::Both,
            up_to_nonce,
            expiry: 0,
        };
        let bytes = cancel.encode();
        let body = SignedBody::new(&bytes, &signer.sign_message(&bytes));
        self.retrying(|| self.post("/v1/cancel-all", &body)).await
    }

    /// `POST /v1/replace`: cancels `signer`'s order `old_nonce` (on the new order's market) and
    /// places `order`, atomically (not retried).
    pub async fn replace(
        &self,
        signer: &impl OrderSigner,
        old_nonce: u64,
        order: &SignedOrder,
    ) -> Result<Ack, Error> {
        #[derive(Serialize)]
        struct ReplaceBody {
            cancel: SignedBody,
            order: SignedBody,
        }
        let body = ReplaceBody {
            cancel: self.cancel_body(signer, order.order.market_index, old_nonce),
            order: SignedBody::new(&order.bytes(), &order.signature),
        };
        self.post("/v1/replace", &body).await
    }

    /// `GET /v1/accounts/{owner}/balances`.
    pub async fn balances(&self, owner: &Pubkey) -> Result<serde_json::Value, Error> {
        self.get(&format!("/v1/accounts/{}/balances", hex(owner.as_ref())))
            .await
    }

    /// `GET /v1/accounts/{owner}/orders`: open orders.
    pub async fn open_orders(&self, owner: &Pubkey) -> Result<serde_json::Value, Error> {
        self.get(&format!("/v1/accounts/{}/orders", hex(owner.as_ref())))
            .await
    }

    /// `GET /v1/accounts/{owner}/fills`: the newest fills first.
    pub async fn fills(&self, owner: &Pubkey) -> Result<serde_json::Value, Error> {
        self.get(&format!("/v1/accounts/{}/fills", hex(owner.as_ref())))
            .await
    }

    /// `GET /v1/deposits/{tx}`: what the router credited for the deposit transaction
    /// `signature` (`{"deposits": [...]}`); [`Error::Api`] 404 `not_found` until the listener
    /// has credited it.
    pub async fn deposits(&self, signature: &Signature) -> Result<serde_json::Value, Error> {
        self.get(&format!("/v1/deposits/{}", hex(signature.as_ref())))
            .await
    }

    /// `POST /v1/withdrawals`: asks to withdraw `amount` atoms of `mint` from `signer`'s
    /// balance with the request nonce `nonce` (never used before by this owner). The amount is
    /// held at once; the [`Ack::withdrawal_id`] names the withdrawal for
    /// [`RestClient::withdrawal_transaction`]. Not retried: a second try after a lost answer
    /// would be refused as a reused nonce; look the withdrawal up with
    /// [`RestClient::withdrawals`] instead.
    pub async fn request_withdrawal(
        &self,
        signer: &impl OrderSigner,
        mint: Pubkey,
        amount: u64,
        nonce: u64,
    ) -> Result<Ack, Error> {
        let request = WithdrawRequest {
            exchange: self.exchange,
            owner: signer.pubkey(),
            mint,
            amount,
            nonce,
            expiry: 0,
        };
        let bytes = request.encode();
        self.post(
            "/v1/withdrawals",
            &SignedBody::new(&bytes, &signer.sign_message(&bytes)),
        )
        .await
    }

    /// `POST /v1/withdrawals/{id}/transaction`: proves `signer` owns pending withdrawal `id`
    /// and gets the operator's co-signed transaction paying `destination` (a token account of
    /// the owner's for the withdrawal's mint). Given once per withdrawal; not retried.
    pub async fn withdrawal_transaction(
        &self,
        signer: &impl OrderSigner,
        id: u64,
        destination: &Pubkey,
    ) -> Result<CosignedWithdrawal, Error> {
        let body = withdrawal::transaction_request(&self.exchange, signer, id, destination);
        self.post(&format!("/v1/withdrawals/{id}/transaction"), &body)
            .await
    }

    /// `GET /v1/accounts/{owner}/withdrawals`: the owner's withdrawals and their status
    /// (pending, broadcasting, confirmed, failed).
    pub async fn withdrawals(&self, owner: &Pubkey) -> Result<serde_json::Value, Error> {
        self.get(&format!("/v1/accounts/{}/withdrawals", hex(owner.as_ref())))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff, 0x10];
        assert_eq!(hex(&bytes), "0001abff10");
        assert_eq!(unhex("0001abff10"), Some(bytes.to_vec()));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
