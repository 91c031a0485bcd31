//! Snapshots of an engine and its state hash.
//!
//! A snapshot holds the configuration, the three counters (next event sequence, next fill id,
//! next priority stamp) and every resting order in time priority. Time priority alone fixes
//! both the FIFO of each level and each user's list, so decoding rebuilds an engine that
//! behaves identically. The encoding is canonical, and [`Engine::state_hash`] hashes it.

use crate::book::NewResting;
use crate::codec::{
    order_type_from_u8, order_type_to_u8, side_from_u8, side_to_u8, stp_from_u8, stp_to_u8,
    DecodeError, Reader, Writer,
};
use crate::config::{ConfigError, MarketConfig};
use crate::engine::Engine;
use crate::types::{ClientOrderId, Lots, OrderId, Side, Ticks, UserId};

const MAGIC: &[u8; 8] = b"KSTRLSN1";

/// Why a snapshot could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot of this format version.
    #[error("bad snapshot magic or version")]
    BadMagic,
    /// The bytes do not decode.
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The configuration inside is invalid.
    #[error("snapshot configuration invalid: {0}")]
    Config(#[from] ConfigError),
    /// The orders break an invariant of the book (duplicate id, bad size or price, crossed
    /// book, priorities out of order, too many orders, an order type that cannot rest).
    #[error("snapshot order {0} breaks a book invariant")]
    Invariant(u64),
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Engine {
    /// Appends a snapshot of the whole engine to `out`.
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        let orders = self.all_orders();
        let c = &self.config;
        let mut w = Writer(out);
        w.bytes(MAGIC);
        for v in [
            c.market_id,
            c.tick_size,
            c.lot_size,
            c.min_size.0,
            c.max_size.0,
        ] {
            w.u64(v);
        }
        w.u64(c.min_price.0);
        w.u64(c.max_price.0);
        w.u32(c.max_orders);
        w.u64(self.next_seq);
        w.u64(self.next_fill_id);
        w.u64(self.next_stamp);
        w.u32(orders.len() as u32);
        for o in &orders {
            w.u64(o.order_id.0);
            w.bytes(&o.user.0);
            w.opt_u64(o.client_order_id.map(|c| c.0));
            w.u8(side_to_u8(o.side));
            w.u8(order_type_to_u8(o.order_type));
            w.u8(stp_to_u8(o.self_trade));
            w.u64(o.price.0);
            w.u64(o.remaining.0);
            w.u64(o.nonce);
            w.u64(o.expiry);
            w.u64(o.priority);
        }
    }

    /// Rebuilds an engine from [`Engine::encode_snapshot`] output, checking every invariant.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let config = MarketConfig {
            market_id: r.u64()?,
            tick_size: r.u64()?,
            lot_size: r.u64()?,
            min_size: Lots(r.u64()?),
            max_size: Lots(r.u64()?),
            min_price: Ticks(r.u64()?),
            max_price: Ticks(r.u64()?),
            max_orders: r.u32()?,
        };
        let mut engine = Engine::new(config)?;
        engine.next_seq = r.u64()?;
        engine.next_fill_id = r.u64()?;
        engine.next_stamp = r.u64()?;
        let count = r.u32()?;
        if count > config.max_orders || engine.next_seq == 0 || engine.next_fill_id == 0 {
            return Err(SnapshotError::Invariant(0));
        }
        let mut last_stamp = 0u64;
        for _ in 0..count {
            let new = NewResting {
                id: OrderId(r.u64()?),
                user: UserId(r.bytes32()?),
                client_order_id: r.opt_u64()?.map(ClientOrderId),
                side: side_from_u8(r.u8()?)?,
                order_type: order_type_from_u8(r.u8()?)?,
                self_trade: stp_from_u8(r.u8()?)?,
                price: Ticks(r.u64()?),
                size: Lots(r.u64()?),
                nonce: r.u64()?,
                expiry: r.u64()?,
                stamp: r.u64()?,
            };
            let bad = new.stamp <= last_stamp
                || new.stamp >= engine.next_stamp
                || new.size.0 == 0
                || new.size > config.max_size
                || !config.price_in_band(new.price)
                || !new.order_type.may_rest()
                || engine.book.find(new.id).is_some()
                || new
                    .client_order_id
                    .is_some_and(|c| engine.book.find_client(&new.user, c).is_some());
            if bad {
                return Err(SnapshotError::Invariant(new.id.0));
            }
            last_stamp = new.stamp;
            engine.book.insert(new, None);
        }
        r.finish()?;
        if let (Some(bid), Some(ask)) = (engine.best(Side::Buy), engine.best(Side::Sell)) {
            if bid.price >= ask.price {
                return Err(SnapshotError::Invariant(0));
            }
        }
        Ok(engine)
    }

    /// A 64-bit FNV-1a hash of the canonical snapshot: equal hashes mean equal books,
    /// counters and configuration (allocates; not for the hot path).
    pub fn state_hash(&self) -> u64 {
        let mut bytes = Vec::new();
        self.encode_snapshot(&mut bytes);
        fnv1a(&bytes)
    }
}
