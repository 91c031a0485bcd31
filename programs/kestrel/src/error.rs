//! Program errors. Codes are stable: Anchor numbers them from 6000 in declaration order, so a
//! new variant is only ever appended at the end. Never reorder or delete a variant. The group
//! comments give the code of their first variant.

use anchor_lang::prelude::*;

#[error_code]
pub enum KestrelError {
    // --- 6000: arithmetic and configuration ---
    #[msg("arithmetic overflow")]
    MathOverflow,
    #[msg("fee above the hard cap")]
    FeeAboveCap,
    #[msg("invalid market parameters (lot size, tick size or min size is zero)")]
    InvalidMarketParams,
    #[msg("asset table is full")]
    AssetTableFull,
    #[msg("asset index or mint does not match the exchange asset table")]
    AssetMismatch,
    #[msg("market base and quote assets must differ")]
    MarketSameAsset,
    #[msg("market index must equal the exchange's next market index")]
    MarketIndexMismatch,
    #[msg("withdrawal delay must be at least one slot")]
    InvalidWithdrawalDelay,

    // --- 6008: authority and pause ---
    #[msg("signer is not the exchange admin")]
    Unauthorized,
    #[msg("signer is not the exchange operator")]
    NotOperator,
    #[msg("settlement is paused")]
    SettlementPaused,
    #[msg("deposits are paused")]
    DepositsPaused,
    #[msg("signer is not the owner of the user account")]
    NotOwner,
    #[msg("new operator must differ from the current one")]
    OperatorUnchanged,

    // --- 6014: balances and withdrawals ---
    #[msg("amount must be greater than zero")]
    ZeroAmount,
    #[msg("insufficient available balance")]
    InsufficientBalance,
    #[msg("no withdrawal is pending for this asset")]
    NoPendingWithdrawal,
    #[msg("the withdrawal delay has not elapsed")]
    WithdrawalNotReady,
    #[msg("token account mint does not match the asset")]
    WrongMint,
    #[msg("vault account does not match the asset")]
    WrongVault,
    #[msg("deposit credited nothing (vault balance did not increase)")]
    NothingReceived,

    // --- 6021: cancel floor ---
    #[msg("nonce floor may only increase")]
    CancelFloorNotIncreasing,

    // --- 6022: order validity ---
    #[msg("order bytes have the wrong length or domain tag")]
    InvalidOrderEncoding,
    #[msg("order is for another exchange deployment")]
    InvalidOrderExchange,
    #[msg("order is for another market")]
    InvalidOrderMarket,
    #[msg("order side, type or self-trade field is out of range, or reserved flags are set")]
    InvalidOrderField,
    #[msg("order price or size is zero or below the market minimum")]
    InvalidOrderSize,
    #[msg("order has expired")]
    InvalidOrderExpired,
    #[msg("order nonce is below the owner's on-chain cancel floor")]
    InvalidOrderCancelled,
    #[msg("order owner does not match the user account")]
    InvalidOrderOwner,

    // --- 6030: signature introspection ---
    #[msg("the referenced instruction is not the Ed25519 precompile")]
    SignatureWrongProgram,
    #[msg("Ed25519 instruction header or signature count is invalid")]
    SignatureBadHeader,
    #[msg("Ed25519 offsets point to a disallowed instruction")]
    SignatureBadInstructionIndex,
    #[msg("Ed25519 offset or length is out of bounds")]
    SignatureOffsetOutOfBounds,
    #[msg("signed public key does not match the order owner")]
    SignaturePubkeyMismatch,
    #[msg("signed message does not match the order bytes")]
    SignatureMessageMismatch,
    #[msg("the batch has new orders but names no Ed25519 instruction")]
    SignatureMissing,

    // --- 6037: settlement ---
    #[msg("batch is empty or too large")]
    SettlementBadBatch,
    #[msg("batch id must be greater than the market's last batch id")]
    SettlementBatchReplayed,
    #[msg("fill id must be greater than the market's last fill id")]
    SettlementFillReplayed,
    #[msg("fill references an order outside the batch")]
    SettlementBadOrderRef,
    #[msg("maker and taker must be on opposite sides")]
    SettlementSameSide,
    #[msg("maker and taker have the same owner")]
    SettlementSelfTrade,
    #[msg("fill price trades through an order's limit")]
    SettlementPriceThroughLimit,
    #[msg("fill exceeds the order's remaining size")]
    SettlementOverfill,
    #[msg("fill size or price is zero")]
    SettlementZeroFill,
    #[msg("remaining accounts do not match the batch layout")]
    SettlementAccountsMismatch,
    #[msg("the same account appears twice in the batch")]
    SettlementDuplicateAccount,
    #[msg("order record address is not the canonical PDA for (owner, nonce)")]
    SettlementBadOrderRecord,
    #[msg("order record exists with different terms")]
    SettlementOrderRecordMismatch,
    #[msg("an order passed as recorded has no on-chain record")]
    SettlementOrderNotRecorded,
    #[msg("insufficient balance to settle the fill")]
    SettlementInsufficientBalance,

    // --- 6052: account creation ---
    #[msg("the account at this address already exists")]
    AlreadyInitialized,
}

#[cfg(test)]
mod tests {
    use super::KestrelError;

    /// Clients match on these numbers: a reordering would silently change their meaning.
    #[test]
    fn codes_are_stable() {
        assert_eq!(u32::from(KestrelError::MathOverflow), 6000);
        assert_eq!(u32::from(KestrelError::Unauthorized), 6008);
        assert_eq!(u32::from(KestrelError::ZeroAmount), 6014);
        assert_eq!(u32::from(KestrelError::InvalidOrderEncoding), 6022);
        assert_eq!(u32::from(KestrelError::SignatureWrongProgram), 6030);
        assert_eq!(u32::from(KestrelError::SettlementBadBatch), 6037);
        assert_eq!(u32::from(KestrelError::AlreadyInitialized), 6052);
    }
}
