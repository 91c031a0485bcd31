use crate::constants::EXCHANGE_SEED;
use crate::error::KestrelError;
use crate::state::Exchange;
use anchor_lang::prelude::*;

/// Parameters of a new deployment.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct InitializeExchangeArgs {
    /// Deployment id (PDA seed); lets one program host several exchanges.
    pub domain_id: u64,
    /// Key that settles batches and co-signs immediate withdrawals.
    pub operator: Pubkey,
    /// Owner of the token accounts collected fees are paid to.
    pub fee_collector: Pubkey,
    /// Slots a user waits between requesting and executing an operator-free withdrawal.
    pub withdrawal_delay_slots: u64,
    /// Slots between announcing a fee change and its taking effect.
    pub fee_change_delay_slots: u64,
}

#[derive(Accounts)]
#[instruction(args: InitializeExchangeArgs)]
pub struct InitializeExchange<'info> {
    #[account(mut)]
    pub admin: Signer<'info>,
    #[account(
        init,
        payer = admin,
        space = Exchange::SPACE,
        seeds = [EXCHANGE_SEED, &args.domain_id.to_le_bytes()],
        bump
    )]
    pub exchange: AccountLoader<'info, Exchange>,
    pub system_program: Program<'info, System>,
}

pub fn initialize_exchange(
    ctx: Context<InitializeExchange>,
    args: InitializeExchangeArgs,
) -> Result<()> {
    require!(
        args.withdrawal_delay_slots > 0,
        KestrelError::InvalidWithdrawalDelay
    );
    let mut exchange = ctx.accounts.exchange.load_init()?;
    exchange.admin = ctx.accounts.admin.key();
    exchange.operator = args.operator;
    exchange.fee_collector = args.fee_collector;
    exchange.domain_id = args.domain_id;
    exchange.withdrawal_delay_slots = args.withdrawal_delay_slots;
    exchange.fee_change_delay_slots = args.fee_change_delay_slots;
    exchange.bump = ctx.bumps.exchange;
    Ok(())
}
