use super::create_zero_copy;
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
    /// The new exchange; created by the handler even if pre-funded (see `instructions::pda`).
    /// CHECK: canonical PDA, still the system program's; the handler creates the `Exchange`.
    #[account(
        mut,
        seeds = [EXCHANGE_SEED, &args.domain_id.to_le_bytes()],
        bump,
        constraint = exchange.owner == &System::id() @ KestrelError::AlreadyInitialized
    )]
    pub exchange: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

pub fn initialize_exchange<'info>(
    ctx: Context<'info, InitializeExchange<'info>>,
    args: InitializeExchangeArgs,
) -> Result<()> {
    require!(
        args.withdrawal_delay_slots > 0,
        KestrelError::InvalidWithdrawalDelay
    );
    let accounts: &'info InitializeExchange<'info> = ctx.accounts;
    let bump = ctx.bumps.exchange;
    let domain = args.domain_id.to_le_bytes();
    let loader = create_zero_copy::<Exchange>(
        &accounts.admin,
        accounts.exchange.as_ref(),
        &accounts.system_program,
        &[EXCHANGE_SEED, &domain, &[bump]],
    )?;
    let mut exchange = loader.load_mut()?;
    exchange.admin = accounts.admin.key();
    exchange.operator = args.operator;
    exchange.fee_collector = args.fee_collector;
    exchange.domain_id = args.domain_id;
    exchange.withdrawal_delay_slots = args.withdrawal_delay_slots;
    exchange.fee_change_delay_slots = args.fee_change_delay_slots;
    exchange.bump = bump;
    Ok(())
}
