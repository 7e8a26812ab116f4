//! Transformation cache: within a phase, a request value transformed by a
//! given chain prefix (`t:utf8toUnicode,t:urlDecodeUni`, ...) is computed
//! once and shared by every rule using that prefix. Keys are the value's
//! address and length (values of request data do not move during a phase)
//! and the interned prefix id.

use crate::fxhash::FxHashMap;
use crate::ops::Transform;
use crate::variables::Item;
use std::ops::Deref;
use std::sync::Arc;

/// A transformed value: the original, a cached result, or a fresh one.
pub enum Val<'v> {
    Borrowed(&'v [u8]),
    Shared(Arc<[u8]>),
}

impl Deref for Val<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Val::Borrowed(b) => b,
            Val::Shared(a) => a,
        }
    }
}

/// Bound on cached entries per phase, so a request with very many values cannot grow it without limit.
const MAX_ENTRIES: usize = 50_000;

/// (value address, value length, transformation-prefix id).
type Key = (usize, usize, u32);

#[derive(Default)]
pub struct TCache {
    /// `None`: the prefix left the value unchanged.
    map: FxHashMap<Key, Option<Arc<[u8]>>>,
    pub hits: u64,
}

impl TCache {
    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn transformed<'v>(
        &mut self,
        it: &'v Item<'_>,
        transforms: &[(Transform, u32)],
    ) -> Val<'v> {
        let base: &'v [u8] = &it.value;
        if transforms.is_empty() {
            return Val::Borrowed(base);
        }
        if !it.stable {
            return apply_all(Val::Borrowed(base), transforms);
        }
        let key = |id: u32| (base.as_ptr() as usize, base.len(), id);
        // Longest cached prefix.
        let mut start = 0;
        let mut cur = Val::Borrowed(base);
        for k in (0..transforms.len()).rev() {
            if let Some(c) = self.map.get(&key(transforms[k].1)) {
                self.hits += 1;
                cur = match c {
                    Some(a) => Val::Shared(a.clone()),
                    None => Val::Borrowed(base),
                };
                start = k + 1;
                break;
            }
        }
        for (t, id) in &transforms[start..] {
            if let Some(nv) = t.apply(&cur) {
                cur = Val::Shared(Arc::from(nv));
            }
            if self.map.len() < MAX_ENTRIES {
                let entry = match &cur {
                    Val::Borrowed(_) => None,
                    Val::Shared(a) => Some(a.clone()),
                };
                self.map.insert(key(*id), entry);
            }
        }
        cur
    }
}

fn apply_all<'v>(mut cur: Val<'v>, transforms: &[(Transform, u32)]) -> Val<'v> {
    for (t, _) in transforms {
        if let Some(nv) = t.apply(&cur) {
            cur = Val::Shared(Arc::from(nv));
        }
    }
    cur
}
