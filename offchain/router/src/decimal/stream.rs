//! The API's view of a flat struct (an event, a trade, a candle), written straight to the
//! output: wallet keys (`owner`, `maker`, `taker`) as hex, and after each integer field that
//! has one its `<field>_decimal` companion — what `serde_json::to_value`, `hex_wallets` and
//! [`Decimals::annotate`] produce together, without building, walking and dropping a
//! `serde_json::Value` (a fifth of the router's CPU per order at full load, in the answers to
//! signed commands).
//!
//! The struct's own `market` and `asset` fields give the units, so they must come before the
//! fields they qualify (true of every event, trade and candle); nested values are written as
//! they are.

use super::Decimals;
use serde::ser::{self, Impossible, Serialize, SerializeStruct, SerializeTuple, Serializer};

/// `value` as the API shows it (see the module documentation).
pub struct Annotated<'a, T: ?Sized> {
    /// The struct.
    pub value: &'a T,
    /// Units of every market and asset.
    pub decimals: &'a Decimals,
}

impl<T: Serialize + ?Sized> Serialize for Annotated<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Outer {
            inner: serializer,
            decimals: self.decimals,
        })
    }
}

/// Takes the struct; anything else is refused (nothing else is annotated this way).
struct Outer<'a, S> {
    inner: S,
    decimals: &'a Decimals,
}

fn not_a_struct<E: ser::Error>() -> E {
    E::custom("only a struct is annotated")
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            Err(not_a_struct())
        })*
    };
}

impl<'a, S: Serializer> Serializer for Outer<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStruct = Fields<'a, S::SerializeStruct>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        Ok(Fields {
            // At most one companion per field.
            inner: self.inner.serialize_struct(name, len.saturating_mul(2))?,
            decimals: self.decimals,
            market: None,
            asset: None,
        })
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_a_struct())
    }
}

/// Writes the fields, noting the struct's market and asset as they pass.
struct Fields<'a, F> {
    inner: F,
    decimals: &'a Decimals,
    market: Option<u32>,
    asset: Option<u64>,
}

impl<F: SerializeStruct> SerializeStruct for Fields<'_, F> {
    type Ok = F::Ok;
    type Error = F::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), F::Error> {
        match key {
            "owner" | "maker" | "taker" => {
                if let Ok(Some(Captured::Key(wallet))) = value.serialize(Capture) {
                    return self
                        .inner
                        .serialize_field(key, &crate::model::to_hex(&wallet));
                }
            }
            "market" => {
                self.market = integer(value).and_then(|n| u32::try_from(n).ok());
            }
            "asset" => self.asset = integer(value).and_then(|n| u64::try_from(n).ok()),
            _ => {}
        }
        self.inner.serialize_field(key, value)?;
        // Only a field that can have a companion is read as an integer (`zip` would read
        // every field, strings and keys included).
        let companion = super::companion_name(key).and_then(|name| {
            let n = integer(value)?;
            self.decimals
                .companion(key, n, self.market, self.asset)
                .map(|decimal| (name, decimal.map(|d| d.to_string())))
        });
        match companion {
            Some((name, text)) => self.inner.serialize_field(name, &text),
            None => Ok(()),
        }
    }

    fn end(self) -> Result<F::Ok, F::Error> {
        self.inner.end()
    }
}

/// The integer `value` holds, if it is one.
fn integer<T: Serialize + ?Sized>(value: &T) -> Option<i128> {
    match value.serialize(Capture) {
        Ok(Some(Captured::Integer(n))) => Some(n),
        _ => None,
    }
}

/// What [`Capture`] read: an integer, or 32 bytes (a wallet key).
enum Captured {
    Integer(i128),
    Key([u8; 32]),
}

/// A value [`Capture`] does not read.
#[derive(Debug)]
struct Uncaptured;

impl std::fmt::Display for Uncaptured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not an integer or a 32-byte key")
    }
}

impl std::error::Error for Uncaptured {}

impl ser::Error for Uncaptured {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Uncaptured
    }
}

/// Reads an integer or a 32-byte array out of a value; `None` for anything else.
struct Capture;

