//! One builder per instruction, from Anchor's generated account and data structs.

use super::*;
use anchor_lang::{InstructionData, ToAccountMetas};
use kestrel::instructions::{CreateMarketArgs, InitializeExchangeArgs, SettleArgs};
use solana_sdk::instruction::AccountMeta;

fn ix(accounts: impl ToAccountMetas, data: impl InstructionData) -> Instruction {
    Instruction {
        program_id: kestrel::ID,
        accounts: accounts.to_account_metas(None),
        data: data.data(),
    }
}

impl TestExchange {
    pub fn ix_initialize_exchange(&self) -> Instruction {
        ix(
            kestrel::accounts::InitializeExchange {
                admin: self.admin.pubkey(),
                exchange: self.exchange,
                system_program: solana_system_interface::program::ID,
            },
            kestrel::instruction::InitializeExchange {
                args: InitializeExchangeArgs {
                    domain_id: self.cfg.domain_id,
                    operator: self.operator.pubkey(),
                    fee_collector: self.fee_collector.pubkey(),
                    withdrawal_delay_slots: self.cfg.withdrawal_delay_slots,
                    fee_change_delay_slots: self.cfg.fee_change_delay_slots,
                },
            },
        )
    }

    pub fn ix_add_asset(&self, mint: &Pubkey) -> Instruction {
        ix(
            kestrel::accounts::AddAsset {
                admin: self.admin.pubkey(),
                exchange: self.exchange,
                mint: *mint,
                vault: vault_address(&self.exchange, mint),
                token_program: spl_token_interface::ID,
                system_program: solana_system_interface::program::ID,
            },
            kestrel::instruction::AddAsset {},
        )
    }

    pub fn ix_create_market(&self, args: CreateMarketArgs) -> Instruction {
        ix(
            kestrel::accounts::CreateMarket {
                admin: self.admin.pubkey(),
                exchange: self.exchange,
                market: market_address(&self.exchange, args.index),
                system_program: solana_system_interface::program::ID,
            },
            kestrel::instruction::CreateMarket { args },
        )
    }

    pub fn ix_create_user(&self, owner: &Pubkey) -> Instruction {
        ix(
            kestrel::accounts::CreateUser {
                owner: *owner,
                exchange: self.exchange,
                user: user_address(&self.exchange, owner),
                system_program: solana_system_interface::program::ID,
            },
            kestrel::instruction::CreateUser {},
        )
    }

    pub fn vault_of(&self, asset: u8) -> Pubkey {
        if asset == BASE {
            self.base_vault
        } else {
            self.quote_vault
        }
    }

    pub fn ata_of(user: &TestUser, asset: u8) -> Pubkey {
        if asset == BASE {
            user.base_ata
        } else {
            user.quote_ata
        }
    }

    pub fn ix_deposit(&self, user: &TestUser, asset: u8, amount: u64) -> Instruction {
        ix(
            kestrel::accounts::Deposit {
                owner: user.key(),
                exchange: self.exchange,
                user: user.user,
                vault: self.vault_of(asset),
                source: Self::ata_of(user, asset),
                token_program: spl_token_interface::ID,
            },
            kestrel::instruction::Deposit { asset, amount },
        )
    }

    pub fn ix_withdraw(&self, user: &TestUser, asset: u8, amount: u64) -> Instruction {
        ix(
            kestrel::accounts::Withdraw {
                owner: user.key(),
                operator: self.operator.pubkey(),
                exchange: self.exchange,
                user: user.user,
                vault: self.vault_of(asset),
                destination: Self::ata_of(user, asset),
                token_program: spl_token_interface::ID,
            },
            kestrel::instruction::Withdraw { asset, amount },
        )
    }

    pub fn ix_request_withdrawal(&self, user: &TestUser, asset: u8, amount: u64) -> Instruction {
        ix(
            kestrel::accounts::RequestWithdrawal {
                owner: user.key(),
                exchange: self.exchange,
                user: user.user,
            },
            kestrel::instruction::RequestWithdrawal { asset, amount },
        )
    }

