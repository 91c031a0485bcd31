use super::create_zero_copy;
use crate::constants::{MARKET_SEED, MAX_FEE_BPS};
use crate::error::KestrelError;
use crate::math::SafeMath;
use crate::state::{Exchange, Market};
use anchor_lang::prelude::*;

/// Parameters of a new market.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct CreateMarketArgs {
    /// Must equal the exchange's `num_markets`.
    pub index: u32,
    /// Asset index of the base mint.
    pub base_asset: u8,
    /// Asset index of the quote mint.
    pub quote_asset: u8,
    /// Base atoms per base lot.
    pub base_lot_size: u64,
    /// Quote atoms per price tick per base lot.
    pub tick_size: u64,
    /// Smallest order size in base lots.
    pub min_size_lots: u64,
    /// Maker fee in basis points (≤ `MAX_FEE_BPS`).
    pub maker_fee_bps: u16,
    /// Taker fee in basis points (≤ `MAX_FEE_BPS`).
    pub taker_fee_bps: u16,
}

#[derive(Accounts)]
#[instruction(args: CreateMarketArgs)]
pub struct CreateMarket<'info> {
    #[account(mut)]
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ KestrelError::Unauthorized)]
    pub exchange: AccountLoader<'info, Exchange>,
    /// The new market; created by the handler even if pre-funded (see `instructions::pda`).
    /// CHECK: canonical PDA, still the system program's; the handler creates the `Market`.
    #[account(
        mut,
        seeds = [MARKET_SEED, exchange.key().as_ref(), &args.index.to_le_bytes()],
        bump,
        constraint = market.owner == &System::id() @ KestrelError::AlreadyInitialized
    )]
    pub market: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

pub fn create_market<'info>(
    ctx: Context<'info, CreateMarket<'info>>,
    args: CreateMarketArgs,
) -> Result<()> {
    let accounts: &'info CreateMarket<'info> = ctx.accounts;
    let mut exchange = accounts.exchange.load_mut()?;
    require!(
        args.index == exchange.num_markets,
        KestrelError::MarketIndexMismatch
    );
    exchange.asset_at(args.base_asset)?;
    exchange.asset_at(args.quote_asset)?;
    require!(
        args.base_asset != args.quote_asset,
        KestrelError::MarketSameAsset
    );
    require!(
        args.base_lot_size > 0 && args.tick_size > 0 && args.min_size_lots > 0,
        KestrelError::InvalidMarketParams
    );
    require!(
        args.maker_fee_bps <= MAX_FEE_BPS && args.taker_fee_bps <= MAX_FEE_BPS,
        KestrelError::FeeAboveCap
    );
    exchange.num_markets = exchange.num_markets.safe_add(1)?;
    drop(exchange);

    let exchange_key = accounts.exchange.key();
    let bump = ctx.bumps.market;
    let index = args.index.to_le_bytes();
    let loader = create_zero_copy::<Market>(
        &accounts.admin,
        accounts.market.as_ref(),
        &accounts.system_program,
        &[MARKET_SEED, exchange_key.as_ref(), &index, &[bump]],
    )?;
    let mut market = loader.load_mut()?;
    market.exchange = exchange_key;
    market.index = args.index;
    market.base_asset = args.base_asset;
    market.quote_asset = args.quote_asset;
    market.bump = bump;
    market.base_lot_size = args.base_lot_size;
    market.tick_size = args.tick_size;
    market.min_size_lots = args.min_size_lots;
    market.maker_fee_bps = args.maker_fee_bps;
    market.taker_fee_bps = args.taker_fee_bps;
    Ok(())
}
