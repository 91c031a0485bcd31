//! The wallet's own chain transactions through `RpcClient` against the embedded chain (the
//! real kestrel program and SPL Token in a bank behind Agave's JSON-RPC): open the account,
//! deposit, withdraw with the operator's co-signature, the exit without the operator, and the
//! on-chain cancel floor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use anchor_lang::AccountDeserialize;
use kestrel::instructions::CreateMarketArgs;
use kestrel::state::UserAccount;
use kestrel_relayer::embedded::{Config, EmbeddedChain};
use kestrel_sdk::chain::{self, ChainError};
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::time::Duration;

const WITHDRAWAL_DELAY_SLOTS: u64 = 4;

async fn funded(rpc: &RpcClient) -> Keypair {
    let wallet = Keypair::new();
    let signature = rpc
        .request_airdrop(&wallet.pubkey(), 10 * LAMPORTS_PER_SOL)
        .await
        .unwrap();
    for _ in 0..500 {
        if rpc.confirm_transaction(&signature).await.unwrap() {
            return wallet;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the airdrop never landed");
}

async fn token_balance(rpc: &RpcClient, account: &Pubkey) -> u64 {
    let balance = rpc.get_token_account_balance(account).await.unwrap();
    balance.amount.parse().unwrap()
}

async fn user(rpc: &RpcClient, d: &Deployment, owner: &Pubkey) -> UserAccount {
    let account = rpc.get_account(&d.user_address(owner)).await.unwrap();
    UserAccount::try_deserialize(&mut account.data.as_slice()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_deposits_withdraws_exits_alone_and_raises_its_cancel_floor() {
    let embedded = EmbeddedChain::start(Config {
        slot_interval: Duration::from_millis(50),
        ..Config::default()
    })
    .await
    .unwrap();
    let rpc = RpcClient::new(embedded.rpc_url());

    // A deployment with one base/quote market.
    let (admin, operator, wallet) = (funded(&rpc).await, funded(&rpc).await, funded(&rpc).await);
    let (base, quote) = (Keypair::new(), Keypair::new());
    chain::create_mint(&rpc, &admin, &base, 6).await.unwrap();
    chain::create_mint(&rpc, &admin, &quote, 6).await.unwrap();
    let d = Deployment::new(11, vec![base.pubkey(), quote.pubkey()]);
    let setup = [
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
                base_lot_size: 1_000,
                tick_size: 10,
                min_size_lots: 1,
                maker_fee_bps: 2,
                taker_fee_bps: 5,
            },
        ),
    ];
    chain::send(&rpc, &setup, &admin, &[]).await.unwrap();

    // Open the account and deposit 600 of the 1,000 base atoms held.
    let source = chain::funded_token_account(&rpc, &base.pubkey(), &wallet, &admin, 1_000)
        .await
        .unwrap();
    chain::create_user(&rpc, &d, &wallet).await.unwrap();
    chain::deposit(&rpc, &d, &wallet, 0, &source, 600)
        .await
        .unwrap();
    let vault = d.vault_address(&base.pubkey());
    assert_eq!(token_balance(&rpc, &vault).await, 600);
    assert_eq!(token_balance(&rpc, &source).await, 400);
    assert_eq!(
        user(&rpc, &d, &wallet.pubkey()).await.balances[0].available,
        600
    );
    // An asset the deployment does not have is refused before anything is sent.
    assert!(matches!(
        chain::deposit(&rpc, &d, &wallet, 9, &source, 1).await,
        Err(ChainError::Instruction(kestrel_sdk::Error::UnknownAsset(9)))
    ));

    // Immediate withdrawal: refused when the co-signer is not the operator, paid when it is.
    let impostor = funded(&rpc).await;
    assert!(matches!(
        chain::withdraw(&rpc, &d, &wallet, &impostor, 0, &source, 100).await,
        Err(ChainError::Rpc(_))
    ));
    chain::withdraw(&rpc, &d, &wallet, &operator, 0, &source, 100)
        .await
        .unwrap();
    assert_eq!(token_balance(&rpc, &source).await, 500);
    assert_eq!(token_balance(&rpc, &vault).await, 500);

    // The exit without the operator: request, refused before the delay, paid after it.
    chain::request_withdrawal(&rpc, &d, &wallet, 0, 200)
        .await
        .unwrap();
    let ready = user(&rpc, &d, &wallet.pubkey()).await.balances[0].withdrawal_ready_slot;
    assert!(matches!(
        chain::execute_withdrawal(&rpc, &d, &wallet, 0, &source).await,
        Err(ChainError::Rpc(_))
    ));
    for _ in 0..1_000 {
        if rpc.get_slot().await.unwrap() > ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    chain::execute_withdrawal(&rpc, &d, &wallet, 0, &source)
        .await
        .unwrap();
    assert_eq!(token_balance(&rpc, &source).await, 700);
    assert_eq!(token_balance(&rpc, &vault).await, 300);
    let account = user(&rpc, &d, &wallet.pubkey()).await;
    assert_eq!(
        (
            account.balances[0].available,
            account.balances[0].pending_withdrawal
        ),
        (300, 0)
    );

    // The on-chain cancel floor only rises.
    chain::cancel_up_to(&rpc, &d, &wallet, 50).await.unwrap();
    assert_eq!(user(&rpc, &d, &wallet.pubkey()).await.nonce_floor, 50);
    assert!(matches!(
        chain::cancel_up_to(&rpc, &d, &wallet, 40).await,
        Err(ChainError::Rpc(_))
    ));
    embedded.shutdown().await.unwrap();
}
