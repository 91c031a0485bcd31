//! The SDK's builders produce exactly the bytes the program and docs/protocol.md expect.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use kestrel::ed25519::SignatureOffsets;
use kestrel::instructions::SettleFill;
use kestrel_sdk::settle::{
    locked_accounts, transaction_size, versioned_message, versioned_transaction_size, Batch,
    BatchOrder, PACKET_DATA_SIZE,
};
use kestrel_sdk::{Deployment, Error, OrderBuilder};
use solana_sdk::hash::Hash;
use solana_sdk::message::{AddressLookupTableAccount, VersionedMessage};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, VersionedTransaction};

fn deployment() -> Deployment {
    Deployment::new(1, vec![Pubkey::new_unique(), Pubkey::new_unique()])
}

#[test]
fn an_order_needs_side_price_and_size_and_signs_its_canonical_bytes() {
    let d = deployment();
    let wallet = Keypair::new();
    assert_eq!(
        OrderBuilder::limit(0)
            .price(1)
            .size(1)
            .build(d.exchange, wallet.pubkey(), 1),
        Err(Error::Incomplete("side"))
    );
    assert_eq!(
        OrderBuilder::limit(0)
            .buy()
            .size(1)
            .build(d.exchange, wallet.pubkey(), 1),
        Err(Error::Incomplete("price"))
    );
    let signed = OrderBuilder::limit(3)
        .sell()
        .price(1_500)
        .size(20)
        .post_only()
        .client_id(9)
        .expires_at(1_900_000_000)
        .sign(d.exchange, &wallet, 42)
        .unwrap();
    let bytes = signed.bytes();
    assert_eq!(kestrel::encoding::Order::decode(&bytes), Ok(signed.order));
    let key = VerifyingKey::from_bytes(&wallet.pubkey().to_bytes()).unwrap();
    key.verify(&bytes, &Signature::from_bytes(&signed.signature))
        .expect("signature verifies over the canonical bytes");
}

#[test]
fn the_exchange_address_is_the_one_in_the_protocol_vectors() {
    assert_eq!(
        Deployment::exchange_address(1).to_string(),
        "AWovBXCg6UW9WepakcnrxhbAKmr9HtAgpqH8k1AaBaZx"
    );
}

