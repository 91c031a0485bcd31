//! Signature checks before the sequencer, inline on the calling task and on a thread pool: the
//! same verdicts either way, for valid, forged, malformed and mismatched messages, whether the
//! owner's key was decompressed before (the per-thread key cache) or not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signer, SigningKey};
use kestrel::encoding::{Cancel, Order, OrderType, SelfTrade, Side};
use kestrel_router::model::Command;
use kestrel_router::reject::Reject;
use kestrel_router::verify::{KeyCache, Signed, VerifyPool};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn owner(key: &SigningKey) -> Pubkey {
    Pubkey::new_from_array(key.verifying_key().to_bytes())
}

fn order(key: &SigningKey, nonce: u64) -> Vec<u8> {
    Order {
        exchange: Pubkey::new_from_array([9; 32]),
        owner: owner(key),
        market_index: 0,
        side: Side::Buy,
        order_type: OrderType::Limit,
        self_trade: SelfTrade::CancelTaker,
        price_ticks: 100,
        size_lots: 1,
        nonce,
        expiry: 0,
        client_order_id: nonce,
    }
    .encode()
    .to_vec()
}

fn cancel(key: &SigningKey, nonce: u64) -> Vec<u8> {
    Cancel {
        exchange: Pubkey::new_from_array([9; 32]),
        owner: owner(key),
        market_index: 0,
        order_nonce: nonce,
        expiry: 0,
    }
    .encode()
    .to_vec()
}

fn sign(key: &SigningKey, bytes: &[u8]) -> [u8; 64] {
    key.sign(bytes).to_bytes()
}

/// The verdicts every pool must give, whatever its threading.
async fn check_verdicts(pool: &VerifyPool) {
    let alice = key(1);
    let bob = key(2);

    let bytes = order(&alice, 7);
    let signature = sign(&alice, &bytes);
    match pool
        .verify(Signed::Order(bytes.clone(), signature))
        .await
        .unwrap()
    {
        Ok(Command::Place {
            order,
            signature: s,
        }) => {
            assert_eq!(order.owner, owner(&alice));
            assert_eq!(order.nonce, 7);
            assert_eq!(s, signature);
        }
        other => panic!("expected a verified place, got {other:?}"),
    }

    // Signed by another key than the owner the order names.
    let forged = sign(&bob, &bytes);
    assert_eq!(
        pool.verify(Signed::Order(bytes.clone(), forged))
            .await
            .unwrap(),
        Err(Reject::BadSignature)
    );

    // One flipped bit of the signed bytes.
    let mut tampered = bytes.clone();
    tampered[100] ^= 1; // inside size_lots: still decodes
    assert_eq!(
        pool.verify(Signed::Order(tampered, signature))
            .await
            .unwrap(),
        Err(Reject::BadSignature)
    );

    // Its owner's key is cached now: the same verdicts again.
    assert!(matches!(
        pool.verify(Signed::Order(bytes.clone(), signature))
            .await
            .unwrap(),
        Ok(Command::Place { .. })
    ));
    assert_eq!(
        pool.verify(Signed::Order(bytes.clone(), forged))
            .await
            .unwrap(),
        Err(Reject::BadSignature)
    );

    // An owner whose bytes are not a curve point.
    let mut pointless = bytes.clone();
    pointless[48..80].copy_from_slice(&not_a_point());
    assert_eq!(
        pool.verify(Signed::Order(pointless, signature))
            .await
            .unwrap(),
        Err(Reject::BadSignature)
    );

    // An order's bytes presented as a cancel, and a truncated order.
    assert_eq!(
        pool.verify(Signed::Cancel(bytes.clone(), signature))
            .await
            .unwrap(),
        Err(Reject::MalformedMessage)
    );
    assert_eq!(
        pool.verify(Signed::Order(bytes[..64].to_vec(), signature))
            .await
            .unwrap(),
        Err(Reject::MalformedMessage)
    );

    // A replace whose cancel and order come from different wallets.
    let c = cancel(&bob, 7);
    let replace = Signed::Replace {
        cancel: (c.clone(), sign(&bob, &c)),
        order: (bytes.clone(), signature),
    };
    assert_eq!(
        pool.verify(replace).await.unwrap(),
        Err(Reject::MalformedMessage)
    );

    // A valid replace by one wallet.
    let c = cancel(&alice, 7);
    let new = order(&alice, 8);
    let replace = Signed::Replace {
        cancel: (c.clone(), sign(&alice, &c)),
        order: (new.clone(), sign(&alice, &new)),
    };
    assert!(matches!(
        pool.verify(replace).await.unwrap(),
        Ok(Command::Replace { ref order, .. }) if order.nonce == 8
    ));
}

