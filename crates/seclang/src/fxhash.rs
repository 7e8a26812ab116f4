//! A small multiply-rotate hasher for engine-internal maps whose keys are
//! not attacker-chosen in bulk (transformation-cache addresses, TX names).
//! SipHash showed up at ~7% of a CRS transaction.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FxHasher {
    /// Hash `bytes` as little-endian words, each passed through `map`
    /// first (case folding, for one). Whole words are single loads; the
    /// tail is folded byte by byte (a variable-length copy would be a
    /// memcpy call per key).
    #[inline]
    pub fn write_words(&mut self, bytes: &[u8], map: impl Fn(u64) -> u64) {
        let mut words = bytes.chunks_exact(8);
        for c in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.write_u64(map(u64::from_le_bytes(b)));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let n = tail
                .iter()
                .enumerate()
                .fold(0u64, |n, (i, &b)| n | u64::from(b) << (8 * i));
            self.write_u64(map(n));
        }
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.write_words(bytes, |w| w);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn h(x: &str) -> u64 {
        FxBuild::default().hash_one(x)
    }

    #[test]
    fn tails_and_lengths_hash_apart() {
        // Every prefix of a key, and keys differing only in their tail.
        let key = "header_name_920450_user-agent";
        let mut seen = std::collections::HashSet::new();
        for i in 0..=key.len() {
            assert!(seen.insert(h(&key[..i])), "prefix {i}");
        }
        assert_ne!(h("abcdefgh1"), h("abcdefgh2"));
        assert_eq!(h("same"), h("same"));
        let mut a = FxHasher::default();
        b"x".hash(&mut a);
        let mut b = FxHasher::default();
        b"x\0".hash(&mut b);
        assert_ne!(a.finish(), b.finish());
    }
}