#[test]
fn settle_points_every_signature_at_its_order_inside_the_settle_data() {
    let d = deployment();
    let operator = Keypair::new();
    let (maker, taker) = (Keypair::new(), Keypair::new());
    let ask = OrderBuilder::limit(0)
        .sell()
        .price(100)
        .size(5)
        .sign(d.exchange, &maker, 7)
        .unwrap();
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(100)
        .size(5)
        .sign(d.exchange, &taker, 8)
        .unwrap();
    let batch = Batch {
        market_index: 0,
        batch_id: 1,
        orders: vec![BatchOrder::New(ask), BatchOrder::New(bid)],
        fills: vec![SettleFill {
            fill_id: 1,
            maker: 0,
            taker: 1,
            price_ticks: 100,
            size_lots: 5,
        }],
    };
    let ixs = d.settle_instructions(&operator.pubkey(), &batch).unwrap();
    assert_eq!(ixs.len(), 2);
    let (ed, settle) = (&ixs[0], &ixs[1]);
    assert_eq!(ed.data[0], 2);
    for (j, signed) in [ask, bid].iter().enumerate() {
        let o = SignatureOffsets::parse(&ed.data, j).unwrap();
        let msg = o.message_data_offset as usize;
        let key = o.public_key_offset as usize;
        let sig = o.signature_offset as usize;
        assert_eq!(&settle.data[msg..msg + 128], &signed.bytes()[..]);
        assert_eq!(&settle.data[key..key + 32], signed.order.owner.as_ref());
        assert_eq!(&ed.data[sig..sig + 64], &signed.signature[..]);
        assert_eq!(
            (o.public_key_instruction_index, o.message_instruction_index),
            (1, 1)
        );
    }
    // 5 fixed accounts, 2 user accounts, 2 order records.
    assert_eq!(settle.accounts.len(), 9);
    assert_eq!(
        settle.accounts[7].pubkey,
        d.order_address(&maker.pubkey(), 7)
    );

    let size = transaction_size(&ixs, &operator.pubkey());
    let tx = Transaction::new_signed_with_payer(
        &ixs,
        Some(&operator.pubkey()),
        &[&operator],
        Hash::default(),
    );
    assert_eq!(size, bincode::serialize(&tx).unwrap().len());
    assert!(size <= PACKET_DATA_SIZE);

    let recorded = Batch {
        orders: vec![
            BatchOrder::Recorded {
                owner: maker.pubkey(),
                nonce: 7,
            },
            BatchOrder::Recorded {
                owner: taker.pubkey(),
                nonce: 8,
            },
        ],
        batch_id: 2,
        ..batch.clone()
    };
    assert_eq!(
        d.settle_instructions(&operator.pubkey(), &recorded)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn malformed_batches_are_refused_without_panicking() {
    let d = deployment();
    let op = Pubkey::new_unique();
    let owner = Pubkey::new_unique();
    let rec = |nonce| BatchOrder::Recorded { owner, nonce };
    let fill = |maker, taker| SettleFill {
        fill_id: 1,
        maker,
        taker,
        price_ticks: 1,
        size_lots: 1,
    };
    let base = Batch {
        market_index: 0,
        batch_id: 1,
        orders: vec![rec(1), rec(2)],
        fills: vec![fill(0, 1)],
    };
    let no_fills = Batch {
        fills: vec![],
        ..base.clone()
    };
    assert_eq!(
        d.settle_instructions(&op, &no_fills),
        Err(Error::InvalidBatch("fill count"))
    );
    let one_order = Batch {
        orders: vec![rec(1)],
        ..base.clone()
    };
    assert_eq!(
        d.settle_instructions(&op, &one_order),
        Err(Error::InvalidBatch("order count"))
    );
    let dangling = Batch {
        fills: vec![fill(0, 5)],
        ..base.clone()
    };
    assert_eq!(
        d.settle_instructions(&op, &dangling),
        Err(Error::InvalidBatch("fill references"))
    );
    let self_ref = Batch {
        fills: vec![fill(1, 1)],
        ..base
    };
    assert_eq!(
        d.settle_instructions(&op, &self_ref),
        Err(Error::InvalidBatch("fill references"))
    );
    assert_eq!(d.deposit(&owner, 9, &owner, 1), Err(Error::UnknownAsset(9)));
}

#[test]
fn v0_settle_messages_take_table_accounts_and_are_sized_exactly() {
    let d = deployment();
    let operator = Keypair::new();
    let owners: Vec<Keypair> = (0..4).map(|_| Keypair::new()).collect();
    let batch = Batch {
        market_index: 0,
        batch_id: 1,
        orders: owners
            .iter()
            .enumerate()
            .map(|(i, o)| BatchOrder::Recorded {
                owner: o.pubkey(),
                nonce: i as u64,
            })
            .collect(),
        fills: vec![
            SettleFill {
                fill_id: 1,
                maker: 0,
                taker: 1,
                price_ticks: 100,
                size_lots: 1,
            },
            SettleFill {
                fill_id: 2,
                maker: 2,
                taker: 3,
                price_ticks: 100,
                size_lots: 1,
            },
        ],
    };
    let ixs = d.settle_instructions(&operator.pubkey(), &batch).unwrap();
    let blockhash = Hash::new_unique();

    // No table: the legacy message, sized as before.
    let legacy = versioned_message(&ixs, &operator.pubkey(), &[], blockhash).unwrap();
    assert!(matches!(legacy, VersionedMessage::Legacy(_)));
    assert_eq!(
        versioned_transaction_size(&legacy),
        transaction_size(&ixs, &operator.pubkey())
    );

    // A table holding the market, the exchange, the user accounts and the order records.
    let mut addresses = vec![d.exchange, d.market_address(0)];
    for (i, o) in owners.iter().enumerate() {
        addresses.push(d.user_address(&o.pubkey()));
        addresses.push(d.order_address(&o.pubkey(), i as u64));
    }
    let table = AddressLookupTableAccount {
        key: Pubkey::new_unique(),
        addresses,
    };
    let v0 = versioned_message(
        &ixs,
        &operator.pubkey(),
        std::slice::from_ref(&table),
        blockhash,
    )
    .unwrap();
    let VersionedMessage::V0(inner) = &v0 else {
        panic!("a table makes a v0 message");
    };
    // Operator, kestrel program, instructions sysvar and system program stay static.
    assert_eq!(inner.account_keys.len(), 4);
    assert_eq!(locked_accounts(&v0), 4 + 10);
    assert_eq!(locked_accounts(&legacy), 14);
    let tx = VersionedTransaction::try_new(v0.clone(), &[&operator]).unwrap();
    let size = versioned_transaction_size(&v0);
    assert_eq!(size, bincode::serialize(&tx).unwrap().len());
    // Each looked-up account: a 1-byte index instead of a 32-byte key; the table costs 36 bytes
    // (version prefix, lookup count, table key, two index counts).
    assert_eq!(size + 10 * 31 - 36, versioned_transaction_size(&legacy));
}
