//! Reconciliation: per mint, the vault's token balance against what the program owes (every
//! user's available + pending-withdrawal balance, plus the fees accrued by the markets quoted
//! in it); per user and asset, the on-chain balance against the off-chain ledger's figure, and
//! the Σ of deposits the off-chain side credited against the user account's on-chain
//! cumulative `deposited` counter (a missed or doubly credited deposit shows there even when a
//! later correction made the balances agree).
//!
//! Any difference trips the alert: [`Reconciler::withdrawals_halted`] stays true (and
//! [`Reconciler::alerts`] counts the failing runs, for a metric) until a later run is clean.
//!
//! The accounts are read one request after another: a run concurrent with settlement may see
//! a moment between two of them and report a difference that the next run clears.

use anchor_lang::{AccountDeserialize, Discriminator};
use kestrel::state::{Market, UserAccount};
use kestrel_sdk::Deployment;
use solana_account_decoder::UiAccountEncoding;
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_config::{RpcAccountInfoConfig, RpcProgramAccountsConfig};
use solana_client::rpc_filter::{Memcmp, RpcFilterType};
use solana_sdk::account::Account;
use solana_sdk::pubkey::Pubkey;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The off-chain side's figures, as they should stand on-chain.
pub trait OffchainLedger: Send + Sync {
    /// Per `(owner, asset index)`: what the user's on-chain available + pending-withdrawal
    /// balance should be (the router's ledger minus the effect of fills not yet settled).
    /// Users absent from the map are expected to hold nothing.
    fn expected_balances(
        &self,
    ) -> impl Future<Output = Result<HashMap<(Pubkey, u8), u64>, LedgerError>> + Send;

    /// Per `(owner, asset index)`: the sum of every deposit the off-chain side credited (each
    /// keyed once by transaction signature and instruction index). Users absent from the map
    /// are taken to have no credited deposit.
    fn credited_deposits(
        &self,
    ) -> impl Future<Output = Result<HashMap<(Pubkey, u8), u64>, LedgerError>> + Send;
}

/// The off-chain ledger could not answer.
#[derive(Debug, thiserror::Error)]
#[error("off-chain ledger: {0}")]
pub struct LedgerError(pub Box<dyn std::error::Error + Send + Sync>);

/// Why a run could not complete (no verdict; the halt flag is left as it was).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The RPC node failed.
    #[error("rpc: {0}")]
    Rpc(#[from] Box<ClientError>),
    /// An account does not decode.
    #[error("account {address}: {reason}")]
    Account {
        /// Address.
        address: Pubkey,
        /// Why.
        reason: String,
    },
    /// The vault's balance is not a number.
    #[error("vault {0}: unreadable token amount")]
    VaultAmount(Pubkey),
    /// A sum overflowed.
    #[error("sum overflow for asset {0}")]
    Overflow(u8),
    /// The off-chain ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<ClientError> for ReconcileError {
    fn from(err: ClientError) -> Self {
        ReconcileError::Rpc(Box::new(err))
    }
}

/// One mint's on-chain books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintBooks {
    /// Asset index.
    pub asset: u8,
    /// Mint.
    pub mint: Pubkey,
    /// Tokens in the vault.
    pub vault_balance: u64,
    /// Σ users' available + pending withdrawal.
    pub user_balances: u128,
    /// Σ fees accrued by the markets quoted in this mint.
    pub fees_accrued: u128,
}

/// A difference found by a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The vault does not hold exactly what the program owes.
    Vault(MintBooks),
    /// A user's on-chain balance differs from the off-chain ledger.
    User {
        /// Owner.
        owner: Pubkey,
        /// Asset index.
        asset: u8,
        /// Available + pending withdrawal on-chain.
        on_chain: u64,
        /// The ledger's figure.
        off_chain: u64,
    },
    /// The deposits credited off-chain do not add up to the user account's cumulative
    /// on-chain `deposited` counter.
    Deposits {
        /// Owner.
        owner: Pubkey,
        /// Asset index.
        asset: u8,
        /// The on-chain `deposited` counter.
        on_chain: u64,
        /// Σ deposits credited off-chain.
        credited: u64,
        /// `credited − on_chain`: negative for a missed deposit, positive for a double credit.
        difference: i128,
    },
}

