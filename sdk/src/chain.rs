//! Chain helpers through solana-client's nonblocking `RpcClient`: send a transaction and wait
//! for it, create an SPL mint, open a funded token account. Used to stand up deployments and
//! demo wallets (the devnet, tests) and by clients that deposit and withdraw.

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
