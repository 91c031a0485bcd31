//! Signed intent (DESIGN.md rule 1): every way to tamper with the Ed25519 precompile instruction
//! or the signed bytes of a batch is refused, and a refused batch changes nothing.
//!
//! Two layers answer. The precompile verifies every signature over whatever bytes its offsets
//! name before any program runs; a mutation it catches fails the transaction at instruction 0
//! with the precompile's code. Mutations that keep the precompile happy (offsets still naming
//! validly signed bytes, header fields it ignores) must be caught by the program's own
//! introspection with its exact `Signature*` error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod program_test;
mod settle_security;

use kestrel::ed25519::{SignatureOffsets, SELF_INDEX};
use kestrel::encoding::{Order, Side, ORDER_LEN, OWNER_OFFSET};
use kestrel::error::KestrelError;
use program_test::*;
use settle_security::*;
use solana_program_test::BanksClientError;
use solana_sdk::instruction::{AccountMeta, Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

/// The standard batch on one exchange, against which tampered copies are sent one after the
/// other: each must fail and leave every account as it was, so the next starts from the same
/// state.
struct Bench {
    p: Pair,
    before: Snapshot,
}

impl Bench {
    async fn new() -> Bench {
        let mut p = Pair::new().await;
        let before = p.snapshot().await;
        Bench { p, before }
    }

    /// Sends the batch's instructions after `tamper`; asserts nothing changed.
    async fn attempt(
        &mut self,
        tamper: impl FnOnce(&Pair, &mut Vec<Instruction>),
    ) -> Result<(), BanksClientError> {
        let mut ixs = self.p.ixs();
        tamper(&self.p, &mut ixs);
        let result = send_settle_now(&mut self.p.t, &ixs).await;
        assert!(result.is_err(), "tampered batch was accepted");
        assert_unchanged(&mut self.p.t, &self.before).await;
        result
    }

    /// Sends the batch with offsets entry `entry` edited; `edit` also sees the untampered
    /// instructions.
    async fn attempt_entry(
        &mut self,
        entry: usize,
        edit: impl FnOnce(&mut SignatureOffsets, &[Instruction]),
    ) -> Result<(), BanksClientError> {
        self.attempt(|_, ixs| {
            let original = ixs.clone();
            edit_offsets(&mut ixs[0], entry, |o| edit(o, &original));
        })
        .await
    }

    /// The untampered instructions.
    fn ixs(&self) -> Vec<Instruction> {
        self.p.ixs()
    }
}

/// A change to one offset: its new value from the old one and the untampered instructions.
type Move = Box<dyn Fn(u16, &[Instruction]) -> u16>;

/// Data lengths of the Ed25519 and settle instructions.
fn lens(ixs: &[Instruction]) -> (u16, u16) {
    (ixs[0].data.len() as u16, ixs[1].data.len() as u16)
}

#[tokio::test]
async fn the_untampered_batch_with_two_new_orders_settles() {
    let mut p = Pair::new().await;
    let ixs = p.ixs();
    assert_eq!(ixs[0].data[0], 2, "two signatures");
    assert_eq!(ixs[0].program_id, solana_sdk_ids::ed25519_program::ID);
    p.send(&ixs).await.expect("settle");
    p.assert_settled().await;
}

#[tokio::test]
async fn a_moved_or_out_of_bounds_signature_offset_fails_in_the_precompile() {
    let mut b = Bench::new().await;
    let cases: [(usize, Move, u32); 5] = [
        (0, Box::new(|o, _| o + 1), precompile::INVALID_SIGNATURE),
        (1, Box::new(|o, _| o - 1), precompile::INVALID_SIGNATURE),
        // The second signature ends the instruction: one byte further runs past it.
        (1, Box::new(|o, _| o + 1), precompile::INVALID_DATA_OFFSETS),
        (
            0,
            Box::new(|_, ixs| lens(ixs).0 - 63),
            precompile::INVALID_DATA_OFFSETS,
        ),
        (
            0,
            Box::new(|_, _| u16::MAX),
            precompile::INVALID_DATA_OFFSETS,
        ),
    ];
    for (entry, moved, code) in cases {
        let result = b
            .attempt_entry(entry, |o, ixs| {
                o.signature_offset = moved(o.signature_offset, ixs)
            })
            .await;
        assert_precompile_error(result, 0, code);
    }
}

#[tokio::test]
async fn a_signature_instruction_index_other_than_the_precompile_itself_fails() {
    let mut b = Bench::new().await;
    for (entry, index, code) in [
        // The settle instruction holds no signature at that offset.
        (0, SETTLE_IX, precompile::INVALID_SIGNATURE),
        (1, SETTLE_IX, precompile::INVALID_SIGNATURE),
        // Past the end of the transaction.
        (0, 2, precompile::INVALID_DATA_OFFSETS),
        (1, u16::MAX - 1, precompile::INVALID_DATA_OFFSETS),
    ] {
        let result = b
            .attempt_entry(entry, |o, _| o.signature_instruction_index = index)
            .await;
        assert_precompile_error(result, 0, code);
    }
}

#[tokio::test]
async fn the_precompile_may_name_itself_by_its_index_instead_of_u16_max() {
    let mut p = Pair::new().await;
    let mut ixs = p.ixs();
    for entry in 0..2 {
        assert_eq!(
            offsets_of(&ixs[0], entry).signature_instruction_index,
            SELF_INDEX
        );
        edit_offsets(&mut ixs[0], entry, |o| {
            o.signature_instruction_index = ED25519_IX
        });
    }
    p.send(&ixs)
        .await
        .expect("index 0 is the precompile itself");
    p.assert_settled().await;
}

#[tokio::test]
async fn a_public_key_offset_naming_other_bytes_fails_in_the_precompile() {
    let mut b = Bench::new().await;
    let ixs = b.ixs();
    let other_owner = offsets_of(&ixs[0], 1).public_key_offset;

    // The other order's owner: a valid key that did not sign this order.
    let result = b
        .attempt_entry(0, |o, _| o.public_key_offset = other_owner)
        .await;
    assert_precompile_error(result, 0, precompile::INVALID_SIGNATURE);

    // One byte further: whatever those 32 bytes are, they are not the signer.
    let shifted = usize::from(other_owner) + 1;
    let expected = precompile_error_for_key(&ixs[1].data[shifted..shifted + 32]);
    let result = b.attempt_entry(1, |o, _| o.public_key_offset += 1).await;
    assert_precompile_error(result, 0, expected);

    for offset in [lens(&ixs).1 - 31, u16::MAX] {
        let result = b
            .attempt_entry(0, |o, _| o.public_key_offset = offset)
            .await;
        assert_precompile_error(result, 0, precompile::INVALID_DATA_OFFSETS);
    }
}

#[tokio::test]
async fn a_public_key_instruction_index_naming_another_instruction_fails() {
    let mut b = Bench::new().await;
    let ixs = b.ixs();
    let at = usize::from(offsets_of(&ixs[0], 0).public_key_offset);
    // The precompile's own data at that offset instead of the owner in the settle data.
    let expected = precompile_error_for_key(&ixs[0].data[at..at + 32]);
    for index in [SELF_INDEX, ED25519_IX] {
        let result = b
            .attempt_entry(0, |o, _| o.public_key_instruction_index = index)
            .await;
        assert_precompile_error(result, 0, expected);
    }
    for index in [2, 7, u16::MAX - 1] {
        let result = b
            .attempt_entry(1, |o, _| o.public_key_instruction_index = index)
            .await;
        assert_precompile_error(result, 0, precompile::INVALID_DATA_OFFSETS);
    }
}

#[tokio::test]
async fn a_message_offset_naming_other_bytes_fails_in_the_precompile() {
    let mut b = Bench::new().await;
    let cases: [(usize, Move, u32); 5] = [
        (0, Box::new(|o, _| o + 1), precompile::INVALID_SIGNATURE),
        (1, Box::new(|o, _| o - 1), precompile::INVALID_SIGNATURE),
        // The other order's bytes, signed by someone else.
        (
            0,
            Box::new(|_, ixs| offsets_of(&ixs[0], 1).message_data_offset),
            precompile::INVALID_SIGNATURE,
        ),
        (
            1,
            Box::new(|_, ixs| lens(ixs).1 - 127),
            precompile::INVALID_DATA_OFFSETS,
        ),
        (
            0,
            Box::new(|_, _| u16::MAX),
            precompile::INVALID_DATA_OFFSETS,
        ),
    ];
    for (entry, moved, code) in cases {
        let result = b
            .attempt_entry(entry, |o, ixs| {
                o.message_data_offset = moved(o.message_data_offset, ixs)
            })
            .await;
        assert_precompile_error(result, 0, code);
    }
}

#[tokio::test]
async fn a_message_size_other_than_the_order_length_fails_in_the_precompile() {
    let mut b = Bench::new().await;
    let size = ORDER_LEN as u16;
    for (entry, new_size, code) in [
        (0, size + 1, precompile::INVALID_SIGNATURE),
        (1, size - 1, precompile::INVALID_SIGNATURE),
        (0, 0, precompile::INVALID_SIGNATURE),
        (1, u16::MAX, precompile::INVALID_DATA_OFFSETS),
    ] {
        let result = b
            .attempt_entry(entry, |o, _| o.message_data_size = new_size)
            .await;
        assert_precompile_error(result, 0, code);
    }
}

#[tokio::test]
async fn a_message_instruction_index_naming_another_instruction_fails() {
    let mut b = Bench::new().await;
    for (entry, index, code) in [
        // The precompile's own bytes at that offset are not the order.
        (0, SELF_INDEX, precompile::INVALID_SIGNATURE),
        (0, ED25519_IX, precompile::INVALID_SIGNATURE),
        (1, 2, precompile::INVALID_DATA_OFFSETS),
        (1, u16::MAX - 1, precompile::INVALID_DATA_OFFSETS),
    ] {
        let result = b
            .attempt_entry(entry, |o, _| o.message_instruction_index = index)
            .await;
        assert_precompile_error(result, 0, code);
    }
}

#[tokio::test]
async fn a_signature_count_of_zero_fails_in_the_precompile() {
    let mut b = Bench::new().await;
    let result = b.attempt(|_, ixs| ixs[0].data[0] = 0).await;
    assert_precompile_error(result, 0, precompile::INVALID_INSTRUCTION_DATA_SIZE);
}

#[tokio::test]
async fn a_signature_count_that_does_not_match_the_new_orders_is_refused() {
    let mut b = Bench::new().await;
    // Count 1: the precompile checks only the first signature and passes.
    let result = b.attempt(|_, ixs| ixs[0].data[0] = 1).await;
    assert_kestrel_error(result, KestrelError::SignatureBadHeader);

    // Count 3, every entry valid (the third repeats the second).
    let result = b
        .attempt(|p, ixs| {
            let offsets = p.batch.args().signed_order_offsets();
            let sigs = p.batch.signatures();
            ixs[0] = ed25519_pointing_into_settle(
                &[sigs[0], sigs[1], sigs[1]],
                &[offsets[0], offsets[1], offsets[1]],
                SETTLE_IX,
            );
        })
        .await;
    assert_kestrel_error(result, KestrelError::SignatureBadHeader);

    // Count 0 and nothing else: a valid, empty precompile instruction.
    let result = b.attempt(|_, ixs| ixs[0].data = vec![0, 0]).await;
    assert_kestrel_error(result, KestrelError::SignatureBadHeader);
}

#[tokio::test]
async fn a_nonzero_padding_byte_is_refused_although_the_precompile_ignores_it() {
    let mut b = Bench::new().await;
    for padding in [1u8, 0xff] {
        let result = b.attempt(|_, ixs| ixs[0].data[1] = padding).await;
        assert_kestrel_error(result, KestrelError::SignatureBadHeader);
    }
}

/// Representative bytes of every field of the 128-byte order.
const FIELD_BYTES: [(&str, usize); 24] = [
    ("tag", 0),
    ("tag", 15),
    ("exchange", 16),
    ("exchange", 47),
    ("owner", 48),
    ("owner", 79),
    ("market", 80),
    ("market", 83),
    ("side", 84),
    ("type", 85),
    ("self-trade", 86),
    ("reserved", 87),
    ("price", 88),
    ("price", 95),
    ("size", 96),
    ("size", 103),
    ("nonce", 104),
    ("nonce", 111),
    ("expiry", 112),
    ("expiry", 119),
    ("client id", 120),
    ("client id", 127),
    ("owner", 60),
    ("price", 90),
];

#[tokio::test]
async fn flipping_any_byte_of_a_signed_order_in_the_settle_data_fails_in_the_precompile() {
    let mut b = Bench::new().await;
    let offsets = b.p.batch.args().signed_order_offsets();
    for (order, start) in offsets.into_iter().enumerate() {
        for (field, at) in FIELD_BYTES {
            let mut expected = precompile::INVALID_SIGNATURE;
            let result = b
                .attempt(|_, ixs| {
                    ixs[1].data[start + at] ^= 0x01;
                    // Flipping an owner byte also changes the key the precompile reads.
                    if (OWNER_OFFSET..OWNER_OFFSET + 32).contains(&at) {
                        let key = start + OWNER_OFFSET;
                        expected = precompile_error_for_key(&ixs[1].data[key..key + 32]);
                    }
                })
                .await;
            assert_eq!(
                instruction_error(result),
                (0, InstructionError::Custom(expected)),
                "order {order} field {field} byte {at}"
            );
        }
    }
}

#[tokio::test]
async fn a_valid_signature_of_another_order_by_the_same_owner_is_refused() {
    let mut b = Bench::new().await;
    let result = b
        .attempt(|p, ixs| {
            // The seller signed a different order (price 1); the batch settles the real one.
            let other = Order {
                price_ticks: 1,
                ..p.ask
            };
            let bytes = other.encode();
            let entry = (
                sign(&p.seller.wallet, &bytes),
                p.seller.key(),
                bytes.to_vec(),
            );
            ixs[0] = ed25519_self_contained(&[entry, bid_entry(p)]);
        })
        .await;
    assert_kestrel_error(result, KestrelError::SignatureMessageMismatch);
}

#[tokio::test]
async fn an_order_signed_by_a_key_other_than_its_owner_is_refused() {
    let mut b = Bench::new().await;
    let result = b
        .attempt(|p, ixs| {
            let forger = Keypair::new();
            let bytes = p.ask.encode();
            let entry = (sign(&forger, &bytes), forger.pubkey(), bytes.to_vec());
            ixs[0] = ed25519_self_contained(&[entry, bid_entry(p)]);
        })
        .await;
    assert_kestrel_error(result, KestrelError::SignaturePubkeyMismatch);
}

#[tokio::test]
async fn one_signature_cannot_stand_for_two_orders() {
    let mut b = Bench::new().await;
    // Both entries verify the seller's order; the buyer's was never signed.
    let result = b
        .attempt(|p, ixs| {
            let offsets = p.batch.args().signed_order_offsets();
            let sigs = p.batch.signatures();
            ixs[0] = ed25519_pointing_into_settle(
                &[sigs[0], sigs[0]],
                &[offsets[0], offsets[0]],
                SETTLE_IX,
            );
        })
        .await;
    assert_kestrel_error(result, KestrelError::SignaturePubkeyMismatch);
}

#[tokio::test]
async fn one_signature_cannot_stand_for_two_orders_of_the_same_owner() {
    let mut t = TestExchange::new().await;
    let mut seller = t.funded_user(SELLER_BASE, 0).await;
    let mut buyer = t.funded_user(0, BUYER_QUOTE).await;
    let ask1 = t.order(&mut seller, Side::Sell, 100, 1);
    let ask2 = t.order(&mut seller, Side::Sell, 90, 1_000);
    let bid = t.order(&mut buyer, Side::Buy, 105, 2);
    let batch = Batch {
        batch_id: t.batch_id(),
        orders: vec![
            BatchOrder::new(&ask1, &seller.wallet),
            BatchOrder::new(&ask2, &seller.wallet),
            BatchOrder::new(&bid, &buyer.wallet),
        ],
        fills: vec![
            fill(t.fill_id(), 0, 2, 100, 1),
            fill(t.fill_id(), 1, 2, 100, 1),
        ],
    };
    let records = record_addresses(&t, &batch);
    let before = snapshot(&mut t, &records).await;
    let mut ixs = t.settle_instructions(&batch);
    let offsets = batch.args().signed_order_offsets();
    let sigs = batch.signatures();
    // The small order's signature is offered for the large one as well.
    ixs[0] = ed25519_pointing_into_settle(
        &[sigs[0], sigs[0], sigs[2]],
        &[offsets[0], offsets[0], offsets[2]],
        SETTLE_IX,
    );
    let result = t.send_settle(&ixs).await;
    assert_kestrel_error(result, KestrelError::SignatureMessageMismatch);
    assert_unchanged(&mut t, &before).await;
}

#[tokio::test]
async fn signatures_in_another_order_than_the_new_orders_are_refused() {
    let mut b = Bench::new().await;
    let result = b
        .attempt(|p, ixs| {
            let offsets = p.batch.args().signed_order_offsets();
            let sigs = p.batch.signatures();
            ixs[0] = ed25519_pointing_into_settle(
                &[sigs[1], sigs[0]],
                &[offsets[1], offsets[0]],
                SETTLE_IX,
            );
        })
        .await;
    assert_kestrel_error(result, KestrelError::SignaturePubkeyMismatch);
}

/// A second, valid, self-contained Ed25519 instruction holding the ask's signature, key and
/// bytes, and its offsets entry.
fn copy_of_ask_signature(p: &Pair) -> (Instruction, SignatureOffsets) {
    let bytes = p.ask.encode().to_vec();
    let copy = ed25519_self_contained(&[(p.batch.signatures()[0], p.seller.key(), bytes)]);
    let entry = offsets_of(&copy, 0);
    (copy, entry)
}

#[tokio::test]
async fn offsets_naming_a_third_instruction_are_refused() {
    // `[ed25519, settle, copy]`: both precompile instructions verify, but the first one's
    // entry for the ask takes some of its bytes from the copy.
    const THIRD: u16 = 2;
    type Edit = fn(&mut SignatureOffsets, &SignatureOffsets);
    let edits: [(&str, Edit); 4] = [
        ("signature", |o, c| {
            o.signature_offset = c.signature_offset;
            o.signature_instruction_index = THIRD;
        }),
        ("public key", |o, c| {
            o.public_key_offset = c.public_key_offset;
            o.public_key_instruction_index = THIRD;
        }),
        ("message", |o, c| {
            o.message_data_offset = c.message_data_offset;
            o.message_instruction_index = THIRD;
        }),
        ("all three", |o, c| {
            *o = SignatureOffsets {
                signature_instruction_index: THIRD,
                public_key_instruction_index: THIRD,
                message_instruction_index: THIRD,
                ..*c
            };
        }),
    ];
    let mut b = Bench::new().await;
    for (what, edit) in edits {
        let result = b
            .attempt(|p, ixs| {
                let (copy, entry) = copy_of_ask_signature(p);
                edit_offsets(&mut ixs[0], 0, |o| edit(o, &entry));
                ixs.push(copy);
            })
            .await;
        assert_eq!(
            instruction_error(result),
            (
                SETTLE_IX as u8,
                InstructionError::Custom(KestrelError::SignatureBadInstructionIndex.into())
            ),
            "{what} in a third instruction"
        );
    }
}

#[tokio::test]
async fn an_instruction_of_another_program_with_identical_data_is_not_a_signature() {
    let mut b = Bench::new().await;
    // The look-alike sits after the settle (placed first, it would run and fail on its own).
    let result = b
        .attempt(|p, ixs| {
            let mut args = p.batch.args();
            args.ed25519_instruction = Some(1);
            let settle =
                p.t.ix_settle(args, p.batch.remaining_accounts(&p.t.exchange));
            let look_alike = Instruction {
                program_id: spl_token_interface::ID,
                accounts: vec![],
                data: ixs[0].data.clone(),
            };
            *ixs = vec![settle, look_alike];
        })
        .await;
    assert_kestrel_error(result, KestrelError::SignatureWrongProgram);
}

#[tokio::test]
async fn an_ed25519_instruction_index_naming_the_settle_itself_or_nothing_is_refused() {
    let mut b = Bench::new().await;
    for index in [SETTLE_IX, 2, 200, u16::MAX] {
        let result = b
            .attempt(|p, ixs| {
                let mut args = p.batch.args();
                args.ed25519_instruction = Some(index);
                ixs[1] =
                    p.t.ix_settle(args, p.batch.remaining_accounts(&p.t.exchange));
            })
            .await;
        assert_kestrel_error(result, KestrelError::SignatureWrongProgram);
    }
}

#[tokio::test]
async fn new_orders_without_an_ed25519_instruction_are_refused() {
    let mut b = Bench::new().await;
    // No precompile instruction at all.
    let result = b
        .attempt(|p, ixs| {
            let mut args = p.batch.args();
            args.ed25519_instruction = None;
            *ixs = vec![p
                .t
                .ix_settle(args, p.batch.remaining_accounts(&p.t.exchange))];
        })
        .await;
    assert_kestrel_error(result, KestrelError::SignatureMissing);

    // A valid precompile instruction the settle is not told about.
    let result = b
        .attempt(|p, ixs| {
            let mut args = p.batch.args();
            args.ed25519_instruction = None;
            let offsets = args.signed_order_offsets();
            ixs[0] = ed25519_pointing_into_settle(&p.batch.signatures(), &offsets, SETTLE_IX);
            ixs[1] =
                p.t.ix_settle(args, p.batch.remaining_accounts(&p.t.exchange));
        })
        .await;
    assert_kestrel_error(result, KestrelError::SignatureMissing);
}

#[tokio::test]
async fn a_self_contained_ed25519_instruction_with_the_right_keys_and_bytes_settles() {
    let mut p = Pair::new().await;
    let sigs = p.batch.signatures();
    let ixs = ixs_with_ed25519(
        &p,
        ed25519_self_contained(&[
            (sigs[0], p.seller.key(), p.ask.encode().to_vec()),
            (sigs[1], p.buyer.key(), p.bid.encode().to_vec()),
        ]),
    );
    p.send(&ixs)
        .await
        .expect("offsets into the precompile's own data are allowed");
    p.assert_settled().await;
}

#[tokio::test]
async fn the_ed25519_instruction_may_follow_the_settle_instruction() {
    let mut p = Pair::new().await;
    let mut args = p.batch.args();
    args.ed25519_instruction = Some(1);
    let offsets = args.signed_order_offsets();
    let settle =
        p.t.ix_settle(args, p.batch.remaining_accounts(&p.t.exchange));
    let ed25519 = ed25519_pointing_into_settle(&p.batch.signatures(), &offsets, 0);
    p.send(&[settle, ed25519])
        .await
        .expect("settle then precompile");
    p.assert_settled().await;
}

#[tokio::test]
async fn an_account_posing_as_the_instructions_sysvar_is_refused() {
    let mut b = Bench::new().await;
    for impostor in [solana_sdk_ids::sysvar::clock::ID, Pubkey::new_unique()] {
        let result = b
            .attempt(|_, ixs| {
                let meta = &mut ixs[1].accounts[3];
                assert_eq!(meta.pubkey, solana_sdk_ids::sysvar::instructions::ID);
                *meta = AccountMeta::new_readonly(impostor, false);
            })
            .await;
        assert_anchor_error(result, anchor_lang::error::ErrorCode::ConstraintAddress);
    }
}

/// The standard batch with `ed25519` in place of the relayer's precompile instruction.
fn ixs_with_ed25519(p: &Pair, ed25519: Instruction) -> Vec<Instruction> {
    let mut ixs = p.ixs();
    ixs[0] = ed25519;
    ixs
}

/// The bid's self-contained entry (valid).
fn bid_entry(p: &Pair) -> ([u8; 64], Pubkey, Vec<u8>) {
    (
        p.batch.signatures()[1],
        p.buyer.key(),
        p.bid.encode().to_vec(),
    )
}
