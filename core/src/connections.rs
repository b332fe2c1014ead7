//! [`ConnectionCache`]: one pool per tenant, kept in a least-recently-used cache under a global
//! connection budget.
//!
//! Every open pool reserves `pool_size` permits of one semaphore holding `connection_budget`
//! permits, so the pools together can never open more connections than the budget, whatever runs at
//! once. A pool in use (a [`PoolLease`] is alive) is never closed; when the budget or
//! `max_open_pools` is reached, the least recently used idle pool is closed to make room, and if
//! every pool is in use the caller waits for one to be released. Pools unused for `idle_timeout` are
//! closed on the next lease. A warm tenant costs one map look-up and no reconnect.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::database::{DatabaseError, DatabaseManager, DatabaseName};
use crate::{Config, TenantId};

/// Per-tenant pools under one connection budget.
#[derive(Debug)]
pub struct ConnectionCache {
    state: Mutex<CacheState>,
    budget: Arc<Semaphore>,
    released: Notify,
    limits: Limits,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    pool_size: u32,
    max_open_pools: usize,
    idle_timeout: Duration,
}

#[derive(Debug, Default)]
struct CacheState {
    pools: HashMap<TenantId, OpenPool>,
    /// Pools opened since the cache was made: a warm tenant must not add to it.
    opened: u64,
}

#[derive(Debug)]
struct OpenPool {
    connection: DatabaseConnection,
    /// Cloned into every lease: a strong count above one means the pool is in use.
    in_use: Arc<()>,
    last_used: Instant,
    _permits: OwnedSemaphorePermit,
}

impl OpenPool {
    fn is_idle(&self) -> bool {
        Arc::strong_count(&self.in_use) == 1
    }
}

/// A tenant's connection, borrowed from the cache. While it lives, the pool stays open.
#[derive(Debug)]
pub struct PoolLease<'a> {
    connection: DatabaseConnection,
    in_use: Option<Arc<()>>,
    cache: &'a ConnectionCache,
}

impl PoolLease<'_> {
    /// The tenant's connection pool.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }
}

impl Drop for PoolLease<'_> {
    fn drop(&mut self) {
        drop(self.in_use.take());
        self.cache.released.notify_waiters();
    }
}

/// What the cache holds right now, for `monitor` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Open tenant pools.
    pub open_pools: usize,
    /// Pools with a live lease.
    pub pools_in_use: usize,
    /// Connections the open pools may hold at most (reserved from the budget).
    pub reserved_connections: u32,
    /// Pools opened since start: it grows on a cold tenant, never on a warm one.
    pub pools_opened: u64,
}

impl ConnectionCache {
    /// A cache with the limits of `[tenant_database]`.
    pub fn new(config: &Config) -> Self {
        let db = &config.tenant_database;
        Self {
            state: Mutex::new(CacheState::default()),
            budget: Arc::new(Semaphore::new(db.connection_budget as usize)),
            released: Notify::new(),
            limits: Limits { pool_size: db.pool_size, max_open_pools: db.max_open_pools as usize, idle_timeout: config.idle_timeout() },
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // A panic while holding this lock leaves only a map behind; its contents stay valid.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The pool of `tenant`, opened through `manager` if it is not open yet.
    ///
    /// # Errors
    /// [`DatabaseError::Connect`] when the tenant's database cannot be reached.
    pub async fn lease(
        &self,
        tenant: &TenantId,
        database: &DatabaseName,
        manager: &dyn DatabaseManager,
    ) -> Result<PoolLease<'_>, DatabaseError> {
        if let Some(lease) = self.warm(tenant) {
            return Ok(lease);
        }
        self.close_idle_pools().await;
        let permits = self.reserve().await;
        let connection = manager.open(database).await?;
        let (lease, surplus) = {
            let mut state = self.lock();
            state.opened += 1;
            let (pool, surplus) = match state.pools.entry(*tenant) {
                // Another task opened this tenant's pool meanwhile: use theirs, close ours.
                Entry::Occupied(entry) => (entry.into_mut(), Some(connection)),
                Entry::Vacant(entry) => {
                    (entry.insert(OpenPool { connection, in_use: Arc::new(()), last_used: Instant::now(), _permits: permits }), None)
                }
            };
            pool.last_used = Instant::now();
            (PoolLease { connection: pool.connection.clone(), in_use: Some(pool.in_use.clone()), cache: self }, surplus)
        };
        if let Some(connection) = surplus {
            let _ = connection.close().await;
        }
        Ok(lease)
    }

    fn warm(&self, tenant: &TenantId) -> Option<PoolLease<'_>> {
        let mut state = self.lock();
        let pool = state.pools.get_mut(tenant)?;
        pool.last_used = Instant::now();
        Some(PoolLease { connection: pool.connection.clone(), in_use: Some(pool.in_use.clone()), cache: self })
    }

    /// Takes `pool_size` permits, closing least recently used idle pools (or waiting for a lease to
    /// end) until the budget and `max_open_pools` allow one more pool.
    async fn reserve(&self) -> OwnedSemaphorePermit {
        loop {
            // Register interest before looking, so a release between the look and the wait is not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let room_for_pool = self.lock().pools.len() < self.limits.max_open_pools;
            if room_for_pool && let Ok(permits) = self.budget.clone().try_acquire_many_owned(self.limits.pool_size) {
                return permits;
            }
            if let Some(evicted) = self.take_least_recently_used() {
                let _ = evicted.connection.close().await;
                continue; // its permits went back with it
            }
            released.await;
        }
    }

    fn take_least_recently_used(&self) -> Option<OpenPool> {
        let mut state = self.lock();
        let victim = state.pools.iter().filter(|(_, pool)| pool.is_idle()).min_by_key(|(_, pool)| pool.last_used).map(|(id, _)| *id)?;
        state.pools.remove(&victim)
    }

    /// Closes every idle pool unused for longer than the idle timeout.
    pub async fn close_idle_pools(&self) {
        let expired: Vec<OpenPool> = {
            let mut state = self.lock();
            let timeout = self.limits.idle_timeout;
            let ids: Vec<TenantId> =
                state.pools.iter().filter(|(_, pool)| pool.is_idle() && pool.last_used.elapsed() >= timeout).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| state.pools.remove(id)).collect()
        };
        for pool in expired {
            let _ = pool.connection.close().await;
        }
    }

    /// Closes the pool of `tenant`, if open (before its database is dropped). Waits for connections
    /// in use to come back.
    pub async fn close(&self, tenant: &TenantId) {
        let pool = self.lock().pools.remove(tenant);
        if let Some(pool) = pool {
            let _ = pool.connection.close().await;
        }
    }

    /// Closes every pool, all at once.
    pub async fn close_all(&self) {
        let pools: Vec<OpenPool> = self.lock().pools.drain().map(|(_, pool)| pool).collect();
        futures::future::join_all(pools.into_iter().map(|pool| pool.connection.close())).await;
    }

    /// What is open now.
    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            open_pools: state.pools.len(),
            pools_in_use: state.pools.values().filter(|pool| !pool.is_idle()).count(),
            reserved_connections: state.pools.len() as u32 * self.limits.pool_size,
            pools_opened: state.opened,
        }
    }
}
