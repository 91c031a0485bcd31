//! Creating the program's accounts cannot be blocked. Anyone may send lamports to a PDA address
//! before the account exists, which makes a plain `create_account` (and Anchor 1.2.2's `init`)
//! fail; so every creating instruction tops such an address up to rent exemption and allocates
//! and assigns it in place. An address that already holds an account is still refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod program_test;

use anchor_lang::{InstructionData, ToAccountMetas};
use kestrel::constants::{EXCHANGE_SEED, MARKET_SEED, USER_SEED, VAULT_SEED};
use kestrel::error::KestrelError;
use kestrel::state::{Exchange, Market, UserAccount};
use program_test::*;
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use spl_token_interface::state::{Account as TokenAccount, AccountState};

fn admin(t: &TestExchange) -> Keypair {
    t.admin.insecure_clone()
}

/// The canonical bump of a kestrel PDA.
fn bump_of(seeds: &[&[u8]]) -> u8 {
    Pubkey::find_program_address(seeds, &kestrel::ID).1
}

async fn lamports(t: &mut TestExchange, address: &Pubkey) -> u64 {
    t.account(address).await.map_or(0, |a| a.lamports)
}

async fn rent(t: &mut TestExchange, space: usize) -> u64 {
    let rent = t.ctx.banks_client.get_rent().await.expect("rent");
    rent.minimum_balance(space)
}

/// A stranger sends the least a system transfer to a new address allows (the rent of an empty
/// account): less than any of the program's accounts needs, so the payer makes up the rest.
async fn prefund_dust(t: &mut TestExchange, address: &Pubkey) {
    let dust = rent(t, 0).await;
    prefund(t, address, dust).await;
}

/// A stranger sends `amount` lamports to `address` with a plain system transfer.
async fn prefund(t: &mut TestExchange, address: &Pubkey, amount: u64) {
    let stranger = t.funded_keypair().await;
    let ix = solana_system_interface::instruction::transfer(&stranger.pubkey(), address, amount);
    t.send(&[ix], &[&stranger]).await.expect("pre-fund");
    let account = t.account(address).await.expect("pre-funded address");
    assert_eq!(account.owner, solana_system_interface::program::ID);
    assert_eq!((account.lamports, account.data.len()), (amount, 0));
}

/// One lamport sent to an account that already exists.
async fn prefund_existing(t: &mut TestExchange, address: &Pubkey) {
    let stranger = t.funded_keypair().await;
    let ix = solana_system_interface::instruction::transfer(&stranger.pubkey(), address, 1);
    t.send(&[ix], &[&stranger]).await.expect("top up");
}

/// Sends `ix` signed by `payer` and asserts the account at `address` was created with
/// `owner` and `space`, holding `max(rent, prefunded)` lamports, of which `payer` paid only
/// the shortfall.
async fn assert_creates(
    t: &mut TestExchange,
    ix: Instruction,
    payer: &Keypair,
    address: &Pubkey,
    owner: &Pubkey,
    space: usize,
) {
    let prefunded = lamports(t, address).await;
    let payer_before = lamports(t, &payer.pubkey()).await;
    t.send(&[ix], &[payer]).await.expect("create");
    let rent = rent(t, space).await;
    let account = t.account(address).await.expect("created");
    assert_eq!(account.owner, *owner);
    assert_eq!(account.data.len(), space);
    assert_eq!(account.lamports, rent.max(prefunded));
    assert_eq!(
        payer_before - lamports(t, &payer.pubkey()).await,
        rent.saturating_sub(prefunded),
        "the payer pays exactly the rent the stranger did not"
    );
}

/// A deposit of `amount` atoms of `asset` from `source` into `vault`, built from its parts.
fn deposit_ix(
    t: &TestExchange,
    owner: &Pubkey,
    source: &Pubkey,
    vault: &Pubkey,
    asset: u8,
    amount: u64,
) -> Instruction {
    Instruction {
        program_id: kestrel::ID,
        accounts: kestrel::accounts::Deposit {
            owner: *owner,
            exchange: t.exchange,
            user: user_address(&t.exchange, owner),
            vault: *vault,
            source: *source,
            token_program: spl_token_interface::ID,
        }
        .to_account_metas(None),
        data: kestrel::instruction::Deposit { asset, amount }.data(),
    }
}

