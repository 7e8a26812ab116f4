//! Named collections (TX, IP, GLOBAL, SESSION, USER, RESOURCE, ENV): ordered
//! maps with case-insensitive keys. Persistent collections are kept per
//! transaction only (`initcol` starts them empty): Palisade has no shared
//! collection store, which CRS v4 does not need.

use crate::fxhash::FxHashMap;
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
pub struct Collection {
    /// A shared read-only layer underneath (the TX every transaction starts
    /// from, built at load time): starting a transaction does not copy it.
    /// A base is itself flat.
    base: Option<Arc<Collection>>,
    /// Own entries in insertion order: `(key lower-cased, value, index of
    /// the base entry it replaces)`. A replaced base entry keeps its place
    /// in the order, as an update in place does.
    items: Vec<(String, Vec<u8>, Option<usize>)>,
    /// Lower-cased key -> index in `items`.
    index: FxHashMap<String, usize>,
    /// Indexes of base entries removed in this layer (few: a Vec).
    removed: Vec<usize>,
}

impl Collection {
    /// A collection that starts as `base` (which is shared, not copied).
    pub fn layered(base: Arc<Collection>) -> Collection {
        Collection {
            base: Some(base),
            ..Default::default()
        }
    }

    /// Index in `items` of `key` (any case).
    fn own(&self, key: &str) -> Option<usize> {
        match self.index.get(key) {
            Some(&i) => Some(i),
            None if key.bytes().any(|b| b.is_ascii_uppercase()) => {
                self.index.get(&key.to_ascii_lowercase()).copied()
            }
            None => None,
        }
    }

    /// Index of the live base entry for `key`.
    fn in_base(&self, key: &str) -> Option<usize> {
        let i = self.base.as_ref()?.own(key)?;
        (!self.removed.contains(&i)).then_some(i)
    }

    /// The stored key and value for `key` (any case).
    pub fn get_entry(&self, key: &str) -> Option<(&str, &[u8])> {
        if let Some(i) = self.own(key) {
            return self
                .items
                .get(i)
                .map(|(k, v, _)| (k.as_str(), v.as_slice()));
        }
        let i = self.in_base(key)?;
        let (k, v, _) = self.base.as_ref()?.items.get(i)?;
        Some((k.as_str(), v.as_slice()))
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.get_entry(key).map(|(_, v)| v)
    }

    pub fn set(&mut self, key: &str, value: Vec<u8>) {
        if let Some(i) = self.own(key) {
            if let Some(slot) = self.items.get_mut(i) {
                slot.1 = value;
                return;
            }
        }
        let lk = key.to_ascii_lowercase();
        let replaces = self.in_base(&lk);
        self.index.insert(lk.clone(), self.items.len());
        self.items.push((lk, value, replaces));
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.own(key) {
            let (k, _, replaced) = self.items.remove(i);
            self.index.remove(&k);
            for v in self.index.values_mut() {
                if *v > i {
                    *v -= 1;
                }
            }
            if let Some(b) = replaced {
                self.removed.push(b);
            }
        } else if let Some(b) = self.in_base(key) {
            self.removed.push(b);
        }
    }

    /// Entries in insertion order (the base's first, then this layer's new keys).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // (base index, own index) of replaced base entries, in base order.
        let mut replaced: Vec<(usize, usize)> = self
            .items
            .iter()
            .enumerate()
            .filter_map(|(oi, it)| it.2.map(|b| (b, oi)))
            .collect();
        replaced.sort_unstable();
        let mut next = 0;
        let base = self.base.iter().flat_map(|b| b.items.iter().enumerate());
        let base = base.filter_map(move |(bi, (k, v, _))| {
            if self.removed.contains(&bi) {
                return None;
            }
            match replaced.get(next) {
                Some(&(b, oi)) if b == bi => {
                    next += 1;
                    self.items
                        .get(oi)
                        .map(|(k, v, _)| (k.as_str(), v.as_slice()))
                }
                _ => Some((k.as_str(), v.as_slice())),
            }
        });
        let own = self
            .items
            .iter()
            .filter(|it| it.2.is_none())
            .map(|(k, v, _)| (k.as_str(), v.as_slice()));
        base.chain(own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_ordered() {
        let mut c = Collection::default();
        c.set("Foo", b"1".to_vec());
        c.set("bar", b"2".to_vec());
        c.set("FOO", b"3".to_vec());
        assert_eq!(c.get("foo"), Some(&b"3"[..]));
        assert_eq!(c.iter().count(), 2);
        c.remove("foo");
        assert_eq!(c.get("bar"), Some(&b"2"[..]));
        assert!(c.get("foo").is_none());
        c.set("baz", b"4".to_vec());
        let keys: Vec<&str> = c.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["bar", "baz"]);
    }

    #[test]
    fn layered_reads_through_and_keeps_order() {
        let mut base = Collection::default();
        base.set("a", b"1".to_vec());
        base.set("b", b"2".to_vec());
        base.set("c", b"3".to_vec());
        let base = Arc::new(base);
        let mut c = Collection::layered(base.clone());
        assert_eq!(c.get("B"), Some(&b"2"[..]));
        c.set("b", b"20".to_vec());
        c.set("d", b"4".to_vec());
        c.remove("a");
        let all: Vec<(&str, &[u8])> = c.iter().collect();
        assert_eq!(all, [("b", &b"20"[..]), ("c", b"3"), ("d", b"4")]);
        assert!(c.get("a").is_none());
        // Removed then set again: it moves to the end, as in a flat collection.
        c.set("a", b"9".to_vec());
        c.remove("b");
        let all: Vec<(&str, &[u8])> = c.iter().collect();
        assert_eq!(all, [("c", &b"3"[..]), ("d", b"4"), ("a", b"9")]);
        assert_eq!(c.get("b"), None);
        // The shared base is untouched.
        assert_eq!(base.get("b"), Some(&b"2"[..]));
        assert_eq!(base.iter().count(), 3);
    }
}
