//! Named collections (TX, IP, GLOBAL, SESSION, USER, RESOURCE, ENV): ordered
//! maps with case-insensitive keys. Persistent collections are kept per
//! transaction only (`initcol` starts them empty): Palisade has no shared
//! collection store, which CRS v4 does not need.

use crate::fxhash::FxHasher;
use hashbrown::HashTable;
use std::hash::Hasher;
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
    items: Vec<Entry>,
    /// Indexes in `items`, by the hash of the lower-cased key. A key is
    /// hashed once per access, case-insensitively without a lower-cased
    /// copy, and the same hash probes the base; a keyed map would hash it
    /// again there and keep a second copy of every key.
    index: HashTable<usize>,
    /// What this layer did to each base entry, by base index: `KEPT`,
    /// `REMOVED`, or the index in `items` of its replacement plus one.
    /// Empty until the first change; iterating and looking up then need no
    /// search or sort.
    over: Vec<u32>,
    /// Buffers of entries a previous use of this layer held (see
    /// `relayer`), taken by new keys before anything is allocated.
    spare: Vec<(String, Vec<u8>)>,
    /// Index in `items` plus one (0: none) of the entries for the keys `0`
    /// to `9`: a capture writes them and `%{tx.1}` reads them on every
    /// match, in a place other keys' lookups check with one comparison.
    digits: [u32; 10],
}

/// An own entry: `(key lower-cased, value, index of the base entry it replaces)`.
type Entry = (String, Vec<u8>, Option<usize>);

/// A base entry this layer has not touched, or removed (see `Collection::over`).
const KEPT: u32 = 0;
const REMOVED: u32 = u32::MAX;

/// Own entries a layer has room for from the start.
const LAYER_CAPACITY: usize = 32;

/// Entry buffers a layer keeps for reuse, and the largest kept (a body-sized
/// value is let go rather than held by the thread).
const SPARE_ENTRIES: usize = 128;
const SPARE_BYTES: usize = 1024;

/// A member name known before any request (`TX:name` in a target,
/// `%{tx.name}`, a literal `setvar` key): lower-cased and hashed once, when
/// the rules are loaded, instead of on every lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    text: String,
    hash: u64,
}

impl Name {
    pub fn new(name: &str) -> Name {
        let text = name.to_ascii_lowercase();
        let hash = ci_hash(text.as_bytes());
        Name { text, hash }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// A key as given, with the hash of its lower-cased form.
struct Key<'k> {
    key: &'k str,
    hash: u64,
    /// Already lower-case (a `Name`): compared byte for byte.
    lower: bool,
}

impl Key<'_> {
    fn new(key: &str) -> Key<'_> {
        Key {
            key,
            hash: ci_hash(key.as_bytes()),
            lower: false,
        }
    }

    fn named(n: &Name) -> Key<'_> {
        Key {
            key: &n.text,
            hash: n.hash,
            lower: true,
        }
    }

    /// Whether a stored (lower-case) key is this one.
    fn is(&self, stored: &str) -> bool {
        if self.lower {
            stored == self.key
        } else {
            stored.as_bytes().eq_ignore_ascii_case(self.key.as_bytes())
        }
    }
}

/// The digit a one-digit key is (`Collection::digits`).
#[inline]
fn digit(key: &str) -> Option<usize> {
    match key.as_bytes() {
        [b @ b'0'..=b'9'] => Some(usize::from(b - b'0')),
        _ => None,
    }
}

/// ASCII upper-case letters of a word of bytes lower-cased, 8 at a time.
fn lower_word(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !HIGH;
    // High bit of each byte set when the byte is >= 'A', and when >= '['.
    let ge_a = low7 + 0x3f3f_3f3f_3f3f_3f3f;
    let ge_z1 = low7 + 0x2525_2525_2525_2525;
    let upper = ge_a & !ge_z1 & !w & HIGH;
    w | upper >> 2
}

/// The hash of a key lower-cased, without lower-casing it into a buffer
/// (word-wise, as `FxHasher` hashes).
fn ci_hash(b: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_words(b, lower_word);
    h.write_u64(b.len() as u64);
    h.finish()
}

