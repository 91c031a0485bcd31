//! `kestrel admin ...`: the admin's instructions (sdk/src/admin.rs) against a real cluster,
//! each sent as one transaction signed by the admin key, reporting the signature and the
//! accounts it created or changed.

use kestrel::instructions::CreateMarketArgs;
use kestrel_sdk::{chain, Deployment};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use std::fmt;

/// One admin operation.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AdminCommand {
    /// Creates the exchange account of the domain id (the admin key becomes its admin).
    InitExchange {
        /// Operator key (settles, co-signs withdrawals); the admin key if omitted.
        #[arg(long)]
        operator: Option<Pubkey>,
        /// Owner of the fee token accounts; the admin key if omitted.
        #[arg(long)]
        fee_collector: Option<Pubkey>,
        /// Slots a user's own withdrawal waits before it may execute.
        #[arg(long, default_value_t = 150)]
        withdrawal_delay_slots: u64,
        /// Slots between announcing fees and their taking effect.
        #[arg(long, default_value_t = 216_000)]
        fee_change_delay_slots: u64,
    },
    /// Registers a mint as the next asset index and creates its vault.
    AddAsset {
        /// SPL Token mint.
        #[arg(long)]
        mint: Pubkey,
    },
    /// Creates the next market.
    CreateMarket {
        /// Market index (must be the exchange's current market count).
        #[arg(long)]
        index: u32,
        /// Asset index of the base mint.
        #[arg(long)]
        base_asset: u8,
        /// Asset index of the quote mint.
        #[arg(long)]
        quote_asset: u8,
        /// Base atoms per lot.
        #[arg(long)]
        base_lot_size: u64,
        /// Quote atoms per tick per lot.
        #[arg(long)]
        tick_size: u64,
        /// Smallest order in lots.
        #[arg(long, default_value_t = 1)]
        min_size_lots: u64,
        /// Maker fee, basis points.
        #[arg(long, default_value_t = 0)]
        maker_fee_bps: u16,
        /// Taker fee, basis points.
        #[arg(long, default_value_t = 0)]
        taker_fee_bps: u16,
    },
    /// Replaces the operator key.
    SetOperator {
        /// The new operator.
        #[arg(long)]
        operator: Pubkey,
    },
    /// Pauses or resumes settlement and deposits (never the users' own withdrawals).
    SetPause {
        /// Pause settlement.
        #[arg(long, action = clap::ArgAction::Set, default_value_t = false)]
        settlement: bool,
        /// Pause deposits.
        #[arg(long, action = clap::ArgAction::Set, default_value_t = false)]
        deposits: bool,
    },
    /// Announces a market's new fees, effective after the fee-change delay.
    SetFees {
        /// Market index.
        #[arg(long)]
        market: u32,
        /// Maker fee, basis points.
        #[arg(long)]
        maker_fee_bps: u16,
        /// Taker fee, basis points.
        #[arg(long)]
        taker_fee_bps: u16,
    },
}

/// An admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The SDK refused to build the instruction.
    #[error("sdk: {0}")]
    Sdk(#[from] kestrel_sdk::Error),
    /// The transaction failed.
    #[error(transparent)]
    Chain(#[from] chain::ChainError),
}

/// What an admin operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminOutcome {
    /// The transaction's signature.
    pub signature: Signature,
    /// The accounts created or changed, by name.
    pub accounts: Vec<(&'static str, Pubkey)>,
}

impl fmt::Display for AdminOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "signature {}", self.signature)?;
        for (name, address) in &self.accounts {
            writeln!(f, "{name:<9} {address}")?;
        }
        Ok(())
    }
}

/// Builds `command` for deployment `domain_id`, sends it signed by `admin` and waits for it.
pub async fn run(
    rpc: &RpcClient,
    admin: &Keypair,
    domain_id: u64,
    command: &AdminCommand,
) -> Result<AdminOutcome, AdminError> {
    let key = admin.pubkey();
    let d = Deployment::new(domain_id, Vec::new());
    let exchange = ("exchange", d.exchange);
    let (instruction, accounts): (Instruction, Vec<(&'static str, Pubkey)>) = match command {
        AdminCommand::InitExchange {
            operator,
            fee_collector,
            withdrawal_delay_slots,
            fee_change_delay_slots,
        } => (
            d.initialize_exchange(
                &key,
                &operator.unwrap_or(key),
                &fee_collector.unwrap_or(key),
                *withdrawal_delay_slots,
                *fee_change_delay_slots,
            ),
            vec![exchange],
        ),
        AdminCommand::AddAsset { mint } => {
            let d = Deployment::new(domain_id, vec![*mint]);
            (
                d.add_asset(&key, 0)?,
                vec![exchange, ("vault", d.vault_address(mint))],
            )
        }
        AdminCommand::CreateMarket {
            index,
            base_asset,
            quote_asset,
            base_lot_size,
            tick_size,
            min_size_lots,
            maker_fee_bps,
            taker_fee_bps,
        } => (
            d.create_market(
                &key,
                CreateMarketArgs {
                    index: *index,
                    base_asset: *base_asset,
                    quote_asset: *quote_asset,
                    base_lot_size: *base_lot_size,
                    tick_size: *tick_size,
                    min_size_lots: *min_size_lots,
                    maker_fee_bps: *maker_fee_bps,
                    taker_fee_bps: *taker_fee_bps,
                },
            ),
            vec![exchange, ("market", d.market_address(*index))],
        ),
        AdminCommand::SetOperator { operator } => (d.set_operator(&key, operator), vec![exchange]),
        AdminCommand::SetPause {
            settlement,
            deposits,
        } => (d.set_pause(&key, *settlement, *deposits), vec![exchange]),
        AdminCommand::SetFees {
            market,
            maker_fee_bps,
            taker_fee_bps,
        } => (
            d.set_fees(&key, *market, *maker_fee_bps, *taker_fee_bps),
            vec![exchange, ("market", d.market_address(*market))],
        ),
    };
    let signature = chain::send(rpc, &[instruction], admin, &[]).await?;
    Ok(AdminOutcome {
        signature,
        accounts,
    })
}
