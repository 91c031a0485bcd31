//! The canonical bytes that users sign. The chain is the final judge of them, so this module is
//! the single definition; `docs/protocol.md` documents it field by field with test vectors.
//!
//! Every message starts with a 16-byte domain tag whose first byte is `0xFF`. A Solana message
//! starts with either a legacy header (required-signature count, < 128 in practice) or a
//! versioned prefix `0x80 | version`; `0xFF` would be version 127, which does not exist, so a
//! signed Kestrel message can never be replayed as a transaction message. The tag also names the
//! message kind, so an order signature can never be taken for a cancel and vice versa. All
//! integers are little-endian.

use anchor_lang::prelude::*;

/// Domain tag of an order.
pub const ORDER_TAG: [u8; 16] = *b"\xffkestrel-order-1";
/// Domain tag of a cancel of one order (by the order's nonce).
pub const CANCEL_TAG: [u8; 16] = *b"\xffkestrel-cancel1";
/// Domain tag of a cancel-all (every order below a nonce bound).
pub const CANCEL_ALL_TAG: [u8; 16] = *b"\xffkestrel-cxall-1";
/// Domain tag of an off-chain withdrawal request.
pub const WITHDRAW_TAG: [u8; 16] = *b"\xffkestrel-wdraw-1";

/// Length of an encoded order.
pub const ORDER_LEN: usize = 128;
/// Length of an encoded cancel.
pub const CANCEL_LEN: usize = 104;
/// Length of an encoded cancel-all.
pub const CANCEL_ALL_LEN: usize = 104;
/// Length of an encoded withdrawal request.
pub const WITHDRAW_LEN: usize = 136;

/// Byte offset of the owner's public key inside an encoded order, cancel, cancel-all and
/// withdrawal (they share the header `tag | exchange | owner`).
pub const OWNER_OFFSET: usize = 48;
/// Byte offset of the exchange account key inside every message.
pub const EXCHANGE_OFFSET: usize = 16;

/// Order side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Side {
    /// Pays quote, receives base.
    Buy = 0,
    /// Pays base, receives quote.
    Sell = 1,
}

impl Side {
    /// Parses the wire byte.
    pub fn from_u8(byte: u8) -> Option<Side> {
        match byte {
            0 => Some(Side::Buy),
            1 => Some(Side::Sell),
            _ => None,
        }
    }

    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Time in force and execution style, as signed. The chain treats them all alike (a limit
/// price, a size, an expiry); the matcher gives them their meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OrderType {
    /// Rests until filled, cancelled or expired.
    Limit = 0,
    /// Immediate or cancel.
    ImmediateOrCancel = 1,
    /// Fill or kill.
    FillOrKill = 2,
    /// Rejected if it would take liquidity.
    PostOnly = 3,
    /// Re-priced one tick behind the best opposite price if it would take liquidity.
    PostOnlySlide = 4,
    /// Takes liquidity up to the protective price bound in `price_ticks`.
    Market = 5,
}

impl OrderType {
    /// Parses the wire byte.
    pub fn from_u8(byte: u8) -> Option<OrderType> {
        Some(match byte {
            0 => OrderType::Limit,
            1 => OrderType::ImmediateOrCancel,
            2 => OrderType::FillOrKill,
            3 => OrderType::PostOnly,
            4 => OrderType::PostOnlySlide,
            5 => OrderType::Market,
            _ => return None,
        })
    }
}

/// Self-trade prevention mode chosen by the order's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SelfTrade {
    /// Cancel the incoming order.
    CancelTaker = 0,
    /// Cancel the resting order and keep matching.
    CancelMaker = 1,
    /// Cancel both.
    CancelBoth = 2,
    /// Reduce both by the overlap; cancel whichever reaches zero.
    DecrementAndCancel = 3,
}

impl SelfTrade {
    /// Parses the wire byte.
    pub fn from_u8(byte: u8) -> Option<SelfTrade> {
        Some(match byte {
            0 => SelfTrade::CancelTaker,
            1 => SelfTrade::CancelMaker,
            2 => SelfTrade::CancelBoth,
            3 => SelfTrade::DecrementAndCancel,
            _ => return None,
        })
    }
}

