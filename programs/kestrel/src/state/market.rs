use anchor_lang::prelude::*;

/// A trading pair with its lot/tick model, fees and settlement watermarks.
#[account(zero_copy)]
#[derive(Debug)]
pub struct Market {
    /// Exchange this market belongs to.
    pub exchange: Pubkey,
    /// Index within the exchange; part of the PDA seeds and of every signed order.
    pub index: u32,
    /// Asset index of the base mint.
    pub base_asset: u8,
    /// Asset index of the quote mint.
    pub quote_asset: u8,
    /// Bump of the market PDA.
    pub bump: u8,
    /// Reserved.
    pub _padding0: u8,
    /// Base atoms per base lot.
    pub base_lot_size: u64,
    /// Quote atoms per price tick per base lot.
    pub tick_size: u64,
    /// Smallest order size, in base lots.
    pub min_size_lots: u64,
    /// Fee charged to the maker of a fill, in basis points of the quote notional.
    pub maker_fee_bps: u16,
    /// Fee charged to the taker of a fill, in basis points of the quote notional.
    pub taker_fee_bps: u16,
    /// Announced maker fee, effective from `fee_effective_slot`.
    pub pending_maker_fee_bps: u16,
    /// Announced taker fee, effective from `fee_effective_slot`.
    pub pending_taker_fee_bps: u16,
    /// Slot from which the pending fees apply; 0 when none is pending.
    pub fee_effective_slot: u64,
    /// Highest fill id settled; fills must arrive with strictly greater ids.
    pub last_fill_id: u64,
    /// Highest batch id settled; batches must arrive with strictly greater ids.
    pub last_batch_id: u64,
    /// Fees accrued and not yet collected, in quote atoms (held in the quote vault).
    pub fees_accrued: u64,
    /// Fees ever collected, in quote atoms (cumulative).
    pub fees_collected: u64,
    /// Base lots ever settled (cumulative).
    pub volume_lots: u64,
    /// Reserved for upgrades.
    pub _reserved: [u8; 128],
}

const _: () = assert!(core::mem::size_of::<Market>() == 32 + 8 + 24 + 8 + 48 + 128);

impl Market {
    /// Account size including the discriminator.
    pub const SPACE: usize = 8 + core::mem::size_of::<Market>();

    /// Applies an announced fee change once its slot has come.
    pub fn apply_due_fee_change(&mut self, slot: u64) {
        if self.fee_effective_slot != 0 && slot >= self.fee_effective_slot {
            self.maker_fee_bps = self.pending_maker_fee_bps;
            self.taker_fee_bps = self.pending_taker_fee_bps;
            self.fee_effective_slot = 0;
        }
    }
}
