//! Packs unsettled fills into settle transactions: in fill-id order per market, as many fills
//! per transaction as fit in 1,232 bytes, 64 account locks and the compute budget, with the
//! Ed25519 signature of an order only while the order is not yet recorded on-chain.
//!
//! Without lookup tables the transactions are legacy; with them they are v0, every account a
//! table holds (and a lookup may carry) travelling as a 1-byte index. Sizes and lock counts are
//! those of the compiled message itself, not estimates.

use kestrel::constants::{MAX_FILLS_PER_BATCH, MAX_ORDERS_PER_BATCH};
use kestrel::instructions::SettleFill;
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::settle::{
    locked_accounts, versioned_message, versioned_transaction_size, Batch, BatchOrder,
    PACKET_DATA_SIZE,
};
use kestrel_sdk::Deployment;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::Instruction;
use solana_sdk::message::AddressLookupTableAccount;
use solana_sdk::pubkey::Pubkey;
use std::collections::HashSet;

/// A matched fill waiting for settlement, with both signed orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingFill {
    /// Market index.
    pub market: u32,
    /// Per-market fill id.
    pub fill_id: u64,
    /// The resting order.
    pub maker: SignedOrder,
    /// The incoming order.
    pub taker: SignedOrder,
    /// Execution price in ticks.
    pub price_ticks: u64,
    /// Size in lots.
    pub size_lots: u64,
}

/// What bounds one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Serialized transaction size.
    pub max_bytes: usize,
    /// Accounts the transaction locks.
    pub max_accounts: usize,
    /// Fills per settle instruction.
    pub max_fills: usize,
    /// Compute units the batch may use.
    pub max_compute_units: u64,
    /// Compute units budgeted per fill (an estimate: native runs do not meter).
    pub compute_per_fill: u64,
    /// Compute units budgeted per new order (PDA search, record creation, introspection).
    pub compute_per_new_order: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: PACKET_DATA_SIZE,
            max_accounts: 64,
            max_fills: MAX_FILLS_PER_BATCH,
            max_compute_units: 1_400_000,
            compute_per_fill: 15_000,
            compute_per_new_order: 40_000,
        }
    }
}

/// One settle transaction's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The batch.
    pub batch: Batch,
    /// `[Ed25519, settle]` or `[settle]`.
    pub instructions: Vec<Instruction>,
    /// The lookup tables its v0 message was compiled with; empty for a legacy transaction.
    /// The submitter compiles this batch (and any part of it) with the same tables.
    pub lookup_tables: Vec<AddressLookupTableAccount>,
    /// Wire size once signed.
    pub bytes: usize,
    /// Accounts locked.
    pub accounts: usize,
}

/// A fill could not be packed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// Even alone, the fill's transaction exceeds a limit.
    #[error("fill {market}:{fill_id} does not fit in a transaction on its own")]
    TooLarge {
        /// Market.
        market: u32,
        /// Fill id.
        fill_id: u64,
    },
    /// The SDK refused the batch.
    #[error(transparent)]
    Sdk(#[from] kestrel_sdk::Error),
}

/// Packs fills for one operator.
pub struct Packer<'a> {
    /// Deployment addresses.
    pub deployment: &'a Deployment,
    /// Fee payer and settle signer.
    pub operator: Pubkey,
    /// Transaction bounds.
    pub limits: Limits,
}

