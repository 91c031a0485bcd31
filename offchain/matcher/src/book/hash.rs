//! A fast hasher for caller-assigned order ids.
//!
//! Order ids come from the router's sequence, never from users, so a simple multiplicative
//! hash cannot be steered into collisions. Keys that users choose (public keys, client order
//! ids) use the standard library's randomly keyed SipHash instead.

use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Fibonacci-multiplicative hasher for `u64` keys.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// Builder for [`IdHasher`].
pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;