#[tokio::test]
async fn an_exchange_address_funded_by_a_stranger_can_still_be_initialized() {
    let mut t = TestExchange::new().await;
    let address = exchange_address(2);
    prefund_dust(&mut t, &address).await;

    let mut args = t.initialize_args();
    args.domain_id = 2;
    let ix = t.ix_initialize_exchange_with(&t.admin.pubkey(), args);
    let space = Exchange::SPACE;
    let payer = admin(&t);
    assert_creates(&mut t, ix, &payer, &address, &kestrel::ID, space).await;

    let e = t.load::<Exchange>(&address).await;
    assert_eq!(
        (e.admin, e.operator),
        (t.admin.pubkey(), t.operator.pubkey())
    );
    assert_eq!(e.fee_collector, t.fee_collector.pubkey());
    assert_eq!(e.domain_id, 2);
    assert_eq!(e.withdrawal_delay_slots, t.cfg.withdrawal_delay_slots);
    assert_eq!(e.fee_change_delay_slots, t.cfg.fee_change_delay_slots);
    assert_eq!(e.bump, bump_of(&[EXCHANGE_SEED, &2u64.to_le_bytes()]));
    assert_eq!((e.num_assets, e.num_markets), (0, 0));
    assert_eq!((e.settlement_paused, e.deposits_paused), (0, 0));
    t.assert_conservation().await;
}

#[tokio::test]
async fn a_vault_address_funded_by_a_stranger_can_still_be_added_and_holds_deposits() {
    let mut t = TestExchange::new().await;
    let mint = t.create_mint(3).await;
    let vault = vault_address(&t.exchange, &mint);
    prefund_dust(&mut t, &vault).await;

    let ix = t.ix_add_asset(&mint);
    let (space, token) = (TokenAccount::LEN, spl_token_interface::ID);
    let payer = admin(&t);
    assert_creates(&mut t, ix, &payer, &vault, &token, space).await;

    let e = t.exchange_state().await;
    assert_eq!(e.num_assets, 3);
    let asset = e.assets[2];
    assert_eq!((asset.mint, asset.vault, asset.decimals), (mint, vault, 3));
    let exchange = t.exchange;
    let seeds: [&[u8]; 3] = [VAULT_SEED, exchange.as_ref(), mint.as_ref()];
    assert_eq!(asset.vault_bump, bump_of(&seeds));
    let account = TokenAccount::unpack(&t.account(&vault).await.unwrap().data).unwrap();
    assert_eq!((account.mint, account.owner), (mint, t.exchange));
    assert_eq!(
        (account.amount, account.state),
        (0, AccountState::Initialized)
    );
    assert!(account.delegate.is_none() && account.close_authority.is_none());

    // The vault takes deposits of the new asset like any other.
    let user = t.wallet(0, 0).await;
    let source = t.create_token_account(&mint, &user.key()).await;
    t.mint_to(&mint, &source, 5_000).await;
    let ix = deposit_ix(&t, &user.key(), &source, &vault, 2, 5_000);
    t.send(&[ix], &[&user.wallet]).await.expect("deposit");
    assert_eq!(t.token_balance(&vault).await, 5_000);
    assert_eq!(t.user_state(&user).await.balances[2].available, 5_000);
    t.assert_conservation().await;
}

#[tokio::test]
async fn the_next_market_address_funded_by_a_stranger_can_still_be_created() {
    let mut t = TestExchange::new().await;
    let address = market_address(&t.exchange, 1);
    prefund_dust(&mut t, &address).await;

    let ix = t.ix_create_market(t.default_market_args(1));
    let space = Market::SPACE;
    let payer = admin(&t);
    assert_creates(&mut t, ix, &payer, &address, &kestrel::ID, space).await;

    assert_eq!(t.exchange_state().await.num_markets, 2);
    let m = t.load::<Market>(&address).await;
    let exchange = t.exchange;
    assert_eq!((m.exchange, m.index), (exchange, 1));
    assert_eq!((m.base_asset, m.quote_asset), (BASE, QUOTE));
    let c = &t.cfg;
    assert_eq!(
        (m.base_lot_size, m.tick_size, m.min_size_lots),
        (c.base_lot_size, c.tick_size, c.min_size_lots)
    );
    assert_eq!(
        (m.maker_fee_bps, m.taker_fee_bps),
        (c.maker_fee_bps, c.taker_fee_bps)
    );
    assert_eq!((m.last_fill_id, m.last_batch_id, m.fees_accrued), (0, 0, 0));
    let seeds: [&[u8]; 3] = [MARKET_SEED, exchange.as_ref(), &1u32.to_le_bytes()];
    assert_eq!(m.bump, bump_of(&seeds));

    // The index sequence goes on past the pre-funded market.
    let ix = t.ix_create_market(t.default_market_args(2));
    t.send(&[ix], &[&admin(&t)]).await.expect("market 2");
    assert_eq!(t.exchange_state().await.num_markets, 3);
    t.assert_conservation().await;
}