impl Collection {
    /// A collection that starts as `base` (which is shared, not copied).
    pub fn layered(base: Arc<Collection>) -> Collection {
        Collection {
            base: Some(base),
            // A transaction's TX layer takes a few dozen keys (CRS's scores
            // and per-header entries): sized once instead of regrown and
            // rehashed four or five times.
            items: Vec::with_capacity(LAYER_CAPACITY),
            index: HashTable::with_capacity(LAYER_CAPACITY),
            over: Vec::new(),
            spare: Vec::new(),
            digits: [0; 10],
        }
    }

    /// Room for own entries this layer has (its entry list or index).
    pub fn own_capacity(&self) -> usize {
        self.items.capacity().max(self.index.capacity())
    }

    /// Start again as `base` with no own entries, keeping this layer's
    /// tables and entry buffers for the new entries (a thread's next
    /// transaction reuses its last TX layer; see `state::Spare`).
    pub fn relayer(&mut self, base: Arc<Collection>) {
        self.base = Some(base);
        self.index.clear();
        self.over.clear();
        self.digits = [0; 10];
        let room = SPARE_ENTRIES.saturating_sub(self.spare.len());
        self.spare.extend(
            self.items
                .drain(..)
                .take(room)
                .map(|(k, v, _)| (k, v))
                .filter(|(k, v)| k.capacity() <= SPARE_BYTES && v.capacity() <= SPARE_BYTES),
        );
    }

    /// Index in `items` of the key.
    fn own(&self, k: &Key<'_>) -> Option<usize> {
        if let Some(d) = digit(k.key) {
            return self.digits[d].checked_sub(1).map(|i| i as usize);
        }
        let items = &self.items;
        self.index
            .find(k.hash, |&i| items.get(i).is_some_and(|e| k.is(&e.0)))
            .copied()
    }

    /// Index of the live base entry for the key.
    fn in_base(&self, k: &Key<'_>) -> Option<usize> {
        let i = self.base.as_ref()?.own(k)?;
        (self.over_of(i) != REMOVED).then_some(i)
    }

    fn over_of(&self, base_index: usize) -> u32 {
        self.over.get(base_index).copied().unwrap_or(KEPT)
    }

    /// Record what happened to base entry `b` (sized to the base on first use).
    fn set_over(&mut self, b: usize, what: u32) {
        if self.over.len() <= b {
            let n = self.base.as_ref().map_or(0, |base| base.items.len());
            self.over.resize(n.max(b + 1), KEPT);
        }
        if let Some(o) = self.over.get_mut(b) {
            *o = what;
        }
    }

    /// The stored key and value for `key` (any case).
    pub fn get_entry(&self, key: &str) -> Option<(&str, &[u8])> {
        self.entry(&Key::new(key))
    }

    /// [`Collection::get_entry`] for a name hashed at load time.
    pub fn get_entry_named(&self, name: &Name) -> Option<(&str, &[u8])> {
        self.entry(&Key::named(name))
    }

    pub fn get_named(&self, name: &Name) -> Option<&[u8]> {
        self.entry(&Key::named(name)).map(|(_, v)| v)
    }

    fn entry(&self, k: &Key<'_>) -> Option<(&str, &[u8])> {
        if let Some(i) = self.own(k) {
            return self
                .items
                .get(i)
                .map(|(k, v, _)| (k.as_str(), v.as_slice()));
        }
        let i = self.in_base(k)?;
        let (k, v, _) = self.base.as_ref()?.items.get(i)?;
        Some((k.as_str(), v.as_slice()))
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.get_entry(key).map(|(_, v)| v)
    }

    pub fn set(&mut self, key: &str, value: Vec<u8>) {
        *self.slot(Key::new(key), false) = value;
    }

    /// Set `key` to a copy of `value`, into the buffer this layer already
    /// has for the key when there is one (one lookup, no new allocation).
    pub fn assign(&mut self, key: &str, value: &[u8]) {
        self.put(Key::new(key), value);
    }

    /// [`Collection::assign`] for a name hashed at load time.
    pub fn assign_named(&mut self, name: &Name, value: &[u8]) {
        self.put(Key::named(name), value);
    }

    fn put(&mut self, k: Key<'_>, value: &[u8]) {
        let slot = self.slot(k, false);
        slot.clear();
        slot.extend_from_slice(value);
    }

