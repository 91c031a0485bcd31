//! Shared fixture for the program tests: a real bank (solana-program-test) running the kestrel
//! program natively and the real SPL Token program, with builders for every instruction.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod builders;
mod ed25519;

#[allow(unused_imports)] // not every test file settles
pub use ed25519::*;

use anchor_lang::{AccountDeserialize, Discriminator};
use kestrel::constants::*;
use kestrel::encoding::{Order, OrderType, SelfTrade, Side};
use kestrel::error::KestrelError;
use kestrel::state::{Exchange, Market, OrderRecord, UserAccount};
use solana_program_test::{BanksClientError, ProgramTest, ProgramTestContext};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

/// Adapter: Anchor's `entry` ties every argument to one lifetime, `processor!` does not.
#[allow(unsafe_code)]
fn process_instruction<'a, 'b, 'c, 'd>(
    program_id: &'a Pubkey,
    accounts: &'b [solana_sdk::account_info::AccountInfo<'c>],
    data: &'d [u8],
) -> solana_sdk::entrypoint::ProgramResult {
    // SAFETY: all three borrows outlive this call and `entry` keeps no reference past its
    // return; only the lifetimes are unified, the types are identical.
    let (program_id, accounts, data) = unsafe {
        (
            core::mem::transmute::<&'a Pubkey, &'c Pubkey>(program_id),
            core::mem::transmute::<
                &'b [solana_sdk::account_info::AccountInfo<'c>],
                &'c [solana_sdk::account_info::AccountInfo<'c>],
            >(accounts),
            core::mem::transmute::<&'d [u8], &'c [u8]>(data),
        )
    };
    kestrel::entry(program_id, accounts, data)
}

/// Parameters of a fixture exchange with one market (index 0, base asset 0, quote asset 1).
#[derive(Clone, Debug)]
pub struct Config {
    pub domain_id: u64,
    pub withdrawal_delay_slots: u64,
    pub fee_change_delay_slots: u64,
    pub base_lot_size: u64,
    pub tick_size: u64,
    pub min_size_lots: u64,
    pub maker_fee_bps: u16,
    pub taker_fee_bps: u16,
    pub base_decimals: u8,
    pub quote_decimals: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domain_id: 1,
            withdrawal_delay_slots: 100,
            fee_change_delay_slots: 50,
            base_lot_size: 1_000,
            tick_size: 10,
            min_size_lots: 1,
            maker_fee_bps: 2,
            taker_fee_bps: 5,
            base_decimals: 9,
            quote_decimals: 6,
        }
    }
}

/// A funded wallet with its user account and one token account per fixture mint.
pub struct TestUser {
    pub wallet: Keypair,
    pub user: Pubkey,
    pub base_ata: Pubkey,
    pub quote_ata: Pubkey,
    next_nonce: u64,
}

impl TestUser {
    pub fn key(&self) -> Pubkey {
        self.wallet.pubkey()
    }

    /// A fresh nonce for this user's next order.
    pub fn nonce(&mut self) -> u64 {
        self.next_nonce += 1;
        self.next_nonce
    }
}

pub struct TestExchange {
    pub ctx: ProgramTestContext,
    pub cfg: Config,
    pub admin: Keypair,
    pub operator: Keypair,
    pub fee_collector: Keypair,
    pub mint_authority: Keypair,
    pub exchange: Pubkey,
    pub base_mint: Pubkey,
    pub quote_mint: Pubkey,
    pub base_vault: Pubkey,
    pub quote_vault: Pubkey,
    pub market: Pubkey,
    /// Every user account created, for the conservation check.
    pub users: Vec<Pubkey>,
    next_batch: u64,
    next_fill: u64,
}

pub const BASE: u8 = 0;
pub const QUOTE: u8 = 1;

impl TestExchange {
    pub async fn new() -> Self {
        Self::with(Config::default()).await
    }