/// Why bytes could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Wrong length.
    Length,
    /// Wrong domain tag for this message kind.
    Tag,
    /// A field holds a value outside its enumeration, or reserved bytes are not zero.
    Field,
}

/// A signed limit order, as the owner's wallet signs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Exchange account (binds program id and deployment).
    pub exchange: Pubkey,
    /// Owner's wallet; the signer.
    pub owner: Pubkey,
    /// Market index within the exchange.
    pub market_index: u32,
    /// Buy or sell.
    pub side: Side,
    /// Time in force / execution style.
    pub order_type: OrderType,
    /// Self-trade prevention mode.
    pub self_trade: SelfTrade,
    /// Limit price in ticks (for `Market`, the protective bound).
    pub price_ticks: u64,
    /// Size in base lots.
    pub size_lots: u64,
    /// Per-owner unique nonce; orders below the owner's on-chain floor are dead.
    pub nonce: u64,
    /// Unix seconds after which the order may not fill; 0 means good until cancelled.
    pub expiry: i64,
    /// Free identifier chosen by the client.
    pub client_order_id: u64,
}

impl Order {
    /// The canonical 128 bytes.
    pub fn encode(&self) -> [u8; ORDER_LEN] {
        let mut out = [0u8; ORDER_LEN];
        out[0..16].copy_from_slice(&ORDER_TAG);
        out[16..48].copy_from_slice(self.exchange.as_ref());
        out[48..80].copy_from_slice(self.owner.as_ref());
        out[80..84].copy_from_slice(&self.market_index.to_le_bytes());
        out[84] = self.side as u8;
        out[85] = self.order_type as u8;
        out[86] = self.self_trade as u8;
        out[87] = 0;
        out[88..96].copy_from_slice(&self.price_ticks.to_le_bytes());
        out[96..104].copy_from_slice(&self.size_lots.to_le_bytes());
        out[104..112].copy_from_slice(&self.nonce.to_le_bytes());
        out[112..120].copy_from_slice(&self.expiry.to_le_bytes());
        out[120..128].copy_from_slice(&self.client_order_id.to_le_bytes());
        out
    }

    /// Parses canonical bytes; rejects any other length, tag, or out-of-range field.
    pub fn decode(bytes: &[u8]) -> core::result::Result<Order, DecodeError> {
        let b: &[u8; ORDER_LEN] = bytes.try_into().map_err(|_| DecodeError::Length)?;
        if b[0..16] != ORDER_TAG {
            return Err(DecodeError::Tag);
        }
        if b[87] != 0 {
            return Err(DecodeError::Field);
        }
        Ok(Order {
            exchange: pubkey_at(b, 16),
            owner: pubkey_at(b, 48),
            market_index: u32::from_le_bytes(array_at(b, 80)),
            side: Side::from_u8(b[84]).ok_or(DecodeError::Field)?,
            order_type: OrderType::from_u8(b[85]).ok_or(DecodeError::Field)?,
            self_trade: SelfTrade::from_u8(b[86]).ok_or(DecodeError::Field)?,
            price_ticks: u64::from_le_bytes(array_at(b, 88)),
            size_lots: u64::from_le_bytes(array_at(b, 96)),
            nonce: u64::from_le_bytes(array_at(b, 104)),
            expiry: i64::from_le_bytes(array_at(b, 112)),
            client_order_id: u64::from_le_bytes(array_at(b, 120)),
        })
    }
}

/// Cancel one order, named by its nonce. Replaying it is harmless: it can only cancel that order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancel {
    /// Exchange account.
    pub exchange: Pubkey,
    /// Owner of the order; the signer.
    pub owner: Pubkey,
    /// Market of the order.
    pub market_index: u32,
    /// Nonce of the order to cancel.
    pub order_nonce: u64,
    /// Unix seconds after which the request is refused; 0 means none.
    pub expiry: i64,
}

