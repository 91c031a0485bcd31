//! What every end-to-end test here shares, whichever composition it starts (the devnet in
//! process, or the router and relayer as child processes): polling, and reading the chain.
//! Test support: a failed RPC read is a failed test, so the readers panic with what failed.
#![allow(clippy::expect_used)]

use anchor_lang::AccountDeserialize;
use kestrel::state::UserAccount;
use kestrel_sdk::Deployment;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use std::future::Future;
use std::time::Duration;

/// Polls `check` every `every` until it yields a value; panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// The program's user account of `owner` in deployment `d`.
pub async fn user_account(rpc: &RpcClient, d: &Deployment, owner: &Pubkey) -> UserAccount {
    let account = rpc
        .get_account(&d.user_address(owner))
        .await
        .expect("reading the user account");
    UserAccount::try_deserialize(&mut account.data.as_slice()).expect("a user account")
}

/// The token amount (atoms) held by the token account `account`.
pub async fn token_balance(rpc: &RpcClient, account: &Pubkey) -> u64 {
    rpc.get_token_account_balance(account)
        .await
        .expect("reading the token account")
        .amount
        .parse()
        .expect("an integer amount")
}