/// A run's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// Every mint's books.
    pub mints: Vec<MintBooks>,
    /// Every difference; empty when clean.
    pub mismatches: Vec<Mismatch>,
}

impl Reconciliation {
    /// No difference.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Runs reconciliations and keeps the alert state.
#[derive(Debug, Default)]
pub struct Reconciler {
    halted: AtomicBool,
    alerts: AtomicU64,
    deposit_alerts: AtomicU64,
}

impl Reconciler {
    /// A reconciler with no alert raised.
    pub fn new() -> Self {
        Reconciler::default()
    }

    /// True from a run with differences until a clean run.
    pub fn withdrawals_halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    /// Runs that found differences (monotonic: a counter metric).
    pub fn alerts(&self) -> u64 {
        self.alerts.load(Ordering::SeqCst)
    }

    /// Runs whose deposit cross-check failed (monotonic: a counter metric of its own, also
    /// counted in [`Reconciler::alerts`]).
    pub fn deposit_alerts(&self) -> u64 {
        self.deposit_alerts.load(Ordering::SeqCst)
    }

    /// Reads the deployment's vaults, user accounts and markets at the `RpcClient`'s
    /// commitment, compares them with each other and with `ledger`, and sets the alert.
    pub async fn run<L: OffchainLedger>(
        &self,
        rpc: &RpcClient,
        deployment: &Deployment,
        ledger: &L,
    ) -> Result<Reconciliation, ReconcileError> {
        let users = program_accounts::<UserAccount>(
            rpc,
            UserAccount::DISCRIMINATOR,
            UserAccount::SPACE,
            8 + 32,
            &deployment.exchange,
        )
        .await?;
        let markets = program_accounts::<Market>(
            rpc,
            Market::DISCRIMINATOR,
            Market::SPACE,
            8,
            &deployment.exchange,
        )
        .await?;
        let expected = ledger.expected_balances().await?;
        let credited = ledger.credited_deposits().await?;

        let mut mismatches = Vec::new();
        let mut mints = Vec::new();
        for (asset, mint) in deployment.mints.iter().enumerate() {
            let asset = u8::try_from(asset).map_err(|_| ReconcileError::Overflow(u8::MAX))?;
            let vault = deployment.vault_address(mint);
            let vault_balance = rpc
                .get_token_account_balance_with_commitment(&vault, rpc.commitment())
                .await?
                .value
                .amount
                .parse::<u64>()
                .map_err(|_| ReconcileError::VaultAmount(vault))?;
            let mut user_balances = 0u128;
            for user in &users {
                let on_chain = on_chain_balance(user, asset)?;
                user_balances = user_balances
                    .checked_add(u128::from(on_chain))
                    .ok_or(ReconcileError::Overflow(asset))?;
            }
            let mut fees_accrued = 0u128;
            for market in markets.iter().filter(|m| m.quote_asset == asset) {
                fees_accrued = fees_accrued
                    .checked_add(u128::from(market.fees_accrued))
                    .ok_or(ReconcileError::Overflow(asset))?;
            }
            let books = MintBooks {
                asset,
                mint: *mint,
                vault_balance,
                user_balances,
                fees_accrued,
            };
            let owed = user_balances
                .checked_add(fees_accrued)
                .ok_or(ReconcileError::Overflow(asset))?;
            if u128::from(vault_balance) != owed {
                mismatches.push(Mismatch::Vault(books.clone()));
            }
            mints.push(books);
        }

        // Every (owner, asset) either side knows of, in a stable order.
        let mut pairs: BTreeMap<(Pubkey, u8), (u64, u64)> = BTreeMap::new();
        for user in &users {
            for asset in 0..deployment.mints.len() {
                let asset = u8::try_from(asset).map_err(|_| ReconcileError::Overflow(u8::MAX))?;
                pairs.entry((user.owner, asset)).or_default().0 = on_chain_balance(user, asset)?;
            }
        }
        for (key, off_chain) in &expected {
            pairs.entry(*key).or_default().1 = *off_chain;
        }
        for ((owner, asset), (on_chain, off_chain)) in pairs {
            if on_chain != off_chain {
                mismatches.push(Mismatch::User {
                    owner,
                    asset,
                    on_chain,
                    off_chain,
                });
            }
        }

        let deposit_mismatches = deposit_mismatches(&users, &credited, deployment.mints.len())?;
        if !deposit_mismatches.is_empty() {
            self.deposit_alerts.fetch_add(1, Ordering::SeqCst);
        }
        mismatches.extend(deposit_mismatches);

        let report = Reconciliation { mints, mismatches };
        if report.is_clean() {
            self.halted.store(false, Ordering::SeqCst);
        } else {
            self.alerts.fetch_add(1, Ordering::SeqCst);
            self.halted.store(true, Ordering::SeqCst);
            tracing::error!(mismatches = ?report.mismatches, "reconciliation mismatch: withdrawals halted");
        }
        Ok(report)
    }
}

/// Per `(owner, asset)` either side knows of, in a stable order: the on-chain `deposited`
/// counter against the Σ of credited deposits.
fn deposit_mismatches(
    users: &[UserAccount],
    credited: &HashMap<(Pubkey, u8), u64>,
    assets: usize,
) -> Result<Vec<Mismatch>, ReconcileError> {
    let mut pairs: BTreeMap<(Pubkey, u8), (u64, u64)> = BTreeMap::new();
    for user in users {
        for (asset, balance) in user.balances.iter().enumerate().take(assets) {
            let asset = u8::try_from(asset).map_err(|_| ReconcileError::Overflow(u8::MAX))?;
            pairs.entry((user.owner, asset)).or_default().0 = balance.deposited;
        }
    }
    for (key, sum) in credited {
        pairs.entry(*key).or_default().1 = *sum;
    }
    Ok(pairs
        .into_iter()
        .filter(|(_, (on_chain, credited))| on_chain != credited)
        .map(
            |((owner, asset), (on_chain, credited))| Mismatch::Deposits {
                owner,
                asset,
                on_chain,
                credited,
                difference: i128::from(credited).saturating_sub(i128::from(on_chain)),
            },
        )
        .collect())
}

fn on_chain_balance(user: &UserAccount, asset: u8) -> Result<u64, ReconcileError> {
    let balance = user.balances.get(usize::from(asset));
    balance
        .map(|b| b.available.checked_add(b.pending_withdrawal))
        .unwrap_or(Some(0))
        .ok_or(ReconcileError::Overflow(asset))
}

/// Every account of type `T` of this exchange: its size, its discriminator and the exchange key
/// at `exchange_offset`.
async fn program_accounts<T: AccountDeserialize>(
    rpc: &RpcClient,
    discriminator: &[u8],
    space: usize,
    exchange_offset: usize,
    exchange: &Pubkey,
) -> Result<Vec<T>, ReconcileError> {
    let config = RpcProgramAccountsConfig {
        filters: Some(vec![
            RpcFilterType::DataSize(space as u64),
            RpcFilterType::Memcmp(Memcmp::new_raw_bytes(0, discriminator.to_vec())),
            RpcFilterType::Memcmp(Memcmp::new_raw_bytes(
                exchange_offset,
                exchange.to_bytes().to_vec(),
            )),
        ]),
        account_config: RpcAccountInfoConfig {
            encoding: Some(UiAccountEncoding::Base64),
            commitment: Some(rpc.commitment()),
            ..RpcAccountInfoConfig::default()
        },
        ..RpcProgramAccountsConfig::default()
    };
    let accounts = rpc
        .get_program_ui_accounts_with_config(&kestrel::ID, config)
        .await?;
    accounts
        .into_iter()
        .map(|(address, ui)| {
            let account: Account = ui.decode().ok_or_else(|| ReconcileError::Account {
                address,
                reason: "undecodable account data".into(),
            })?;
            T::try_deserialize(&mut account.data.as_slice()).map_err(|err| {
                ReconcileError::Account {
                    address,
                    reason: err.to_string(),
                }
            })
        })
        .collect()
}
