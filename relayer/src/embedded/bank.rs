//! The in-process bank: solana-program-test's bank behind its BanksClient, with what a
//! validator's RPC node keeps beside it (the transaction index, balances before and after).

use super::index::{Index, TxRecord};
use super::processor::program_test;
use super::{Config, Error};
use solana_account_decoder::parse_account_data::SplTokenAdditionalDataV2;
use solana_account_decoder::parse_token::{is_known_spl_token_id, token_amount_to_ui_amount_v3};
use solana_address_lookup_table_interface::state::AddressLookupTable;
use solana_program_test::{BanksClient, ProgramTestContext};
use solana_sdk::account::Account;
use solana_sdk::clock::{Clock, Slot};
use solana_sdk::hash::Hash;
use solana_sdk::message::v0::LoadedAddresses;
use solana_sdk::message::{Message, VersionedMessage};
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError, VersionedTransaction};
use solana_transaction_status::{
    map_inner_instructions, TransactionStatusMeta, TransactionTokenBalance, UiInnerInstructions,
    UiTransactionReturnData,
};
use tokio::sync::{Mutex, RwLock, RwLockReadGuard};

/// What became of a submitted transaction.
#[derive(Debug)]
pub(crate) enum Submission {
    /// Executed and recorded in a slot, with its status (failed transactions are committed too).
    Committed(Result<(), TransactionError>),
    /// Refused before execution (bad blockhash, fee payer, lookup table...): not recorded.
    Rejected(TransactionError),
}

/// A transaction's result when simulated against the current bank.
pub(crate) struct Simulation {
    pub result: Result<(), TransactionError>,
    /// Present when the transaction got as far as executing.
    pub details: Option<SimulationDetails>,
}

/// What an executed simulation reports, in RPC form.
pub(crate) struct SimulationDetails {
    pub logs: Vec<String>,
    pub units_consumed: u64,
    pub loaded_accounts_data_size: u32,
    pub return_data: Option<UiTransactionReturnData>,
    pub inner_instructions: Option<Vec<UiInnerInstructions>>,
}

pub(crate) struct Bank {
    /// Held while a transaction executes and while the slot advances, so that a transaction's
    /// balances before and after, its slot and the bank it ran in are one consistent picture.
    ctx: Mutex<ProgramTestContext>,
    client: BanksClient,
    /// Every call into the bank holds the read side for that one call; a slot advance holds the
    /// write side. `warp_to_slot` takes the bank's internal locks in the opposite order to the
    /// banks server's request handling, so the two running at once can deadlock (seen under
    /// load: the clock's warp and a simulation each waiting on the other's lock).
    gate: RwLock<()>,
    faucet: Keypair,
    max_airdrop_lamports: u64,
    /// Blockhash of the last airdrop: two identical transfers need different blockhashes.
    last_airdrop: Mutex<Option<Hash>>,
    index: RwLock<Index>,
}

impl Bank {
    pub async fn start(config: &Config) -> Result<Bank, Error> {
        let mut pt = program_test();
        for (address, account) in &config.accounts {
            pt.add_account(*address, account.clone());
        }
        let ctx = pt.start_with_context().await;
        let client = ctx.banks_client.clone();
        let faucet = ctx.payer.insecure_clone();
        let mut index = Index::default();
        for (address, account) in &config.accounts {
            index.set_owner(*address, Some(account.owner));
        }
        index.set_owner(faucet.pubkey(), Some(solana_system_interface::program::ID));
        Ok(Bank {
            ctx: Mutex::new(ctx),
            client,
            gate: RwLock::new(()),
            faucet,
            max_airdrop_lamports: config.max_airdrop_lamports,
            last_airdrop: Mutex::new(None),
            index: RwLock::new(index),
        })
    }

    /// The latest blockhash and its last valid block height.
    pub async fn latest_blockhash(&self) -> Result<(Hash, u64), Error> {
        let _gate = self.gate.read().await;
        self.client
            .get_latest_blockhash_with_commitment(Default::default())
            .await?
            .ok_or(Error::BankAnswer("no latest blockhash"))
    }

    /// The rent sysvar.
    pub async fn rent(&self) -> Result<solana_sdk::rent::Rent, Error> {
        let _gate = self.gate.read().await;
        Ok(self.client.get_rent().await?)
    }

    pub fn max_airdrop_lamports(&self) -> u64 {
        self.max_airdrop_lamports
    }

