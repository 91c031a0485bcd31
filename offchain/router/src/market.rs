//! A market as the router sees it: the on-chain market's parameters plus the matcher's limits.

use kestrel::math::{BaseLots, QuoteAtoms, Ticks};
use serde::{Deserialize, Serialize};

/// One market. The lot, tick and fee fields mirror the on-chain `Market` account exactly, so
/// the off-chain ledger moves the very atoms settlement will move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketSpec {
    /// On-chain market index.
    pub index: u32,
    /// Asset index of the base mint.
    pub base_asset: u8,
    /// Asset index of the quote mint.
    pub quote_asset: u8,
    /// Base atoms per lot.
    pub base_lot_size: u64,
    /// Quote atoms per tick per lot.
    pub tick_size: u64,
    /// Smallest order, in lots.
    pub min_size_lots: u64,
    /// Largest order, in lots.
    pub max_size_lots: u64,
    /// Lowest accepted price, in ticks.
    pub min_price_ticks: u64,
    /// Highest accepted price, in ticks.
    pub max_price_ticks: u64,
    /// Maker fee, basis points of notional.
    pub maker_fee_bps: u16,
    /// Taker fee, basis points of notional.
    pub taker_fee_bps: u16,
    /// Most resting orders in the book.
    pub max_orders: u32,
}

impl MarketSpec {
    /// The matcher's configuration for this market.
    pub fn engine_config(&self) -> kestrel_matcher::MarketConfig {
        kestrel_matcher::MarketConfig {
            market_id: u64::from(self.index),
            tick_size: self.tick_size,
            lot_size: self.base_lot_size,
            min_size: kestrel_matcher::Lots(self.min_size_lots),
            max_size: kestrel_matcher::Lots(self.max_size_lots),
            min_price: kestrel_matcher::Ticks(self.min_price_ticks),
            max_price: kestrel_matcher::Ticks(self.max_price_ticks),
            max_orders: self.max_orders,
        }
    }

    /// Quote atoms of `lots` at `price`, exactly as the program computes them.
    pub fn notional(&self, price: u64, lots: u64) -> Option<u64> {
        BaseLots(lots)
            .notional(Ticks(price), self.tick_size)
            .ok()
            .map(|q| q.0)
    }

    /// Fee on a notional, rounded up, exactly as the program computes it.
    pub fn fee(notional: u64, bps: u16) -> Option<u64> {
        QuoteAtoms(notional).fee(bps).ok().map(|q| q.0)
    }

    /// Base atoms of `lots`.
    pub fn base_atoms(&self, lots: u64) -> Option<u64> {
        lots.checked_mul(self.base_lot_size)
    }

    /// Quote atoms a buy of `lots` at limit `price` must hold: notional, the larger fee, and
    /// one atom per lot, which absorbs the per-fill rounding up of fees (each fill of at least
    /// one lot can round up by at most one atom more than the whole would).
    pub fn buy_hold(&self, price: u64, lots: u64) -> Option<u64> {
        let notional = self.notional(price, lots)?;
        let fee = Self::fee(notional, self.maker_fee_bps.max(self.taker_fee_bps))?;
        notional.checked_add(fee)?.checked_add(lots)
    }
}