impl Cancel {
    /// The canonical 104 bytes.
    pub fn encode(&self) -> [u8; CANCEL_LEN] {
        let mut out = [0u8; CANCEL_LEN];
        out[0..16].copy_from_slice(&CANCEL_TAG);
        out[16..48].copy_from_slice(self.exchange.as_ref());
        out[48..80].copy_from_slice(self.owner.as_ref());
        out[80..84].copy_from_slice(&self.market_index.to_le_bytes());
        out[88..96].copy_from_slice(&self.order_nonce.to_le_bytes());
        out[96..104].copy_from_slice(&self.expiry.to_le_bytes());
        out
    }

    /// Parses canonical bytes.
    pub fn decode(bytes: &[u8]) -> core::result::Result<Cancel, DecodeError> {
        let b: &[u8; CANCEL_LEN] = bytes.try_into().map_err(|_| DecodeError::Length)?;
        if b[0..16] != CANCEL_TAG {
            return Err(DecodeError::Tag);
        }
        if b[84..88] != [0; 4] {
            return Err(DecodeError::Field);
        }
        Ok(Cancel {
            exchange: pubkey_at(b, 16),
            owner: pubkey_at(b, 48),
            market_index: u32::from_le_bytes(array_at(b, 80)),
            order_nonce: u64::from_le_bytes(array_at(b, 88)),
            expiry: i64::from_le_bytes(array_at(b, 96)),
        })
    }
}

/// Which side(s) a cancel-all covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CancelSide {
    /// Only bids.
    Buy = 0,
    /// Only asks.
    Sell = 1,
    /// Both sides.
    Both = 2,
}

/// Market index meaning "every market" in a cancel-all.
pub const ALL_MARKETS: u32 = u32::MAX;

/// Cancel every open order whose nonce is below `up_to_nonce` (in one market or all). The bound
/// makes a replay harmless: it can never cancel an order signed after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelAll {
    /// Exchange account.
    pub exchange: Pubkey,
    /// Owner of the orders; the signer.
    pub owner: Pubkey,
    /// Market, or [`ALL_MARKETS`].
    pub market_index: u32,
    /// Side filter.
    pub side: CancelSide,
    /// Orders with a nonce strictly below this are cancelled.
    pub up_to_nonce: u64,
    /// Unix seconds after which the request is refused; 0 means none.
    pub expiry: i64,
}

impl CancelAll {
    /// The canonical 104 bytes.
    pub fn encode(&self) -> [u8; CANCEL_ALL_LEN] {
        let mut out = [0u8; CANCEL_ALL_LEN];
        out[0..16].copy_from_slice(&CANCEL_ALL_TAG);
        out[16..48].copy_from_slice(self.exchange.as_ref());
        out[48..80].copy_from_slice(self.owner.as_ref());
        out[80..84].copy_from_slice(&self.market_index.to_le_bytes());
        out[84] = self.side as u8;
        out[88..96].copy_from_slice(&self.up_to_nonce.to_le_bytes());
        out[96..104].copy_from_slice(&self.expiry.to_le_bytes());
        out
    }

    /// Parses canonical bytes.
    pub fn decode(bytes: &[u8]) -> core::result::Result<CancelAll, DecodeError> {
        let b: &[u8; CANCEL_ALL_LEN] = bytes.try_into().map_err(|_| DecodeError::Length)?;
        if b[0..16] != CANCEL_ALL_TAG {
            return Err(DecodeError::Tag);
        }
        if b[85..88] != [0; 3] {
            return Err(DecodeError::Field);
        }
        let side = match b[84] {
            0 => CancelSide::Buy,
            1 => CancelSide::Sell,
            2 => CancelSide::Both,
            _ => return Err(DecodeError::Field),
        };
        Ok(CancelAll {
            exchange: pubkey_at(b, 16),
            owner: pubkey_at(b, 48),
            market_index: u32::from_le_bytes(array_at(b, 80)),
            side,
            up_to_nonce: u64::from_le_bytes(array_at(b, 88)),
            expiry: i64::from_le_bytes(array_at(b, 96)),
        })
    }
}

