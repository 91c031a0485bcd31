//! A deployment's addresses and the program's user-facing instructions.

use crate::Error;
use anchor_lang::{InstructionData, ToAccountMetas};
use kestrel::constants::{EXCHANGE_SEED, MARKET_SEED, ORDER_SEED, USER_SEED, VAULT_SEED};
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;

/// One exchange deployment: the program, its exchange account and its asset table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The exchange account (PDA of the domain id).
    pub exchange: Pubkey,
    /// Deployment id.
    pub domain_id: u64,
    /// Mints by asset index, as registered on-chain.
    pub mints: Vec<Pubkey>,
}

fn pda(seeds: &[&[u8]]) -> Pubkey {
    Pubkey::find_program_address(seeds, &kestrel::ID).0
}

fn build(accounts: impl ToAccountMetas, data: impl InstructionData) -> Instruction {
    Instruction {
        program_id: kestrel::ID,
        accounts: accounts.to_account_metas(None),
        data: data.data(),
    }
}

impl Deployment {
    /// The deployment of `domain_id` with these mints (asset index = position).
    pub fn new(domain_id: u64, mints: Vec<Pubkey>) -> Self {
        Deployment {
            exchange: Self::exchange_address(domain_id),
            domain_id,
            mints,
        }
    }

    /// The exchange account of `domain_id`.
    pub fn exchange_address(domain_id: u64) -> Pubkey {
        pda(&[EXCHANGE_SEED, &domain_id.to_le_bytes()])
    }

    /// The market account of `index`.
    pub fn market_address(&self, index: u32) -> Pubkey {
        pda(&[MARKET_SEED, self.exchange.as_ref(), &index.to_le_bytes()])
    }

    /// The vault holding every deposit of `mint`.
    pub fn vault_address(&self, mint: &Pubkey) -> Pubkey {
        pda(&[VAULT_SEED, self.exchange.as_ref(), mint.as_ref()])
    }

    /// The user account of `owner`.
    pub fn user_address(&self, owner: &Pubkey) -> Pubkey {
        pda(&[USER_SEED, self.exchange.as_ref(), owner.as_ref()])
    }

    /// The on-chain record of `owner`'s order `nonce`.
    pub fn order_address(&self, owner: &Pubkey, nonce: u64) -> Pubkey {
        pda(&[
            ORDER_SEED,
            self.exchange.as_ref(),
            owner.as_ref(),
            &nonce.to_le_bytes(),
        ])
    }

    /// The mint of asset `asset`.
    pub fn mint(&self, asset: u8) -> Result<Pubkey, Error> {
        self.mints
            .get(usize::from(asset))
            .copied()
            .ok_or(Error::UnknownAsset(asset))
    }

    /// Opens `owner`'s user account (the owner signs and pays rent).
    pub fn create_user(&self, owner: &Pubkey) -> Instruction {
        build(
            kestrel::accounts::CreateUser {
                owner: *owner,
                exchange: self.exchange,
                user: self.user_address(owner),
                system_program: solana_sdk_ids::system_program::ID,
            },
            kestrel::instruction::CreateUser {},
        )
    }

    /// Deposits `amount` atoms of asset `asset` from the owner's token account `source`.
    pub fn deposit(
        &self,
        owner: &Pubkey,
        asset: u8,
        source: &Pubkey,
        amount: u64,
    ) -> Result<Instruction, Error> {
        let mint = self.mint(asset)?;
        Ok(build(
            kestrel::accounts::Deposit {
                owner: *owner,
                exchange: self.exchange,
                user: self.user_address(owner),
                vault: self.vault_address(&mint),
                source: *source,
                token_program: spl_token_interface::ID,
            },
            kestrel::instruction::Deposit { asset, amount },
        ))
    }

    /// Immediate withdrawal; the transaction needs the owner's and the operator's signatures.
    pub fn withdraw(
        &self,
        owner: &Pubkey,
        operator: &Pubkey,
        asset: u8,
        destination: &Pubkey,
        amount: u64,
    ) -> Result<Instruction, Error> {
        let mint = self.mint(asset)?;
        Ok(build(
            kestrel::accounts::Withdraw {
                owner: *owner,
                operator: *operator,
                exchange: self.exchange,
                user: self.user_address(owner),
                vault: self.vault_address(&mint),
                destination: *destination,
                token_program: spl_token_interface::ID,
            },
            kestrel::instruction::Withdraw { asset, amount },
        ))
    }

    /// First step of the exit without the operator.
    pub fn request_withdrawal(&self, owner: &Pubkey, asset: u8, amount: u64) -> Instruction {
        build(
            kestrel::accounts::RequestWithdrawal {
                owner: *owner,
                exchange: self.exchange,
                user: self.user_address(owner),
            },
            kestrel::instruction::RequestWithdrawal { asset, amount },
        )
    }

    /// Second step of the exit without the operator, after the delay.
    pub fn execute_withdrawal(
        &self,
        owner: &Pubkey,
        asset: u8,
        destination: &Pubkey,
    ) -> Result<Instruction, Error> {
        let mint = self.mint(asset)?;
        Ok(build(
            kestrel::accounts::ExecuteWithdrawal {
                owner: *owner,
                exchange: self.exchange,
                user: self.user_address(owner),
                vault: self.vault_address(&mint),
                destination: *destination,
                token_program: spl_token_interface::ID,
            },
            kestrel::instruction::ExecuteWithdrawal { asset },
        ))
    }

    /// Kills, on-chain, every order of `owner` with a nonce below `nonce_floor`.
    pub fn cancel_up_to(&self, owner: &Pubkey, nonce_floor: u64) -> Instruction {
        build(
            kestrel::accounts::CancelUpTo {
                owner: *owner,
                exchange: self.exchange,
                user: self.user_address(owner),
            },
            kestrel::instruction::CancelUpTo { nonce_floor },
        )
    }
}
