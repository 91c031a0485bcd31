//! Shared setup of the relayer's end-to-end tests: an embedded chain reached only through
//! `RpcClient`, a deployment with two mints and one market, funded users.
#![allow(dead_code)] // each test file uses its own part of the helpers

use anchor_lang::AccountDeserialize;
use kestrel::instructions::CreateMarketArgs;
use kestrel_relayer::embedded::{Config, EmbeddedChain};
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::account::Account;
use solana_sdk::instruction::Instruction;
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};
use std::future::Future;
use std::time::Duration;

pub const LOT: u64 = 1_000;
pub const TICK: u64 = 10;
pub const WITHDRAWAL_DELAY_SLOTS: u64 = 4;

/// A program that accepts any instruction: solana-program-test's own test fixture, read from
/// that dependency's package in the cargo registry (pinned =3.1.12) rather than copied here.
pub fn noop_program() -> Vec<u8> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registry = cargo_home.join("registry").join("src");
    std::fs::read_dir(&registry)
        .expect("cargo registry sources")
        .filter_map(Result::ok)
        .map(|index| {
            index
                .path()
                .join("solana-program-test-3.1.12/tests/fixtures/noop_program.so")
        })
        .find(|path| path.exists())
        .map(|path| std::fs::read(path).expect("read noop_program.so"))
        .expect("solana-program-test 3.1.12 sources in the cargo registry")
}

/// Polls `check` until it yields a value, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Chain {
    pub chain: EmbeddedChain,
    pub rpc: RpcClient,
}

impl Chain {
    pub async fn start() -> Chain {
        Self::start_with(Vec::new()).await
    }

    pub async fn start_with(accounts: Vec<(Pubkey, Account)>) -> Chain {
        Self::start_configured(Duration::from_millis(50), accounts).await
    }

    /// A chain whose slots pass every `slot_interval` (short: blockhashes expire quickly).
    pub async fn start_fast(slot_interval: Duration) -> Chain {
        Self::start_configured(slot_interval, Vec::new()).await
    }

    async fn start_configured(slot_interval: Duration, accounts: Vec<(Pubkey, Account)>) -> Chain {
        let chain = EmbeddedChain::start(Config {
            slot_interval,
            accounts,
            ..Config::default()
        })
        .await
        .unwrap();
        let rpc = RpcClient::new(chain.rpc_url());
        Chain { chain, rpc }
    }

    pub fn client(&self) -> RpcClient {
        RpcClient::new(self.chain.rpc_url())
    }

    pub async fn funded(&self) -> Keypair {
        let wallet = Keypair::new();
        let signature = self
            .rpc
            .request_airdrop(&wallet.pubkey(), 10 * LAMPORTS_PER_SOL)
            .await
            .unwrap();
        eventually(Duration::from_secs(5), "the airdrop", || async {
            self.rpc
                .confirm_transaction(&signature)
                .await
                .unwrap()
                .then_some(())
        })
        .await;
        wallet
    }

    pub async fn send(
        &self,
        ixs: &[Instruction],
        payer: &Keypair,
        signers: &[&Keypair],
    ) -> Signature {
        kestrel_sdk::chain::send(&self.rpc, ixs, payer, signers)
            .await
            .unwrap()
    }

    /// Sends without preflight and waits for the transaction to land; returns its error.
    pub async fn send_unchecked(
        &self,
        ixs: &[Instruction],
        payer: &Keypair,
        signers: &[&Keypair],
    ) -> (Signature, Option<TransactionError>) {
        let blockhash = self.rpc.get_latest_blockhash().await.unwrap();
        let mut all = vec![payer];
        all.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &all, blockhash);
        let signature = self
            .rpc
            .send_transaction_with_config(
                &tx,
                solana_client::rpc_config::RpcSendTransactionConfig {
                    skip_preflight: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let err = eventually(
            Duration::from_secs(5),
            "the transaction to land",
            || async {
                let statuses = self.rpc.get_signature_statuses(&[signature]).await.unwrap();
                statuses.value[0].clone().map(|status| status.err)
            },
        )
        .await;
        (signature, err)
    }

    pub async fn create_mint(&self, authority: &Keypair) -> Pubkey {
        let mint = Keypair::new();
        kestrel_sdk::chain::create_mint(&self.rpc, authority, &mint, 6)
            .await
            .unwrap();
        mint.pubkey()
    }

    /// A token account of `owner` holding `amount` of `mint`.
    pub async fn token_account(
        &self,
        mint: &Pubkey,
        owner: &Keypair,
        authority: &Keypair,
        amount: u64,
    ) -> Pubkey {
        kestrel_sdk::chain::funded_token_account(&self.rpc, mint, owner, authority, amount)
            .await
            .unwrap()
    }

    pub async fn load<T: AccountDeserialize>(&self, address: &Pubkey) -> T {
        let account = self.rpc.get_account(address).await.unwrap();
        T::try_deserialize(&mut account.data.as_slice()).unwrap()
    }

    pub async fn token_balance(&self, account: &Pubkey) -> u64 {
        let balance = self.rpc.get_token_account_balance(account).await.unwrap();
        balance.amount.parse().unwrap()
    }
}

/// A deployment (base = asset 0, quote = asset 1, market 0) with its admin and operator.
pub struct Exchange {
    pub d: Deployment,
    pub admin: Keypair,
    pub operator: Keypair,
    pub base: Pubkey,
    pub quote: Pubkey,
}

impl Exchange {
    pub async fn deploy(c: &Chain) -> Exchange {
        let admin = c.funded().await;
        let operator = c.funded().await;
        let base = c.create_mint(&admin).await;
        let quote = c.create_mint(&admin).await;
        let d = Deployment::new(7, vec![base, quote]);
        let setup = vec![
            d.initialize_exchange(
                &admin.pubkey(),
                &operator.pubkey(),
                &admin.pubkey(),
                WITHDRAWAL_DELAY_SLOTS,
                10,
            ),
            d.add_asset(&admin.pubkey(), 0).unwrap(),
            d.add_asset(&admin.pubkey(), 1).unwrap(),
            d.create_market(
                &admin.pubkey(),
                CreateMarketArgs {
                    index: 0,
                    base_asset: 0,
                    quote_asset: 1,
                    base_lot_size: LOT,
                    tick_size: TICK,
                    min_size_lots: 1,
                    maker_fee_bps: 2,
                    taker_fee_bps: 5,
                },
            ),
        ];
        c.send(&setup, &admin, &[]).await;
        Exchange {
            d,
            admin,
            operator,
            base,
            quote,
        }
    }

    /// A user with an account on the exchange, `amount` of `asset` deposited, and the token
    /// account it deposited from (holding `extra` more).
    pub async fn user(&self, c: &Chain, asset: u8, amount: u64, extra: u64) -> (Keypair, Pubkey) {
        let user = c.funded().await;
        let mint = self.d.mint(asset).unwrap();
        let source = c
            .token_account(&mint, &user, &self.admin, amount + extra)
            .await;
        let mut ixs = vec![self.d.create_user(&user.pubkey())];
        if amount > 0 {
            ixs.push(
                self.d
                    .deposit(&user.pubkey(), asset, &source, amount)
                    .unwrap(),
            );
        }
        c.send(&ixs, &user, &[]).await;
        (user, source)
    }
}