/// An off-chain request that the operator co-sign an immediate withdrawal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WithdrawRequest {
    /// Exchange account.
    pub exchange: Pubkey,
    /// Owner of the balance; the signer.
    pub owner: Pubkey,
    /// Mint to withdraw.
    pub mint: Pubkey,
    /// Amount in atoms of `mint`.
    pub amount: u64,
    /// Per-owner unique request nonce.
    pub nonce: u64,
    /// Unix seconds after which the request is refused; 0 means none.
    pub expiry: i64,
}

impl WithdrawRequest {
    /// The canonical 136 bytes.
    pub fn encode(&self) -> [u8; WITHDRAW_LEN] {
        let mut out = [0u8; WITHDRAW_LEN];
        out[0..16].copy_from_slice(&WITHDRAW_TAG);
        out[16..48].copy_from_slice(self.exchange.as_ref());
        out[48..80].copy_from_slice(self.owner.as_ref());
        out[80..112].copy_from_slice(self.mint.as_ref());
        out[112..120].copy_from_slice(&self.amount.to_le_bytes());
        out[120..128].copy_from_slice(&self.nonce.to_le_bytes());
        out[128..136].copy_from_slice(&self.expiry.to_le_bytes());
        out
    }

    /// Parses canonical bytes.
    pub fn decode(bytes: &[u8]) -> core::result::Result<WithdrawRequest, DecodeError> {
        let b: &[u8; WITHDRAW_LEN] = bytes.try_into().map_err(|_| DecodeError::Length)?;
        if b[0..16] != WITHDRAW_TAG {
            return Err(DecodeError::Tag);
        }
        Ok(WithdrawRequest {
            exchange: pubkey_at(b, 16),
            owner: pubkey_at(b, 48),
            mint: pubkey_at(b, 80),
            amount: u64::from_le_bytes(array_at(b, 112)),
            nonce: u64::from_le_bytes(array_at(b, 120)),
            expiry: i64::from_le_bytes(array_at(b, 128)),
        })
    }
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at.saturating_add(N)) {
        out.copy_from_slice(src);
    }
    out
}

fn pubkey_at(bytes: &[u8], at: usize) -> Pubkey {
    Pubkey::new_from_array(array_at(bytes, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            exchange: Pubkey::new_from_array([1; 32]),
            owner: Pubkey::new_from_array([2; 32]),
            market_index: 7,
            side: Side::Sell,
            order_type: OrderType::PostOnly,
            self_trade: SelfTrade::CancelBoth,
            price_ticks: 1_234,
            size_lots: 99,
            nonce: 42,
            expiry: 1_900_000_000,
            client_order_id: 5,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let o = order();
        assert_eq!(Order::decode(&o.encode()), Ok(o));
        let c = Cancel {
            exchange: o.exchange,
            owner: o.owner,
            market_index: 3,
            order_nonce: 9,
            expiry: 0,
        };
        assert_eq!(Cancel::decode(&c.encode()), Ok(c));
        let a = CancelAll {
            exchange: o.exchange,
            owner: o.owner,
            market_index: ALL_MARKETS,
            side: CancelSide::Both,
            up_to_nonce: 100,
            expiry: 5,
        };
        assert_eq!(CancelAll::decode(&a.encode()), Ok(a));
        let w = WithdrawRequest {
            exchange: o.exchange,
            owner: o.owner,
            mint: Pubkey::new_from_array([3; 32]),
            amount: 10,
            nonce: 1,
            expiry: 2,
        };
        assert_eq!(WithdrawRequest::decode(&w.encode()), Ok(w));
    }

    #[test]
    fn kinds_cannot_be_confused_and_bad_fields_are_refused() {
        let bytes = order().encode();
        assert_eq!(Order::decode(&bytes[..127]), Err(DecodeError::Length));
        let mut wrong_tag = bytes;
        wrong_tag[0..16].copy_from_slice(&CANCEL_TAG);
        assert_eq!(Order::decode(&wrong_tag), Err(DecodeError::Tag));
        for (at, value) in [(84usize, 2u8), (85, 6), (86, 4), (87, 1)] {
            let mut bad = bytes;
            bad[at] = value;
            assert_eq!(Order::decode(&bad), Err(DecodeError::Field), "byte {at}");
        }
        assert_eq!(bytes[0], 0xff, "first byte must not start a Solana message");
    }
}
