//! The withdrawal transaction request vectors of docs/protocol.md, read from the page itself:
//! the message is neither a program encoding nor journaled (the program's vectors test skips
//! it), so it is checked here against the SDK's and the router's definitions of the 120 bytes,
//! and the seed's key signs it to exactly the signature given.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use kestrel_sdk::withdrawal;
use solana_sdk::pubkey::Pubkey;
use std::collections::HashMap;

fn vectors(kind: &str) -> Vec<HashMap<String, String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let page = std::fs::read_to_string(path).expect("docs/protocol.md");
    page.split("```vector")
        .skip(1)
        .map(|block| {
            let body = block.split("```").next().expect("closed block");
            body.lines()
                .filter_map(|line| line.split_once(": "))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect::<HashMap<_, _>>()
        })
        .filter(|v| v.get("kind").map(String::as_str) == Some(kind))
        .collect()
}

fn decode_hex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bytes32(hex_text: &str) -> [u8; 32] {
    decode_hex(hex_text).try_into().unwrap()
}

#[test]
fn withdrawal_transaction_request_vectors_match_sdk_and_router() {
    let exchange = kestrel_sdk::Deployment::new(1, Vec::new()).exchange;
    let vectors = vectors("withdrawal_tx_request");
    assert!(!vectors.is_empty(), "the page must carry a vector");
    for v in vectors {
        let key = SigningKey::from_bytes(&bytes32(&v["seed"]));
        let owner = key.verifying_key().to_bytes();
        assert_eq!(encode_hex(&owner), v["pubkey"], "pubkey from seed");
        let (id, destination) = v["fields"]
            .strip_prefix("withdrawal id ")
            .and_then(|rest| rest.split_once(", destination "))
            .expect("fields: withdrawal id N, destination HEX");
        let id: u64 = id.parse().unwrap();
        let destination = bytes32(destination);

        let message = decode_hex(&v["message"]);
        let sdk = withdrawal::transaction_request_message(
            &exchange,
            &Pubkey::new_from_array(owner),
            id,
            &Pubkey::new_from_array(destination),
        );
        assert_eq!(sdk.as_slice(), message.as_slice(), "the SDK's bytes");
        let router = kestrel_router::api::withdrawals::transaction_request_message(
            &exchange.to_bytes(),
            &owner,
            id,
            &destination,
        );
        assert_eq!(router.as_slice(), message.as_slice(), "the router's bytes");
        assert_eq!(message.len(), withdrawal::TX_REQUEST_LEN);
        assert_eq!(message[..16], withdrawal::TX_REQUEST_TAG);

        assert_eq!(
            encode_hex(&key.sign(&message).to_bytes()),
            v["signature"],
            "deterministic signature"
        );
        let given = Signature::from_slice(&decode_hex(&v["signature"])).unwrap();
        key.verifying_key()
            .verify(&message, &given)
            .expect("verifies");
    }
}
