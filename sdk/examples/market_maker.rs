//! A market maker on the WebSocket client: quotes a bid and an ask around a mid, re-quotes
//! whenever one of its quotes fills (private `fills` channel), keeps a local L2 book, and
//! mass-cancels when it goes away: the router's cancel-on-disconnect is armed on every
//! connection, and Ctrl-C sends an explicit cancel-all before closing.
//!
//! Against a running devnet (`scripts/devnet`, without `--bots`, whose maker is the same
//! wallet):
//!
//! ```sh
//! cargo run -p kestrel-sdk --example market_maker
//! ```
//!
//! `KESTREL_API` is the router API (default `http://127.0.0.1:8080`); `KESTREL_WALLET` (or the
//! first argument) a JSON keypair file (default `./.kestrel-devnet/wallet-1.json`);
//! `KESTREL_MARKET` the market (default 0); `KESTREL_MID` the mid in ticks (default: the book's
//! mid, else 1,000; after a fill, the fill's price); `KESTREL_HALF_SPREAD` in ticks (default
//! 5); `KESTREL_SIZE` in lots (default 1).

use kestrel_sdk::book::L2Book;
use kestrel_sdk::nonce::Nonces;
use kestrel_sdk::rest::{hex, RestClient};
use kestrel_sdk::ws::{Channel, Data, WsClient, WsConfig, WsEvent};
use kestrel_sdk::OrderBuilder;
use solana_sdk::signature::{Keypair, Signer};
use std::sync::Arc;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn load_keypair(path: &str) -> Result<Keypair> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let bytes: Vec<u8> = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    Keypair::try_from(bytes.as_slice()).map_err(|e| format!("{path}: not a keypair: {e}").into())
}

fn env_u64(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v.parse().map_err(|e| format!("{name}: {e}"))?)),
        Err(_) => Ok(None),
    }
}

/// The quoting state.
struct Maker {
    client: WsClient,
    wallet: Arc<Keypair>,
    exchange: solana_sdk::pubkey::Pubkey,
    market: u32,
    half_spread: u64,
    size: u64,
    nonces: Nonces,
    mid: Option<u64>,
}

impl Maker {
    /// Cancels the current quotes and places a bid and an ask around `mid`.
    async fn quote(&self, mid: u64) -> Result<()> {
        self.client.cancel_all(self.nonces.next()).await?;
        let bid = mid.saturating_sub(self.half_spread).max(1);
        let ask = mid.saturating_add(self.half_spread);
        for (builder, price) in [
            (OrderBuilder::limit(self.market).buy(), bid),
            (OrderBuilder::limit(self.market).sell(), ask),
        ] {
            let order = builder.price(price).size(self.size).post_only().sign(
                self.exchange,
                self.wallet.as_ref(),
                self.nonces.next(),
            )?;
            let result = self.client.place(&order).await?;
            println!(
                "quoted {} {} lots at {price} ticks: order {}",
                if price == bid { "bid" } else { "ask" },
                self.size,
                result["order_id"]
            );
        }
        Ok(())
    }

    /// Re-quotes, reporting failures (a lost connection re-quotes on reconnect).
    async fn requote(&self, mid: u64) {
        if let Err(e) = self.quote(mid).await {
            println!("quoting failed: {e}");
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let api = std::env::var("KESTREL_API").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let wallet = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("KESTREL_WALLET").ok())
        .unwrap_or_else(|| "./.kestrel-devnet/wallet-1.json".into());
    let market = env_u64("KESTREL_MARKET")?.unwrap_or(0);
    let market = u32::try_from(market).map_err(|e| format!("KESTREL_MARKET: {e}"))?;
    let keypair = Arc::new(load_keypair(&wallet)?);
    let me = hex(keypair.pubkey().as_ref());
    println!(
        "market maker {} ({wallet}) on market {market}",
        keypair.pubkey()
    );

    let rest = RestClient::connect(api.as_str()).await?;
    let ws_url = format!(
        "{}/v1/ws",
        api.replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    );
    let config = WsConfig::new(ws_url)
        .subscribe(Channel::Book(market))
        .subscribe(Channel::Fills)
        .auth(keypair.clone(), rest.exchange(), true);
    let (client, mut events) = WsClient::connect(config)?;
    let maker = Maker {
        client: client.clone(),
        wallet: keypair,
        exchange: rest.exchange(),
        market,
        half_spread: env_u64("KESTREL_HALF_SPREAD")?.unwrap_or(5),
        size: env_u64("KESTREL_SIZE")?.unwrap_or(1),
        nonces: Nonces::above(0),
        mid: env_u64("KESTREL_MID")?,
    };
    let mut book = L2Book::new(market);
    let mut last_price = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = &mut ctrl_c => {
                println!("shutting down: cancelling every quote");
                match client.cancel_all(maker.nonces.next()).await {
                    Ok(_) => println!("cancelled"),
                    Err(e) => println!("cancel-all failed ({e}); cancel-on-disconnect covers it"),
                }
                client.close().await;
                return Ok(());
            }
        };
        let Some(event) = event else {
            return Ok(());
        };
        match event {
            WsEvent::Connected { session, resumed } => {
                println!("connected (session {session}, resumed {resumed})");
                // The router cancelled the quotes when the last connection dropped.
                let mid = maker.mid.or(last_price).or(book.mid()).unwrap_or(1_000);
                maker.requote(mid).await;
            }
            WsEvent::Snapshot(snapshot) => {
                if let Err(e) = book.apply_snapshot(&snapshot) {
                    println!("snapshot: {e}");
                }
            }
            WsEvent::Update(update) => match update.data {
                Data::Book(delta) => {
                    if let Err(e) = book.apply_delta(&delta) {
                        println!("book: {e}; asking for a snapshot");
                        client.resnapshot(market).await?;
                    } else if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
                        println!(
                            "book: {} @ {} / {} @ {}",
                            bid.size_lots, bid.price_ticks, ask.size_lots, ask.price_ticks
                        );
                    }
                }
                Data::Fill(fill) if fill.market == market && fill.maker == me => {
                    println!(
                        "filled {} lots at {} ticks (fill {})",
                        fill.size_lots, fill.price_ticks, fill.fill_id
                    );
                    last_price = Some(fill.price_ticks);
                    maker.requote(maker.mid.unwrap_or(fill.price_ticks)).await;
                }
                _ => {}
            },
            WsEvent::Resync { reason } => {
                println!("feed resync ({reason}); waiting for a fresh snapshot");
                book.invalidate();
            }
            WsEvent::CancelOnDisconnect { armed } => {
                println!("cancel-on-disconnect armed: {armed}")
            }
            WsEvent::Disconnected {
                reason,
                reconnect_in,
            } => println!("disconnected ({reason}); reconnecting in {reconnect_in:?}"),
            WsEvent::ServerError(e) => println!("router: {e}"),
            WsEvent::Undecodable { reason } => println!("skipped a message: {reason}"),
            WsEvent::Closed(error) => {
                println!("stopped: {error:?}");
                return Ok(());
            }
        }
    }
}