macro_rules! capture_int {
    ($($name:ident($ty:ty)),* $(,)?) => {
        $(fn $name(self, v: $ty) -> Result<Self::Ok, Self::Error> {
            Ok(Some(Captured::Integer(i128::from(v))))
        })*
    };
}

macro_rules! capture_none {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            Ok(None)
        })*
    };
}

impl Serializer for Capture {
    type Ok = Option<Captured>;
    type Error = Uncaptured;
    type SerializeSeq = Impossible<Self::Ok, Uncaptured>;
    type SerializeTuple = KeyBytes;
    type SerializeTupleStruct = Impossible<Self::Ok, Uncaptured>;
    type SerializeTupleVariant = Impossible<Self::Ok, Uncaptured>;
    type SerializeMap = Impossible<Self::Ok, Uncaptured>;
    type SerializeStruct = Impossible<Self::Ok, Uncaptured>;
    type SerializeStructVariant = Impossible<Self::Ok, Uncaptured>;

    capture_int!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
    );

    capture_none!(
        serialize_bool(bool),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_u128(self, v: u128) -> Result<Self::Ok, Uncaptured> {
        Ok(i128::try_from(v).ok().map(Captured::Integer))
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Self::Ok, Uncaptured> {
        Ok(None)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Uncaptured> {
        value.serialize(Capture)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Uncaptured> {
        Ok(None)
    }

    fn serialize_tuple(self, len: usize) -> Result<KeyBytes, Uncaptured> {
        if len == 32 {
            Ok(KeyBytes {
                bytes: [0; 32],
                at: 0,
            })
        } else {
            Err(Uncaptured)
        }
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Uncaptured> {
        Err(Uncaptured)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Uncaptured> {
        Err(Uncaptured)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Uncaptured> {
        Err(Uncaptured)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Uncaptured> {
        Err(Uncaptured)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Uncaptured> {
        Err(Uncaptured)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Uncaptured> {
        Err(Uncaptured)
    }
}

/// The elements of a 32-element tuple (a `[u8; 32]`), each a byte.
struct KeyBytes {
    bytes: [u8; 32],
    at: usize,
}

impl SerializeTuple for KeyBytes {
    type Ok = Option<Captured>;
    type Error = Uncaptured;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Uncaptured> {
        let byte = match value.serialize(Capture)? {
            Some(Captured::Integer(n)) => u8::try_from(n).map_err(|_| Uncaptured)?,
            _ => return Err(Uncaptured),
        };
        let slot = self.bytes.get_mut(self.at).ok_or(Uncaptured)?;
        *slot = byte;
        self.at = self.at.saturating_add(1);
        Ok(())
    }

    fn end(self) -> Result<Option<Captured>, Uncaptured> {
        Ok((self.at == 32).then_some(Captured::Key(self.bytes)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::decimal::tests::rules;
    use crate::marketdata::{hex_wallets, Candle, Interval, Trade};
    use crate::model::{
        Business, DoneReason, Event, SettlementStatus, WithdrawalKind, WithdrawalStatus,
    };
    use crate::reject::Reject;
    use serde_json::Value;

    fn decimals() -> Decimals {
        Decimals::new(&rules(1_000_000, 100), &[9, 6])
    }

    /// One event of every kind, in a known and an unknown market or asset, with small and
    /// extreme values.
    fn events() -> Vec<Event> {
        let mut out = Vec::new();
        for (market, asset, big) in [(3, 0, 1_234), (3, 1, u64::MAX), (7, 5, 9)] {
            let (owner, other) = ([7u8; 32], [0xA5; 32]);
            out.extend([
                Event::Rejected {
                    owner,
                    reason: Reject::BadSignature,
                },
                Event::OrderAccepted {
                    order_id: 11,
                    market,
                    owner,
                    side: 1,
                    price_ticks: big,
                    size_lots: 70,
                    nonce: 4,
                    expiry: -1,
                    client_order_id: 8,
                    order_type: 0,
                    signed: "ab".into(),
                    signature: "cd".into(),
                },
                Event::OrderReplaced {
                    order_id: 11,
                    market,
                    owner,
                    old_nonce: 4,
                    nonce: 5,
                    price_ticks: 1,
                    size_lots: big,
                    expiry: 0,
                    kept_priority: true,
                    signed: "ab".into(),
                    signature: "cd".into(),
                },
                Event::OrderDone {
                    order_id: 11,
                    market,
                    owner,
                    reason: DoneReason::SelfTrade,
                    remaining_lots: big,
                },
                Event::Fill {
                    market,
                    fill_id: 2,
                    maker_order_id: 1,
                    taker_order_id: 11,
                    maker: owner,
                    taker: other,
                    maker_nonce: 3,
                    taker_nonce: 4,
                    taker_side: 0,
                    price_ticks: big,
                    size_lots: 3,
                    notional: big,
                    maker_fee: 1,
                    taker_fee: 0,
                },
                Event::BookLevel {
                    market,
                    market_seq: 5,
                    side: 0,
                    price_ticks: big,
                    size_lots: 0,
                    orders: 2,
                },
                Event::Ledger {
                    owner,
                    asset: u8::try_from(asset).unwrap(),
                    business: Business::FillFee,
                    business_id: "3:2".into(),
                    available_delta: -2_500_000_000,
                    frozen_delta: i128::from(big),
                    available: big,
                    frozen: 0,
                    version: 9,
                },
                Event::DepositCredited {
                    owner,
                    asset: u8::try_from(asset).unwrap(),
                    amount: big,
                    tx: "ff".into(),
                    ix_index: 1,
                },
                Event::Withdrawal {
                    id: 40,
                    owner,
                    asset: u8::try_from(asset).unwrap(),
                    amount: big,
                    status: WithdrawalStatus::Broadcasting,
                    kind: WithdrawalKind::Cosigned,
                    tx: Some("ee".into()),
                    last_valid_block_height: None,
                },
                Event::Settlement {
                    market,
                    fill_id: 2,
                    status: SettlementStatus::Quarantined,
                },
                Event::NonceFloor { owner, floor: big },
            ]);
        }
        out
    }

    fn streamed<T: Serialize>(value: &T, decimals: &Decimals) -> Value {
        let text = serde_json::to_string(&Annotated { value, decimals }).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn streaming_writes_what_the_value_path_builds() {
        let d = decimals();
        for event in events() {
            // The path every event took before: a `Value`, keys rewritten, then annotated.
            let mut expected = serde_json::to_value(&event).unwrap();
            hex_wallets(&mut expected);
            d.annotate(&mut expected);
            assert_eq!(streamed(&event, &d), expected, "{event:?}");
        }
        for market in [3, 7] {
            let trade = Trade {
                market,
                fill_id: 1,
                seq: 2,
                timestamp_ms: 3,
                price_ticks: 1_234,
                size_lots: u64::MAX,
                taker_side: 1,
            };
            let candle = Candle {
                market,
                interval: Interval::ALL[0],
                start_ms: 60_000,
                open: 1,
                high: u64::MAX,
                low: 1,
                close: 7,
                volume_lots: 70,
                trades: 2,
            };
            let mut expected = serde_json::to_value(trade).unwrap();
            d.annotate(&mut expected);
            assert_eq!(streamed(&trade, &d), expected);
            let mut expected = serde_json::to_value(candle).unwrap();
            d.annotate(&mut expected);
            assert_eq!(streamed(&candle, &d), expected);
        }
        // The companions are there: 1,234 ticks of 0.1 are 123.4.
        let fill = streamed(&events()[4], &d);
        assert_eq!(fill["price_ticks_decimal"], "123.4");
        assert_eq!(fill["maker"], hex::encode([7u8; 32]));
    }

    #[test]
    fn only_structs_are_annotated() {
        let d = decimals();
        assert!(serde_json::to_string(&Annotated {
            value: &5u64,
            decimals: &d
        })
        .is_err());
        assert!(serde_json::to_string(&Annotated {
            value: &[1u8; 32],
            decimals: &d
        })
        .is_err());
    }
}
