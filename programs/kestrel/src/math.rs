//! Checked arithmetic with the caller's location, and quantities that cannot be mixed up.
//!
//! Units (Phoenix's model): `quote atoms = price ticks × tick size × base lots`,
//! `base atoms = base lots × base lot size`. Only the products below are defined.

use crate::error::KestrelError;
use anchor_lang::prelude::*;

/// Checked operations that log where they failed.
pub trait SafeMath: Sized {
    /// `self + rhs`, or `MathOverflow`.
    fn safe_add(self, rhs: Self) -> Result<Self>;
    /// `self - rhs`, or `MathOverflow`.
    fn safe_sub(self, rhs: Self) -> Result<Self>;
    /// `self * rhs`, or `MathOverflow`.
    fn safe_mul(self, rhs: Self) -> Result<Self>;
}

macro_rules! impl_safe_math {
    ($($t:ty),*) => {$(
        impl SafeMath for $t {
            #[track_caller]
            #[inline(always)]
            fn safe_add(self, rhs: Self) -> Result<Self> {
                self.checked_add(rhs).ok_or_else(overflow)
            }
            #[track_caller]
            #[inline(always)]
            fn safe_sub(self, rhs: Self) -> Result<Self> {
                self.checked_sub(rhs).ok_or_else(overflow)
            }
            #[track_caller]
            #[inline(always)]
            fn safe_mul(self, rhs: Self) -> Result<Self> {
                self.checked_mul(rhs).ok_or_else(overflow)
            }
        }
    )*};
}
impl_safe_math!(u16, u32, u64, u128);

#[track_caller]
fn overflow() -> Error {
    let caller = std::panic::Location::caller();
    msg!("math overflow at {}:{}", caller.file(), caller.line());
    error!(KestrelError::MathOverflow)
}

/// Narrowing a u128 intermediate back to u64.
#[track_caller]
pub fn to_u64(value: u128) -> Result<u64> {
    u64::try_from(value).map_err(|_| overflow())
}

/// Price in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticks(pub u64);
/// Size in base lots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BaseLots(pub u64);
/// Amount in atoms of the base mint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BaseAtoms(pub u64);
/// Amount in atoms of the quote mint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuoteAtoms(pub u64);

impl BaseLots {
    /// Base atoms for this many lots of `base_lot_size` atoms each.
    #[track_caller]
    pub fn to_base_atoms(self, base_lot_size: u64) -> Result<BaseAtoms> {
        Ok(BaseAtoms(self.0.safe_mul(base_lot_size)?))
    }

    /// Quote atoms of this many lots at `price` with `tick_size` quote atoms per tick per lot.
    #[track_caller]
    pub fn notional(self, price: Ticks, tick_size: u64) -> Result<QuoteAtoms> {
        let atoms = u128::from(price.0)
            .safe_mul(u128::from(tick_size))?
            .safe_mul(u128::from(self.0))?;
        Ok(QuoteAtoms(to_u64(atoms)?))
    }
}

impl QuoteAtoms {
    /// Fee of `bps` basis points on this notional, rounded up so the exchange never loses dust.
    #[track_caller]
    pub fn fee(self, bps: u16) -> Result<QuoteAtoms> {
        let numerator = u128::from(self.0).safe_mul(u128::from(bps))?;
        let fee = numerator.div_ceil(crate::constants::BPS_DENOMINATOR);
        Ok(QuoteAtoms(to_u64(fee)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notional_and_fee_use_u128_intermediates() {
        let n = BaseLots(u64::MAX / 4).notional(Ticks(2), 2).map(|q| q.0);
        assert_eq!(n.ok(), Some((u64::MAX / 4) * 4));
        assert!(BaseLots(u64::MAX).notional(Ticks(u64::MAX), 1).is_err());
        assert_eq!(QuoteAtoms(10_001).fee(1).map(|q| q.0).ok(), Some(2));
        assert_eq!(QuoteAtoms(10_000).fee(1).map(|q| q.0).ok(), Some(1));
        assert_eq!(QuoteAtoms(0).fee(100).map(|q| q.0).ok(), Some(0));
        assert_eq!(
            QuoteAtoms(u64::MAX).fee(100).map(|q| q.0).ok(),
            Some(u64::MAX.div_ceil(100))
        );
    }
}
