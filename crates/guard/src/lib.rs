//! Behavioural defences share state through a [`StateStore`]: counters with
//! expiry, distinct-value sets, and small session records. Nodes are
//! stateless cattle, so this state lives in-process by default ([`MemoryStore`])
//! and in Redis when a fleet must share it (added with the rate-limit stage).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing store cannot be reached; callers choose fail-open or fail-closed per policy.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// Shared state for guard stages. Keys are namespaced by the caller
/// (`rl:<rule>:<key>`); every entry expires after `ttl`.
pub trait StateStore: Send + Sync {
    /// Add `by` to a counter in a fixed window of `ttl`; returns the new value.
    fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, StoreError>;
    /// Add `member` to a set that expires after `ttl`; returns the set's size.
    fn add_distinct(&self, key: &str, member: &str, ttl: Duration) -> Result<u64, StoreError>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
}

enum Entry {
    Counter(u64),
    Set(HashSet<String>),
    Value(Vec<u8>),
}

/// In-process store: one node's view only. Expired entries are dropped lazily
/// and swept when the map grows past `sweep_at`.
pub struct MemoryStore {
    map: Mutex<HashMap<String, (Instant, Entry)>>,
    sweep_at: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            map: Mutex::new(HashMap::new()),
            sweep_at: 100_000,
        }
    }
}

impl MemoryStore {
    fn with<R>(
        &self,
        key: &str,
        ttl: Duration,
        init: impl Fn() -> Entry,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> R {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if m.len() > self.sweep_at {
            m.retain(|_, (exp, _)| *exp > now);
        }
        let slot = m
            .entry(key.to_string())
            .or_insert_with(|| (now + ttl, init()));
        if slot.0 <= now {
            *slot = (now + ttl, init());
        }
        f(&mut slot.1)
    }
}

impl StateStore for MemoryStore {
    fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, StoreError> {
        Ok(self.with(
            key,
            ttl,
            || Entry::Counter(0),
            |e| match e {
                Entry::Counter(n) => {
                    *n = n.saturating_add(by);
                    *n
                }
                other => {
                    *other = Entry::Counter(by);
                    by
                }
            },
        ))
    }

    fn add_distinct(&self, key: &str, member: &str, ttl: Duration) -> Result<u64, StoreError> {
        Ok(self.with(
            key,
            ttl,
            || Entry::Set(HashSet::new()),
            |e| {
                if !matches!(e, Entry::Set(_)) {
                    *e = Entry::Set(HashSet::new());
                }
                match e {
                    Entry::Set(s) => {
                        s.insert(member.to_string());
                        s.len() as u64
                    }
                    _ => 0,
                }
            },
        ))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match m.get(key) {
            Some((exp, Entry::Value(v))) if *exp > Instant::now() => Some(v.clone()),
            _ => None,
        })
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(
            key.to_string(),
            (Instant::now() + ttl, Entry::Value(value.to_vec())),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sets_values_expire() {
        let s = MemoryStore::default();
        let ttl = Duration::from_secs(60);
        assert_eq!(s.incr("a", 1, ttl).unwrap(), 1);
        assert_eq!(s.incr("a", 2, ttl).unwrap(), 3);
        assert_eq!(s.add_distinct("d", "x", ttl).unwrap(), 1);
        assert_eq!(s.add_distinct("d", "x", ttl).unwrap(), 1);
        assert_eq!(s.add_distinct("d", "y", ttl).unwrap(), 2);
        s.set("v", b"1", ttl).unwrap();
        assert_eq!(s.get("v").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.incr("z", 5, Duration::ZERO).unwrap(), 5);
        assert_eq!(
            s.incr("z", 5, Duration::ZERO).unwrap(),
            5,
            "expired window restarts"
        );
    }
}
