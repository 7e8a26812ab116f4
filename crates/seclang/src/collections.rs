//! Named collections (TX, IP, GLOBAL, SESSION, USER, RESOURCE, ENV): ordered
//! maps with case-insensitive keys. Persistent collections are kept per
//! transaction only (`initcol` starts them empty): Palisade has no shared
//! collection store, which CRS v4 does not need.

use crate::fxhash::FxHashMap;

#[derive(Debug, Default, Clone)]
pub struct Collection {
    /// Insertion-ordered `(key as set, value)`.
    items: Vec<(String, Vec<u8>)>,
    /// Lower-cased key -> index in `items`.
    index: FxHashMap<String, usize>,
}

impl Collection {
    /// The stored key and value for `key` (any case).
    pub fn get_entry(&self, key: &str) -> Option<(&str, &[u8])> {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None if key.bytes().any(|b| b.is_ascii_uppercase()) => {
                *self.index.get(&key.to_ascii_lowercase())?
            }
            None => return None,
        };
        self.items.get(i).map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        if let Some(&i) = self.index.get(key) {
            return self.items.get(i).map(|(_, v)| v.as_slice());
        }
        // Keys are stored lower-cased: only a key with capitals needs a second look.
        if !key.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let lk = key.to_ascii_lowercase();
        self.index
            .get(&lk)
            .and_then(|&i| self.items.get(i))
            .map(|(_, v)| v.as_slice())
    }

    pub fn set(&mut self, key: &str, value: Vec<u8>) {
        if let Some(&i) = self.index.get(key) {
            if let Some(slot) = self.items.get_mut(i) {
                slot.1 = value;
                return;
            }
        }
        let lk = key.to_ascii_lowercase();
        match self.index.get(&lk) {
            Some(&i) => {
                if let Some(slot) = self.items.get_mut(i) {
                    slot.1 = value;
                }
            }
            None => {
                self.index.insert(lk.clone(), self.items.len());
                self.items.push((lk, value));
            }
        }
    }

    pub fn remove(&mut self, key: &str) {
        if !self.index.contains_key(key) && !key.bytes().any(|b| b.is_ascii_uppercase()) {
            return;
        }
        let lk = key.to_ascii_lowercase();
        if let Some(i) = self.index.remove(&lk) {
            self.items.remove(i);
            for v in self.index.values_mut() {
                if *v > i {
                    *v -= 1;
                }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(String, Vec<u8>)> {
        self.items.iter()
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
        let keys: Vec<&str> = c.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["bar", "baz"]);
    }
}
