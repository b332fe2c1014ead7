//! Tenant-scoped caching: a [`Cache`] handle over one [`CacheStore`], each store already confined to
//! one tenant (or to the central scope), so no key of one tenant can reach another's.
//!
//! - [`DatabaseCache`] keeps entries in the tenant's own database (`tenancy_cache`): isolated by
//!   being in another database.
//! - [`MemoryCache`] keeps entries in one bounded in-process cache (moka) under `(scope, key)`
//!   pairs: no string is ever joined, so no key can imitate another scope.
//! - [`RedisCache`] keeps entries under the tenant's prefix (`tenant_{tenant_id}_`), flushes with
//!   `SCAN` + `UNLINK` over that prefix only, and shares one multiplexed connection that reconnects.
//!
//! Values are serde JSON. Keys are strings of at most [`MAX_KEY_LEN`] bytes, any characters but NUL.

mod bootstrap;
mod database;
mod memory;
mod redis;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use bootstrap::{CacheBootstrapper, CacheScope};
pub use database::DatabaseCache;
pub use memory::{MemoryCache, MemoryStore};
pub use redis::RedisCache;

use crate::BoxError;

/// The longest key, in bytes (the database store's key column holds 255).
pub const MAX_KEY_LEN: usize = 250;

/// The longest time to live, about a hundred years: a longer one (`Duration::MAX`, `u64::MAX`
/// seconds) is shortened to it on every store alike, which is the same as "for ever" but fits
/// each store's clock (milliseconds in an `i64`, Redis's expiry, moka's timer).
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// One scope's raw entries. Implementations are confined to their scope: `flush` removes this
/// scope's entries and nothing else.
///
/// # Errors
/// [`CacheError::Store`] when the backing store fails.
#[async_trait]
pub trait CacheStore: Send + Sync {
    /// The store's name for messages: `database`, `memory`, `redis`.
    fn kind(&self) -> &'static str;
    /// The value of `key`, unless missing or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    /// Stores `value` under `key`, for `ttl` if given.
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), CacheError>;
    /// Removes `key`; says whether it was there.
    async fn forget(&self, key: &str) -> Result<bool, CacheError>;
    /// Adds `by` to the integer under `key` (missing counts as 0) and returns the new value.
    async fn increment(&self, key: &str, by: i64) -> Result<i64, CacheError>;
    /// Removes every entry of this scope; returns how many, where the store can tell.
    async fn flush(&self) -> Result<u64, CacheError>;

    /// How many entries this scope has and how many bytes their values take.
    async fn stats(&self) -> Result<CacheStats, CacheError>;

    /// Deletes this scope's expired entries that the store keeps until someone removes them;
    /// returns how many. Stores that expire entries by themselves (Redis, memory) have none.
    async fn purge_expired(&self) -> Result<u64, CacheError> {
        Ok(0)
    }
}

/// The size of one scope's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Entries (expired ones not yet removed included, on the database store).
    pub entries: u64,
    /// Bytes of their values.
    pub bytes: u64,
}

/// A failed cache operation.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The backing store failed.
    #[error("the {store} cache failed to {action}")]
    Store {
        /// `database`, `memory` or `redis`.
        store: &'static str,
        /// What was being done.
        action: String,
        /// Why.
        source: BoxError,
    },
    /// A key longer than [`MAX_KEY_LEN`].
    #[error("cache key of {len} bytes is too long; keys have at most {MAX_KEY_LEN}")]
    KeyTooLong {
        /// Its length.
        len: usize,
    },
    /// A key with a NUL character, which PostgreSQL text cannot hold: refused on every store alike.
    #[error("cache key {key:?} contains a NUL character; keys cannot")]
    NulInKey {
        /// The key.
        key: String,
    },
    /// A stored value that does not decode as the type asked for.
    #[error("cache entry `{key}` does not hold the type asked for")]
    Decode {
        /// The key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
    /// An entry that `increment` found not to be an integer.
    #[error("cache entry `{key}` is not an integer, so it cannot be incremented")]
    NotAnInteger {
        /// The key.
        key: String,
    },
    /// `increment` would take the integer past what an `i64` holds; the entry is unchanged.
    #[error("cache entry `{key}` cannot be incremented by {by}: the result would overflow a 64-bit integer")]
    Overflow {
        /// The key.
        key: String,
        /// The increment asked for.
        by: i64,
    },
    /// `remember`'s computation failed; nothing was stored.
    #[error("computing cache entry `{key}` failed")]
    Compute {
        /// The key.
        key: String,
        /// Why.
        source: BoxError,
    },
}

impl CacheError {
    pub(crate) fn store(store: &'static str, action: impl Into<String>) -> impl FnOnce(BoxError) -> Self {
        let action = action.into();
        move |source| Self::Store { store, action, source }
    }
}

type LockKey = (Arc<str>, String);

/// Locks per scope and key, so concurrent misses of one key compute it once.
#[derive(Default)]
pub struct KeyLocks(Mutex<HashMap<LockKey, Arc<tokio::sync::Mutex<()>>>>);