    /// This layer's value for `key`, to change in place (one lookup, and
    /// its buffer reused). A key only the base has starts as a copy of the
    /// base's value; a new key starts empty.
    pub fn value_mut(&mut self, key: &str) -> &mut Vec<u8> {
        self.slot(Key::new(key), true)
    }

    /// [`Collection::value_mut`] for a name hashed at load time.
    pub fn value_mut_named(&mut self, name: &Name) -> &mut Vec<u8> {
        self.slot(Key::named(name), true)
    }

    /// This layer's entry for `key`, created when absent: from the base's
    /// value when `from_base` (to be updated), else empty (to be replaced).
    fn slot(&mut self, k: Key<'_>, from_base: bool) -> &mut Vec<u8> {
        let key = k.key;
        let i = match self.own(&k) {
            Some(i) => i,
            None => {
                let replaces = self.in_base(&k);
                let (mut name, mut start) = self.spare.pop().unwrap_or_default();
                name.clear();
                name.push_str(key);
                name.make_ascii_lowercase();
                start.clear();
                if let Some(e) = replaces
                    .filter(|_| from_base)
                    .and_then(|b| self.base.as_ref()?.items.get(b))
                {
                    start.extend_from_slice(&e.1);
                }
                let i = self.items.len();
                let items = &self.items;
                self.index.insert_unique(k.hash, i, |&j| {
                    items
                        .get(j)
                        .map(|e| ci_hash(e.0.as_bytes()))
                        .unwrap_or_default()
                });
                if let Some(d) = digit(&name) {
                    self.digits[d] = i as u32 + 1;
                }
                self.items.push((name, start, replaces));
                if let Some(b) = replaces {
                    self.set_over(b, i as u32 + 1);
                }
                i
            }
        };
        &mut self.items[i].1
    }

    pub fn remove(&mut self, key: &str) {
        let k = Key::new(key);
        let items = &self.items;
        let own = self
            .index
            .find_entry(k.hash, |&j| items.get(j).is_some_and(|e| k.is(&e.0)))
            .ok()
            .map(|e| e.remove().0);
        if let Some(i) = own {
            let (_, _, replaced) = self.items.remove(i);
            for v in self.index.iter_mut() {
                if *v > i {
                    *v -= 1;
                }
            }
            for d in self.digits.iter_mut() {
                if *d == i as u32 + 1 {
                    *d = 0;
                } else if *d > i as u32 + 1 {
                    *d -= 1;
                }
            }
            // Replacements after the removed entry moved down by one.
            for o in self.over.iter_mut() {
                if *o != REMOVED && *o > i as u32 + 1 {
                    *o -= 1;
                }
            }
            if let Some(b) = replaced {
                self.set_over(b, REMOVED);
            }
        } else if let Some(b) = self.in_base(&k) {
            self.set_over(b, REMOVED);
        }
    }

    /// The index of `name`'s entry in this collection's own entries (for a
    /// base: what [`Collection::untouched`] takes).
    pub fn index_of(&self, name: &Name) -> Option<u32> {
        self.own(&Key::named(name)).map(|i| i as u32)
    }

    /// Whether this is a layer that has neither replaced nor removed base
    /// entry `base_index`: reading it gives the base's value.
    #[inline]
    pub fn untouched(&self, base_index: u32) -> bool {
        self.base.is_some() && self.over_of(base_index as usize) == KEPT
    }

    /// The shared layer underneath, when there is one.
    pub fn base(&self) -> Option<&Arc<Collection>> {
        self.base.as_ref()
    }

    /// Indexes of the entries whose key `pick` accepts (for a base: the
    /// members a selector takes, found once per rule set).
    pub fn indexes_where(&self, pick: impl Fn(&str) -> bool) -> Box<[u32]> {
        (0..self.items.len() as u32)
            .filter(|&i| self.items.get(i as usize).is_some_and(|e| pick(&e.0)))
            .collect()
    }

