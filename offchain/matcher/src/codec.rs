//! Little-endian binary encoding of commands (journal records) and its primitives.
//!
//! Layout of a command: one tag byte, then the fields in declaration order; integers are
//! little-endian, `Option` is a 0/1 byte followed by the value when present, enums are one
//! byte. The encoding is canonical: decoding then encoding gives the same bytes.

use crate::command::{CancelTarget, Command, PlaceOrder, ReplaceOrder};
use crate::types::{ClientOrderId, Lots, OrderId, OrderType, SelfTradeMode, Side, Ticks, UserId};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended early.
    #[error("input ends early")]
    Truncated,
    /// A tag or enum byte has no meaning.
    #[error("invalid tag {0}")]
    InvalidTag(u8),
    /// Bytes remain after the value.
    #[error("trailing bytes")]
    Trailing,
}

/// Appends primitives to a byte buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
}

/// Reads primitives from a byte slice.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    pub(crate) fn bytes32(&mut self) -> Result<[u8; 32], DecodeError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32)?);
        Ok(b)
    }
    pub(crate) fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            t => Err(DecodeError::InvalidTag(t)),
        }
    }
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

pub(crate) fn side_to_u8(s: Side) -> u8 {
    match s {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

pub(crate) fn side_from_u8(b: u8) -> Result<Side, DecodeError> {
    match b {
        0 => Ok(Side::Buy),
        1 => Ok(Side::Sell),
        t => Err(DecodeError::InvalidTag(t)),
    }
}

pub(crate) fn order_type_to_u8(t: OrderType) -> u8 {
    match t {
        OrderType::Limit => 0,
        OrderType::ImmediateOrCancel => 1,
        OrderType::FillOrKill => 2,
        OrderType::PostOnly => 3,
        OrderType::PostOnlySlide => 4,
        OrderType::Market => 5,
    }
}

pub(crate) fn order_type_from_u8(b: u8) -> Result<OrderType, DecodeError> {
    Ok(match b {
        0 => OrderType::Limit,
        1 => OrderType::ImmediateOrCancel,
        2 => OrderType::FillOrKill,
        3 => OrderType::PostOnly,
        4 => OrderType::PostOnlySlide,
        5 => OrderType::Market,
        t => return Err(DecodeError::InvalidTag(t)),
    })
}

pub(crate) fn stp_to_u8(m: SelfTradeMode) -> u8 {
    match m {
        SelfTradeMode::CancelTaker => 0,
        SelfTradeMode::CancelMaker => 1,
        SelfTradeMode::CancelBoth => 2,
        SelfTradeMode::DecrementAndCancel => 3,
    }
}

pub(crate) fn stp_from_u8(b: u8) -> Result<SelfTradeMode, DecodeError> {
    Ok(match b {
        0 => SelfTradeMode::CancelTaker,
        1 => SelfTradeMode::CancelMaker,
        2 => SelfTradeMode::CancelBoth,
        3 => SelfTradeMode::DecrementAndCancel,
        t => return Err(DecodeError::InvalidTag(t)),
    })
}

impl Command {
    /// Appends the canonical encoding of this command to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            Command::Place(o) => {
                w.u8(1);
                w.u64(o.order_id.0);
                w.bytes(&o.user.0);
                w.opt_u64(o.client_order_id.map(|c| c.0));
                w.u8(side_to_u8(o.side));
                w.u64(o.price.0);
                w.u64(o.size.0);
                w.u8(order_type_to_u8(o.order_type));
                w.u8(stp_to_u8(o.self_trade));
                w.u64(o.nonce);
                w.u64(o.expiry);
            }
            Command::Cancel { user, target } => {
                w.u8(2);
                w.bytes(&user.0);
                match target {
                    CancelTarget::OrderId(id) => {
                        w.u8(0);
                        w.u64(id.0);
                    }
                    CancelTarget::ClientOrderId(cid) => {
                        w.u8(1);
                        w.u64(cid.0);
                    }
                }
            }
            Command::CancelAll { user, side } => {
                w.u8(3);
                w.bytes(&user.0);
                match side {
                    None => w.u8(0),
                    Some(s) => w.u8(side_to_u8(*s).saturating_add(1)),
                }
            }
            Command::Replace(r) => {
                w.u8(4);
                w.bytes(&r.user.0);
                w.u64(r.order_id.0);
                w.u64(r.price.0);
                w.u64(r.size.0);
                w.u64(r.nonce);
                w.u64(r.expiry);
            }
            Command::ExpireDue => w.u8(5),
        }
    }

    /// Decodes exactly one command occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader(bytes);
        let cmd = match r.u8()? {
            1 => Command::Place(PlaceOrder {
                order_id: OrderId(r.u64()?),
                user: UserId(r.bytes32()?),
                client_order_id: r.opt_u64()?.map(ClientOrderId),
                side: side_from_u8(r.u8()?)?,
                price: Ticks(r.u64()?),
                size: Lots(r.u64()?),
                order_type: order_type_from_u8(r.u8()?)?,
                self_trade: stp_from_u8(r.u8()?)?,
                nonce: r.u64()?,
                expiry: r.u64()?,
            }),
            2 => {
                let user = UserId(r.bytes32()?);
                let target = match r.u8()? {
                    0 => CancelTarget::OrderId(OrderId(r.u64()?)),
                    1 => CancelTarget::ClientOrderId(ClientOrderId(r.u64()?)),
                    t => return Err(DecodeError::InvalidTag(t)),
                };
                Command::Cancel { user, target }
            }
            3 => {
                let user = UserId(r.bytes32()?);
                let side = match r.u8()? {
                    0 => None,
                    1 => Some(Side::Buy),
                    2 => Some(Side::Sell),
                    t => return Err(DecodeError::InvalidTag(t)),
                };
                Command::CancelAll { user, side }
            }
            4 => Command::Replace(ReplaceOrder {
                user: UserId(r.bytes32()?),
                order_id: OrderId(r.u64()?),
                price: Ticks(r.u64()?),
                size: Lots(r.u64()?),
                nonce: r.u64()?,
                expiry: r.u64()?,
            }),
            5 => Command::ExpireDue,
            t => return Err(DecodeError::InvalidTag(t)),
        };
        r.finish()?;
        Ok(cmd)
    }
}
