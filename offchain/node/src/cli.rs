//! The command line of `kestrel`: every flag has a `KESTREL_*` environment fallback and its
//! default shown by `--help`.

use crate::admin::AdminCommand;
use clap::{ArgAction, Args, Parser, Subcommand};
use kestrel_router::api::limits::LimitsConfig;
use solana_commitment_config::CommitmentLevel;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "kestrel",
    version,
    about = "Kestrel hybrid DEX: router, relayer and devnet"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs the whole exchange on this machine: an embedded chain with a deployment, demo mints,
    /// market 0 and two funded demo wallets, the router API on SQLite, and the relayer.
    Devnet(DevnetArgs),
    /// Runs the router (order intake, matching, ledger, API, chain listener) against a cluster.
    Router(RouterArgs),
    /// Runs the relayer (settlement and reconciliation) against a cluster and the router's store.
    Relayer(RelayerArgs),
    /// Sends one admin instruction to a cluster.
    Admin(AdminArgs),
}

#[derive(Args)]
pub struct DevnetArgs {
    /// Keys, journal and SQLite store (the router state is reset at every start).
    #[arg(long, env = "KESTREL_DATA_DIR", default_value = "./.kestrel-devnet")]
    pub data_dir: PathBuf,
    /// REST + WebSocket API address.
    #[arg(long, env = "KESTREL_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// JSON-RPC port of the embedded chain (on 127.0.0.1).
    #[arg(long, env = "KESTREL_RPC_PORT", default_value_t = 8899)]
    pub rpc_port: u16,
    /// Milliseconds between slots of the embedded chain.
    #[arg(long, env = "KESTREL_SLOT_MS", default_value_t = 400)]
    pub slot_ms: u64,
    /// Seconds between status lines.
    #[arg(long, env = "KESTREL_STATUS_SECS", default_value_t = 5)]
    pub status_secs: u64,
    /// Run a demo market maker (wallet 1) and taker (wallet 2), written with the SDK, so the
    /// book, trades and settlements are live.
    #[arg(long, env = "KESTREL_BOTS")]
    pub bots: bool,
    /// Seconds between reconciliation runs (a difference halts co-signed withdrawals).
    #[arg(long, env = "KESTREL_RECONCILE_SECS", default_value_t = 10)]
    pub reconcile_secs: u64,
    /// Settle with v0 transactions over address lookup tables (false: legacy transactions).
    #[arg(long, env = "KESTREL_LOOKUP_TABLES", default_value_t = true, action = ArgAction::Set)]
    pub lookup_tables: bool,
    /// Milliseconds settlement collects further fills after the router reports one.
    #[arg(long, env = "KESTREL_SETTLE_LINGER_MS", default_value_t = 5)]
    pub settle_linger_ms: u64,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// The API's access limits (defaults: `LimitsConfig::default()`).
#[derive(Args)]
#[command(next_help_heading = "Access limits")]
pub struct AccessArgs {
    /// HTTP requests and WebSocket upgrades per second per IP.
    #[arg(long, env = "KESTREL_IP_RATE", default_value_t = 50)]
    pub ip_rate: u32,
    /// Burst allowed above the per-IP rate.
    #[arg(long, env = "KESTREL_IP_BURST", default_value_t = 100)]
    pub ip_burst: u32,
    /// Signed commands per second per wallet (REST and WebSocket together).
    #[arg(long, env = "KESTREL_KEY_RATE", default_value_t = 100)]
    pub key_rate: u32,
    /// Burst allowed above the per-wallet rate.
    #[arg(long, env = "KESTREL_KEY_BURST", default_value_t = 200)]
    pub key_burst: u32,
    /// Largest HTTP body, bytes.
    #[arg(long, env = "KESTREL_MAX_BODY_BYTES", default_value_t = 4_096)]
    pub max_body_bytes: usize,
    /// Largest WebSocket message, bytes.
    #[arg(long, env = "KESTREL_WS_MAX_MESSAGE_BYTES", default_value_t = 4_096)]
    pub ws_max_message_bytes: usize,
    /// WebSocket connections per IP.
    #[arg(long, env = "KESTREL_WS_PER_IP", default_value_t = 10)]
    pub ws_per_ip: usize,
    /// Authenticated WebSocket connections per wallet.
    #[arg(long, env = "KESTREL_WS_PER_USER", default_value_t = 5)]
    pub ws_per_user: usize,
    /// Messages per second a WebSocket connection may send.
    #[arg(long, env = "KESTREL_WS_MESSAGES_PER_SEC", default_value_t = 100)]
    pub ws_messages_per_sec: u32,
    /// New orders are refused (`overloaded`) while the SQL projection is more than this many
    /// events behind; cancels and withdrawals always pass.
    #[arg(long, env = "KESTREL_MAX_PROJECTION_LAG", default_value_t = 100_000)]
    pub max_projection_lag: u64,
}

impl AccessArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> LimitsConfig {
        LimitsConfig {
            per_ip_per_sec: self.ip_rate,
            per_ip_burst: self.ip_burst,
            per_key_per_sec: self.key_rate,
            per_key_burst: self.key_burst,
            max_body_bytes: self.max_body_bytes,
            ws_max_message_bytes: self.ws_max_message_bytes,
            ws_per_ip: self.ws_per_ip,
            ws_per_user: self.ws_per_user,
            ws_messages_per_sec: self.ws_messages_per_sec,
            max_projection_lag: self.max_projection_lag,
        }
    }
}