#[tokio::test]
async fn inline_verification_gives_the_verdicts() {
    check_verdicts(&VerifyPool::start(0).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_verification_gives_the_verdicts_under_concurrency() {
    let pool = VerifyPool::start(2).unwrap();
    check_verdicts(&pool).await;
    // Many at once, more than the workers: every one answered, each with its own verdict.
    let alice = key(1);
    let tasks: Vec<_> = (0..200u64)
        .map(|nonce| {
            let pool = pool.clone();
            let bytes = order(&alice, nonce);
            let signature = if nonce % 3 == 0 {
                sign(&key(2), &bytes)
            } else {
                sign(&alice, &bytes)
            };
            tokio::spawn(async move {
                let verdict = pool.verify(Signed::Order(bytes, signature)).await.unwrap();
                (nonce, verdict)
            })
        })
        .collect();
    for task in tasks {
        let (nonce, verdict) = task.await.unwrap();
        match verdict {
            Ok(Command::Place { order, .. }) => {
                assert_ne!(nonce % 3, 0);
                assert_eq!(order.nonce, nonce);
            }
            Err(Reject::BadSignature) => assert_eq!(nonce % 3, 0),
            other => panic!("unexpected verdict {other:?}"),
        }
    }
}

/// 32 bytes that do not decompress to a point of the curve.
fn not_a_point() -> [u8; 32] {
    (0..=255u8)
        .map(|b| [b; 32])
        .find(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_err())
        .unwrap()
}

#[test]
fn a_cached_key_verifies_exactly_as_a_fresh_one() {
    let alice = key(1);
    let bytes = order(&alice, 7);
    let signature = ed25519_dalek::Signature::from_bytes(&sign(&alice, &bytes));
    let forged = ed25519_dalek::Signature::from_bytes(&sign(&key(2), &bytes));
    let owner = alice.verifying_key().to_bytes();
    let mut cache = KeyCache::new(4);
    for _ in 0..2 {
        let key = cache.key(&owner).unwrap();
        assert_eq!(key.to_bytes(), owner);
        assert!(key.verify_strict(&bytes, &signature).is_ok());
        assert!(key.verify_strict(&bytes, &forged).is_err());
        assert!(key.verify_strict(&bytes[1..], &signature).is_err());
    }
    assert_eq!(cache.len(), 1);
}

#[test]
fn bytes_that_are_not_a_point_are_refused_and_never_cached() {
    let mut cache = KeyCache::new(4);
    assert!(cache.key(&not_a_point()).is_err());
    assert!(cache.is_empty());
}

#[test]
fn the_key_cache_never_holds_more_than_its_capacity() {
    let mut cache = KeyCache::new(3);
    for seed in 1..=10u8 {
        let owner = key(seed).verifying_key().to_bytes();
        assert_eq!(cache.key(&owner).unwrap().to_bytes(), owner);
        assert!(cache.len() <= 3, "{} keys held", cache.len());
    }
    // The newest key survives the restart of a full cache.
    let newest = key(10).verifying_key().to_bytes();
    let held = cache.len();
    assert_eq!(cache.key(&newest).unwrap().to_bytes(), newest);
    assert_eq!(cache.len(), held);
}
