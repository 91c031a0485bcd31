//! Chain helpers through solana-client's nonblocking `RpcClient`: send a transaction and wait
//! for it, create an SPL mint, open a funded token account, and a wallet's own transactions
//! with the exchange (open the user account, deposit, withdraw with the operator's
//! co-signature, the two steps of the exit without the operator, and the on-chain cancel
//! floor). Used to stand up deployments and demo wallets (the devnet, tests) and by clients
//! that deposit and withdraw.

use crate::Deployment;
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::Transaction;

/// A chain helper failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC node refused or failed.
    #[error("rpc: {0}")]
    Rpc(#[from] Box<ClientError>),
    /// An SPL Token instruction could not be built.
    #[error("token instruction: {0}")]
    Token(String),
    /// A Kestrel instruction could not be built (e.g. an asset the deployment does not have).
    #[error("instruction: {0}")]
    Instruction(#[from] crate::Error),
}

impl From<ClientError> for ChainError {
    fn from(err: ClientError) -> Self {
        ChainError::Rpc(Box::new(err))
    }
}

fn token(err: impl std::fmt::Display) -> ChainError {
    ChainError::Token(err.to_string())
}

/// Sends `instructions` paid by `payer` (also signed by `signers`) and waits until the
/// transaction is confirmed at the client's commitment.
pub async fn send(
    rpc: &RpcClient,
    instructions: &[Instruction],
    payer: &Keypair,
    signers: &[&Keypair],
) -> Result<Signature, ChainError> {
    let blockhash = rpc.get_latest_blockhash().await?;
    let mut all = vec![payer];
    all.extend_from_slice(signers);
    let tx =
        Transaction::new_signed_with_payer(instructions, Some(&payer.pubkey()), &all, blockhash);
    Ok(rpc.send_and_confirm_transaction(&tx).await?)
}

/// Creates the SPL mint `mint` with `authority` as mint authority (and payer).
pub async fn create_mint(
    rpc: &RpcClient,
    authority: &Keypair,
    mint: &Keypair,
    decimals: u8,
) -> Result<(), ChainError> {
    let space = spl_token_interface::state::Mint::LEN;
    let rent = rpc.get_minimum_balance_for_rent_exemption(space).await?;
    let instructions = [
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
            decimals,
        )
        .map_err(token)?,
    ];
    send(rpc, &instructions, authority, &[mint]).await?;
    Ok(())
}

/// Opens a token account of `owner` (who pays) for `mint` and mints `amount` into it, signed by
/// the mint's `authority`; returns the account.
pub async fn funded_token_account(
    rpc: &RpcClient,
    mint: &Pubkey,
    owner: &Keypair,
    authority: &Keypair,
    amount: u64,
) -> Result<Pubkey, ChainError> {
    let account = Keypair::new();
    let space = spl_token_interface::state::Account::LEN;
    let rent = rpc.get_minimum_balance_for_rent_exemption(space).await?;
    let instructions = [
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
        .map_err(token)?,
        spl_token_interface::instruction::mint_to(
            &spl_token_interface::ID,
            mint,
            &account.pubkey(),
            &authority.pubkey(),
            &[],
            amount,
        )
        .map_err(token)?,
    ];
    send(rpc, &instructions, owner, &[&account, authority]).await?;
    Ok(account.pubkey())
}

/// Opens `owner`'s user account on the exchange (`owner` signs and pays rent).
pub async fn create_user(
    rpc: &RpcClient,
    deployment: &Deployment,
    owner: &Keypair,
) -> Result<Signature, ChainError> {
    send(rpc, &[deployment.create_user(&owner.pubkey())], owner, &[]).await
}

/// Deposits `amount` atoms of asset `asset` from `owner`'s token account `source` into the
/// exchange (the user account must exist; see [`create_user`]).
pub async fn deposit(
    rpc: &RpcClient,
    deployment: &Deployment,
    owner: &Keypair,
    asset: u8,
    source: &Pubkey,
    amount: u64,
) -> Result<Signature, ChainError> {
    let ix = deployment.deposit(&owner.pubkey(), asset, source, amount)?;
    send(rpc, &[ix], owner, &[]).await
}

/// Withdraws `amount` atoms of asset `asset` at once to the token account `destination`: the
/// owner pays and signs, the exchange's operator co-signs.
pub async fn withdraw(
    rpc: &RpcClient,
    deployment: &Deployment,
    owner: &Keypair,
    operator: &Keypair,
    asset: u8,
    destination: &Pubkey,
    amount: u64,
) -> Result<Signature, ChainError> {
    let ix = deployment.withdraw(
        &owner.pubkey(),
        &operator.pubkey(),
        asset,
        destination,
        amount,
    )?;
    send(rpc, &[ix], owner, &[operator]).await
}

/// First step of the exit without the operator: sets `amount` atoms of asset `asset` aside;
/// [`execute_withdrawal`] pays them out once the exchange's delay has passed.
pub async fn request_withdrawal(
    rpc: &RpcClient,
    deployment: &Deployment,
    owner: &Keypair,
    asset: u8,
    amount: u64,
) -> Result<Signature, ChainError> {
    let ix = deployment.request_withdrawal(&owner.pubkey(), asset, amount);
    send(rpc, &[ix], owner, &[]).await
}

/// Second step of the exit without the operator: pays the requested amount of asset `asset`
/// to `destination`. Refused by the program until the delay has passed.
pub async fn execute_withdrawal(
    rpc: &RpcClient,
    deployment: &Deployment,
    owner: &Keypair,
    asset: u8,
    destination: &Pubkey,
) -> Result<Signature, ChainError> {
    let ix = deployment.execute_withdrawal(&owner.pubkey(), asset, destination)?;
    send(rpc, &[ix], owner, &[]).await
}

/// Kills, on-chain, every order of `owner` with a nonce below `nonce_floor`: no settlement
/// can fill them any more, whatever the operator does.
pub async fn cancel_up_to(
    rpc: &RpcClient,
    deployment: &Deployment,
    owner: &Keypair,
    nonce_floor: u64,
) -> Result<Signature, ChainError> {
    let ix = deployment.cancel_up_to(&owner.pubkey(), nonce_floor);
    send(rpc, &[ix], owner, &[]).await
}
