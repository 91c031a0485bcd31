//! Kestrel: an exchange whose funds sit in program-owned vaults and move only by their owners'
//! signed intent. The operator matches off-chain and settles here in batches; this program
//! re-checks every signature, limit, expiry, cancel and size, and keeps per-mint conservation.
//! Every user can leave without the operator (`request_withdrawal` → `execute_withdrawal`).

// Anchor's macros expand to code these lints flag; the handlers themselves use checked math.
#![allow(clippy::arithmetic_side_effects)]

pub mod constants;
pub mod ed25519;
pub mod encoding;
pub mod error;
pub mod events;
pub mod instructions;
pub mod math;
pub mod state;

use anchor_lang::prelude::*;
use instructions::*;

declare_id!("5Cm4aSL4BdVPKthmBkA6hKpfaZJt3fDdXLC7Kj4MjUrR");

#[program]
pub mod kestrel {
    use super::*;

    /// Creates a deployment: admin (the signer), operator, fee collector and delays.
    pub fn initialize_exchange<'info>(
        ctx: Context<'info, InitializeExchange<'info>>,
        args: InitializeExchangeArgs,
    ) -> Result<()> {
        instructions::initialize_exchange(ctx, args)
    }

    /// Registers a mint and creates its program-owned vault (admin).
    pub fn add_asset(ctx: Context<AddAsset>) -> Result<()> {
        instructions::add_asset(ctx)
    }

    /// Creates a market between two registered assets (admin).
    pub fn create_market<'info>(
        ctx: Context<'info, CreateMarket<'info>>,
        args: CreateMarketArgs,
    ) -> Result<()> {
        instructions::create_market(ctx, args)
    }

    /// Opens the signer's user account on this exchange.
    pub fn create_user<'info>(ctx: Context<'info, CreateUser<'info>>) -> Result<()> {
        instructions::create_user(ctx)
    }

    /// Deposits SPL tokens; credits what the vault actually received.
    pub fn deposit(ctx: Context<Deposit>, asset: u8, amount: u64) -> Result<()> {
        instructions::deposit(ctx, asset, amount)
    }

    /// Immediate withdrawal, co-signed by the operator.
    pub fn withdraw(ctx: Context<Withdraw>, asset: u8, amount: u64) -> Result<()> {
        instructions::withdraw(ctx, asset, amount)
    }

    /// Starts the operator-free exit: sets funds aside for `withdrawal_delay_slots`.
    pub fn request_withdrawal(
        ctx: Context<RequestWithdrawal>,
        asset: u8,
        amount: u64,
    ) -> Result<()> {
        instructions::request_withdrawal(ctx, asset, amount)
    }

    /// Completes the operator-free exit after the delay.
    pub fn execute_withdrawal(ctx: Context<ExecuteWithdrawal>, asset: u8) -> Result<()> {
        instructions::execute_withdrawal(ctx, asset)
    }

    /// Raises the owner's nonce floor: every order below it is dead on-chain.
    pub fn cancel_up_to(ctx: Context<CancelUpTo>, nonce_floor: u64) -> Result<()> {
        instructions::cancel_up_to(ctx, nonce_floor)
    }

    /// Settles a batch of matched fills (operator only).
    pub fn settle<'info>(ctx: Context<'info, Settle<'info>>, args: SettleArgs) -> Result<()> {
        instructions::settle(ctx, args)
    }

    /// Rotates the operator key (admin).
    pub fn set_operator(ctx: Context<AdminOnly>, new_operator: Pubkey) -> Result<()> {
        instructions::set_operator(ctx, new_operator)
    }

    /// Pauses or resumes settlement and deposits (admin). Never blocks the exit hatch.
    pub fn set_pause(ctx: Context<AdminOnly>, settlement: bool, deposits: bool) -> Result<()> {
        instructions::set_pause(ctx, settlement, deposits)
    }

    /// Announces new market fees, capped and effective after the fee-change delay (admin).
    pub fn set_fees(
        ctx: Context<AdminMarket>,
        maker_fee_bps: u16,
        taker_fee_bps: u16,
    ) -> Result<()> {
        instructions::set_fees(ctx, maker_fee_bps, taker_fee_bps)
    }

    /// Pays a market's accrued fees to the fee collector (anyone may crank).
    pub fn collect_fees(ctx: Context<CollectFees>) -> Result<()> {
        instructions::collect_fees(ctx)
    }
}
