//! Signature checks before the sequencer. Decoding and ed25519 verification are the expensive,
//! stateless part of intake, so they run in parallel workers; only verified commands reach the
//! sequencer and its journal.

use crate::model::{Command, Sig};
use crate::reject::Reject;
use ed25519_dalek::{Signature, VerifyingKey};
use kestrel::encoding::{Cancel, CancelAll, Order, WithdrawRequest};

/// A signed message as it arrives: the canonical bytes and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// An order.
    Order(Vec<u8>, Sig),
    /// A cancel of one order.
    Cancel(Vec<u8>, Sig),
    /// A cancel-all.
    CancelAll(Vec<u8>, Sig),
    /// A replace: the signed cancel of the old order and the signed new order, same owner.
    Replace {
        /// The cancel's bytes and signature.
        cancel: (Vec<u8>, Sig),
        /// The new order's bytes and signature.
        order: (Vec<u8>, Sig),
    },
    /// A withdrawal request.
    Withdraw(Vec<u8>, Sig),
}

/// Decodes the message and verifies its signature against the owner it names.
pub fn verify(signed: &Signed) -> Result<Command, Reject> {
    let malformed = |_| Reject::MalformedMessage;
    match signed {
        Signed::Order(bytes, sig) => {
            let order = Order::decode(bytes).map_err(malformed)?;
            check(&order.owner.to_bytes(), bytes, sig)?;
            Ok(Command::Place {
                order,
                signature: *sig,
            })
        }
        Signed::Cancel(bytes, sig) => {
            let cancel = Cancel::decode(bytes).map_err(malformed)?;
            check(&cancel.owner.to_bytes(), bytes, sig)?;
            Ok(Command::Cancel(cancel))
        }
        Signed::Replace { cancel, order } => {
            let c = Cancel::decode(&cancel.0).map_err(malformed)?;
            let o = Order::decode(&order.0).map_err(malformed)?;
            if c.owner != o.owner {
                return Err(Reject::MalformedMessage);
            }
            check(&c.owner.to_bytes(), &cancel.0, &cancel.1)?;
            check(&o.owner.to_bytes(), &order.0, &order.1)?;
            Ok(Command::Replace {
                cancel: c,
                order: o,
                signature: order.1,
            })
        }
        Signed::CancelAll(bytes, sig) => {
            let cancel = CancelAll::decode(bytes).map_err(malformed)?;
            check(&cancel.owner.to_bytes(), bytes, sig)?;
            Ok(Command::CancelAll(cancel))
        }
        Signed::Withdraw(bytes, sig) => {
            let request = WithdrawRequest::decode(bytes).map_err(malformed)?;
            check(&request.owner.to_bytes(), bytes, sig)?;
            Ok(Command::Withdraw(request))
        }
    }
}

/// Strict ed25519 verification (rejects small-order keys and non-canonical signatures, so a
/// signature cannot be malleated into a second valid one).
fn check(owner: &[u8; 32], message: &[u8], sig: &Sig) -> Result<(), Reject> {
    let signature = Signature::from_bytes(sig);
    KEYS.with_borrow_mut(|keys| keys.key(owner)?.verify_strict(message, &signature))
        .map_err(|_| Reject::BadSignature)
}

thread_local! {
    /// Each verifying thread's decompressed keys (pool workers, or the runtime's workers when
    /// verifying inline): no lock, and an owner's key is decompressed once per thread.
    static KEYS: std::cell::RefCell<KeyCache> =
        std::cell::RefCell::new(KeyCache::new(KeyCache::CAPACITY));
}

/// Owners' public keys, decompressed. Turning the 32 bytes into a curve point is ~9 % of a
/// strict verification (a square root in the field), and a market's flow comes from few
/// wallets. The point is a pure function of the bytes, so a cached key verifies exactly as a
/// fresh one; bytes that are not a point are never cached. Bounded: when full it starts
/// again empty, so a stream of new keys costs what it cost without the cache.
#[derive(Debug)]
pub struct KeyCache {
    keys: std::collections::HashMap<[u8; 32], VerifyingKey>,
    capacity: usize,
}

impl KeyCache {
    /// Keys kept per thread (~200 bytes each).
    pub const CAPACITY: usize = 4096;

    /// An empty cache holding at most `capacity` keys.
    pub fn new(capacity: usize) -> KeyCache {
        KeyCache {
            keys: std::collections::HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The owner's key, decompressed now or earlier; an error when the bytes are not a point.
    pub fn key(
        &mut self,
        owner: &[u8; 32],
    ) -> Result<&VerifyingKey, ed25519_dalek::SignatureError> {
        if !self.keys.contains_key(owner) {
            let key = VerifyingKey::from_bytes(owner)?;
            if self.keys.len() >= self.capacity {
                self.keys.clear();
            }
            self.keys.insert(*owner, key);
        }
        self.keys
            .get(owner)
            .ok_or_else(ed25519_dalek::SignatureError::new)
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where signatures are checked: inline on the async worker that parsed the request, or on a
/// fixed pool of threads off the async runtime. Either way the sequencer only ever sees
/// verified commands.
///
/// Inline is the default for small machines: a check costs tens of microseconds, less than
/// the two thread hand-offs (and wake-ups) a pool adds to every command, and with as many
/// runtime workers as cores the runtime already spreads the checks over every core. A pool
/// suits a runtime with fewer workers than cores.
#[derive(Clone)]
pub struct VerifyPool {
    tx: Option<crossbeam_channel::Sender<Job>>,
}

type Job = (
    Signed,
    tokio::sync::oneshot::Sender<Result<Command, Reject>>,
);

/// The pool has shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the verification pool is not running")]
pub struct PoolStopped;

impl VerifyPool {
    /// Starts `threads` verification workers; `0` verifies inline on the calling task instead.
    /// Workers stop when every clone of the pool is dropped.
    pub fn start(threads: usize) -> std::io::Result<VerifyPool> {
        if threads == 0 {
            return Ok(VerifyPool { tx: None });
        }
        let (tx, rx) = crossbeam_channel::bounded::<Job>(threads.saturating_mul(1024));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("kestrel-verify-{i}"))
                .spawn(move || {
                    for (signed, reply) in rx.iter() {
                        let _ = reply.send(verify(&signed));
                    }
                })?;
        }
        Ok(VerifyPool { tx: Some(tx) })
    }

    /// Verifies one message, inline or on the pool.
    pub async fn verify(&self, signed: Signed) -> Result<Result<Command, Reject>, PoolStopped> {
        let Some(tx) = &self.tx else {
            return Ok(verify(&signed));
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        // The common case queues without blocking; only a full queue (workers saturated) waits
        // for room, off the runtime threads. Handing every job to the blocking pool cost a
        // thread wake-up and two context switches per command.
        match tx.try_send((signed, reply)) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(job)) => {
                let tx = tx.clone();
                tokio::task::spawn_blocking(move || tx.send(job).map_err(|_| ()))
                    .await
                    .map_err(|_| PoolStopped)?
                    .map_err(|_| PoolStopped)?;
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(PoolStopped),
        }
        rx.await.map_err(|_| PoolStopped)
    }
}
