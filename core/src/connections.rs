//! [`ConnectionCache`]: one pool per tenant, kept in a least-recently-used cache under a global
//! connection budget.
//!
//! Every open pool holds a [`Reservation`]: one of `max_open_pools` slots and `pool_size` permits
//! of the budget, so the pools together can never open more pools or connections than allowed,
//! whatever runs at once. A pool in use (a [`PoolLease`] is alive) is never closed; when there is
//! no room, the least recently used idle pool is closed to make room, and if every pool is in use
//! the caller waits. Capacity comes back by three paths only (a reservation dropped after a failed
//! open, an eviction or a close; and a lease ending, which makes a pool evictable), and each of
//! them wakes the waiters. Waiting has no timeout on purpose: a lease may legitimately last as
//! long as a seeder runs. The one wait that could never end, a [`crate::Tenancy::run`] nested in
//! the contexts that hold every pool, is refused with [`DatabaseError::NestedOverBudget`].
//! Pools unused for `idle_timeout` are closed on the next lease. A warm tenant costs one map
//! look-up and no reconnect.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::database::{DatabaseError, DatabaseManager, DatabaseName};
use crate::{Config, TenantId};

/// Per-tenant pools under one connection budget.
#[derive(Debug)]
pub struct ConnectionCache {
    state: Mutex<CacheState>,
    /// What the open pools, and those being opened, hold of the limits.
    taken: Arc<Mutex<Taken>>,
    /// Woken whenever capacity comes back or a pool becomes idle.
    capacity: Arc<Notify>,
    limits: Limits,
}

/// Pools and connections reserved, and the most connections ever reserved at once.
#[derive(Debug, Default)]
struct Taken {
    pools: usize,
    connections: u32,
    peak_connections: u32,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    pool_size: u32,
    max_open_pools: usize,
    connection_budget: u32,
    idle_timeout: Duration,
}

#[derive(Debug, Default)]
struct CacheState {
    pools: HashMap<TenantId, OpenPool>,
    /// Pools opened since the cache was made: a warm tenant must not add to it.
    opened: u64,
    /// When idle pools were last looked for.
    swept_at: Option<Instant>,
}

#[derive(Debug)]
struct OpenPool {
    connection: DatabaseConnection,
    /// The most connections it opens.
    size: u32,
    /// Cloned into every lease: a strong count above one means the pool is in use.
    in_use: Arc<()>,
    last_used: Instant,
    _room: Reservation,
}

impl OpenPool {
    fn is_idle(&self) -> bool {
        Arc::strong_count(&self.in_use) == 1
    }
}

/// Room for one pool: one of `max_open_pools` and `pool_size` connections of the budget, taken
/// together or not at all. However it is dropped (a failed open, an eviction, a close), both go
/// back and then every waiter is woken, so a woken waiter finds them.
#[derive(Debug)]
struct Reservation {
    taken: Arc<Mutex<Taken>>,
    connections: u32,
    capacity: Arc<Notify>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        {
            let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
            taken.pools -= 1;
            taken.connections -= self.connections;
        }
        self.capacity.notify_waiters();
    }
}

/// A tenant's connection, borrowed from the cache. While it lives, the pool stays open.
#[derive(Debug)]
pub struct PoolLease {
    connection: DatabaseConnection,
    in_use: Option<Arc<()>>,
    capacity: Arc<Notify>,
}

impl PoolLease {
    /// The tenant's connection pool.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }
}

impl Drop for PoolLease {
    fn drop(&mut self) {
        drop(self.in_use.take());
        // The pool may be idle now, so evictable.
        self.capacity.notify_waiters();
    }
}

/// What [`ConnectionCache::warm`] found.
enum Warm {
    /// The tenant's pool, leased.
    Lease(PoolLease),
    /// An idle pool smaller than asked for, taken out of the cache: close it.
    TooSmall(OpenPool),
    /// No pool open.
    Cold,
}

/// When a new pool connects.
#[derive(Debug, Clone, Copy)]
enum Open {
    /// At once, so an unreachable database fails the lease.
    Now,
    /// On its first query.
    Lazily,
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
    /// The most connections ever reserved at once: never above the budget.
    pub peak_reserved_connections: u32,
    /// Pools opened since start: it grows on a cold tenant, never on a warm one.
    pub pools_opened: u64,
}

