//! Hashers for the book's indexes.
//!
//! Order ids come from the router's sequence, never from users, so a plain multiplicative hash
//! cannot be steered into collisions ([`IdHasher`]). Keys that users choose (public keys,
//! client order ids) use [`KeyedHasher`], a folded-multiply hash keyed per book from the
//! standard library's random source, so collisions cannot be precomputed. Hash values never
//! influence the engine's output, only where entries sit in memory.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

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

/// 64×64→128-bit multiply, folded to 64 bits.
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

/// Keyed folded-multiply hasher for user-chosen keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedHasher {
    state: u64,
    key: u64,
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            if let Some(dst) = word.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.state = fold_mul(self.state ^ n, self.key);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        fold_mul(self.state, K ^ self.key).rotate_left(26)
    }
}

/// Builder for [`KeyedHasher`] with random keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedBuild {
    seed: u64,
    key: u64,
}

impl Default for KeyedBuild {
    fn default() -> Self {
        let random = RandomState::new();
        KeyedBuild {
            seed: random.hash_one(0x6b65_7374_u64),
            key: random.hash_one(0x7265_6c00_u64) | 1,
        }
    }
}

impl BuildHasher for KeyedBuild {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            state: self.seed,
            key: self.key,
        }
    }
}
