//! Access limits: request rates per IP and per signing key (governor), WebSocket connections
//! per IP and per wallet.

use crate::model::Owner;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

/// Limit settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// HTTP requests and WebSocket upgrades per second per IP.
    pub per_ip_per_sec: u32,
    /// Burst allowed above the per-IP rate.
    pub per_ip_burst: u32,
    /// Signed commands per second per wallet (REST and WebSocket together).
    pub per_key_per_sec: u32,
    /// Burst allowed above the per-wallet rate.
    pub per_key_burst: u32,
    /// Largest HTTP body, bytes.
    pub max_body_bytes: usize,
    /// Largest WebSocket message, bytes.
    pub ws_max_message_bytes: usize,
    /// WebSocket connections per IP.
    pub ws_per_ip: usize,
    /// Authenticated WebSocket connections per wallet.
    pub ws_per_user: usize,
    /// Messages per second a WebSocket connection may send.
    pub ws_messages_per_sec: u32,
    /// New orders (place, replace) are refused with `overloaded` while more events than this
    /// are sequenced but not yet taken by the SQL projection (the
    /// `kestrel_api_projection_lag_events` gauge); cancels, cancel-alls and withdrawals are
    /// always taken. The store feeds REST reads and the settlement outbox, so a store that has
    /// fallen behind delays settlement; the bound also keeps the queue to it from growing
    /// without limit under sustained overload.
    pub max_projection_lag: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_ip_per_sec: 50,
            per_ip_burst: 100,
            per_key_per_sec: 100,
            per_key_burst: 200,
            max_body_bytes: 4 * 1024,
            ws_max_message_bytes: 4 * 1024,
            ws_per_ip: 10,
            ws_per_user: 5,
            ws_messages_per_sec: 100,
            max_projection_lag: 100_000,
        }
    }
}

/// A quota of `rate` per second with `burst`, both at least one.
pub fn quota(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(rate.get())).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

/// The shared limiters.
pub struct Limiters {
    /// The settings.
    pub config: LimitsConfig,
    ip: DefaultKeyedRateLimiter<IpAddr>,
    key: DefaultKeyedRateLimiter<Owner>,
    ws_ip: Counter<IpAddr>,
    ws_user: Counter<Owner>,
}

impl Limiters {
    /// Limiters for `config`.
    pub fn new(config: LimitsConfig) -> Limiters {
        Limiters {
            config,
            ip: RateLimiter::keyed(quota(config.per_ip_per_sec, config.per_ip_burst)),
            key: RateLimiter::keyed(quota(config.per_key_per_sec, config.per_key_burst)),
            ws_ip: Counter::default(),
            ws_user: Counter::default(),
        }
    }

    /// One request from `ip`; false when over its rate.
    pub fn allow_ip(&self, ip: IpAddr) -> bool {
        self.ip.check_key(&ip).is_ok()
    }

    /// One signed command from `owner`; false when over its rate.
    pub fn allow_key(&self, owner: &Owner) -> bool {
        self.key.check_key(owner).is_ok()
    }

    /// Forgets rate state that no longer limits anyone (bounds memory).
    pub fn sweep(&self) {
        self.ip.retain_recent();
        self.key.retain_recent();
        self.ip.shrink_to_fit();
        self.key.shrink_to_fit();
    }

    /// A WebSocket connection slot for `ip`, released when the guard drops.
    pub fn ws_ip_slot(&self, ip: IpAddr) -> Option<Slot<IpAddr>> {
        self.ws_ip.acquire(ip, self.config.ws_per_ip)
    }

    /// An authenticated WebSocket connection slot for `owner`, released when the guard drops.
    pub fn ws_user_slot(&self, owner: Owner) -> Option<Slot<Owner>> {
        self.ws_user.acquire(owner, self.config.ws_per_user)
    }
}

/// Live counts per key.
struct Counter<K>(Arc<Mutex<HashMap<K, usize>>>);

impl<K> Default for Counter<K> {
    fn default() -> Self {
        Counter(Arc::new(Mutex::new(HashMap::new())))
    }
}

impl<K: Hash + Eq + Copy> Counter<K> {
    fn acquire(&self, key: K, max: usize) -> Option<Slot<K>> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count = count.saturating_add(1);
        Some(Slot {
            key,
            counts: self.0.clone(),
        })
    }
}

/// One held connection slot.
pub struct Slot<K: Hash + Eq + Copy> {
    key: K,
    counts: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Copy> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}
