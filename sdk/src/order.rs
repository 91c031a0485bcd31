//! Building and signing orders.

use crate::protocol::{Order, OrderType, SelfTrade, Side, ORDER_LEN};
use crate::signer::OrderSigner;
use crate::Error;
use solana_sdk::pubkey::Pubkey;

/// An order under construction. Prices are in ticks and sizes in lots of the market.
///
/// ```
/// use kestrel_sdk::OrderBuilder;
/// let order = OrderBuilder::limit(0).buy().price(1_500).size(20).post_only();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBuilder {
    market_index: u32,
    side: Option<Side>,
    order_type: OrderType,
    self_trade: SelfTrade,
    price_ticks: Option<u64>,
    size_lots: Option<u64>,
    expiry: i64,
    client_order_id: u64,
}

impl OrderBuilder {
    /// A limit order (good until cancelled unless an expiry is set) on `market_index`.
    pub fn limit(market_index: u32) -> Self {
        OrderBuilder {
            market_index,
            side: None,
            order_type: OrderType::Limit,
            self_trade: SelfTrade::CancelTaker,
            price_ticks: None,
            size_lots: None,
            expiry: 0,
            client_order_id: 0,
        }
    }

    /// A market order; `price` is then its protective bound (the worst price accepted).
    pub fn market(market_index: u32) -> Self {
        OrderBuilder {
            order_type: OrderType::Market,
            ..Self::limit(market_index)
        }
    }

    /// Buy (pay quote, receive base).
    pub fn buy(mut self) -> Self {
        self.side = Some(Side::Buy);
        self
    }

    /// Sell (pay base, receive quote).
    pub fn sell(mut self) -> Self {
        self.side = Some(Side::Sell);
        self
    }

    /// Limit price (or protective bound) in ticks.
    pub fn price(mut self, ticks: u64) -> Self {
        self.price_ticks = Some(ticks);
        self
    }

    /// Size in base lots.
    pub fn size(mut self, lots: u64) -> Self {
        self.size_lots = Some(lots);
        self
    }

    /// Rejected instead of taking liquidity.
    pub fn post_only(mut self) -> Self {
        self.order_type = OrderType::PostOnly;
        self
    }

    /// Re-priced behind the best opposite price instead of taking liquidity.
    pub fn post_only_slide(mut self) -> Self {
        self.order_type = OrderType::PostOnlySlide;
        self
    }

    /// Immediate or cancel.
    pub fn ioc(mut self) -> Self {
        self.order_type = OrderType::ImmediateOrCancel;
        self
    }

    /// Fill or kill.
    pub fn fok(mut self) -> Self {
        self.order_type = OrderType::FillOrKill;
        self
    }

    /// Self-trade prevention mode (default: cancel the taker).
    pub fn self_trade(mut self, mode: SelfTrade) -> Self {
        self.self_trade = mode;
        self
    }

    /// Good until `unix_seconds`.
    pub fn expires_at(mut self, unix_seconds: i64) -> Self {
        self.expiry = unix_seconds;
        self
    }

    /// Client order id.
    pub fn client_id(mut self, id: u64) -> Self {
        self.client_order_id = id;
        self
    }

    /// The order for `owner` on `exchange` with `nonce`.
    pub fn build(&self, exchange: Pubkey, owner: Pubkey, nonce: u64) -> Result<Order, Error> {
        Ok(Order {
            exchange,
            owner,
            market_index: self.market_index,
            side: self.side.ok_or(Error::Incomplete("side"))?,
            order_type: self.order_type,
            self_trade: self.self_trade,
            price_ticks: self.price_ticks.ok_or(Error::Incomplete("price"))?,
            size_lots: self.size_lots.ok_or(Error::Incomplete("size"))?,
            nonce,
            expiry: self.expiry,
            client_order_id: self.client_order_id,
        })
    }

    /// Builds the order for `signer` and signs it.
    pub fn sign(
        &self,
        exchange: Pubkey,
        signer: &impl OrderSigner,
        nonce: u64,
    ) -> Result<SignedOrder, Error> {
        let order = self.build(exchange, signer.pubkey(), nonce)?;
        let bytes = order.encode();
        Ok(SignedOrder {
            order,
            signature: signer.sign_message(&bytes),
        })
    }
}

/// An order with its owner's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedOrder {
    /// The order.
    pub order: Order,
    /// Ed25519 signature of `order.encode()` by `order.owner`.
    pub signature: [u8; 64],
}

impl SignedOrder {
    /// The canonical bytes that were signed.
    pub fn bytes(&self) -> [u8; ORDER_LEN] {
        self.order.encode()
    }
}