    pub async fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().await
    }

    pub async fn slot(&self) -> Result<Slot, Error> {
        let _gate = self.gate.read().await;
        Ok(self.client.get_root_slot().await?)
    }

    pub async fn block_height(&self) -> Result<u64, Error> {
        let _gate = self.gate.read().await;
        Ok(self.client.get_root_block_height().await?)
    }

    /// Moves the bank to the next slot (the slot clock's tick).
    pub async fn advance_slot(&self) -> Result<Slot, Error> {
        let mut ctx = self.ctx.lock().await;
        let _gate = self.gate.write().await;
        let next = self
            .client
            .get_root_slot()
            .await?
            .checked_add(1)
            .ok_or(Error::SlotOverflow)?;
        ctx.warp_to_slot(next)?;
        Ok(next)
    }

    pub async fn account(&self, address: &Pubkey) -> Result<Option<Account>, Error> {
        let _gate = self.gate.read().await;
        Ok(self.client.get_account(*address).await?)
    }

    async fn accounts(&self, addresses: &[Pubkey]) -> Result<Vec<Option<Account>>, Error> {
        let mut accounts = Vec::with_capacity(addresses.len());
        for address in addresses {
            accounts.push(self.account(address).await?);
        }
        Ok(accounts)
    }

    /// Whether a transaction with this blockhash would still be accepted: a message with no
    /// instructions is simulated, so the bank's own age rule decides.
    pub async fn is_blockhash_valid(&self, blockhash: &Hash) -> Result<bool, Error> {
        let message = Message::new_with_blockhash(&[], Some(&self.faucet.pubkey()), blockhash);
        let simulated = {
            let _gate = self.gate.read().await;
            self.client
                .simulate_transaction(Transaction::new_unsigned(message))
                .await?
        };
        Ok(!matches!(
            simulated.result,
            Some(Err(TransactionError::BlockhashNotFound))
        ))
    }

    pub async fn simulate(&self, tx: VersionedTransaction) -> Result<Simulation, Error> {
        let simulated = {
            let _gate = self.gate.read().await;
            self.client.simulate_transaction(tx).await?
        };
        let result = simulated
            .result
            .ok_or(Error::BankAnswer("a simulation without a result"))?;
        let details = simulated
            .simulation_details
            .map(|details| SimulationDetails {
                logs: details.logs,
                units_consumed: details.units_consumed,
                loaded_accounts_data_size: details.loaded_accounts_data_size,
                return_data: details.return_data.map(UiTransactionReturnData::from),
                inner_instructions: details.inner_instructions.map(|inner| {
                    map_inner_instructions(inner)
                        .map(UiInnerInstructions::from)
                        .collect()
                }),
            });
        Ok(Simulation { result, details })
    }

    /// The account keys a transaction loads: its static keys, then the writable and readonly
    /// addresses of its lookup tables (read as the runtime reads them).
    pub async fn resolve_keys(
        &self,
        tx: &VersionedTransaction,
    ) -> Result<Result<(Vec<Pubkey>, LoadedAddresses), TransactionError>, Error> {
        let mut loaded = LoadedAddresses::default();
        if let VersionedMessage::V0(message) = &tx.message {
            for lookup in &message.address_table_lookups {
                let Some(table) = self.account(&lookup.account_key).await? else {
                    return Ok(Err(TransactionError::AddressLookupTableNotFound));
                };
                if table.owner != solana_address_lookup_table_interface::program::ID {
                    return Ok(Err(TransactionError::InvalidAddressLookupTableOwner));
                }
                let Ok(table) = AddressLookupTable::deserialize(&table.data) else {
                    return Ok(Err(TransactionError::InvalidAddressLookupTableData));
                };
                for (indexes, into) in [
                    (&lookup.writable_indexes, &mut loaded.writable),
                    (&lookup.readonly_indexes, &mut loaded.readonly),
                ] {
                    for index in indexes {
                        let Some(address) = table.addresses.get(usize::from(*index)) else {
                            return Ok(Err(TransactionError::InvalidAddressLookupTableIndex));
                        };
                        into.push(*address);
                    }
                }
            }
        }
        let keys = tx
            .message
            .static_account_keys()
            .iter()
            .chain(&loaded.writable)
            .chain(&loaded.readonly)
            .copied()
            .collect();
        Ok(Ok((keys, loaded)))
    }

    /// The fee the bank charges for this message (signatures, precompile signatures, priority).
    pub async fn fee(&self, tx: &VersionedTransaction, keys: &[Pubkey]) -> Result<u64, Error> {
        // Only signatures and compute-budget instructions price a message, so a legacy message
        // over the loaded keys in the same order prices a v0 message too.
        let message = Message {
            header: *tx.message.header(),
            account_keys: keys.to_vec(),
            recent_blockhash: *tx.message.recent_blockhash(),
            instructions: tx.message.instructions().to_vec(),
        };
        Ok(self
            .client
            .get_fee_for_message(message)
            .await?
            .unwrap_or_default())
    }

    /// Executes a transaction and records it if the bank committed it.
    pub async fn submit(&self, tx: VersionedTransaction) -> Result<Submission, Error> {
        let (keys, loaded_addresses) = match self.resolve_keys(&tx).await? {
            Ok(resolved) => resolved,
            Err(err) => return Ok(Submission::Rejected(err)),
        };
        let signature = tx.signatures.first().copied().unwrap_or_default();
        let _ctx = self.ctx.lock().await;
        let fee = self.fee(&tx, &keys).await?;
        let pre = self.accounts(&keys).await?;
        let processed = {
            let _gate = self.gate.read().await;
            self.client
                .process_transaction_with_metadata(tx.clone())
                .await?
        };
        let Some(metadata) = processed.metadata else {
            return match processed.result {
                Err(err) => Ok(Submission::Rejected(err)),
                Ok(()) => Err(Error::BankAnswer("a success without metadata")),
            };
        };
        let post = self.accounts(&keys).await?;
        let status = {
            let _gate = self.gate.read().await;
            self.client.get_transaction_status(signature).await?
        };
        let slot = match status {
            Some(status) => status.slot,
            None => self.slot().await?,
        };
        let clock = {
            let _gate = self.gate.read().await;
            self.client.get_sysvar::<Clock>().await?
        };
        let status = processed.result;
        let meta = TransactionStatusMeta {
            status: status.clone(),
            fee,
            pre_balances: balances(&pre),
            post_balances: balances(&post),
            inner_instructions: None,
            log_messages: Some(metadata.log_messages),
            pre_token_balances: Some(self.token_balances(&pre).await?),
            post_token_balances: Some(self.token_balances(&post).await?),
            rewards: None,
            loaded_addresses,
            return_data: metadata.return_data,
            compute_units_consumed: Some(metadata.compute_units_consumed),
            cost_units: None,
        };
        let mut index = self.index.write().await;
        for (address, account) in keys.iter().zip(&post) {
            index.set_owner(*address, account.as_ref().map(|account| account.owner));
        }
        index.insert(
            signature,
            &keys,
            TxRecord {
                slot,
                block_time: Some(clock.unix_timestamp),
                transaction: tx,
                meta,
            },
        );
        Ok(Submission::Committed(status))
    }

    /// Sends `lamports` from the faucet to `to` in a transfer transaction of its own.
    pub async fn airdrop(
        &self,
        to: &Pubkey,
        lamports: u64,
    ) -> Result<(Signature, Submission), Error> {
        let mut last = self.last_airdrop.lock().await;
        // Two airdrops of the same amount to the same wallet under one blockhash would be one
        // transaction: wait for the next slot's blockhash (polled call by call, so the slot
        // clock can take the bank in between).
        let mut blockhash = self.latest_blockhash().await?.0;
        while *last == Some(blockhash) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            blockhash = self.latest_blockhash().await?.0;
        }
        *last = Some(blockhash);
        let transfer =
            solana_system_interface::instruction::transfer(&self.faucet.pubkey(), to, lamports);
        let tx = Transaction::new_signed_with_payer(
            &[transfer],
            Some(&self.faucet.pubkey()),
            &[&self.faucet],
            blockhash,
        );
        let signature = tx.signatures.first().copied().unwrap_or_default();
        Ok((signature, self.submit(tx.into()).await?))
    }

    /// The token balances among these accounts (SPL Token and Token-2022), as RPC reports them.
    async fn token_balances(
        &self,
        accounts: &[Option<Account>],
    ) -> Result<Vec<TransactionTokenBalance>, Error> {
        let mut balances = Vec::new();
        for (position, account) in accounts.iter().enumerate() {
            let (Some(account), Ok(account_index)) = (account, u8::try_from(position)) else {
                continue;
            };
            let Some(token) = token_account(account) else {
                continue;
            };
            let Some(decimals) = self.mint_decimals(&token.mint).await? else {
                continue;
            };
            balances.push(TransactionTokenBalance {
                account_index,
                mint: token.mint.to_string(),
                ui_token_amount: token_amount_to_ui_amount_v3(
                    token.amount,
                    &SplTokenAdditionalDataV2::with_decimals(decimals),
                ),
                owner: token.owner.to_string(),
                program_id: account.owner.to_string(),
            });
        }
        Ok(balances)
    }

    /// Decimals of an SPL Token or Token-2022 mint (`None`: not a mint).
    pub async fn mint_decimals(&self, mint: &Pubkey) -> Result<Option<u8>, Error> {
        Ok(self.account(mint).await?.and_then(|account| {
            if !is_known_spl_token_id(&account.owner) {
                return None;
            }
            let base = account.data.get(..spl_token_interface::state::Mint::LEN)?;
            spl_token_interface::state::Mint::unpack(base)
                .ok()
                .map(|mint| mint.decimals)
        }))
    }
}

/// The token account in an SPL Token or Token-2022 account's data (`None`: not one).
pub(crate) fn token_account(account: &Account) -> Option<spl_token_interface::state::Account> {
    use spl_token_interface::state::Account as TokenAccount;
    if !is_known_spl_token_id(&account.owner) {
        return None;
    }
    // Token-2022 accounts with extensions carry their type (2 = account) after the base state.
    let extended_as_account = account
        .data
        .get(TokenAccount::LEN)
        .is_none_or(|kind| *kind == 2);
    if !extended_as_account {
        return None;
    }
    TokenAccount::unpack(account.data.get(..TokenAccount::LEN)?).ok()
}

fn balances(accounts: &[Option<Account>]) -> Vec<u64> {
    accounts
        .iter()
        .map(|account| account.as_ref().map_or(0, |account| account.lamports))
        .collect()
}