impl KeyLocks {
    async fn lock(&self, scope: &Arc<str>, key: &str) -> KeyGuard<'_> {
        let key = (scope.clone(), key.to_owned());
        let lock = self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default().clone();
        KeyGuard { _guard: lock.clone().lock_owned().await, key, lock, locks: self }
    }
}

struct KeyGuard<'a> {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    key: LockKey,
    lock: Arc<tokio::sync::Mutex<()>>,
    locks: &'a KeyLocks,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and ours (the guard holds a third until it drops after this).
        if Arc::strong_count(&self.lock) <= 3 {
            map.remove(&self.key);
        }
    }
}

/// A scope's cache: typed values over a [`CacheStore`].
#[derive(Clone)]
pub struct Cache {
    store: Arc<dyn CacheStore>,
    scope: Arc<str>,
    locks: Arc<KeyLocks>,
}

impl Cache {
    /// A cache over `store`, which holds the entries of `scope` (a tenant id, or `central`).
    pub fn new(store: Arc<dyn CacheStore>, scope: &str, locks: Arc<KeyLocks>) -> Self {
        Self { store, scope: Arc::from(scope), locks }
    }

    /// The store's kind.
    pub fn kind(&self) -> &'static str {
        self.store.kind()
    }

    fn check(key: &str) -> Result<(), CacheError> {
        if key.len() > MAX_KEY_LEN {
            return Err(CacheError::KeyTooLong { len: key.len() });
        }
        if key.contains('\0') {
            return Err(CacheError::NulInKey { key: key.to_owned() });
        }
        Ok(())
    }

    /// The value of `key`, if present and not expired.
    ///
    /// # Errors
    /// [`CacheError`] when the store fails or the value is of another type.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        Self::check(key)?;
        let found = self.store.get(key).await?;
        crate::metrics::cache_read(self.kind(), found.is_some());
        match found {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| CacheError::Decode { key: key.to_owned(), source }),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key`, for `ttl` if given (otherwise until forgotten or flushed).
    ///
    /// # Errors
    /// [`CacheError`] when the store fails.
    pub async fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<(), CacheError> {
        Self::check(key)?;
        let bytes = serde_json::to_vec(value).map_err(|source| CacheError::Decode { key: key.to_owned(), source })?;
        self.store.put(key, bytes, ttl.map(|ttl| ttl.min(MAX_TTL))).await
    }

    /// The value of `key`, or `compute`'s result, stored for `ttl`. Concurrent misses of one key in
    /// this process compute it once.
    ///
    /// # Errors
    /// [`CacheError::Compute`] if `compute` fails (nothing is stored), or a store error.
    pub async fn remember<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, compute: F) -> Result<T, CacheError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, BoxError>>,
    {
        if let Some(hit) = self.get(key).await? {
            return Ok(hit);
        }
        let _guard = self.locks.lock(&self.scope, key).await;
        if let Some(hit) = self.get(key).await? {
            return Ok(hit);
        }
        let value = compute().await.map_err(|source| CacheError::Compute { key: key.to_owned(), source })?;
        self.put(key, &value, ttl).await?;
        Ok(value)
    }

    /// Removes `key`; says whether it was there.
    ///
    /// # Errors
    /// [`CacheError`] when the store fails.
    pub async fn forget(&self, key: &str) -> Result<bool, CacheError> {
        Self::check(key)?;
        self.store.forget(key).await
    }

    /// Adds `by` to the integer under `key` (missing counts as 0); returns the new value.
    ///
    /// # Errors
    /// [`CacheError::NotAnInteger`] if the entry holds something else, or a store error.
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        Self::check(key)?;
        let _guard = self.locks.lock(&self.scope, key).await;
        self.store.increment(key, by).await
    }

    /// How many entries this scope holds, and their bytes.
    ///
    /// # Errors
    /// [`CacheError`] when the store fails.
    pub async fn stats(&self) -> Result<CacheStats, CacheError> {
        self.store.stats().await
    }

    /// Deletes the expired entries a store keeps until swept (the database store's); returns how many.
    ///
    /// # Errors
    /// [`CacheError`] when the store fails.
    pub async fn purge_expired(&self) -> Result<u64, CacheError> {
        self.store.purge_expired().await
    }

    /// Removes every entry of this scope and nothing else.
    ///
    /// # Errors
    /// [`CacheError`] when the store fails.
    pub async fn flush(&self) -> Result<u64, CacheError> {
        self.store.flush().await
    }
}

/// The integer stored as `bytes` (missing counts as 0) plus `by`, as `increment` stores it.
pub(crate) fn incremented(key: &str, bytes: Option<&[u8]>, by: i64) -> Result<i64, CacheError> {
    let current = match bytes {
        None => 0,
        Some(bytes) => serde_json::from_slice::<i64>(bytes).map_err(|_| CacheError::NotAnInteger { key: key.to_owned() })?,
    };
    current.checked_add(by).ok_or_else(|| CacheError::Overflow { key: key.to_owned(), by })
}
