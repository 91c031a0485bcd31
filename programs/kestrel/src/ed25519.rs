//! Verification of order signatures by introspecting the Ed25519 precompile instruction.
//!
//! The runtime verifies every precompile instruction before any program runs, so a transaction
//! that reaches `settle` carries valid signatures *over whatever bytes the precompile's offsets
//! point at*. This module makes sure those bytes are exactly the orders being settled: it loads
//! the precompile instruction through the checked instructions-sysvar loader, checks its program
//! id and signature count, allows its offsets to point only into itself or into the settle
//! instruction, bounds-checks every offset and length, and byte-compares the public key and
//! message found *at those offsets* with each order's owner and canonical encoding.

use crate::error::KestrelError;
use anchor_lang::prelude::*;
use solana_instructions_sysvar::load_instruction_at_checked;

/// Size of the header (signature count + padding) of an Ed25519 instruction.
pub const HEADER_LEN: usize = 2;
/// Size of one offsets entry.
pub const OFFSETS_LEN: usize = 14;
/// Instruction index meaning "the Ed25519 instruction itself".
pub const SELF_INDEX: u16 = u16::MAX;
const SIGNATURE_LEN: usize = 64;
const PUBKEY_LEN: usize = 32;

/// One signature the batch needs: the owner's key over these exact bytes.
pub struct ExpectedSignature<'a> {
    /// Order owner.
    pub signer: Pubkey,
    /// Canonical order bytes.
    pub message: &'a [u8],
}

/// The offsets entry of one signature, as laid out by the precompile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SignatureOffsets {
    /// Offset of the 64-byte signature.
    pub signature_offset: u16,
    /// Instruction holding the signature.
    pub signature_instruction_index: u16,
    /// Offset of the 32-byte public key.
    pub public_key_offset: u16,
    /// Instruction holding the public key.
    pub public_key_instruction_index: u16,
    /// Offset of the message.
    pub message_data_offset: u16,
    /// Length of the message.
    pub message_data_size: u16,
    /// Instruction holding the message.
    pub message_instruction_index: u16,
}

impl SignatureOffsets {
    /// Parses entry `i` of an Ed25519 instruction's data.
    pub fn parse(data: &[u8], i: usize) -> Option<SignatureOffsets> {
        let start = HEADER_LEN.checked_add(i.checked_mul(OFFSETS_LEN)?)?;
        let entry = data.get(start..start.checked_add(OFFSETS_LEN)?)?;
        let word = |k: usize| -> Option<u16> {
            let b = entry.get(k..k.checked_add(2)?)?;
            Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
        };
        Some(SignatureOffsets {
            signature_offset: word(0)?,
            signature_instruction_index: word(2)?,
            public_key_offset: word(4)?,
            public_key_instruction_index: word(6)?,
            message_data_offset: word(8)?,
            message_data_size: word(10)?,
            message_instruction_index: word(12)?,
        })
    }

    /// The 14 bytes of this entry.
    pub fn to_bytes(&self) -> [u8; OFFSETS_LEN] {
        let mut out = [0u8; OFFSETS_LEN];
        let words = [
            self.signature_offset,
            self.signature_instruction_index,
            self.public_key_offset,
            self.public_key_instruction_index,
            self.message_data_offset,
            self.message_data_size,
            self.message_instruction_index,
        ];
        for (chunk, word) in out.chunks_exact_mut(2).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

/// Checks that the Ed25519 instruction at `ed25519_index` verified exactly `expected`, in order.
/// `settle_index` and `settle_data` are the current instruction's index and data.
pub fn verify_signatures(
    instructions_sysvar: &AccountInfo,
    ed25519_index: u16,
    settle_index: u16,
    settle_data: &[u8],
    expected: &[ExpectedSignature],
) -> Result<()> {
    let ix = load_instruction_at_checked(usize::from(ed25519_index), instructions_sysvar)
        .map_err(|_| error!(KestrelError::SignatureWrongProgram))?;
    require_keys_eq!(
        ix.program_id,
        solana_sdk_ids::ed25519_program::ID,
        KestrelError::SignatureWrongProgram
    );
    let data = ix.data.as_slice();
    let count = usize::from(*data.first().ok_or(KestrelError::SignatureBadHeader)?);
    let padding = *data.get(1).ok_or(KestrelError::SignatureBadHeader)?;
    require!(
        count == expected.len() && padding == 0,
        KestrelError::SignatureBadHeader
    );
    let table_end = count
        .checked_mul(OFFSETS_LEN)
        .and_then(|n| n.checked_add(HEADER_LEN))
        .ok_or(KestrelError::SignatureBadHeader)?;
    require!(data.len() >= table_end, KestrelError::SignatureBadHeader);

    let source = |index: u16| -> Result<&[u8]> {
        if index == SELF_INDEX || index == ed25519_index {
            Ok(data)
        } else if index == settle_index {
            Ok(settle_data)
        } else {
            err!(KestrelError::SignatureBadInstructionIndex)
        }
    };

    for (i, want) in expected.iter().enumerate() {
        let offsets = SignatureOffsets::parse(data, i).ok_or(KestrelError::SignatureBadHeader)?;
        let signature_source = source(offsets.signature_instruction_index)?;
        let key_source = source(offsets.public_key_instruction_index)?;
        let message_source = source(offsets.message_instruction_index)?;

        slice(signature_source, offsets.signature_offset, SIGNATURE_LEN)?;
        let key = slice(key_source, offsets.public_key_offset, PUBKEY_LEN)?;
        let message = slice(
            message_source,
            offsets.message_data_offset,
            usize::from(offsets.message_data_size),
        )?;
        require!(
            key == want.signer.as_ref(),
            KestrelError::SignaturePubkeyMismatch
        );
        require!(
            message == want.message,
            KestrelError::SignatureMessageMismatch
        );
    }
    Ok(())
}

fn slice(data: &[u8], offset: u16, len: usize) -> Result<&[u8]> {
    let start = usize::from(offset);
    let end = start
        .checked_add(len)
        .ok_or(KestrelError::SignatureOffsetOutOfBounds)?;
    data.get(start..end)
        .ok_or_else(|| error!(KestrelError::SignatureOffsetOutOfBounds))
}
