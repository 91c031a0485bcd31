//! `kestrel`: the operator's binary.

use anyhow::Context;
use clap::{Parser, Subcommand};
use kestrel_node::{Devnet, DevnetConfig};
use solana_sdk::signature::Signer;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "kestrel",
    version,
    about = "Kestrel hybrid DEX: router, relayer and devnet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole exchange on this machine: an embedded chain with a deployment, demo mints,
    /// market 0 and two funded demo wallets, the router API on SQLite, and the relayer.
    Devnet(DevnetArgs),
}

#[derive(clap::Args)]
struct DevnetArgs {
    /// Keys, journal and SQLite store (the router state is reset at every start).
    #[arg(long, env = "KESTREL_DATA_DIR", default_value = "./.kestrel-devnet")]
    data_dir: PathBuf,
    /// REST + WebSocket API address.
    #[arg(long, env = "KESTREL_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// JSON-RPC port of the embedded chain (on 127.0.0.1).
    #[arg(long, env = "KESTREL_RPC_PORT", default_value_t = 8899)]
    rpc_port: u16,
    /// Milliseconds between slots of the embedded chain.
    #[arg(long, env = "KESTREL_SLOT_MS", default_value_t = 400)]
    slot_ms: u64,
    /// Seconds between status lines.
    #[arg(long, env = "KESTREL_STATUS_SECS", default_value_t = 5)]
    status_secs: u64,
    /// Run a demo market maker (wallet 1) and taker (wallet 2), written with the SDK, so the
    /// book, trades and settlements are live.
    #[arg(long, env = "KESTREL_BOTS")]
    bots: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tarpc=error")),
        )
        .init();
    match Cli::parse().command {
        Command::Devnet(args) => devnet(args).await,
    }
}

async fn devnet(args: DevnetArgs) -> anyhow::Result<()> {
    let config = DevnetConfig {
        data_dir: args.data_dir,
        http: args.http,
        rpc: SocketAddr::from((Ipv4Addr::LOCALHOST, args.rpc_port)),
        slot_interval: Duration::from_millis(args.slot_ms.max(1)),
        bots: args.bots,
        ..DevnetConfig::ephemeral(PathBuf::new())
    };
    let devnet = Devnet::start(config).await.context("starting the devnet")?;
    println!("kestrel devnet is running");
    println!("  HTTP API   {}/v1/markets", devnet.http_url());
    println!("  WebSocket  {}", devnet.ws_url());
    println!("  RPC        {}", devnet.rpc_url());
    println!("  data dir   {}", devnet.data_dir().display());
    println!("  exchange   {}", devnet.deployment().exchange);
    for (index, mint) in devnet.deployment().mints.iter().enumerate() {
        println!("  asset {index}    {mint}");
    }
    println!("  operator   {}", devnet.operator().pubkey());
    for (index, wallet) in devnet.wallets().iter().enumerate() {
        println!(
            "  wallet {}   {} (hex {}, key {})",
            index.saturating_add(1),
            wallet.keypair.pubkey(),
            hex::encode(wallet.keypair.pubkey().to_bytes()),
            devnet
                .data_dir()
                .join(format!("wallet-{}.json", index.saturating_add(1)))
                .display()
        );
    }
    if args.bots {
        println!("  bots       market maker (wallet 1) and taker (wallet 2) are trading");
    }
    println!("Ctrl-C stops it.");
    let mut every = tokio::time::interval(Duration::from_secs(args.status_secs.max(1)));
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => match devnet.status().await {
                Ok(s) => println!(
                    "orders {} | fills {} | settled {} | quarantined {}",
                    s.orders, s.fills, s.settled, s.quarantined
                ),
                Err(error) => eprintln!("status unavailable: {error}"),
            },
            signal = tokio::signal::ctrl_c() => {
                signal.context("waiting for Ctrl-C")?;
                break;
            }
        }
    }
    println!("shutting down");
    devnet.shutdown().await.context("shutting down")?;
    Ok(())
}
