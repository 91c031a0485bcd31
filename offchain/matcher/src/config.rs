//! Per-market configuration.

use crate::types::{Lots, Ticks};

/// Static configuration of one market. Part of every snapshot; replay needs the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MarketConfig {
    /// Market identifier, opaque to the engine (echoed in snapshots).
    pub market_id: u64,
    /// Quote atoms per tick per lot. Informational here: the engine only compares ticks.
    pub tick_size: u64,
    /// Base atoms per lot. Informational here: the engine only counts lots.
    pub lot_size: u64,
    /// Smallest accepted order size (at least one lot).
    pub min_size: Lots,
    /// Largest accepted order size.
    pub max_size: Lots,
    /// Lowest accepted price (the price band's floor, at least one tick).
    pub min_price: Ticks,
    /// Highest accepted price (the price band's ceiling).
    pub max_price: Ticks,
    /// Most orders that may rest at once. All book storage is allocated up front for this many,
    /// so the engine never allocates while running; a resting order beyond it is rejected.
    pub max_orders: u32,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            market_id: 0,
            tick_size: 1,
            lot_size: 1,
            min_size: Lots(1),
            max_size: Lots(1_000_000_000),
            min_price: Ticks(1),
            max_price: Ticks(1_000_000_000),
            max_orders: 65_536,
        }
    }
}

/// Why a [`MarketConfig`] cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `min_size` is zero or above `max_size`.
    #[error("size bounds must satisfy 1 <= min_size <= max_size")]
    SizeBounds,
    /// `min_price` is zero or above `max_price`, or `max_price` leaves no room for sliding.
    #[error("price band must satisfy 1 <= min_price <= max_price < u64::MAX")]
    PriceBand,
    /// `max_orders` is zero or beyond what the order index can address.
    #[error("max_orders must be between 1 and 2^31")]
    Capacity,
    /// The storage for `max_orders` could not be allocated.
    #[error("cannot allocate storage for max_orders orders")]
    OutOfMemory,
    /// `max_size × max_orders` does not fit in a u64, so level totals could overflow.
    #[error("max_size * max_orders must fit in a u64")]
    QuantityRange,
}

impl MarketConfig {
    /// Checks the bounds the engine relies on (no overflow of level totals, slide room).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_size.0 == 0 || self.min_size > self.max_size {
            return Err(ConfigError::SizeBounds);
        }
        if self.min_price.0 == 0 || self.min_price > self.max_price || self.max_price.0 == u64::MAX
        {
            return Err(ConfigError::PriceBand);
        }
        if self.max_orders == 0 || self.max_orders > (1 << 31) {
            return Err(ConfigError::Capacity);
        }
        let total = u128::from(self.max_size.0).checked_mul(u128::from(self.max_orders));
        match total {
            Some(t) if t <= u128::from(u64::MAX) => Ok(()),
            _ => Err(ConfigError::QuantityRange),
        }
    }

    /// True when `price` lies inside the band.
    pub fn price_in_band(&self, price: Ticks) -> bool {
        price >= self.min_price && price <= self.max_price
    }
}
