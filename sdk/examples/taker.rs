//! Places one immediate-or-cancel buy against the best ask of market 0 and prints the outcome.
//!
//! Against a running devnet (`scripts/devnet`):
//!
//! ```sh
//! cargo run -p kestrel-sdk --example taker
//! ```
//!
//! `KESTREL_API` is the router API (default `http://127.0.0.1:8080`); `KESTREL_WALLET` (or the
//! first argument) is a JSON keypair file (default `./.kestrel-devnet/wallet-2.json`);
//! `KESTREL_MARKET` is the market index (default 0).

use kestrel_sdk::nonce::Nonces;
use kestrel_sdk::rest::RestClient;
use kestrel_sdk::OrderBuilder;
use solana_sdk::signature::{Keypair, Signer};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn load_keypair(path: &str) -> Result<Keypair> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let bytes: Vec<u8> = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    Keypair::try_from(bytes.as_slice()).map_err(|e| format!("{path}: not a keypair: {e}").into())
}

#[tokio::main]
async fn main() -> Result<()> {
    let api = std::env::var("KESTREL_API").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let wallet = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("KESTREL_WALLET").ok())
        .unwrap_or_else(|| "./.kestrel-devnet/wallet-2.json".into());
    let market: u32 = match std::env::var("KESTREL_MARKET") {
        Ok(m) => m.parse()?,
        Err(_) => 0,
    };
    let keypair = load_keypair(&wallet)?;
    println!("wallet {} ({wallet})", keypair.pubkey());

    let client = RestClient::connect(api.as_str()).await?;
    let book = client.book(market).await?;
    let Some(best_ask) = book["asks"].get(0) else {
        println!("market {market} has no asks; nothing to take");
        return Ok(());
    };
    let price = best_ask["price_ticks"]
        .as_u64()
        .ok_or("book: ask without price_ticks")?;
    let available = best_ask["size_lots"]
        .as_u64()
        .ok_or("book: ask without size_lots")?;
    let size = available.min(1);
    println!("best ask: {available} lots at {price} ticks; buying {size} IOC");

    let nonce = Nonces::above(0).next();
    let order = OrderBuilder::limit(market)
        .buy()
        .price(price)
        .size(size)
        .ioc()
        .sign(client.exchange(), &keypair, nonce)?;
    match client.place(&order).await {
        Ok(ack) => {
            println!("accepted: seq {} order {:?}", ack.seq, ack.order_id);
            for event in ack.events {
                println!("  {event}");
            }
        }
        Err(e) => println!("refused: {e}"),
    }
    Ok(())
}
