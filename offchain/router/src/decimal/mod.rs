//! Decimals at the API edge (DESIGN.md, "Units"): the hot path counts integer price ticks,
//! base lots and atoms; the API adds, next to each such integer field, a decimal string
//! computed exactly with `rust_decimal` from the market spec and the mints' decimals. Nothing
//! signed changes: orders are still signed and submitted in ticks and lots.
//!
//! A companion field is named after its integer field with `_decimal` appended
//! (`price_ticks` → `price_ticks_decimal`). For a market with base mint decimals `b`, quote
//! mint decimals `q`, `base_lot_size` base atoms per lot and `tick_size` quote atoms per tick
//! per lot:
//! - a price of `t` ticks is `t × tick_size × 10^b / (base_lot_size × 10^q)` quote units per
//!   base unit;
//! - a size of `l` lots is `l × base_lot_size / 10^b` base units;
//! - an amount of `a` atoms of an asset with `d` decimals is `a / 10^d` units.
//!
//! Strings carry no exponent and no trailing zeros. A value that does not fit a 96-bit
//! decimal mantissa is `null`; a price whose quotient does not terminate is rounded to
//! `rust_decimal`'s 28 significant digits.

mod stream;

pub use stream::Annotated;

use crate::market::MarketSpec;
use crate::state::Rules;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A field and the name of its decimal companion (static: a streamed struct field needs one).
type Field = (&'static str, &'static str);

/// Fields in price ticks.
const PRICE_FIELDS: [Field; 7] = [
    ("price_ticks", "price_ticks_decimal"),
    ("open", "open_decimal"),
    ("high", "high_decimal"),
    ("low", "low_decimal"),
    ("close", "close_decimal"),
    ("min_price_ticks", "min_price_ticks_decimal"),
    ("max_price_ticks", "max_price_ticks_decimal"),
];
/// Fields in base lots.
const SIZE_FIELDS: [Field; 6] = [
    ("size_lots", "size_lots_decimal"),
    ("remaining_lots", "remaining_lots_decimal"),
    ("filled_lots", "filled_lots_decimal"),
    ("volume_lots", "volume_lots_decimal"),
    ("min_size_lots", "min_size_lots_decimal"),
    ("max_size_lots", "max_size_lots_decimal"),
];
/// Fields in quote atoms of the object's market.
const QUOTE_FIELDS: [Field; 3] = [
    ("notional", "notional_decimal"),
    ("maker_fee", "maker_fee_decimal"),
    ("taker_fee", "taker_fee_decimal"),
];
/// Fields in atoms of the object's asset.
const ATOM_FIELDS: [Field; 5] = [
    ("available", "available_decimal"),
    ("frozen", "frozen_decimal"),
    ("amount", "amount_decimal"),
    ("available_delta", "available_delta_decimal"),
    ("frozen_delta", "frozen_delta_decimal"),
];

fn listed(fields: &[Field], name: &str) -> bool {
    fields.iter().any(|(field, _)| *field == name)
}

/// The name of `name`'s decimal companion, if it can have one.
fn companion_name(name: &str) -> Option<&'static str> {
    [&PRICE_FIELDS[..], &SIZE_FIELDS, &QUOTE_FIELDS, &ATOM_FIELDS]
        .into_iter()
        .flatten()
        .find(|(field, _)| *field == name)
        .map(|(_, companion)| *companion)
}

/// `units / 10^scale` exactly, normalised; `None` past 28 decimal places or 96 bits.
fn scaled(units: i128, scale: u32) -> Option<Decimal> {
    Decimal::try_from_i128_with_scale(units, scale)
        .ok()
        .map(|d| d.normalize())
}

#[derive(Debug, Clone, Copy)]
struct MarketUnits {
    /// Base mint decimals.
    base: u32,
    /// Quote mint decimals.
    quote: u32,
    spec: MarketSpec,
}

