use crate::encoding::{Order, Side};
use anchor_lang::prelude::*;

/// The on-chain record of an order whose signature has been verified once. From then on it
/// stands for the signed bytes: it fixes the terms and tracks the filled size.
/// PDA `[ORDER_SEED, exchange, owner, nonce]`, so one owner's nonce names one order for ever.
#[account(zero_copy)]
#[derive(Debug)]
pub struct OrderRecord {
    /// Order owner.
    pub owner: Pubkey,
    /// Account that paid the rent.
    pub payer: Pubkey,
    /// Market index.
    pub market_index: u32,
    /// 0 buy, 1 sell.
    pub side: u8,
    /// Order type byte as signed.
    pub order_type: u8,
    /// Self-trade byte as signed.
    pub self_trade: u8,
    /// Bump of the PDA.
    pub bump: u8,
    /// Limit price in ticks.
    pub price_ticks: u64,
    /// Signed size in base lots.
    pub size_lots: u64,
    /// Base lots filled so far; never exceeds `size_lots`.
    pub filled_lots: u64,
    /// Owner's nonce.
    pub nonce: u64,
    /// Expiry in unix seconds, 0 for none.
    pub expiry: i64,
    /// Client order id as signed.
    pub client_order_id: u64,
    /// Reserved for upgrades.
    pub _reserved: [u8; 32],
}

const _: () = assert!(core::mem::size_of::<OrderRecord>() == 64 + 8 + 48 + 32);

impl OrderRecord {
    /// Account size including the discriminator.
    pub const SPACE: usize = 8 + core::mem::size_of::<OrderRecord>();

    /// Whether this record holds exactly the terms of `order`.
    pub fn matches(&self, order: &Order) -> bool {
        self.owner == order.owner
            && self.market_index == order.market_index
            && self.side == order.side as u8
            && self.order_type == order.order_type as u8
            && self.self_trade == order.self_trade as u8
            && self.price_ticks == order.price_ticks
            && self.size_lots == order.size_lots
            && self.nonce == order.nonce
            && self.expiry == order.expiry
            && self.client_order_id == order.client_order_id
    }

    /// Side as an enum (the byte was validated when the record was written).
    pub fn side(&self) -> Side {
        if self.side == Side::Buy as u8 {
            Side::Buy
        } else {
            Side::Sell
        }
    }
}
