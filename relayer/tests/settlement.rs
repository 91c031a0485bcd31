//! Settlement end to end on the embedded chain, through solana-client's `RpcClient` only:
//! a deployment built with the SDK, deposits, signed orders, the batcher's transactions
//! submitted by the operator, and the on-chain balances checked against the fills.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

use anchor_lang::AccountDeserialize;
use kestrel::instructions::CreateMarketArgs;
use kestrel::state::{Market, UserAccount};
use kestrel_relayer::batcher::{Limits, Packer, PendingFill};
use kestrel_relayer::embedded::{Config, EmbeddedChain};
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::settle::PACKET_DATA_SIZE;
use kestrel_sdk::{Deployment, OrderBuilder};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::instruction::Instruction;
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;
use std::collections::HashSet;
use std::time::Duration;

const LOT: u64 = 1_000;
const TICK: u64 = 10;

struct Chain {
    _chain: EmbeddedChain,
    rpc: RpcClient,
}

impl Chain {
    async fn start() -> Chain {
        let chain = EmbeddedChain::start(Config {
            slot_interval: Duration::from_millis(50),
            ..Config::default()
        })
        .await
        .unwrap();
        let rpc = RpcClient::new(chain.rpc_url());
        Chain { _chain: chain, rpc }
    }

    async fn funded(&self) -> Keypair {
        let wallet = Keypair::new();
        let signature = self
            .rpc
            .request_airdrop(&wallet.pubkey(), 10 * LAMPORTS_PER_SOL)
            .await
            .unwrap();
        for _ in 0..200 {
            if self.rpc.confirm_transaction(&signature).await.unwrap() {
                return wallet;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("airdrop never confirmed");
    }

    async fn send(&self, ixs: &[Instruction], payer: &Keypair, signers: &[&Keypair]) {
        let blockhash = self.rpc.get_latest_blockhash().await.unwrap();
        let mut all = vec![payer];
        all.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &all, blockhash);
        self.rpc.send_and_confirm_transaction(&tx).await.unwrap();
    }

    async fn create_mint(&self, authority: &Keypair) -> Pubkey {
        let mint = Keypair::new();
        let space = spl_token_interface::state::Mint::LEN;
        let rent = self
            .rpc
            .get_minimum_balance_for_rent_exemption(space)
            .await
            .unwrap();
        let ixs = [
            solana_system_interface::instruction::create_account(
                &authority.pubkey(),
                &mint.pubkey(),
                rent,
                space as u64,
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::initialize_mint2(
                &spl_token_interface::ID,
                &mint.pubkey(),
                &authority.pubkey(),
                None,
                6,
            )
            .unwrap(),
        ];
        self.send(&ixs, authority, &[&mint]).await;
        mint.pubkey()
    }

    /// A token account of `owner` holding `amount` of `mint`.
    async fn token_account(
        &self,
        mint: &Pubkey,
        owner: &Keypair,
        authority: &Keypair,
        amount: u64,
    ) -> Pubkey {
        let account = Keypair::new();
        let space = spl_token_interface::state::Account::LEN;
        let rent = self
            .rpc
            .get_minimum_balance_for_rent_exemption(space)
            .await
            .unwrap();
        let ixs = [
            solana_system_interface::instruction::create_account(
                &owner.pubkey(),
                &account.pubkey(),
                rent,
                space as u64,
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::initialize_account3(
                &spl_token_interface::ID,
                &account.pubkey(),
                mint,
                &owner.pubkey(),
            )
            .unwrap(),
            spl_token_interface::instruction::mint_to(
                &spl_token_interface::ID,
                mint,
                &account.pubkey(),
                &authority.pubkey(),
                &[],
                amount,
            )
            .unwrap(),
        ];
        self.send(&ixs, owner, &[&account, authority]).await;
        account.pubkey()
    }

    async fn load<T: AccountDeserialize>(&self, address: &Pubkey) -> T {
        let account = self.rpc.get_account(address).await.unwrap();
        T::try_deserialize(&mut account.data.as_slice()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_fills_settle_on_the_embedded_chain_within_every_transaction_limit() {
    let c = Chain::start().await;
    let admin = c.funded().await;
    let operator = c.funded().await;
    let base = c.create_mint(&admin).await;
    let quote = c.create_mint(&admin).await;
    let d = Deployment::new(7, vec![base, quote]);
    let mut setup =
        vec![d.initialize_exchange(&admin.pubkey(), &operator.pubkey(), &admin.pubkey(), 10, 10)];
    setup.push(d.add_asset(&admin.pubkey(), 0).unwrap());
    setup.push(d.add_asset(&admin.pubkey(), 1).unwrap());
    setup.push(d.create_market(
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
    ));
    c.send(&setup, &admin, &[]).await;

    // Six makers each sell 5 lots at 100; one taker buys them all, in two orders.
    let taker = c.funded().await;
    let taker_quote = c.token_account(&quote, &taker, &admin, 10_000_000).await;
    c.send(
        &[
            d.create_user(&taker.pubkey()),
            d.deposit(&taker.pubkey(), 1, &taker_quote, 10_000_000)
                .unwrap(),
        ],
        &taker,
        &[],
    )
    .await;
    let mut makers = Vec::new();
    for _ in 0..6 {
        let maker = c.funded().await;
        let source = c.token_account(&base, &maker, &admin, 5 * LOT).await;
        c.send(
            &[
                d.create_user(&maker.pubkey()),
                d.deposit(&maker.pubkey(), 0, &source, 5 * LOT).unwrap(),
            ],
            &maker,
            &[],
        )
        .await;
        makers.push(maker);
    }
    let bids: Vec<SignedOrder> = (0..2)
        .map(|i| {
            OrderBuilder::limit(0)
                .buy()
                .price(101)
                .size(15)
                .sign(d.exchange, &taker, 100 + i)
                .unwrap()
        })
        .collect();
    let fills: Vec<PendingFill> = makers
        .iter()
        .enumerate()
        .map(|(i, maker)| PendingFill {
            market: 0,
            fill_id: i as u64 + 1,
            maker: OrderBuilder::limit(0)
                .sell()
                .price(100)
                .size(5)
                .sign(d.exchange, maker, 1)
                .unwrap(),
            taker: bids[i / 3],
            price_ticks: 100,
            size_lots: 5,
        })
        .collect();

    let packer = Packer {
        deployment: &d,
        operator: operator.pubkey(),
        limits: Limits::default(),
    };
    let mut next_batch = 1;
    let packed = packer
        .pack(&fills, &HashSet::new(), &mut next_batch)
        .unwrap();
    assert!(
        packed.len() > 1,
        "six fills of new orders need several transactions"
    );
    assert_eq!(packed.iter().map(|p| p.batch.fills.len()).sum::<usize>(), 6);
    for p in &packed {
        assert!(p.bytes <= PACKET_DATA_SIZE && p.accounts <= 64);
        let blockhash = c.rpc.get_latest_blockhash().await.unwrap();
        let tx = Transaction::new_signed_with_payer(
            &p.instructions,
            Some(&operator.pubkey()),
            &[&operator],
            blockhash,
        );
        assert_eq!(bincode::serialize(&tx).unwrap().len(), p.bytes);
        c.rpc.send_and_confirm_transaction(&tx).await.unwrap();
    }

    let market: Market = c.load(&d.market_address(0)).await;
    assert_eq!(
        (market.last_fill_id, market.last_batch_id),
        (6, next_batch - 1)
    );
    // 30 lots × 1,000 atoms of base to the taker; 6 × (100 × 10 × 5) = 30,000 quote to makers.
    let t: UserAccount = c.load(&d.user_address(&taker.pubkey())).await;
    assert_eq!(t.balances[0].available, 30 * LOT);
    let notional_each = 100 * TICK * 5;
    let taker_fee_each = (notional_each * 5).div_ceil(10_000);
    assert_eq!(
        t.balances[1].available,
        10_000_000 - 6 * (notional_each + taker_fee_each)
    );
    let maker_fee_each = (notional_each * 2).div_ceil(10_000);
    for maker in &makers {
        let m: UserAccount = c.load(&d.user_address(&maker.pubkey())).await;
        assert_eq!(
            (m.balances[0].available, m.balances[1].available),
            (0, notional_each - maker_fee_each)
        );
    }
    assert_eq!(market.fees_accrued, 6 * (maker_fee_each + taker_fee_each));
    // Conservation: the quote vault holds exactly the users' balances plus fees.
    let vault = c
        .rpc
        .get_token_account_balance(&d.vault_address(&quote))
        .await
        .unwrap();
    let held = t.balances[1].available + 6 * (notional_each - maker_fee_each) + market.fees_accrued;
    assert_eq!(vault.amount.parse::<u64>().unwrap(), held);

    // Repacking the same fills now that every order is recorded: fewer, smaller transactions,
    // and the chain refuses them as replays.
    let recorded: HashSet<(Pubkey, u64)> = fills
        .iter()
        .flat_map(|f| {
            [
                (f.maker.order.owner, f.maker.order.nonce),
                (f.taker.order.owner, f.taker.order.nonce),
            ]
        })
        .collect();
    let mut replay_batch = 1;
    let again = packer.pack(&fills, &recorded, &mut replay_batch).unwrap();
    assert!(again.len() < packed.len());
    assert!(
        again.iter().all(|p| p.instructions.len() == 1),
        "no signature for recorded orders"
    );
    let blockhash = c.rpc.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        &again[0].instructions,
        Some(&operator.pubkey()),
        &[&operator],
        blockhash,
    );
    assert!(
        c.rpc.send_and_confirm_transaction(&tx).await.is_err(),
        "a replayed batch is refused"
    );
}