impl MarketUnits {
    fn price(&self, ticks: i128) -> Option<Decimal> {
        // t × tick_size / 10^q quote units per lot; a lot is base_lot_size / 10^b base units.
        let per_lot = scaled(
            ticks.checked_mul(i128::from(self.spec.tick_size))?,
            self.quote,
        )?;
        let lot = self.size(1)?;
        per_lot.checked_div(lot).map(|d| d.normalize())
    }

    fn size(&self, lots: i128) -> Option<Decimal> {
        scaled(
            lots.checked_mul(i128::from(self.spec.base_lot_size))?,
            self.base,
        )
    }
}

/// The decimal view of every market and asset of a router.
#[derive(Debug, Clone, Default)]
pub struct Decimals {
    assets: Vec<u32>,
    markets: HashMap<u32, MarketUnits>,
}

impl Decimals {
    /// Decimals for `rules`, given each asset's mint decimals by asset index (an asset
    /// without an entry counts in atoms: 0 decimals).
    pub fn new(rules: &Rules, asset_decimals: &[u8]) -> Decimals {
        let assets: Vec<u32> = (0..rules.assets.len())
            .map(|i| asset_decimals.get(i).copied().map_or(0, u32::from))
            .collect();
        let of = |asset: u8| assets.get(usize::from(asset)).copied().unwrap_or(0);
        let markets = rules
            .markets
            .iter()
            .map(|spec| {
                let units = MarketUnits {
                    base: of(spec.base_asset),
                    quote: of(spec.quote_asset),
                    spec: *spec,
                };
                (spec.index, units)
            })
            .collect();
        Decimals { assets, markets }
    }

    /// Mint decimals of `asset`.
    pub fn asset_decimals(&self, asset: usize) -> u32 {
        self.assets.get(asset).copied().unwrap_or(0)
    }

    /// A market's price increment (one tick) and size increment (one lot) as decimal strings.
    pub fn increments(&self, market: u32) -> Option<(String, String)> {
        let m = self.markets.get(&market)?;
        Some((m.price(1)?.to_string(), m.size(1)?.to_string()))
    }

    /// Serialises `value` and adds the decimal companions (see [`Decimals::annotate`]).
    pub fn json(&self, value: &impl serde::Serialize) -> Value {
        let mut value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.annotate(&mut value);
        value
    }

    /// Adds, to every object in `value` (nested ones included), a `<field>_decimal` string
    /// next to each integer price, size or amount field whose market (a `market` field of the
    /// object or of an enclosing one) or asset (an `asset` field) is known.
    pub fn annotate(&self, value: &mut Value) {
        self.walk(value, None);
    }

    fn walk(&self, value: &mut Value, market: Option<u32>) {
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| self.walk(v, market)),
            Value::Object(map) => {
                let market = map
                    .get("market")
                    .and_then(Value::as_u64)
                    .and_then(|m| u32::try_from(m).ok())
                    .or(market);
                self.add(map, market);
                map.values_mut().for_each(|v| self.walk(v, market));
            }
            _ => {}
        }
    }

    fn add(&self, map: &mut Map<String, Value>, market: Option<u32>) {
        let asset = map.get("asset").and_then(Value::as_u64);
        let mut extra = Vec::new();
        for (field, value) in map.iter() {
            let Some(n) = integer(value) else { continue };
            if let (Some(decimal), Some(name)) = (
                self.companion(field, n, market, asset),
                companion_name(field),
            ) {
                let text = decimal.map_or(Value::Null, |d| Value::String(d.to_string()));
                extra.push((name.to_owned(), text));
            }
        }
        map.extend(extra);
    }

    /// The decimal companion of the integer field `name` worth `n`, in an object of `market`
    /// and `asset` (either may be unknown): `None` when the field has none there, `Some(None)`
    /// when its value does not fit a decimal (shown as `null`).
    fn companion(
        &self,
        name: &str,
        n: i128,
        market: Option<u32>,
        asset: Option<u64>,
    ) -> Option<Option<Decimal>> {
        let units = market.and_then(|m| self.markets.get(&m));
        let asset = asset
            .and_then(|a| usize::try_from(a).ok())
            .filter(|a| *a < self.assets.len())
            .map(|a| self.asset_decimals(a));
        match (units, asset) {
            (Some(u), _) if listed(&PRICE_FIELDS, name) => Some(u.price(n)),
            (Some(u), _) if listed(&SIZE_FIELDS, name) => Some(u.size(n)),
            (Some(u), _) if listed(&QUOTE_FIELDS, name) => Some(scaled(n, u.quote)),
            (_, Some(d)) if listed(&ATOM_FIELDS, name) => Some(scaled(n, d)),
            _ => None,
        }
    }
}