/// Where the chain is and which deployment to follow.
#[derive(Args)]
#[command(next_help_heading = "Chain")]
pub struct ChainArgs {
    /// JSON-RPC URL of the cluster (localnet, devnet, mainnet, or the embedded chain).
    #[arg(long, env = "KESTREL_RPC_URL", default_value = "http://127.0.0.1:8899")]
    pub rpc_url: String,
    /// Commitment the chain is read at: processed, confirmed or finalized.
    #[arg(long, env = "KESTREL_COMMITMENT", default_value = "finalized")]
    pub commitment: CommitmentLevel,
    /// Deployment id of the exchange (its account is derived from it).
    #[arg(long, env = "KESTREL_DOMAIN_ID", default_value_t = 1)]
    pub domain_id: u64,
}

/// The shared SQL store.
#[derive(Args)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// SQL store URL: postgres://user@host/db in production, sqlite://path?mode=rwc embedded.
    #[arg(
        long,
        env = "KESTREL_DATABASE_URL",
        default_value = "sqlite://./kestrel-data/store.db?mode=rwc"
    )]
    pub database_url: String,
}

/// The operator-only endpoint between router and relayer.
#[derive(Args)]
#[command(next_help_heading = "Internal endpoint")]
pub struct TokenArgs {
    /// Bearer token of the internal endpoint (at least 16 characters); prefer the environment
    /// or the file to a flag, which other users can see.
    #[arg(
        long,
        env = "KESTREL_INTERNAL_TOKEN",
        hide_env_values = true,
        conflicts_with = "internal_token_file"
    )]
    pub internal_token: Option<String>,
    /// File whose first line is the bearer token.
    #[arg(long, env = "KESTREL_INTERNAL_TOKEN_FILE")]
    pub internal_token_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct RouterArgs {
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    /// Journal directory (the router's source of truth; keep it on durable storage).
    #[arg(
        long,
        env = "KESTREL_JOURNAL_DIR",
        default_value = "./kestrel-data/journal",
        help_heading = "Router"
    )]
    pub journal_dir: PathBuf,
    /// Public REST + WebSocket address.
    #[arg(
        long,
        env = "KESTREL_LISTEN",
        default_value = "127.0.0.1:8080",
        help_heading = "Router"
    )]
    pub listen: SocketAddr,
    /// Prometheus metrics address.
    #[arg(
        long,
        env = "KESTREL_METRICS_LISTEN",
        default_value = "127.0.0.1:9090",
        help_heading = "Router"
    )]
    pub metrics_listen: SocketAddr,
    /// Operator-only internal endpoint address (settlement statuses from the relayer).
    #[arg(
        long,
        env = "KESTREL_INTERNAL_LISTEN",
        default_value = "127.0.0.1:8081",
        help_heading = "Internal endpoint"
    )]
    pub internal_listen: SocketAddr,
    /// Milliseconds between chain listener polls.
    #[arg(
        long,
        env = "KESTREL_LISTEN_INTERVAL_MS",
        default_value_t = 400,
        help_heading = "Chain"
    )]
    pub listen_interval_ms: u64,
    /// Signature verification threads.
    #[arg(
        long,
        env = "KESTREL_VERIFY_THREADS",
        default_value_t = 2,
        help_heading = "Router"
    )]
    pub verify_threads: usize,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Operator keypair file: co-sign withdrawals in this process (the router host then holds
    /// the operator key). Without it co-signed withdrawals are off and users take the exit
    /// hatch.
    #[arg(long, env = "KESTREL_COSIGNER_KEYPAIR", help_heading = "Withdrawals")]
    pub cosigner_keypair: Option<PathBuf>,
    /// Seconds between reconciliation runs (with a co-signer: a difference halts co-signing).
    #[arg(
        long,
        env = "KESTREL_RECONCILE_SECS",
        default_value_t = 30,
        help_heading = "Withdrawals"
    )]
    pub reconcile_secs: u64,
}

