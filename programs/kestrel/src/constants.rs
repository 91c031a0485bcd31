//! Seeds, limits and caps. Changing any of these changes the deployment's addresses or rules.

/// PDA seed of the exchange account: `[EXCHANGE_SEED, domain_id.to_le_bytes()]`.
pub const EXCHANGE_SEED: &[u8] = b"exchange";
/// PDA seed of a market: `[MARKET_SEED, exchange, market_index.to_le_bytes()]`.
pub const MARKET_SEED: &[u8] = b"market";
/// PDA seed of a token vault: `[VAULT_SEED, exchange, mint]`. Its token authority is the exchange.
pub const VAULT_SEED: &[u8] = b"vault";
/// PDA seed of a user account: `[USER_SEED, exchange, owner]`.
pub const USER_SEED: &[u8] = b"user";
/// PDA seed of an order record: `[ORDER_SEED, exchange, owner, nonce.to_le_bytes()]`.
pub const ORDER_SEED: &[u8] = b"order";

/// Number of assets (mints) one exchange can hold; a user account has one balance slot each.
pub const MAX_ASSETS: usize = 16;
/// Hard cap on maker and taker fees, in basis points (1%).
pub const MAX_FEE_BPS: u16 = 100;
/// Basis points in one whole.
pub const BPS_DENOMINATOR: u128 = 10_000;
/// Most fills one settle instruction may carry.
pub const MAX_FILLS_PER_BATCH: usize = 64;
/// Most orders one settle instruction may reference.
pub const MAX_ORDERS_PER_BATCH: usize = 64;