impl Packer<'_> {
    /// Packs `fills` (all of one market, in increasing fill id) into legacy transactions.
    /// `recorded` holds the `(owner, nonce)` of orders already recorded on-chain; batch ids
    /// are taken from `next_batch_id` upwards.
    pub fn pack(
        &self,
        fills: &[PendingFill],
        recorded: &HashSet<(Pubkey, u64)>,
        next_batch_id: &mut u64,
    ) -> Result<Vec<Packed>, PackError> {
        self.pack_with_tables(fills, recorded, next_batch_id, &[])
    }

    /// As [`Packer::pack`], into v0 transactions looking accounts up in `tables` (which must
    /// be usable on-chain: see [`crate::lookup`]); legacy when `tables` is empty.
    pub fn pack_with_tables(
        &self,
        fills: &[PendingFill],
        recorded: &HashSet<(Pubkey, u64)>,
        next_batch_id: &mut u64,
        tables: &[AddressLookupTableAccount],
    ) -> Result<Vec<Packed>, PackError> {
        let mut out = Vec::new();
        let mut current: Option<Packed> = None;
        for fill in fills {
            let candidate = match &current {
                Some(packed) if packed.batch.market_index == fill.market => {
                    self.with_fill(&packed.batch, fill, recorded, tables)?
                }
                _ => None,
            };
            match candidate {
                Some(packed) => current = Some(packed),
                None => {
                    out.extend(current.take());
                    let empty = Batch {
                        market_index: fill.market,
                        batch_id: *next_batch_id,
                        orders: Vec::new(),
                        fills: Vec::new(),
                    };
                    let packed = self.with_fill(&empty, fill, recorded, tables)?.ok_or(
                        PackError::TooLarge {
                            market: fill.market,
                            fill_id: fill.fill_id,
                        },
                    )?;
                    *next_batch_id = next_batch_id.saturating_add(1);
                    current = Some(packed);
                }
            }
        }
        out.extend(current);
        Ok(out)
    }

    /// `batch` plus `fill`, if the result is within every limit.
    fn with_fill(
        &self,
        batch: &Batch,
        fill: &PendingFill,
        recorded: &HashSet<(Pubkey, u64)>,
        tables: &[AddressLookupTableAccount],
    ) -> Result<Option<Packed>, PackError> {
        if batch.fills.len() >= self.limits.max_fills.min(MAX_FILLS_PER_BATCH) {
            return Ok(None);
        }
        let mut batch = batch.clone();
        let maker = order_index(&mut batch, &fill.maker, recorded);
        let taker = order_index(&mut batch, &fill.taker, recorded);
        let (Some(maker), Some(taker)) = (maker, taker) else {
            return Ok(None);
        };
        batch.fills.push(SettleFill {
            fill_id: fill.fill_id,
            maker,
            taker,
            price_ticks: fill.price_ticks,
            size_lots: fill.size_lots,
        });
        let new_orders = batch
            .orders
            .iter()
            .filter(|o| matches!(o, BatchOrder::New(_)))
            .count() as u64;
        let compute = (batch.fills.len() as u64)
            .saturating_mul(self.limits.compute_per_fill)
            .saturating_add(new_orders.saturating_mul(self.limits.compute_per_new_order));
        if compute > self.limits.max_compute_units {
            return Ok(None);
        }
        let instructions = self
            .deployment
            .settle_instructions(&self.operator, &batch)?;
        // The blockhash is a fixed-size field: any value gives the signed size.
        let message = versioned_message(&instructions, &self.operator, tables, Hash::default())?;
        let bytes = versioned_transaction_size(&message);
        let accounts = locked_accounts(&message);
        if bytes > self.limits.max_bytes || accounts > self.limits.max_accounts {
            return Ok(None);
        }
        Ok(Some(Packed {
            batch,
            instructions,
            lookup_tables: tables.to_vec(),
            bytes,
            accounts,
        }))
    }
}

/// The index of `order` in the batch, adding it if absent (new unless recorded).
fn order_index(
    batch: &mut Batch,
    order: &SignedOrder,
    recorded: &HashSet<(Pubkey, u64)>,
) -> Option<u8> {
    let key = (order.order.owner, order.order.nonce);
    if let Some(i) = batch
        .orders
        .iter()
        .position(|o| (o.owner(), o.nonce()) == key)
    {
        return u8::try_from(i).ok();
    }
    if batch.orders.len() >= MAX_ORDERS_PER_BATCH {
        return None;
    }
    batch.orders.push(if recorded.contains(&key) {
        BatchOrder::Recorded {
            owner: key.0,
            nonce: key.1,
        }
    } else {
        BatchOrder::New(*order)
    });
    u8::try_from(batch.orders.len().saturating_sub(1)).ok()
}