impl ConnectionCache {
    /// A cache with the limits of `[tenant_database]`.
    pub fn new(config: &Config) -> Self {
        let db = &config.tenant_database;
        Self {
            state: Mutex::new(CacheState::default()),
            taken: Arc::default(),
            capacity: Arc::new(Notify::new()),
            limits: Limits {
                pool_size: db.pool_size,
                max_open_pools: db.max_open_pools as usize,
                connection_budget: db.connection_budget,
                idle_timeout: config.idle_timeout(),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // A panic while holding this lock leaves only a map behind; its contents stay valid.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The pool of `tenant`, opened through `manager` (with `pool_size` connections) if it is not
    /// open yet. An idle pool opened smaller by [`ConnectionCache::lease_one_connection`] is
    /// replaced by a full one.
    ///
    /// # Errors
    /// [`DatabaseError::Connect`] when the tenant's database cannot be reached;
    /// [`DatabaseError::NestedOverBudget`] when the only pools that could make room are held by the
    /// tenant contexts this task runs in.
    pub async fn lease(
        &self,
        tenant: &TenantId,
        database: &DatabaseName,
        manager: &dyn DatabaseManager,
    ) -> Result<PoolLease, DatabaseError> {
        self.lease_sized(tenant, database, manager, self.limits.pool_size, Open::Now).await
    }

    /// [`ConnectionCache::lease`] for work that sends one statement at a time (migrations): a pool
    /// that is not open yet is opened with one connection, and holds one of the budget. A pool
    /// with room would open a second connection behind the first, since sqlx gives a released
    /// connection back in the background: on a server that is another process (and TLS
    /// handshake) for nothing. A warm pool of any size is used as it is.
    ///
    /// # Errors
    /// As [`ConnectionCache::lease`].
    pub async fn lease_one_connection(
        &self,
        tenant: &TenantId,
        database: &DatabaseName,
        manager: &dyn DatabaseManager,
    ) -> Result<PoolLease, DatabaseError> {
        self.lease_sized(tenant, database, manager, 1, Open::Now).await
    }

    /// [`ConnectionCache::lease`], except that a pool that is not open yet is made without
    /// connecting ([`DatabaseManager::open_lazy`]): it costs no connection until a query runs. For
    /// work that may never touch the database, such as a web request.
    ///
    /// # Errors
    /// As [`ConnectionCache::lease`], except that an unreachable database fails the first query.
    pub async fn lease_lazily(
        &self,
        tenant: &TenantId,
        database: &DatabaseName,
        manager: &dyn DatabaseManager,
    ) -> Result<PoolLease, DatabaseError> {
        self.lease_sized(tenant, database, manager, self.limits.pool_size, Open::Lazily).await
    }

    async fn lease_sized(
        &self,
        tenant: &TenantId,
        database: &DatabaseName,
        manager: &dyn DatabaseManager,
        size: u32,
        open: Open,
    ) -> Result<PoolLease, DatabaseError> {
        let too_small = match self.warm(tenant, size) {
            Warm::Lease(lease) => return Ok(lease),
            Warm::TooSmall(pool) => Some(pool),
            Warm::Cold => None,
        };
        // Boxed: opening's future is large, and a warm lease (most requests) must not carry it.
        Box::pin(self.open_cold(tenant, database, manager, size, open, too_small)).await
    }

    async fn open_cold(
        &self,
        tenant: &TenantId,
        database: &DatabaseName,
        manager: &dyn DatabaseManager,
        size: u32,
        open: Open,
        too_small: Option<OpenPool>,
    ) -> Result<PoolLease, DatabaseError> {
        if let Some(pool) = too_small {
            let _ = pool.connection.close().await;
        }
        self.close_idle_pools().await;
        let room = self.reserve(tenant, size).await?;
        // On failure `room` is dropped here, which gives its permits back and wakes the waiters.
        let connection = match open {
            Open::Now => manager.open_sized(database, size).await?,
            Open::Lazily => manager.open_lazy(database, size).await?,
        };
        let (lease, surplus) = {
            let mut state = self.lock();
            state.opened += 1;
            let (pool, surplus) = match state.pools.entry(*tenant) {
                // Another task opened this tenant's pool meanwhile: use theirs, close ours.
                Entry::Occupied(entry) => (entry.into_mut(), Some((connection, room))),
                Entry::Vacant(entry) => {
                    (entry.insert(OpenPool { connection, size, in_use: Arc::new(()), last_used: Instant::now(), _room: room }), None)
                }
            };
            pool.last_used = Instant::now();
            (PoolLease { connection: pool.connection.clone(), in_use: Some(pool.in_use.clone()), capacity: self.capacity.clone() }, surplus)
        };
        if let Some((connection, _room)) = surplus {
            let _ = connection.close().await;
        }
        Ok(lease)
    }

    /// A lease on `tenant`'s open pool if it has `size` connections or is in use (a smaller
    /// pool in use serves as it is); an idle smaller pool is taken out, to be closed and replaced.
    fn warm(&self, tenant: &TenantId, size: u32) -> Warm {
        let mut state = self.lock();
        let Some(pool) = state.pools.get_mut(tenant) else { return Warm::Cold };
        if pool.size < size && pool.is_idle() {
            return state.pools.remove(tenant).map_or(Warm::Cold, Warm::TooSmall);
        }
        pool.last_used = Instant::now();
        Warm::Lease(PoolLease { connection: pool.connection.clone(), in_use: Some(pool.in_use.clone()), capacity: self.capacity.clone() })
    }

    /// Takes room for one pool, closing least recently used idle pools (or waiting for a lease to
    /// end) until the budget and `max_open_pools` allow it.
    async fn reserve(&self, tenant: &TenantId, size: u32) -> Result<Reservation, DatabaseError> {
        loop {
            // Register interest before looking, so capacity returned between the look and the wait is not missed.
            let returned = self.capacity.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(room) = self.try_reserve(size) {
                return Ok(room);
            }
            if let Some(evicted) = self.take_least_recently_used() {
                let _ = evicted.connection.close().await;
                continue; // its reservation went back with it
            }
            self.refuse_a_wait_that_cannot_end(tenant)?;
            returned.await;
        }
    }

    fn try_reserve(&self, size: u32) -> Option<Reservation> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = taken.connections + size;
        if taken.pools >= self.limits.max_open_pools || connections > self.limits.connection_budget {
            return None;
        }
        taken.pools += 1;
        taken.connections = connections;
        taken.peak_connections = taken.peak_connections.max(connections);
        Some(Reservation { taken: self.taken.clone(), connections: size, capacity: self.capacity.clone() })
    }

    /// Inside nested tenant contexts, the pools of the outer contexts stay in use until this task
    /// returns: if they are the only pools in use and no other open is under way, waiting would
    /// never end.
    fn refuse_a_wait_that_cannot_end(&self, tenant: &TenantId) -> Result<(), DatabaseError> {
        let held = crate::context::held_tenants();
        if held.is_empty() {
            return Ok(());
        }
        let state = self.lock();
        let opening = self.taken.lock().unwrap_or_else(PoisonError::into_inner).pools.saturating_sub(state.pools.len());
        let only_ours = state.pools.iter().filter(|(_, pool)| !pool.is_idle()).all(|(id, _)| held.contains(id));
        if opening == 0 && only_ours {
            return Err(DatabaseError::NestedOverBudget {
                tenant: tenant.to_string(),
                open_pools: state.pools.len(),
                budget: self.limits.connection_budget,
            });
        }
        Ok(())
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
            let now = Instant::now();
            // A web server may open a pool per request: look at every pool only now and then.
            if state.swept_at.is_some_and(|swept| now.duration_since(swept) < (timeout / 8).min(Duration::from_secs(1))) {
                return;
            }
            state.swept_at = Some(now);
            let expired = |pool: &OpenPool| pool.is_idle() && now.duration_since(pool.last_used) >= timeout;
            if !state.pools.values().any(expired) {
                return;
            }
            let ids: Vec<TenantId> = state.pools.iter().filter(|(_, pool)| expired(pool)).map(|(id, _)| *id).collect();
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

    /// Waits until no lease of `tenant`'s pool is alive, then closes it. The caller must make sure
    /// no new lease starts meanwhile (as deleting a tenant does).
    pub async fn close_when_idle(&self, tenant: &TenantId) {
        loop {
            let released = self.capacity.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let busy = self.lock().pools.get(tenant).is_some_and(|pool| !pool.is_idle());
            if !busy {
                return self.close(tenant).await;
            }
            released.await;
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
            reserved_connections: state.pools.values().map(|pool| pool.size).sum(),
            peak_reserved_connections: self.taken.lock().unwrap_or_else(PoisonError::into_inner).peak_connections,
            pools_opened: state.opened,
        }
    }
}
