//! The test vectors of docs/protocol.md, read from the page itself: the seed gives the key,
//! the key signs the message to exactly the signature given, and the message decodes to exactly
//! the fields described.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use kestrel::encoding::*;
use std::collections::HashMap;

fn vectors() -> Vec<HashMap<String, String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let page = std::fs::read_to_string(path).expect("docs/protocol.md");
    page.split("```vector")
        .skip(1)
        .map(|block| {
            let body = block.split("```").next().expect("closed block");
            body.lines()
                .filter_map(|line| line.split_once(": "))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

fn describe_side(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn describe(kind: &str, message: &[u8]) -> String {
    match kind {
        "order" => {
            let o = Order::decode(message).expect("order decodes");
            assert_eq!(
                o.encode().as_slice(),
                message,
                "order re-encodes identically"
            );
            let order_type = match o.order_type {
                OrderType::Limit => "limit",
                OrderType::ImmediateOrCancel => "ioc",
                OrderType::FillOrKill => "fok",
                OrderType::PostOnly => "post-only",
                OrderType::PostOnlySlide => "post-only-slide",
                OrderType::Market => "market",
            };
            let self_trade = match o.self_trade {
                SelfTrade::CancelTaker => "cancel-taker",
                SelfTrade::CancelMaker => "cancel-maker",
                SelfTrade::CancelBoth => "cancel-both",
                SelfTrade::DecrementAndCancel => "decrement-and-cancel",
            };
            format!(
                "market {}, {}, {order_type}, {self_trade}, price {} ticks, size {} lots, nonce {}, expiry {}, client id {}",
                o.market_index,
                describe_side(o.side),
                o.price_ticks,
                o.size_lots,
                o.nonce,
                o.expiry,
                o.client_order_id
            )
        }
        "cancel" => {
            let c = Cancel::decode(message).expect("cancel decodes");
            assert_eq!(c.encode().as_slice(), message);
            format!(
                "market {}, order nonce {}, expiry {}",
                c.market_index, c.order_nonce, c.expiry
            )
        }
        "cancel_all" => {
            let c = CancelAll::decode(message).expect("cancel-all decodes");
            assert_eq!(c.encode().as_slice(), message);
            let market = if c.market_index == ALL_MARKETS {
                "all markets".to_string()
            } else {
                format!("market {}", c.market_index)
            };
            let side = match c.side {
                CancelSide::Buy => "bids",
                CancelSide::Sell => "asks",
                CancelSide::Both => "both sides",
            };
            format!(
                "{market}, {side}, up to nonce {}, expiry {}",
                c.up_to_nonce, c.expiry
            )
        }
        other => panic!("unknown vector kind {other}"),
    }
}

#[test]
fn protocol_page_vectors_verify_and_decode() {
    let exchange =
        Pubkey::find_program_address(&[b"exchange", &1u64.to_le_bytes()], &kestrel::ID).0;
    let vectors = vectors();
    assert!(
        vectors.len() >= 3,
        "the page must carry at least three vectors"
    );
    for v in vectors {
        if v["kind"] == "withdrawal_tx_request" {
            // Not a program encoding: checked by sdk/tests/protocol_vectors.rs.
            continue;
        }
        let seed: [u8; 32] = hex::decode(&v["seed"]).unwrap().try_into().unwrap();
        let key = SigningKey::from_bytes(&seed);
        let pubkey = key.verifying_key().to_bytes();
        assert_eq!(hex::encode(pubkey), v["pubkey"], "pubkey from seed");

        let message = hex::decode(&v["message"]).unwrap();
        let signature = key.sign(&message);
        assert_eq!(
            hex::encode(signature.to_bytes()),
            v["signature"],
            "deterministic signature"
        );
        let given = Signature::from_slice(&hex::decode(&v["signature"]).unwrap()).unwrap();
        key.verifying_key()
            .verify(&message, &given)
            .expect("verifies");

        assert_eq!(
            &message[EXCHANGE_OFFSET..EXCHANGE_OFFSET + 32],
            exchange.as_ref()
        );
        assert_eq!(&message[OWNER_OFFSET..OWNER_OFFSET + 32], &pubkey);
        assert_eq!(describe(&v["kind"], &message), v["fields"]);
    }
}
