//! [`MemoryCache`]: one bounded in-process store ([`MemoryStore`], moka) shared by every scope, with
//! entries keyed by `(scope, generation, key)` so no key can pass for another scope's.
//!
//! A flush moves the scope to its next generation instead of relying on moka's invalidation alone:
//! moka decides what an invalidation covers by comparing timestamps, and an entry written in the
//! same clock tick as the flush could outlive it (and every registered invalidation closure is a
//! cost on every read). Entries of an old generation can no longer be named; removing them one by
//! one afterwards only gives their room back sooner.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;

use super::{CacheError, CacheStore, incremented};

type Key = (Arc<str>, u64, String);

#[derive(Clone)]
struct Entry {
    value: Arc<Vec<u8>>,
    ttl: Option<Duration>,
}

struct PerEntryTtl;

impl Expiry<Key, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &Key, entry: &Entry, _created_at: Instant) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(&self, _key: &Key, entry: &Entry, _updated_at: Instant, _left: Option<Duration>) -> Option<Duration> {
        entry.ttl
    }
}

/// The process-wide store behind every [`MemoryCache`], bounded by entry count.
#[derive(Clone)]
pub struct MemoryStore {
    entries: moka::future::Cache<Key, Entry>,
    /// Each scope's current generation; a scope that never flushed is at 0 and not listed.
    generations: Arc<RwLock<HashMap<Arc<str>, u64>>>,
}

impl MemoryStore {
    /// A store holding at most `capacity` entries (least recently used ones go first).
    pub fn new(capacity: u64) -> Self {
        let entries = moka::future::Cache::builder().max_capacity(capacity).expire_after(PerEntryTtl).build();
        Self { entries, generations: Arc::default() }
    }

    fn generation(&self, scope: &str) -> u64 {
        self.generations.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(scope).copied().unwrap_or(0)
    }

    /// Moves `scope` to a new generation and returns the one it left.
    fn next_generation(&self, scope: &Arc<str>) -> u64 {
        let mut generations = self.generations.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let generation = generations.entry(scope.clone()).or_insert(0);
        *generation += 1;
        *generation - 1
    }

    /// The cache of `scope` (a tenant id, or `central`).
    pub fn scope(&self, scope: &str) -> MemoryCache {
        MemoryCache { store: self.clone(), scope: Arc::from(scope) }
    }
}

/// One scope's view of a [`MemoryStore`].
pub struct MemoryCache {
    store: MemoryStore,
    scope: Arc<str>,
}

impl MemoryCache {
    fn key(&self, key: &str) -> Key {
        (self.scope.clone(), self.store.generation(&self.scope), key.to_owned())
    }

    fn is_current(&self, key: &Key, generation: u64) -> bool {
        key.0 == self.scope && key.1 == generation
    }
}

#[async_trait]
impl CacheStore for MemoryCache {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.store.entries.get(&self.key(key)).await.map(|entry| entry.value.as_ref().clone()))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.store.entries.insert(self.key(key), Entry { value: Arc::new(value), ttl }).await;
        Ok(())
    }

    async fn forget(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.store.entries.remove(&self.key(key)).await.is_some())
    }

    async fn increment(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        let current = self.store.entries.get(&self.key(key)).await;
        let next = incremented(key, current.as_ref().map(|e| e.value.as_slice()), by)?;
        let ttl = current.and_then(|e| e.ttl);
        self.put(key, serde_json::to_vec(&next).expect("an integer serialises"), ttl).await?;
        Ok(next)
    }

    async fn stats(&self) -> Result<super::CacheStats, CacheError> {
        let (mut entries, mut bytes) = (0, 0);
        let generation = self.store.generation(&self.scope);
        for (key, entry) in self.store.entries.iter() {
            if self.is_current(&key, generation) {
                entries += 1;
                bytes += entry.value.len() as u64;
            }
        }
        Ok(super::CacheStats { entries, bytes })
    }

    async fn flush(&self) -> Result<u64, CacheError> {
        let left = self.store.next_generation(&self.scope);
        let stale: Vec<Arc<Key>> =
            self.store.entries.iter().map(|(key, _)| key).filter(|key| key.0 == self.scope && key.1 <= left).collect();
        let count = stale.iter().filter(|key| key.1 == left).count() as u64;
        for key in stale {
            self.store.entries.invalidate(key.as_ref()).await;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// moka's own invalidation compares timestamps, so a write in the same tick as the flush could
    /// survive it; generations make every flush cover every write that came before it.
    #[tokio::test]
    async fn a_flush_covers_the_write_just_before_it() {
        let store = MemoryStore::new(1_000);
        let (acme, globex) = (store.scope("acme"), store.scope("globex"));
        globex.put("key", b"theirs".to_vec(), None).await.unwrap();
        for round in 0..5_000u32 {
            acme.put("key", round.to_le_bytes().to_vec(), None).await.unwrap();
            assert_eq!(acme.flush().await.unwrap(), 1, "round {round}");
            assert_eq!(acme.get("key").await.unwrap(), None, "round {round}");
        }
        assert_eq!(globex.get("key").await.unwrap(), Some(b"theirs".to_vec()), "another scope's flush leaves it alone");
        acme.put("key", b"after".to_vec(), None).await.unwrap();
        assert_eq!(acme.get("key").await.unwrap(), Some(b"after".to_vec()));
        assert_eq!(acme.stats().await.unwrap().entries, 1);
    }

    /// Many scopes writing, forgetting and flushing at once, checked against a model afterwards,
    /// when moka's housekeeping has had its chance to run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_never_bring_an_entry_back() {
        let store = MemoryStore::new(100_000);
        let workers: Vec<_> = (0..32u64)
            .map(|scope| {
                let cache = store.scope(&format!("scope-{scope}"));
                tokio::spawn(async move {
                    let mut model = HashMap::new();
                    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ scope;
                    for n in 0..2_000u32 {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        let key = format!("k{}", (seed >> 33) % 16);
                        match (seed >> 20) % 10 {
                            0..=5 => {
                                cache.put(&key, n.to_le_bytes().to_vec(), None).await.unwrap();
                                model.insert(key, n.to_le_bytes().to_vec());
                            }
                            6..=7 => {
                                cache.forget(&key).await.unwrap();
                                model.remove(&key);
                            }
                            8 => {
                                cache.flush().await.unwrap();
                                model.clear();
                            }
                            _ => assert_eq!(cache.get(&key).await.unwrap().as_ref(), model.get(&key)),
                        }
                    }
                    (cache, model)
                })
            })
            .collect();
        let mut finals = Vec::new();
        for worker in workers {
            finals.push(worker.await.unwrap());
        }
        store.entries.run_pending_tasks().await;
        for (cache, model) in finals {
            for key in (0..16).map(|k| format!("k{k}")) {
                assert_eq!(cache.get(&key).await.unwrap().as_ref(), model.get(&key), "{} {key}", cache.scope);
            }
        }
    }
}