    pub fn ix_execute_withdrawal(&self, user: &TestUser, asset: u8) -> Instruction {
        ix(
            kestrel::accounts::ExecuteWithdrawal {
                owner: user.key(),
                exchange: self.exchange,
                user: user.user,
                vault: self.vault_of(asset),
                destination: Self::ata_of(user, asset),
                token_program: spl_token_interface::ID,
            },
            kestrel::instruction::ExecuteWithdrawal { asset },
        )
    }

    pub fn ix_cancel_up_to(&self, user: &TestUser, nonce_floor: u64) -> Instruction {
        ix(
            kestrel::accounts::CancelUpTo {
                owner: user.key(),
                exchange: self.exchange,
                user: user.user,
            },
            kestrel::instruction::CancelUpTo { nonce_floor },
        )
    }

    pub fn ix_set_operator(&self, new_operator: &Pubkey) -> Instruction {
        ix(
            kestrel::accounts::AdminOnly {
                admin: self.admin.pubkey(),
                exchange: self.exchange,
            },
            kestrel::instruction::SetOperator {
                new_operator: *new_operator,
            },
        )
    }

    pub fn ix_set_pause(&self, settlement: bool, deposits: bool) -> Instruction {
        ix(
            kestrel::accounts::AdminOnly {
                admin: self.admin.pubkey(),
                exchange: self.exchange,
            },
            kestrel::instruction::SetPause {
                settlement,
                deposits,
            },
        )
    }

    pub fn ix_set_fees(&self, maker_fee_bps: u16, taker_fee_bps: u16) -> Instruction {
        ix(
            kestrel::accounts::AdminMarket {
                admin: self.admin.pubkey(),
                exchange: self.exchange,
                market: self.market,
            },
            kestrel::instruction::SetFees {
                maker_fee_bps,
                taker_fee_bps,
            },
        )
    }

    pub fn ix_collect_fees(&self, destination: &Pubkey) -> Instruction {
        ix(
            kestrel::accounts::CollectFees {
                exchange: self.exchange,
                market: self.market,
                vault: self.quote_vault,
                destination: *destination,
                token_program: spl_token_interface::ID,
            },
            kestrel::instruction::CollectFees {},
        )
    }

    /// A settle instruction for `batch` (no Ed25519 instruction; see [`Batch::instructions`]).
    pub fn ix_settle(&self, args: SettleArgs, remaining: Vec<AccountMeta>) -> Instruction {
        let mut settle = ix(
            kestrel::accounts::Settle {
                operator: self.operator.pubkey(),
                exchange: self.exchange,
                market: self.market,
                instructions: solana_sdk_ids::sysvar::instructions::ID,
                system_program: solana_system_interface::program::ID,
            },
            kestrel::instruction::Settle { args },
        );
        settle.accounts.extend(remaining);
        settle
    }
}

impl TestExchange {
    /// The fixture's `initialize_exchange` arguments.
    pub fn initialize_args(&self) -> InitializeExchangeArgs {
        InitializeExchangeArgs {
            domain_id: self.cfg.domain_id,
            operator: self.operator.pubkey(),
            fee_collector: self.fee_collector.pubkey(),
            withdrawal_delay_slots: self.cfg.withdrawal_delay_slots,
            fee_change_delay_slots: self.cfg.fee_change_delay_slots,
        }
    }

    /// `initialize_exchange` signed by `admin` with any arguments (the exchange PDA follows
    /// `args.domain_id`).
    pub fn ix_initialize_exchange_with(
        &self,
        admin: &Pubkey,
        args: InitializeExchangeArgs,
    ) -> Instruction {
        ix(
            kestrel::accounts::InitializeExchange {
                admin: *admin,
                exchange: exchange_address(args.domain_id),
                system_program: solana_system_interface::program::ID,
            },
            kestrel::instruction::InitializeExchange { args },
        )
    }
}
