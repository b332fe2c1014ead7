//! [`MemoryCache`]: one bounded in-process store ([`MemoryStore`], moka) shared by every scope, with
//! entries keyed by `(scope, key)` pairs so no key can pass for another scope's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;

use super::{CacheError, CacheStore, incremented};

type Key = (Arc<str>, String);

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
}

impl MemoryStore {
    /// A store holding at most `capacity` entries (least recently used ones go first).
    pub fn new(capacity: u64) -> Self {
        let entries =
            moka::future::Cache::builder().max_capacity(capacity).expire_after(PerEntryTtl).support_invalidation_closures().build();
        Self { entries }
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
        (self.scope.clone(), key.to_owned())
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
        for (key, entry) in self.store.entries.iter() {
            if key.0 == self.scope {
                entries += 1;
                bytes += entry.value.len() as u64;
            }
        }
        Ok(super::CacheStats { entries, bytes })
    }

    async fn flush(&self) -> Result<u64, CacheError> {
        let count = self.store.entries.iter().filter(|(key, _)| key.0 == self.scope).count() as u64;
        let scope = self.scope.clone();
        self.store
            .entries
            .invalidate_entries_if(move |key, _| key.0 == scope)
            .map_err(|err| CacheError::store("memory", "flush")(Box::new(err)))?;
        Ok(count)
    }
}