    /// [`Collection::iter`] restricted to the base entries at `base_picks`
    /// (ascending, from [`Collection::indexes_where`] on this layer's base)
    /// and the new keys `pick` accepts: a selector over TX looks at the few
    /// base entries it takes instead of testing every key of the base.
    pub fn iter_picked<'s: 'p, 'p>(
        &'s self,
        base_picks: &'p [u32],
        pick: impl Fn(&str) -> bool + 'p,
    ) -> impl Iterator<Item = (&'s str, &'s [u8])> + 'p {
        let base = self.base.as_deref();
        let base = base_picks.iter().filter_map(move |&bi| {
            let e = base?.items.get(bi as usize)?;
            self.through(bi as usize, e)
        });
        let own = self
            .items
            .iter()
            .filter(move |it| it.2.is_none() && pick(&it.0))
            .map(|(k, v, _)| (k.as_str(), v.as_slice()));
        base.chain(own)
    }

    /// What this layer reads for base entry `bi` (`e`, as the base holds
    /// it): the base's value, this layer's replacement, or nothing when
    /// this layer removed it.
    fn through<'s>(&'s self, bi: usize, e: &'s Entry) -> Option<(&'s str, &'s [u8])> {
        match self.over_of(bi) {
            KEPT => Some((e.0.as_str(), e.1.as_slice())),
            REMOVED => None,
            o => self
                .items
                .get(o as usize - 1)
                .map(|(k, v, _)| (k.as_str(), v.as_slice())),
        }
    }

    /// Entries in insertion order (the base's first, then this layer's new keys).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let base = self.base.iter().flat_map(|b| b.items.iter().enumerate());
        let base = base.filter_map(move |(bi, e)| self.through(bi, e));
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

    /// One-digit keys (captures) are found through their own table, which
    /// follows the entries as keys before them are removed.
    #[test]
    fn digit_keys_follow_removals() {
        let base = Arc::new({
            let mut b = Collection::default();
            b.set("3", b"base".to_vec());
            b
        });
        let mut c = Collection::layered(base.clone());
        for (k, v) in [("a", "x"), ("1", "one"), ("b", "y"), ("2", "two")] {
            c.assign(k, v.as_bytes());
        }
        c.remove("a");
        assert_eq!(
            (c.get("1"), c.get("2")),
            (Some(&b"one"[..]), Some(&b"two"[..]))
        );
        c.remove("1");
        assert_eq!((c.get("1"), c.get("2")), (None, Some(&b"two"[..])));
        c.assign("1", b"again");
        c.assign("2", b"TWO");
        let keys: Vec<(&str, &[u8])> = c.iter().collect();
        assert_eq!(
            keys,
            [
                ("3", &b"base"[..]),
                ("b", b"y"),
                ("2", b"TWO"),
                ("1", b"again")
            ]
        );
        // A base's digits read through; a replacement takes its place.
        c.assign("3", b"own");
        assert_eq!(c.get("3"), Some(&b"own"[..]));
        c.relayer(base);
        assert_eq!(
            (c.get("1"), c.get("2"), c.get("3")),
            (None, None, Some(&b"base"[..]))
        );
    }

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

    /// Names hashed at load time find what keys given per request find, in
    /// the layer and in its base, whatever the case on either side.
    #[test]
    fn names_find_what_keys_find() {
        let mut c = over_score_and_other();
        let score = Name::new("SCORE");
        let fresh = Name::new("Fresh_Key");
        assert_eq!(c.get_named(&score), Some(&b"5"[..]));
        c.value_mut_named(&score).push(b'0');
        assert_eq!(c.get("Score"), Some(&b"50"[..]));
        c.assign_named(&fresh, b"f");
        assert_eq!(c.get_entry("FRESH_key"), Some(("fresh_key", &b"f"[..])));
        c.assign("fresh_KEY", b"g");
        assert_eq!(c.get_named(&fresh), Some(&b"g"[..]));
        assert_eq!(c.get_named(&Name::new("other")), Some(&b"x"[..]));
        assert_eq!(c.get_named(&Name::new("othe")), None);
        assert_eq!(c.iter().count(), 3);
    }

    /// A layer over a base holding `score=5` and `other=x`.
    fn over_score_and_other() -> Collection {
        let mut base = Collection::default();
        base.set("score", b"5".to_vec());
        base.set("other", b"x".to_vec());
        Collection::layered(Arc::new(base))
    }

    #[test]
    fn assigned_values_replace_a_base_value_in_its_place() {
        let mut c = over_score_and_other();
        c.assign("Score", b"12");
        c.assign("score", b"3");
        c.assign("new", b"n");
        let all: Vec<(&str, &[u8])> = c.iter().collect();
        assert_eq!(
            all,
            [
                ("score", &b"3"[..]),
                ("other", &b"x"[..]),
                ("new", &b"n"[..])
            ]
        );
    }

    #[test]
    fn values_change_in_place_over_a_base() {
        let mut c = over_score_and_other();
        // A base key starts from the base's value and keeps its place.
        c.value_mut("SCORE").extend_from_slice(b"0");
        assert_eq!(c.get("score"), Some(&b"50"[..]));
        // A new key starts empty and comes after the base's keys.
        c.value_mut("New").extend_from_slice(b"n");
        let all: Vec<(&str, &[u8])> = c.iter().collect();
        assert_eq!(
            all,
            [
                ("score", &b"50"[..]),
                ("other", &b"x"[..]),
                ("new", &b"n"[..])
            ]
        );
        // Removed from this layer, a base key comes back empty.
        c.remove("other");
        assert!(c.get("other").is_none());
        assert_eq!(c.value_mut("other").as_slice(), b"");
    }

    /// Removing a replacement moves the later replacements down: each base
    /// entry still reads its own layer value, in the base's order.
    #[test]
    fn replacements_survive_an_earlier_removal() {
        let mut base = Collection::default();
        for k in ["a", "b", "c", "d"] {
            base.set(k, k.as_bytes().to_vec());
        }
        let mut c = Collection::layered(Arc::new(base));
        c.assign("b", b"B");
        c.assign("new", b"N");
        c.assign("d", b"D");
        c.assign("c", b"C");
        c.remove("b");
        let all: Vec<(&str, &[u8])> = c.iter().collect();
        assert_eq!(
            all,
            [("a", &b"a"[..]), ("c", b"C"), ("d", b"D"), ("new", b"N")]
        );
        assert_eq!(c.get("d"), Some(&b"D"[..]));
        assert_eq!(c.get("b"), None);
        c.remove("d");
        c.assign("d", b"again");
        let keys: Vec<&str> = c.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "c", "new", "d"]);
    }

    /// A selector's base members, found once, read what the layer made of
    /// them (kept, replaced, removed, removed and set again) in the order
    /// a full walk gives.
    #[test]
    fn picked_base_entries_read_as_a_full_walk_does() {
        let mut base = Collection::default();
        for k in ["h_a", "x", "h_b", "h_c", "y", "h_d"] {
            base.set(k, k.as_bytes().to_vec());
        }
        let base = Arc::new(base);
        let pick = |k: &str| k.starts_with("h_");
        let picks = base.indexes_where(pick);
        assert_eq!(&*picks, [0, 2, 3, 5]);
        let mut c = Collection::layered(base.clone());
        let walk = |c: &Collection| -> Vec<(String, Vec<u8>)> {
            c.iter()
                .filter(|(k, _)| pick(k))
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect()
        };
        let picked = |c: &Collection| -> Vec<(String, Vec<u8>)> {
            c.iter_picked(&picks, pick)
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect()
        };
        assert_eq!(picked(&c), walk(&c));
        c.assign("H_B", b"B");
        c.assign("h_new", b"N");
        c.assign("other", b"o");
        c.remove("h_c");
        c.remove("h_d");
        c.assign("h_d", b"again");
        c.assign("x", b"X");
        assert_eq!(picked(&c), walk(&c));
        let keys: Vec<String> = picked(&c).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["h_a", "h_b", "h_new", "h_d"]);
    }

    #[test]
    fn word_lowering_matches_ascii_lowercase() {
        for b in 0..=255u8 {
            for lane in 0..8 {
                let mut w = *b"Az[@`{\xff\x80";
                w[lane] = b;
                let want = u64::from_le_bytes(w.map(|c| c.to_ascii_lowercase()));
                assert_eq!(
                    lower_word(u64::from_le_bytes(w)),
                    want,
                    "byte {b:#x} lane {lane}"
                );
            }
        }
        assert_eq!(
            ci_hash(b"Header_Name_920450_X"),
            ci_hash(b"header_name_920450_x")
        );
        assert_ne!(ci_hash(b"ab"), ci_hash(b"ab\0"));
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
