//! The `kestrel` binary's entry point, in the library so that the end-to-end tests (`tests/` at
//! the workspace root) can run exactly this program as a child process and `kill -9` it.
//! `anyhow` is used here and nowhere else in the library: this is the binary's `main`.

use crate::cli::{AdminArgs, Cli, Command, DevnetArgs, RelayerArgs, RouterArgs, TokenArgs};
use crate::internal::Token;
use crate::onchain::RouterLimits;
use crate::relayer_node::{RelayerNode, RelayerNodeConfig};
use crate::router_node::{RouterNode, RouterNodeConfig};
use crate::settle::SettleConfig;
use crate::tables::TablesConfig;
use crate::{admin, keys, Devnet, DevnetConfig};
use anyhow::Context;
use clap::Parser;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::signature::Signer;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Log filter without `RUST_LOG`: warnings, except the embedded bank's per-slot metrics
/// datapoints (solana_metrics warns on every slot that the fee collector is not a system
/// account, which the in-process chain does not need) and its RPC framework's chatter.
const DEFAULT_LOG: &str = "warn,tarpc=error,solana_metrics=error";

/// Runs `kestrel` with the process's command line: parses it, sets up logging (`RUST_LOG`) and
/// runs the chosen subcommand on a multi-threaded runtime until it ends or is signalled.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Devnet(args) => devnet(args).await,
            Command::Router(args) => router(args).await,
            Command::Relayer(args) => relayer(args).await,
            Command::Admin(args) => admin(args).await,
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<Token> {
    Ok(Token::load(
        args.internal_token.as_deref(),
        args.internal_token_file.as_deref(),
    )?)
}

async fn router(args: RouterArgs) -> anyhow::Result<()> {
    let cosigner = match &args.cosigner_keypair {
        Some(path) => Some(Arc::new(keys::load(path).with_context(|| {
            format!("reading the co-signer keypair {}", path.display())
        })?)),
        None => None,
    };
    let cosigner_key = cosigner.as_ref().map(|key| key.pubkey());
    let config = RouterNodeConfig {
        rpc_url: args.chain.rpc_url,
        commitment: CommitmentConfig {
            commitment: args.chain.commitment,
        },
        domain_id: args.chain.domain_id,
        journal_dir: args.journal_dir,
        database_url: args.store.database_url,
        listen: args.listen,
        metrics_listen: Some(args.metrics_listen),
        internal_listen: args.internal_listen,
        internal_token: token(&args.token)?,
        listen_interval: Duration::from_millis(args.listen_interval_ms.max(1)),
        verify_threads: args.verify_threads,
        access: args.access.limits(),
        limits: RouterLimits::default(),
        cosigner,
        reconcile_interval: Duration::from_secs(args.reconcile_secs.max(1)),
    };
    let node = RouterNode::start(config)
        .await
        .context("starting the router")?;
    println!("kestrel router is running");
    println!("  exchange   {}", node.deployment().exchange);
    println!("  api        http://{}", node.local_addr());
    if let Some(metrics) = node.metrics_addr() {
        println!("  metrics    http://{metrics}/metrics");
    }
    println!("  internal   http://{}", node.internal_addr());
    match cosigner_key {
        Some(key) => println!("  cosigner   {key} (co-signed withdrawals on)"),
        None => {
            println!("  cosigner   none (co-signed withdrawals off; users take the exit hatch)")
        }
    }
    shutdown_signal().await?;
    println!("shutting down");
    node.shutdown().await.context("shutting down")?;
    Ok(())
}

async fn relayer(args: RelayerArgs) -> anyhow::Result<()> {
    let operator = keys::load(&args.keypair)
        .with_context(|| format!("reading the operator keypair {}", args.keypair.display()))?;
    let operator_key = operator.pubkey();
    let config = RelayerNodeConfig {
        rpc_url: args.chain.rpc_url,
        commitment: CommitmentConfig {
            commitment: args.chain.commitment,
        },
        domain_id: args.chain.domain_id,
        database_url: args.store.database_url,
        operator,
        router_internal_url: args.router_internal_url,
        internal_token: token(&args.token)?,
        settle: SettleConfig {
            interval: Duration::from_millis(args.settle_interval_ms.max(1)),
            // Nothing wakes a separate relayer: the poll interval collects the fills.
            linger: Duration::ZERO,
            tables: TablesConfig {
                enabled: args.lookup_tables,
                file: Some(args.lookup_tables_file),
            },
        },
        reconcile_interval: Duration::from_secs(args.reconcile_secs.max(1)),
        metrics_listen: Some(args.metrics_listen),
    };
    let node = RelayerNode::start(config)
        .await
        .context("starting the relayer")?;
    println!("kestrel relayer is running");
    println!("  exchange   {}", node.deployment().exchange);
    println!("  operator   {operator_key}");
    if let Some(metrics) = node.metrics_addr() {
        println!("  metrics    http://{metrics}/metrics");
    }
    shutdown_signal().await?;
    println!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let keypair = keys::load(&args.keypair)
        .with_context(|| format!("reading the admin keypair {}", args.keypair.display()))?;
    let rpc = RpcClient::new(args.rpc_url);
    let outcome = admin::run(&rpc, &keypair, args.domain_id, &args.command)
        .await
        .context("sending the admin instruction")?;
    print!("{outcome}");
    Ok(())
}

async fn devnet(args: DevnetArgs) -> anyhow::Result<()> {
    let config = DevnetConfig {
        data_dir: args.data_dir,
        http: args.http,
        rpc: SocketAddr::from((Ipv4Addr::LOCALHOST, args.rpc_port)),
        slot_interval: Duration::from_millis(args.slot_ms.max(1)),
        bots: args.bots,
        reconcile_interval: Duration::from_secs(args.reconcile_secs.max(1)),
        settle_linger: Duration::from_millis(args.settle_linger_ms),
        lookup_tables: args.lookup_tables,
        access: args.access.limits(),
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
    let period = Duration::from_secs(args.status_secs.max(1));
    let mut every = tokio::time::interval(period);
    every.tick().await;
    let mut last = devnet.status();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let now = devnet.status();
                println!("{}", now.line(&last, period));
                last = now;
            }
            result = &mut signal => {
                result?;
                break;
            }
        }
    }
    println!("shutting down");
    devnet.shutdown().await.context("shutting down")?;
    Ok(())
}