/// An integer JSON number (u64 or i64; larger i128 deltas are serialised as such too).
fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchor_lang::prelude::Pubkey;
    use serde_json::json;

    /// One market (index 3, base asset 0, quote asset 1) of the given lot and tick sizes.
    pub(super) fn rules(base_lot_size: u64, tick_size: u64) -> Rules {
        Rules {
            exchange: Pubkey::new_from_array([9; 32]),
            assets: vec![Pubkey::new_from_array([1; 32]); 2],
            markets: vec![MarketSpec {
                index: 3,
                base_asset: 0,
                quote_asset: 1,
                base_lot_size,
                tick_size,
                min_size_lots: 1,
                max_size_lots: u64::MAX,
                min_price_ticks: 1,
                max_price_ticks: u64::MAX,
                maker_fee_bps: 0,
                taker_fee_bps: 0,
                max_orders: 16,
            }],
            max_expiry_horizon_secs: 1,
            expiry_margin_secs: 0,
            max_open_orders: 1,
        }
    }

    #[test]
    fn fields_get_exact_companions_and_unrepresentable_ones_are_null() {
        // 9-decimal base in lots of 0.001, 6-decimal quote, 100 quote atoms per tick per lot:
        // one tick is 0.0001 quote per 0.001 base, 0.1 quote per base.
        let d = Decimals::new(&rules(1_000_000, 100), &[9, 6]);
        assert_eq!(
            d.increments(3),
            Some(("0.1".to_owned(), "0.001".to_owned()))
        );
        let mut v = json!({
            "market": 3,
            "levels": [{"price_ticks": 1_234, "size_lots": 70}],
            "notional": 1_500_000,
            "unrelated": 5,
        });
        d.annotate(&mut v);
        assert_eq!(v["levels"][0]["price_ticks_decimal"], "123.4");
        assert_eq!(v["levels"][0]["size_lots_decimal"], "0.07");
        assert_eq!(v["notional_decimal"], "1.5");
        assert!(v.get("unrelated_decimal").is_none());
        // u64::MAX ticks × u64::MAX atoms does not fit.
        let huge = Decimals::new(&rules(1, u64::MAX), &[]);
        let mut candle = json!({"market": 3, "open": u64::MAX, "close": 2});
        huge.annotate(&mut candle);
        assert_eq!(candle["open_decimal"], Value::Null);
        assert_eq!(candle["close_decimal"], (u64::MAX as u128 * 2).to_string());
        let mut entry = json!({"asset": 0, "available_delta": -2_500_000_000i64, "frozen": 0});
        d.annotate(&mut entry);
        assert_eq!(entry["available_delta_decimal"], "-2.5");
        assert_eq!(entry["frozen_decimal"], "0");
        let mut unknown = json!({"market": 4, "price_ticks": 1, "asset": 7, "amount": 1});
        d.annotate(&mut unknown);
        assert_eq!(unknown.as_object().map(|m| m.len()), Some(4));
    }

    #[test]
    fn a_non_terminating_price_is_rounded_not_refused() {
        // Lots of 3 atoms, no decimals: one tick is 1/3 quote per base.
        let d = Decimals::new(&rules(3, 1), &[]);
        let (tick, lot) = d.increments(3).unwrap_or_default();
        assert_eq!(lot, "3");
        assert!(
            tick.starts_with("0.333333333333") && tick.len() <= 30,
            "{tick}"
        );
    }
}
