//! The embedded chain: an in-process bank (solana-program-test's, running the kestrel program
//! natively and the real SPL Token program as SBF) served on loopback through the subset of
//! Solana's JSON-RPC that the relayer, the listeners, the SDK and ordinary Solana clients use.
//!
//! Answers carry Agave's own types (solana-rpc-client-api, solana-transaction-status,
//! solana-account-decoder) so that solana-client's `RpcClient` parses them unchanged. Every
//! committed transaction is final at once (`confirmationStatus: finalized`); slots advance on a
//! clock. Natively run programs' `msg!`/`emit!` never reach the logs, and the bank reports no
//! inner instructions: listeners decode the kestrel instructions of successful transactions.

mod bank;
mod clock;
mod index;
mod processor;
mod rpc;
mod server;

use solana_sdk::account::Account;
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the embedded chain starts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the JSON-RPC server listens (port 0: any free port).
    pub bind: SocketAddr,
    /// Time between slots.
    pub slot_interval: Duration,
    /// Accounts present from genesis (demo wallets, mints...).
    pub accounts: Vec<(Pubkey, Account)>,
    /// Most lamports one `requestAirdrop` may ask of the faucet.
    pub max_airdrop_lamports: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            slot_interval: Duration::from_millis(400),
            accounts: Vec::new(),
            max_airdrop_lamports: LAMPORTS_PER_SOL.saturating_mul(1_000),
        }
    }
}

/// Why the embedded chain failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the JSON-RPC server cannot listen: {0}")]
    Listen(#[source] std::io::Error),
    #[error("the JSON-RPC server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("an embedded-chain task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("bank: {0}")]
    Bank(#[from] solana_program_test::BanksClientError),
    #[error("bank: {0}")]
    BankIo(#[from] std::io::Error),
    #[error("unexpected answer from the bank: {0}")]
    BankAnswer(&'static str),
    #[error("cannot advance the slot: {0}")]
    Warp(#[from] solana_program_test::ProgramTestError),
    #[error("the slot number overflowed")]
    SlotOverflow,
}

/// A running embedded chain; stops with [`EmbeddedChain::shutdown`] (or when dropped).
pub struct EmbeddedChain {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<Result<(), Error>>>,
    clock: Option<JoinHandle<()>>,
}

impl EmbeddedChain {
    /// Starts the bank, its slot clock and the JSON-RPC server.
    pub async fn start(config: Config) -> Result<EmbeddedChain, Error> {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(Error::Listen)?;
        let addr = listener.local_addr().map_err(Error::Listen)?;
        let bank = Arc::new(bank::Bank::start(&config).await?);
        let (stop, stopped) = watch::channel(false);
        let clock = clock::spawn(bank.clone(), config.slot_interval, stopped.clone());
        let server = server::spawn(listener, rpc::handler(bank), stopped);
        Ok(EmbeddedChain {
            addr,
            stop,
            server: Some(server),
            clock: Some(clock),
        })
    }

    /// The JSON-RPC endpoint, e.g. `http://127.0.0.1:8899`.
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the JSON-RPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the slot clock and the server, letting requests in flight finish.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop.send_replace(true);
        if let Some(clock) = self.clock.take() {
            clock.await?;
        }
        match self.server.take() {
            Some(server) => server.await?,
            None => Ok(()),
        }
    }
}

impl Drop for EmbeddedChain {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