#[derive(Args)]
pub struct RelayerArgs {
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    /// Operator keypair file (Solana CLI JSON format); signs every settlement.
    #[arg(
        long,
        env = "KESTREL_OPERATOR_KEYPAIR",
        default_value = "./kestrel-data/operator.json",
        help_heading = "Relayer"
    )]
    pub keypair: PathBuf,
    /// Base URL of the router's internal endpoint.
    #[arg(
        long,
        env = "KESTREL_ROUTER_INTERNAL_URL",
        default_value = "http://127.0.0.1:8081",
        help_heading = "Internal endpoint"
    )]
    pub router_internal_url: String,
    /// Milliseconds between polls of the store for pending fills (each poll is one indexed
    /// query; the interval also batches the fills that arrive meanwhile).
    #[arg(
        long,
        env = "KESTREL_SETTLE_INTERVAL_MS",
        default_value_t = 50,
        help_heading = "Relayer"
    )]
    pub settle_interval_ms: u64,
    /// Settle with v0 transactions over address lookup tables (false: legacy transactions).
    #[arg(
        long,
        env = "KESTREL_LOOKUP_TABLES",
        default_value_t = true,
        action = ArgAction::Set,
        help_heading = "Relayer"
    )]
    pub lookup_tables: bool,
    /// File keeping the addresses of the operator's lookup tables across restarts.
    #[arg(
        long,
        env = "KESTREL_LOOKUP_TABLES_FILE",
        default_value = "./kestrel-data/lookup-tables.json",
        help_heading = "Relayer"
    )]
    pub lookup_tables_file: PathBuf,
    /// Prometheus metrics address (settlement outcomes, reconciliation alert).
    #[arg(
        long,
        env = "KESTREL_RELAYER_METRICS_LISTEN",
        default_value = "127.0.0.1:9091",
        help_heading = "Relayer"
    )]
    pub metrics_listen: SocketAddr,
    /// Seconds between reconciliation runs.
    #[arg(
        long,
        env = "KESTREL_RECONCILE_SECS",
        default_value_t = 30,
        help_heading = "Relayer"
    )]
    pub reconcile_secs: u64,
}

#[derive(Args)]
pub struct AdminArgs {
    /// JSON-RPC URL of the cluster.
    #[arg(long, env = "KESTREL_RPC_URL", default_value = "http://127.0.0.1:8899")]
    pub rpc_url: String,
    /// Admin keypair file (Solana CLI JSON format); signs and pays.
    #[arg(
        long,
        env = "KESTREL_ADMIN_KEYPAIR",
        default_value = "./kestrel-data/admin.json"
    )]
    pub keypair: PathBuf,
    /// Deployment id of the exchange.
    #[arg(long, env = "KESTREL_DOMAIN_ID", default_value_t = 1)]
    pub domain_id: u64,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => panic!("{e}"),
        }
    }

    fn access(cli: Cli) -> LimitsConfig {
        match cli.command {
            Command::Router(args) => args.access.limits(),
            Command::Devnet(args) => args.access.limits(),
            _ => panic!("not a router or devnet command"),
        }
    }

    #[test]
    fn access_limit_defaults_are_the_apis() {
        assert_eq!(
            access(parse(&["kestrel", "router"])),
            LimitsConfig::default()
        );
        assert_eq!(
            access(parse(&["kestrel", "devnet"])),
            LimitsConfig::default()
        );
    }

    #[test]
    fn access_limits_are_set_by_flags() {
        let limits = access(parse(&[
            "kestrel",
            "router",
            "--ip-rate",
            "7",
            "--ws-per-user",
            "2",
            "--max-projection-lag",
            "500",
        ]));
        assert_eq!(
            limits,
            LimitsConfig {
                per_ip_per_sec: 7,
                ws_per_user: 2,
                max_projection_lag: 500,
                ..LimitsConfig::default()
            }
        );
    }
}