    /// An exchange with both mints registered, market 0 created.
    pub async fn with(cfg: Config) -> Self {
        let mut pt = ProgramTest::default();
        if std::env::var_os("KESTREL_TEST_SBF").is_some() {
            // `anchor test` (scripts/anchor-test): load target/deploy/kestrel.so, built by
            // `anchor build`, instead of the native processor.
            pt.prefer_bpf(true);
            pt.add_program("kestrel", kestrel::ID, None);
        } else {
            #[allow(deprecated)]
            pt.add_program(
                "kestrel",
                kestrel::ID,
                solana_program_test::processor!(process_instruction),
            );
        }
        let ctx = pt.start_with_context().await;
        let mut t = TestExchange {
            ctx,
            admin: Keypair::new(),
            operator: Keypair::new(),
            fee_collector: Keypair::new(),
            mint_authority: Keypair::new(),
            exchange: exchange_address(cfg.domain_id),
            base_mint: Pubkey::default(),
            quote_mint: Pubkey::default(),
            base_vault: Pubkey::default(),
            quote_vault: Pubkey::default(),
            market: Pubkey::default(),
            users: Vec::new(),
            next_batch: 0,
            next_fill: 0,
            cfg: cfg.clone(),
        };
        for kp in [
            t.admin.pubkey(),
            t.operator.pubkey(),
            t.fee_collector.pubkey(),
        ] {
            t.airdrop(&kp, 10_000_000_000).await;
        }
        t.base_mint = t.create_mint(cfg.base_decimals).await;
        t.quote_mint = t.create_mint(cfg.quote_decimals).await;
        t.base_vault = vault_address(&t.exchange, &t.base_mint);
        t.quote_vault = vault_address(&t.exchange, &t.quote_mint);
        t.market = market_address(&t.exchange, 0);

        let init = t.ix_initialize_exchange();
        let admin = t.admin.insecure_clone();
        t.send(&[init], &[&admin]).await.expect("initialize");
        for mint in [t.base_mint, t.quote_mint] {
            let ix = t.ix_add_asset(&mint);
            t.send(&[ix], &[&admin]).await.expect("add asset");
        }
        let ix = t.ix_create_market(t.default_market_args(0));
        t.send(&[ix], &[&admin]).await.expect("create market");
        t
    }

    pub fn default_market_args(&self, index: u32) -> kestrel::instructions::CreateMarketArgs {
        kestrel::instructions::CreateMarketArgs {
            index,
            base_asset: BASE,
            quote_asset: QUOTE,
            base_lot_size: self.cfg.base_lot_size,
            tick_size: self.cfg.tick_size,
            min_size_lots: self.cfg.min_size_lots,
            maker_fee_bps: self.cfg.maker_fee_bps,
            taker_fee_bps: self.cfg.taker_fee_bps,
        }
    }