#[tokio::test]
async fn a_user_address_funded_by_a_stranger_can_still_be_opened_and_deposit() {
    let mut t = TestExchange::new().await;
    let victim = t.funded_keypair().await;
    let address = user_address(&t.exchange, &victim.pubkey());
    prefund_dust(&mut t, &address).await;

    let ix = t.ix_create_user(&victim.pubkey());
    let space = UserAccount::SPACE;
    assert_creates(&mut t, ix, &victim, &address, &kestrel::ID, space).await;
    t.users.push(address);

    let u = t.load::<UserAccount>(&address).await;
    let exchange = t.exchange;
    assert_eq!(
        (u.owner, u.exchange, u.nonce_floor),
        (victim.pubkey(), exchange, 0)
    );
    let owner = victim.pubkey();
    let seeds: [&[u8]; 3] = [USER_SEED, exchange.as_ref(), owner.as_ref()];
    assert_eq!(u.bump, bump_of(&seeds));
    assert!(u
        .balances
        .iter()
        .all(|b| b.available == 0 && b.deposited == 0));

    let (mint, vault) = (t.base_mint, t.base_vault);
    let source = t.create_token_account(&mint, &victim.pubkey()).await;
    t.mint_to(&mint, &source, 7_000).await;
    let ix = deposit_ix(&t, &victim.pubkey(), &source, &vault, BASE, 7_000);
    t.send(&[ix], &[&victim]).await.expect("deposit");
    let u = t.load::<UserAccount>(&address).await;
    assert_eq!(u.balances[usize::from(BASE)].available, 7_000);
    t.assert_conservation().await;
}

#[tokio::test]
async fn an_address_funded_beyond_its_rent_keeps_the_lamports_and_costs_the_payer_nothing() {
    let mut t = TestExchange::new().await;
    let address = market_address(&t.exchange, 1);
    let rent = rent(&mut t, Market::SPACE).await;
    prefund(&mut t, &address, rent + 1_000).await;

    let ix = t.ix_create_market(t.default_market_args(1));
    let space = Market::SPACE;
    let payer = admin(&t);
    assert_creates(&mut t, ix, &payer, &address, &kestrel::ID, space).await;
    assert_eq!(lamports(&mut t, &address).await, rent + 1_000);
    assert_eq!(t.load::<Market>(&address).await.index, 1);
    t.assert_conservation().await;
}

#[tokio::test]
async fn an_existing_market_cannot_be_created_again_even_when_topped_up() {
    let mut t = TestExchange::new().await;
    let market = t.market;
    prefund_existing(&mut t, &market).await;
    let before = t.account(&market).await.unwrap();

    let mut args = t.default_market_args(0);
    args.maker_fee_bps = 0;
    let ix = t.ix_create_market(args);
    let result = t.send(&[ix], &[&admin(&t)]).await;
    assert_kestrel_error(result, KestrelError::AlreadyInitialized);
    assert_eq!(t.account(&market).await.unwrap(), before);
    assert_eq!(t.exchange_state().await.num_markets, 1);
    t.assert_conservation().await;
}

#[tokio::test]
async fn an_existing_user_account_cannot_be_opened_again() {
    let mut t = TestExchange::new().await;
    let user = t.funded_user(3_000, 4_000).await;
    let before = t.account(&user.user).await.unwrap();

    let ix = t.ix_create_user(&user.key());
    let result = t.send(&[ix], &[&user.wallet]).await;
    assert_kestrel_error(result, KestrelError::AlreadyInitialized);
    assert_eq!(t.account(&user.user).await.unwrap(), before);
    t.assert_conservation().await;
}
