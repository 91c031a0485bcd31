//! The admin's instructions (add assets and markets, rotate the operator, announce fees, pause)
//! and the permissionless fee crank. None of them can move user funds.

use crate::{Deployment, Error};
use anchor_lang::{InstructionData, ToAccountMetas};
use kestrel::instructions::{CreateMarketArgs, InitializeExchangeArgs};
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;

fn build(accounts: impl ToAccountMetas, data: impl InstructionData) -> Instruction {
    Instruction {
        program_id: kestrel::ID,
        accounts: accounts.to_account_metas(None),
        data: data.data(),
    }
}

impl Deployment {
    /// Creates the exchange account of this deployment; `admin` signs and pays.
    pub fn initialize_exchange(
        &self,
        admin: &Pubkey,
        operator: &Pubkey,
        fee_collector: &Pubkey,
        withdrawal_delay_slots: u64,
        fee_change_delay_slots: u64,
    ) -> Instruction {
        build(
            kestrel::accounts::InitializeExchange {
                admin: *admin,
                exchange: self.exchange,
                system_program: solana_sdk_ids::system_program::ID,
            },
            kestrel::instruction::InitializeExchange {
                args: InitializeExchangeArgs {
                    domain_id: self.domain_id,
                    operator: *operator,
                    fee_collector: *fee_collector,
                    withdrawal_delay_slots,
                    fee_change_delay_slots,
                },
            },
        )
    }

    /// Registers asset `asset` (its mint from the deployment's table) and creates its vault.
    pub fn add_asset(&self, admin: &Pubkey, asset: u8) -> Result<Instruction, Error> {
        let mint = self.mint(asset)?;
        Ok(build(
            kestrel::accounts::AddAsset {
                admin: *admin,
                exchange: self.exchange,
                mint,
                vault: self.vault_address(&mint),
                token_program: spl_token_interface::ID,
                system_program: solana_sdk_ids::system_program::ID,
            },
            kestrel::instruction::AddAsset {},
        ))
    }

    /// Creates market `args.index`.
    pub fn create_market(&self, admin: &Pubkey, args: CreateMarketArgs) -> Instruction {
        build(
            kestrel::accounts::CreateMarket {
                admin: *admin,
                exchange: self.exchange,
                market: self.market_address(args.index),
                system_program: solana_sdk_ids::system_program::ID,
            },
            kestrel::instruction::CreateMarket { args },
        )
    }

    /// Replaces the operator key.
    pub fn set_operator(&self, admin: &Pubkey, new_operator: &Pubkey) -> Instruction {
        build(
            kestrel::accounts::AdminOnly {
                admin: *admin,
                exchange: self.exchange,
            },
            kestrel::instruction::SetOperator {
                new_operator: *new_operator,
            },
        )
    }

    /// Pauses or resumes settlement and deposits.
    pub fn set_pause(&self, admin: &Pubkey, settlement: bool, deposits: bool) -> Instruction {
        build(
            kestrel::accounts::AdminOnly {
                admin: *admin,
                exchange: self.exchange,
            },
            kestrel::instruction::SetPause {
                settlement,
                deposits,
            },
        )
    }

    /// Announces new fees for a market, effective after the fee-change delay.
    pub fn set_fees(
        &self,
        admin: &Pubkey,
        market_index: u32,
        maker_fee_bps: u16,
        taker_fee_bps: u16,
    ) -> Instruction {
        build(
            kestrel::accounts::AdminMarket {
                admin: *admin,
                exchange: self.exchange,
                market: self.market_address(market_index),
            },
            kestrel::instruction::SetFees {
                maker_fee_bps,
                taker_fee_bps,
            },
        )
    }

    /// Pays a market's accrued fees to `destination` (a token account of the fee collector).
    pub fn collect_fees(
        &self,
        market_index: u32,
        quote_asset: u8,
        destination: &Pubkey,
    ) -> Result<Instruction, Error> {
        let mint = self.mint(quote_asset)?;
        Ok(build(
            kestrel::accounts::CollectFees {
                exchange: self.exchange,
                market: self.market_address(market_index),
                vault: self.vault_address(&mint),
                destination: *destination,
                token_program: spl_token_interface::ID,
            },
            kestrel::instruction::CollectFees {},
        ))
    }
}