    /// Sends one transaction signed by the payer and `signers`.
    pub async fn send(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> Result<(), BanksClientError> {
        let blockhash = self
            .ctx
            .get_new_latest_blockhash()
            .await
            .expect("blockhash");
        let mut all: Vec<&Keypair> = vec![&self.ctx.payer];
        all.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(
            ixs,
            Some(&self.ctx.payer.pubkey()),
            &all,
            blockhash,
        );
        self.ctx.banks_client.process_transaction(tx).await
    }

    /// Sends with `fee_payer` paying (for tests where the fixture payer must not sign).
    pub async fn send_paid_by(
        &mut self,
        ixs: &[Instruction],
        fee_payer: &Keypair,
        signers: &[&Keypair],
    ) -> Result<(), BanksClientError> {
        let blockhash = self
            .ctx
            .get_new_latest_blockhash()
            .await
            .expect("blockhash");
        let mut all: Vec<&Keypair> = vec![fee_payer];
        all.extend_from_slice(signers);
        let tx =
            Transaction::new_signed_with_payer(ixs, Some(&fee_payer.pubkey()), &all, blockhash);
        self.ctx.banks_client.process_transaction(tx).await
    }

    pub async fn airdrop(&mut self, to: &Pubkey, lamports: u64) {
        let ix =
            solana_system_interface::instruction::transfer(&self.ctx.payer.pubkey(), to, lamports);
        self.send(&[ix], &[]).await.expect("airdrop");
    }

    pub async fn create_mint(&mut self, decimals: u8) -> Pubkey {
        let mint = Keypair::new();
        let rent = self.ctx.banks_client.get_rent().await.expect("rent");
        let space = spl_token_interface::state::Mint::LEN;
        let ixs = [
            solana_system_interface::instruction::create_account(
                &self.ctx.payer.pubkey(),
                &mint.pubkey(),
                rent.minimum_balance(space),
                space as u64,
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::initialize_mint2(
                &spl_token_interface::ID,
                &mint.pubkey(),
                &self.mint_authority.pubkey(),
                None,
                decimals,
            )
            .expect("init mint"),
        ];
        self.send(&ixs, &[&mint]).await.expect("create mint");
        mint.pubkey()
    }

    pub async fn create_token_account(&mut self, mint: &Pubkey, owner: &Pubkey) -> Pubkey {
        let account = Keypair::new();
        let rent = self.ctx.banks_client.get_rent().await.expect("rent");
        let space = spl_token_interface::state::Account::LEN;
        let ixs = [
            solana_system_interface::instruction::create_account(
                &self.ctx.payer.pubkey(),
                &account.pubkey(),
                rent.minimum_balance(space),
                space as u64,
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::initialize_account3(
                &spl_token_interface::ID,
                &account.pubkey(),
                mint,
                owner,
            )
            .expect("init account"),
        ];
        self.send(&ixs, &[&account])
            .await
            .expect("create token account");
        account.pubkey()
    }

    pub async fn mint_to(&mut self, mint: &Pubkey, to: &Pubkey, amount: u64) {
        let ix = spl_token_interface::instruction::mint_to(
            &spl_token_interface::ID,
            mint,
            to,
            &self.mint_authority.pubkey(),
            &[],
            amount,
        )
        .expect("mint_to");
        let authority = self.mint_authority.insecure_clone();
        self.send(&[ix], &[&authority]).await.expect("mint to");
    }

    /// A wallet with SOL, token accounts holding `base`/`quote` atoms, and a user account.
    /// Nothing is deposited yet.
    pub async fn wallet(&mut self, base: u64, quote: u64) -> TestUser {
        let wallet = Keypair::new();
        self.airdrop(&wallet.pubkey(), 1_000_000_000).await;
        let (base_mint, quote_mint) = (self.base_mint, self.quote_mint);
        let base_ata = self
            .create_token_account(&base_mint, &wallet.pubkey())
            .await;
        let quote_ata = self
            .create_token_account(&quote_mint, &wallet.pubkey())
            .await;
        if base > 0 {
            self.mint_to(&base_mint, &base_ata, base).await;
        }
        if quote > 0 {
            self.mint_to(&quote_mint, &quote_ata, quote).await;
        }
        let user = user_address(&self.exchange, &wallet.pubkey());
        let ix = self.ix_create_user(&wallet.pubkey());
        self.send(&[ix], &[&wallet]).await.expect("create user");
        self.users.push(user);
        TestUser {
            wallet,
            user,
            base_ata,
            quote_ata,
            next_nonce: 0,
        }
    }

    /// A wallet that has deposited `base` and `quote` atoms.
    pub async fn funded_user(&mut self, base: u64, quote: u64) -> TestUser {
        let u = self.wallet(base, quote).await;
        if base > 0 {
            let ix = self.ix_deposit(&u, BASE, base);
            self.send(&[ix], &[&u.wallet]).await.expect("deposit base");
        }
        if quote > 0 {
            let ix = self.ix_deposit(&u, QUOTE, quote);
            self.send(&[ix], &[&u.wallet]).await.expect("deposit quote");
        }
        u
    }

    /// An order of `user` on market 0 with a fresh nonce.
    pub fn order(
        &self,
        user: &mut TestUser,
        side: Side,
        price_ticks: u64,
        size_lots: u64,
    ) -> Order {
        Order {
            exchange: self.exchange,
            owner: user.key(),
            market_index: 0,
            side,
            order_type: OrderType::Limit,
            self_trade: SelfTrade::CancelTaker,
            price_ticks,
            size_lots,
            nonce: user.nonce(),
            expiry: 0,
            client_order_id: 0,
        }
    }

    /// Next batch id (strictly increasing).
    pub fn batch_id(&mut self) -> u64 {
        self.next_batch += 1;
        self.next_batch
    }

    /// Next fill id (strictly increasing).
    pub fn fill_id(&mut self) -> u64 {
        self.next_fill += 1;
        self.next_fill
    }

    pub async fn account(&mut self, address: &Pubkey) -> Option<Account> {
        self.ctx
            .banks_client
            .get_account(*address)
            .await
            .expect("get account")
    }

    pub async fn load<T: AccountDeserialize + Discriminator>(&mut self, address: &Pubkey) -> T {
        let account = self.account(address).await.expect("account exists");
        T::try_deserialize(&mut account.data.as_slice()).expect("deserialize")
    }

    pub async fn exchange_state(&mut self) -> Exchange {
        let address = self.exchange;
        self.load::<Exchange>(&address).await
    }

    pub async fn market_state(&mut self) -> Market {
        let address = self.market;
        self.load::<Market>(&address).await
    }

    pub async fn user_state(&mut self, user: &TestUser) -> UserAccount {
        self.load::<UserAccount>(&user.user).await
    }

    pub async fn order_record(&mut self, owner: &Pubkey, nonce: u64) -> Option<OrderRecord> {
        let address = order_address(&self.exchange, owner, nonce);
        let account = self.account(&address).await?;
        Some(OrderRecord::try_deserialize(&mut account.data.as_slice()).expect("order record"))
    }

    pub async fn token_balance(&mut self, token_account: &Pubkey) -> u64 {
        let account = self.account(token_account).await.expect("token account");
        spl_token_interface::state::Account::unpack(&account.data)
            .expect("unpack")
            .amount
    }

    /// DESIGN.md rule 3, per mint: vault balance == Σ user balances (available + pending
    /// withdrawal) + fees accrued. Also checks every user's counters explain its balance.
    pub async fn assert_conservation(&mut self) {
        let markets = self.exchange_state().await.num_markets;
        for (asset, vault) in [(BASE, self.base_vault), (QUOTE, self.quote_vault)] {
            let vault_balance = self.token_balance(&vault).await;
            let mut held: u128 = 0;
            for user in self.users.clone() {
                let state = self.load::<UserAccount>(&user).await;
                let b = state.balances[usize::from(asset)];
                held += u128::from(b.available) + u128::from(b.pending_withdrawal);
                let explained = i128::from(b.deposited) + i128::from(b.settled_in)
                    - i128::from(b.settled_out)
                    - i128::from(b.fees_paid)
                    - i128::from(b.withdrawn);
                assert_eq!(
                    explained,
                    i128::from(b.available) + i128::from(b.pending_withdrawal),
                    "user {user} asset {asset}: counters do not explain the balance"
                );
            }
            for index in 0..markets {
                let address = market_address(&self.exchange, index);
                let market = self.load::<Market>(&address).await;
                if market.quote_asset == asset {
                    held += u128::from(market.fees_accrued);
                }
            }
            assert_eq!(
                u128::from(vault_balance),
                held,
                "conservation broken for asset {asset}"
            );
        }
    }

    pub async fn set_clock(&mut self, unix_timestamp: i64) {
        let mut clock: Clock = self.ctx.banks_client.get_sysvar().await.expect("clock");
        clock.unix_timestamp = unix_timestamp;
        self.ctx.set_sysvar(&clock);
    }

    pub async fn now(&mut self) -> i64 {
        let clock: Clock = self.ctx.banks_client.get_sysvar().await.expect("clock");
        clock.unix_timestamp
    }

    pub async fn slot(&mut self) -> u64 {
        let clock: Clock = self.ctx.banks_client.get_sysvar().await.expect("clock");
        clock.slot
    }

    pub async fn warp_slots(&mut self, slots: u64) {
        let slot = self.slot().await;
        self.ctx.warp_to_slot(slot + slots).expect("warp");
    }
}

pub fn exchange_address(domain_id: u64) -> Pubkey {
    Pubkey::find_program_address(&[EXCHANGE_SEED, &domain_id.to_le_bytes()], &kestrel::ID).0
}

pub fn market_address(exchange: &Pubkey, index: u32) -> Pubkey {
    Pubkey::find_program_address(
        &[MARKET_SEED, exchange.as_ref(), &index.to_le_bytes()],
        &kestrel::ID,
    )
    .0
}

pub fn vault_address(exchange: &Pubkey, mint: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(
        &[VAULT_SEED, exchange.as_ref(), mint.as_ref()],
        &kestrel::ID,
    )
    .0
}

pub fn user_address(exchange: &Pubkey, owner: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(
        &[USER_SEED, exchange.as_ref(), owner.as_ref()],
        &kestrel::ID,
    )
    .0
}

pub fn order_address(exchange: &Pubkey, owner: &Pubkey, nonce: u64) -> Pubkey {
    Pubkey::find_program_address(
        &[
            ORDER_SEED,
            exchange.as_ref(),
            owner.as_ref(),
            &nonce.to_le_bytes(),
        ],
        &kestrel::ID,
    )
    .0
}

/// The transaction error of a failed instruction.
pub fn instruction_error(result: Result<(), BanksClientError>) -> (u8, InstructionError) {
    match result {
        Err(BanksClientError::TransactionError(TransactionError::InstructionError(i, e))) => (i, e),
        Err(BanksClientError::SimulationError {
            err: TransactionError::InstructionError(i, e),
            ..
        }) => (i, e),
        other => panic!("expected an instruction error, got {other:?}"),
    }
}

/// Asserts that the transaction failed with exactly this Kestrel error code.
#[track_caller]
pub fn assert_kestrel_error(result: Result<(), BanksClientError>, expected: KestrelError) {
    let code = u32::from(expected);
    match instruction_error(result) {
        (_, InstructionError::Custom(got)) => assert_eq!(
            got, code,
            "expected {expected:?} ({code}), got custom error {got}"
        ),
        (_, other) => panic!("expected {expected:?} ({code}), got {other:?}"),
    }
}

/// Asserts that the transaction failed with this Anchor framework error code.
#[track_caller]
pub fn assert_anchor_error(
    result: Result<(), BanksClientError>,
    expected: anchor_lang::error::ErrorCode,
) {
    let code = u32::from(expected);
    match instruction_error(result) {
        (_, InstructionError::Custom(got)) => assert_eq!(
            got, code,
            "expected anchor {expected:?} ({code}), got custom error {got}"
        ),
        (_, other) => panic!("expected anchor {expected:?} ({code}), got {other:?}"),
    }
}

/// `ix` with `key`'s signer flag cleared, for "missing signature" tests: the transaction is then
/// sent without that keypair.
pub fn without_signer(mut ix: Instruction, key: &Pubkey) -> Instruction {
    let mut found = false;
    for meta in ix.accounts.iter_mut().filter(|m| m.pubkey == *key) {
        meta.is_signer = false;
        found = true;
    }
    assert!(found, "{key} is not an account of the instruction");
    ix
}

/// `ix` with every occurrence of account `from` replaced by `to` (flags kept), for
/// substituted-account tests.
pub fn with_account(mut ix: Instruction, from: &Pubkey, to: &Pubkey) -> Instruction {
    let mut found = false;
    for meta in ix.accounts.iter_mut().filter(|m| m.pubkey == *from) {
        meta.pubkey = *to;
        found = true;
    }
    assert!(found, "{from} is not an account of the instruction");
    ix
}

/// Asserts that the transaction failed with exactly this instruction error (system program,
/// SPL Token and other non-Anchor errors).
#[track_caller]
pub fn assert_instruction_error(result: Result<(), BanksClientError>, expected: InstructionError) {
    let (_, got) = instruction_error(result);
    assert_eq!(got, expected);
}

impl TestExchange {
    /// A keypair with SOL and nothing else: an attacker, a would-be admin, a new operator.
    pub async fn funded_keypair(&mut self) -> Keypair {
        let keypair = Keypair::new();
        self.airdrop(&keypair.pubkey(), 1_000_000_000).await;
        keypair
    }

    /// A second deployment of the program in the same bank (same admin, operator and mints,
    /// its own vaults); returns its exchange address.
    pub async fn second_exchange(&mut self, domain_id: u64) -> Pubkey {
        let other = exchange_address(domain_id);
        let mut args = self.initialize_args();
        args.domain_id = domain_id;
        let init = self.ix_initialize_exchange_with(&self.admin.pubkey(), args);
        let admin = self.admin.insecure_clone();
        self.send(&[init], &[&admin]).await.expect("initialize");
        for mint in [self.base_mint, self.quote_mint] {
            let ix = self.ix_add_asset(&mint);
            let ix = with_account(
                ix,
                &vault_address(&self.exchange, &mint),
                &vault_address(&other, &mint),
            );
            let ix = with_account(ix, &self.exchange, &other);
            self.send(&[ix], &[&admin]).await.expect("add asset");
        }
        other
    }
}

impl TestExchange {
    /// Both vaults' token balances and every user's balance slots (all counters): equal before
    /// and after a rejected instruction means it moved nothing.
    pub async fn holdings(&mut self) -> Vec<u64> {
        let (base_vault, quote_vault) = (self.base_vault, self.quote_vault);
        let mut out = vec![
            self.token_balance(&base_vault).await,
            self.token_balance(&quote_vault).await,
        ];
        for user in self.users.clone() {
            let state = self.load::<UserAccount>(&user).await;
            out.push(state.nonce_floor);
            for b in &state.balances[..2] {
                out.extend([
                    b.available,
                    b.pending_withdrawal,
                    b.withdrawal_ready_slot,
                    b.deposited,
                    b.withdrawn,
                    b.settled_in,
                    b.settled_out,
                    b.fees_paid,
                ]);
            }
        }
        out
    }
}
