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
//!
//! A pool opened lazily (for a web request) that never connected holds nothing on the server.
//! When its last lease ends, or when room is needed (before any pool with connections is
//! closed), it gives its reservation back and stays in the cache *dormant*: the next request for
//! that tenant takes room again (a counter), with no new pool made and none closed. Without this,
//! a server whose requests spread over more tenants than the budget has pools for made and closed
//! a pool per request. Dormant pools are bounded by [`MAX_DORMANT_POOLS`] and the idle timeout.
//!
//! Where servers have budgets of their own (`[tenant_database.servers.NAME] connection_budget`),
//! a reservation also counts against its tenant's server, and room for a server that is full is
//! made by closing that server's idle pools only: closing another's would free nothing it can use.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use sea_orm::{DatabaseConnection, DatabaseConnectionType};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::context::Resources;
use crate::database::{DatabaseError, DatabaseManager, RoleKey};
use crate::{Config, Tenant, TenantId};

/// How long closing a pool waits for its connections to come back. sqlx's `close` waits for every
/// checked-out connection with no end: one whose return never completes (a peer gone silent,
/// sqlx#4350) would hold the task closing it forever, and with it the room a lease waits for.
/// Past this, the pool is let go of; its connections close as they come back.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Closes a tenant pool, waiting at most [`CLOSE_WAIT`].
async fn close_pool(connection: DatabaseConnection) {
    if tokio::time::timeout(CLOSE_WAIT, connection.close()).await.is_err() {
        tracing::warn!(waited = ?CLOSE_WAIT, "a tenant pool did not close in time; its connections close as they come back");
    }
}

fn lock(state: &Mutex<CacheState>) -> MutexGuard<'_, CacheState> {
    // A panic while holding this lock leaves only a map behind; its contents stay valid.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Per-tenant pools under one connection budget.
#[derive(Debug)]
pub struct ConnectionCache {
    state: Arc<Mutex<CacheState>>,
    /// What the open pools, and those being opened, hold of the limits.
    taken: Arc<Mutex<Taken>>,
    /// Woken whenever capacity comes back or a pool becomes idle.
    capacity: Arc<Capacity>,
    limits: Limits,
}

/// Pools and connections reserved, and the most connections ever reserved at once.
#[derive(Debug, Default)]
struct Taken {
    pools: usize,
    connections: u32,
    peak_connections: u32,
    /// Connections reserved on each server that has a budget of its own.
    per_server: HashMap<Arc<str>, u32>,
}

/// Wakes the tasks waiting for capacity to come back or for a pool to become idle. Every lease
/// ends with a wake-up, so it costs nothing while no task waits, which is nearly always.
#[derive(Debug, Default)]
struct Capacity {
    notify: Notify,
    waiting: AtomicUsize,
}

impl Capacity {
    /// Wakes every waiting task. Call after changing the state they wait on.
    fn wake(&self) {
        // Sequentially consistent with the increment in `waiting`: a task that counted itself
        // in before it looked at the state is seen here; one that counts itself in after this
        // load looks at the state afterwards, and sees the change this wake-up follows.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Counts the caller as waiting while the guard lives. Take it before looking at the state,
    /// then enable [`Waiting::notified`] and look.
    fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(self)
    }
}

struct Waiting<'a>(&'a Capacity);

impl Waiting<'_> {
    fn notified(&self) -> Notified<'_> {
        self.0.notify.notified()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone)]
struct Limits {
    pool_size: u32,
    max_open_pools: usize,
    connection_budget: u32,
    /// The servers with budgets of their own; `connection_budget` is then their sum.
    server_budgets: BTreeMap<String, u32>,
    idle_timeout: Duration,
}

/// Which limit left no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    /// `max_open_pools` or the budget of all pools.
    Overall,
    /// The budget of the tenant's server.
    Server,
}

/// The most dormant pools kept; beyond it the least recently used eighth of them is dropped. They
/// hold no connection, only memory: a server that had served 1,000 SQLite tenants once had grown
/// by 8 MiB, resolver entries included, so the bound keeps this under about 32 MiB.
pub const MAX_DORMANT_POOLS: usize = 4096;

#[derive(Debug, Default)]
struct CacheState {
    /// Every pool, open or dormant; change it through the methods below, which keep `open` true.
    /// Both maps are looked into on every lease, so they hash with foldhash (tenant ids are ours,
    /// not input an outsider chooses).
    pools: HashMap<TenantId, OpenPool, RandomState>,
    /// The pools that hold a reservation (at most `max_open_pools`, so cheap to look through).
    open: HashSet<TenantId, RandomState>,
    /// Pools opened since the cache was made: a warm tenant must not add to it.
    opened: u64,
    /// When idle pools were last looked for.
    swept_at: Option<Instant>,
    /// The names of the servers pools are on, one allocation each: a lease compares and clones
    /// its pool's server name, which is then shared and warm rather than one per pool.
    servers: HashSet<Arc<str>>,
}

#[derive(Debug)]
struct OpenPool {
    /// Cloned into every lease: a strong count above one means the pool is in use.
    leased: Arc<LeasedPool>,
    /// The server its database is on.
    server: Arc<str>,
    /// The tenant's credentials generation it logs in with: a rotation makes it stale.
    credentials: i64,
    /// The most connections it opens.
    size: u32,
    last_used: Instant,
    /// `None` while dormant: never connected, so holding nothing of the limits.
    room: Option<Reservation>,
}

/// What the leases of one pool share, in one allocation: a lease clones one `Arc` (which also
/// counts the pool in use) and touches one line of the tenant's memory, not one per handle. With
/// a thousand tenants served in turn, each of those lines is a cache miss.
#[derive(Debug)]
struct LeasedPool {
    connection: DatabaseConnection,
    /// What attach-only bootstrappers made for the contexts on this pool (see
    /// [`crate::Bootstrapper::attaches_only`]); made with the pool and gone with it, as the
    /// resources hold its connection.
    shared_resources: OnceLock<Resources>,
}

impl OpenPool {
    fn new(connection: DatabaseConnection, server: Arc<str>, credentials: i64, size: u32, room: Reservation) -> Self {
        let leased = Arc::new(LeasedPool { connection, shared_resources: OnceLock::new() });
        Self { leased, server, credentials, size, last_used: Instant::now(), room: Some(room) }
    }

    /// Closes the pool (leases still using it keep it open until they end). Its room, if it
    /// holds any, goes back only once its connections are closed, so the budget is never
    /// exceeded on the server while they close.
    async fn close(self) {
        close_pool(self.leased.connection.clone()).await;
    }

    fn is_idle(&self) -> bool {
        Arc::strong_count(&self.leased) == 1
    }

    /// Idle and without a single connection: its room can go back without closing it.
    fn can_sleep(&self) -> bool {
        self.is_idle() && open_connections(&self.leased.connection) == Some(0)
    }

    fn lease(&mut self, cache: &ConnectionCache, tenant: TenantId) -> PoolLease {
        self.last_used = Instant::now();
        PoolLease {
            leased: self.leased.clone(),
            end: LeaseEnd { unconnected: false, capacity: cache.capacity.clone(), state: cache.state.clone(), tenant },
        }
    }
}

/// The connections `connection`'s pool has open now (`None` for a connection that is not a pool).
fn open_connections(connection: &DatabaseConnection) -> Option<u32> {
    match &connection.inner {
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => Some(connection.get_sqlite_connection_pool().size()),
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => Some(connection.get_postgres_connection_pool().size()),
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => Some(connection.get_mysql_connection_pool().size()),
        _ => None,
    }
}

impl CacheState {
    /// The one shared copy of the server name `server`.
    fn server_name(&mut self, server: &str) -> Arc<str> {
        if let Some(name) = self.servers.get(server) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(server);
        self.servers.insert(name.clone());
        name
    }

    fn insert(&mut self, tenant: TenantId, pool: OpenPool) -> &mut OpenPool {
        if pool.room.is_some() {
            self.open.insert(tenant);
        }
        self.pools.entry(tenant).insert_entry(pool).into_mut()
    }

    fn remove(&mut self, tenant: &TenantId) -> Option<OpenPool> {
        self.open.remove(tenant);
        self.pools.remove(tenant)
    }

    fn drain(&mut self) -> Vec<OpenPool> {
        self.open.clear();
        self.pools.drain().map(|(_, pool)| pool).collect()
    }

    /// Gives room back for another pool (on the server `on`, if given): the least recently used
    /// idle pool that never connected goes dormant, else the least recently used idle pool is
    /// taken out, to be closed.
    fn free_room(&mut self, on: Option<&str>) -> Option<Freed> {
        if let Some(room) = self.put_one_to_sleep(on) {
            return Some(Freed::Room(room));
        }
        let victim = self.least_recently_used_open(on, OpenPool::is_idle)?;
        self.remove(&victim).map(Freed::Pool)
    }

    /// Makes the least recently used idle pool (on the server `on`, if given) that never
    /// connected dormant, and returns its room.
    fn put_one_to_sleep(&mut self, on: Option<&str>) -> Option<Reservation> {
        let sleeper = self.least_recently_used_open(on, OpenPool::can_sleep)?;
        self.put_to_sleep(&sleeper)
    }

    /// [`CacheState::put_to_sleep`] if `tenant`'s pool is idle and holds no connection.
    fn put_to_sleep_if_unconnected(&mut self, tenant: &TenantId) -> Option<Reservation> {
        let room = self.pools.get_mut(tenant).filter(|pool| pool.can_sleep())?.room.take()?;
        self.open.remove(tenant);
        self.forget_oldest_dormant();
        Some(room)
    }

    fn put_to_sleep(&mut self, tenant: &TenantId) -> Option<Reservation> {
        self.open.remove(tenant);
        let room = self.pools.get_mut(tenant).and_then(|pool| pool.room.take());
        self.forget_oldest_dormant();
        room
    }

    fn least_recently_used_open(&self, on: Option<&str>, which: fn(&OpenPool) -> bool) -> Option<TenantId> {
        let open = self.open.iter().filter_map(|id| Some((id, self.pools.get(id)?)));
        open.filter(|(_, pool)| which(pool) && on.is_none_or(|server| *pool.server == *server))
            .min_by_key(|(_, pool)| pool.last_used)
            .map(|(id, _)| *id)
    }

    /// Past [`MAX_DORMANT_POOLS`], drops the least recently used eighth of the dormant pools
    /// (they hold no connection: dropping is closing).
    fn forget_oldest_dormant(&mut self) {
        if self.pools.len() - self.open.len() <= MAX_DORMANT_POOLS {
            return;
        }
        let mut dormant: Vec<(Instant, TenantId)> =
            self.pools.iter().filter(|(_, pool)| pool.room.is_none()).map(|(id, pool)| (pool.last_used, *id)).collect();
        dormant.sort_unstable();
        for (_, id) in dormant.iter().take(MAX_DORMANT_POOLS / 8) {
            self.pools.remove(id);
        }
    }
}

/// What [`CacheState::free_room`] gave back.
enum Freed {
    /// A dormant pool's reservation: dropping it returns the room.
    Room(Reservation),
    /// A pool taken out of the cache: closing it returns the room.
    Pool(OpenPool),
}

/// Room for one pool: one of `max_open_pools` and `pool_size` connections of the budget, taken
/// together or not at all. However it is dropped (a failed open, an eviction, a close), both go
/// back and then every waiter is woken, so a woken waiter finds them.
#[derive(Debug)]
struct Reservation {
    taken: Arc<Mutex<Taken>>,
    connections: u32,
    /// The server it counts against too, when that server has a budget of its own.
    server: Option<Arc<str>>,
    capacity: Arc<Capacity>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        {
            let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
            taken.pools -= 1;
            taken.connections -= self.connections;
            if let Some(on_server) = self.server.as_ref().and_then(|server| taken.per_server.get_mut(server)) {
                *on_server -= self.connections;
            }
        }
        self.capacity.wake();
    }
}

/// A tenant's connection, borrowed from the cache. While it lives, the pool stays open.
#[derive(Debug)]
pub struct PoolLease {
    /// Dropped before `end` (fields drop in order), so the pool is idle when `end` looks at it.
    leased: Arc<LeasedPool>,
    end: LeaseEnd,
}

impl PoolLease {
    /// The tenant's connection pool.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.leased.connection
    }

    /// What attach-only bootstrappers made for the first context on this pool.
    pub(crate) fn shared_resources(&self) -> &OnceLock<Resources> {
        &self.leased.shared_resources
    }
}

impl Drop for PoolLease {
    fn drop(&mut self) {
        // Read while the lease still holds the pool; `end` acts once it has let go.
        self.end.unconnected = open_connections(&self.leased.connection) == Some(0);
    }
}

/// What ending a lease does, once the lease has let go of its pool.
#[derive(Debug)]
struct LeaseEnd {
    /// The pool had no connection open as the lease ended.
    unconnected: bool,
    capacity: Arc<Capacity>,
    /// The cache and the tenant the pool belongs to.
    state: Arc<Mutex<CacheState>>,
    tenant: TenantId,
}

impl Drop for LeaseEnd {
    fn drop(&mut self) {
        // The last lease of a pool that never connected gives its room back at once: keeping it
        // would only make the next tenant look for a pool to put to sleep. A pool with a
        // connection open is not looked up at all: most leases end without taking the lock.
        if self.unconnected {
            let room = lock(&self.state).put_to_sleep_if_unconnected(&self.tenant);
            drop(room);
        }
        // The pool may be idle now, so evictable.
        self.capacity.wake();
    }
}

/// Why [`ConnectionCache::open_cold`] was called.
enum Cold {
    Absent,
    TooSmall(OpenPool),
    Dormant(OpenPool),
}

/// What [`ConnectionCache::warm`] found.
enum Warm {
    /// The tenant's pool, leased.
    Lease(PoolLease),
    /// An idle pool smaller than asked for, taken out of the cache: close it.
    TooSmall(OpenPool),
    /// A dormant pool for which there was no room at once, taken out of the cache: open it again
    /// once there is.
    Dormant(OpenPool),
    /// A pool to the server the tenant was on before it moved, taken out of the cache: close it.
    Stale(OpenPool),
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
    /// Pools made without connecting that never connected, holding none of the budget.
    pub dormant_pools: usize,
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
        let (connection_budget, server_budgets) = config.connection_budgets();
        Self {
            state: Arc::default(),
            taken: Arc::default(),
            capacity: Arc::default(),
            limits: Limits {
                pool_size: db.pool_size,
                max_open_pools: db.max_open_pools as usize,
                connection_budget,
                server_budgets,
                idle_timeout: config.idle_timeout(),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        lock(&self.state)
    }

    /// The pool of `tenant`, opened through `manager` (with `pool_size` connections) if it is not
    /// open yet; with `roles`, the key of tenants' passwords, it logs in as the tenant's own role. An idle pool opened smaller by [`ConnectionCache::lease_one_connection`] is
    /// replaced by a full one.
    ///
    /// # Errors
    /// [`DatabaseError::Connect`] when the tenant's database cannot be reached;
    /// [`DatabaseError::NestedOverBudget`] when the only pools that could make room are held by the
    /// tenant contexts this task runs in.
    pub async fn lease(&self, tenant: &Tenant, manager: &dyn DatabaseManager, roles: Option<&RoleKey>) -> Result<PoolLease, DatabaseError> {
        self.lease_sized(tenant, manager, roles, self.limits.pool_size, Open::Now).await
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
        tenant: &Tenant,
        manager: &dyn DatabaseManager,
        roles: Option<&RoleKey>,
    ) -> Result<PoolLease, DatabaseError> {
        self.lease_sized(tenant, manager, roles, 1, Open::Now).await
    }

    /// [`ConnectionCache::lease`], except that a pool that is not open yet is made without
    /// connecting ([`DatabaseManager::open_lazy`]): it costs no connection until a query runs. For
    /// work that may never touch the database, such as a web request.
    ///
    /// # Errors
    /// As [`ConnectionCache::lease`], except that an unreachable database fails the first query.
    pub async fn lease_lazily(
        &self,
        tenant: &Tenant,
        manager: &dyn DatabaseManager,
        roles: Option<&RoleKey>,
    ) -> Result<PoolLease, DatabaseError> {
        self.lease_sized(tenant, manager, roles, self.limits.pool_size, Open::Lazily).await
    }

    async fn lease_sized(
        &self,
        tenant: &Tenant,
        manager: &dyn DatabaseManager,
        roles: Option<&RoleKey>,
        size: u32,
        open: Open,
    ) -> Result<PoolLease, DatabaseError> {
        crate::metrics::pool_leased();
        let cold = match self.warm(tenant, size) {
            Warm::Lease(lease) => return Ok(lease),
            Warm::Stale(pool) => {
                // Closed in the background: a lease still using it (on the old server, or with the
                // old password) ends first.
                tokio::spawn(async move {
                    pool.close().await;
                });
                Cold::Absent
            }
            Warm::TooSmall(pool) => Cold::TooSmall(pool),
            Warm::Dormant(pool) => Cold::Dormant(pool),
            Warm::Cold => Cold::Absent,
        };
        // Boxed: opening's future is large, and a warm lease (most requests) must not carry it.
        Box::pin(self.open_cold(tenant, manager, roles, size, open, cold)).await
    }

    async fn open_cold(
        &self,
        tenant: &Tenant,
        manager: &dyn DatabaseManager,
        roles: Option<&RoleKey>,
        size: u32,
        open: Open,
        cold: Cold,
    ) -> Result<PoolLease, DatabaseError> {
        let (id, database) = (&tenant.id, &tenant.database);
        let dormant = match cold {
            Cold::TooSmall(pool) => {
                pool.close().await;
                None
            }
            Cold::Dormant(pool) => Some(pool),
            Cold::Absent => None,
        };
        self.close_idle_pools().await;
        let (size, reopening) = dormant.as_ref().map_or((size, false), |pool| (pool.size, true));
        let room = self.reserve(id, &tenant.server, size).await?;
        // Derived only here, when a pool is made: a warm lease costs no hashing.
        let login = roles.map(|key| key.login_for(database, tenant.credentials_generation));
        let login = login.as_ref();
        // On failure `room` is dropped here, which gives its permits back and wakes the waiters.
        let connection = match (dormant, open) {
            // A dormant pool holds no room: nothing goes back as it is dropped.
            (Some(pool), _) => pool.leased.connection.clone(),
            (None, Open::Now) => manager.open_sized(database, login, size).await?,
            (None, Open::Lazily) => manager.open_lazy(database, login, size).await?,
        };
        let (lease, surplus) = {
            let mut state = self.lock();
            state.opened += u64::from(!reopening);
            if !reopening {
                crate::metrics::pool_opened();
            }
            match state.pools.entry(*id) {
                // Another task opened this tenant's pool meanwhile: use theirs, close ours.
                Entry::Occupied(entry) if entry.get().room.is_some() => (entry.into_mut().lease(self, *id), Some((connection, room))),
                // Absent, or dormant (another task left it here): ours replaces it.
                _ => {
                    let server = state.server_name(&tenant.server);
                    let pool = OpenPool::new(connection, server, tenant.credentials_generation, size, room);
                    (state.insert(*id, pool).lease(self, *id), None)
                }
            }
        };
        if let Some((connection, _room)) = surplus {
            close_pool(connection).await;
        }
        Ok(lease)
    }

    /// A lease on `tenant`'s open pool if it has `size` connections or is in use (a smaller
    /// pool in use serves as it is); an idle smaller pool is taken out, to be closed and replaced.
    /// A dormant pool is leased if room can be had without waiting or closing anything. A pool on
    /// another server than the tenant's (it moved), or logging in with older credentials, is taken out whatever its use.
    fn warm(&self, tenant: &Tenant, size: u32) -> Warm {
        let id = &tenant.id;
        let mut state = self.lock();
        let Some(pool) = state.pools.get_mut(id) else { return Warm::Cold };
        if *pool.server != *tenant.server || pool.credentials != tenant.credentials_generation {
            return state.remove(id).map_or(Warm::Cold, Warm::Stale);
        }
        if pool.size < size && pool.is_idle() {
            return state.remove(id).map_or(Warm::Cold, Warm::TooSmall);
        }
        if pool.room.is_some() {
            return Warm::Lease(pool.lease(self, *id));
        }
        // Dormant: it needs room again.
        let (size, server) = (pool.size, pool.server.clone());
        let room = loop {
            let full = match self.try_reserve(size, &server) {
                Ok(room) => break room,
                Err(full) => full,
            };
            match state.put_one_to_sleep((full == Full::Server).then_some(&*server)) {
                Some(room) => drop(room),
                // Room would take closing a pool or waiting: the cold path does that.
                None => return state.remove(id).map_or(Warm::Cold, Warm::Dormant),
            }
        };
        state.open.insert(*id);
        let Some(pool) = state.pools.get_mut(id) else { return Warm::Cold };
        pool.room = Some(room);
        Warm::Lease(pool.lease(self, *id))
    }

    /// Takes room for one pool on `server`, closing least recently used idle pools (or waiting
    /// for a lease to end) until the budgets and `max_open_pools` allow it.
    async fn reserve(&self, tenant: &TenantId, server: &str, size: u32) -> Result<Reservation, DatabaseError> {
        loop {
            // Register interest before looking, so capacity returned between the look and the wait is not missed.
            let waiting = self.capacity.waiting();
            let returned = waiting.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            let on = match self.try_reserve(size, server) {
                Ok(room) => return Ok(room),
                Err(Full::Overall) => None,
                Err(Full::Server) => Some(server),
            };
            let freed = self.lock().free_room(on);
            match freed {
                Some(Freed::Room(room)) => drop(room),
                Some(Freed::Pool(evicted)) => {
                    crate::metrics::pools_evicted("budget", 1);
                    evicted.close().await;
                }
                None => {
                    self.refuse_a_wait_that_cannot_end(tenant, on)?;
                    let waiting = Instant::now();
                    returned.await;
                    crate::metrics::budget_waited(waiting.elapsed());
                }
            }
        }
    }

    /// Room for a pool of `size` connections on `server`, if every limit allows it now.
    fn try_reserve(&self, size: u32, server: &str) -> Result<Reservation, Full> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = taken.connections + size;
        if taken.pools >= self.limits.max_open_pools || connections > self.limits.connection_budget {
            return Err(Full::Overall);
        }
        let server = match self.limits.server_budgets.get(server) {
            Some(&budget) => {
                let on_server = taken.per_server.entry(Arc::from(server)).or_default();
                if *on_server + size > budget {
                    return Err(Full::Server);
                }
                *on_server += size;
                Some(Arc::from(server))
            }
            None => None,
        };
        taken.pools += 1;
        taken.connections = connections;
        taken.peak_connections = taken.peak_connections.max(connections);
        Ok(Reservation { taken: self.taken.clone(), connections: size, server, capacity: self.capacity.clone() })
    }

    /// Inside nested tenant contexts, the pools of the outer contexts stay in use until this task
    /// returns: if they are the only pools in use (on the full server `on`, if given) and no other
    /// open is under way, waiting would never end.
    fn refuse_a_wait_that_cannot_end(&self, tenant: &TenantId, on: Option<&str>) -> Result<(), DatabaseError> {
        let held = crate::context::held_tenants();
        if held.is_empty() {
            return Ok(());
        }
        let state = self.lock();
        let opening = self.taken.lock().unwrap_or_else(PoisonError::into_inner).pools.saturating_sub(state.open.len());
        let in_use = |pool: &OpenPool| !pool.is_idle() && on.is_none_or(|server| *pool.server == *server);
        let only_ours = state.open.iter().filter(|id| state.pools.get(id).is_some_and(in_use)).all(|id| held.contains(id));
        if opening == 0 && only_ours {
            return Err(DatabaseError::NestedOverBudget {
                tenant: tenant.to_string(),
                open_pools: state.open.len(),
                budget: self.limits.connection_budget,
            });
        }
        Ok(())
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
            ids.iter().filter_map(|id| state.remove(id)).collect()
        };
        crate::metrics::pools_evicted("idle", expired.len());
        for pool in expired {
            pool.close().await;
        }
    }

    /// Closes the pool of `tenant`, if open (before its database is dropped). Waits for connections
    /// in use to come back, for at most ten seconds (see [`CLOSE_WAIT`]).
    pub async fn close(&self, tenant: &TenantId) {
        let pool = self.lock().remove(tenant);
        if let Some(pool) = pool {
            pool.close().await;
        }
    }

    /// Waits until no lease of `tenant`'s pool is alive, then closes it. The caller must make sure
    /// no new lease starts meanwhile (as deleting a tenant does).
    pub async fn close_when_idle(&self, tenant: &TenantId) {
        loop {
            let waiting = self.capacity.waiting();
            let released = waiting.notified();
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
        let pools = self.lock().drain();
        futures::future::join_all(pools.into_iter().map(OpenPool::close)).await;
    }

    /// What is open now.
    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        let open = || state.open.iter().filter_map(|id| state.pools.get(id));
        CacheStats {
            open_pools: state.open.len(),
            dormant_pools: state.pools.len() - state.open.len(),
            pools_in_use: open().filter(|pool| !pool.is_idle()).count(),
            reserved_connections: open().map(|pool| pool.size).sum(),
            peak_reserved_connections: self.taken.lock().unwrap_or_else(PoisonError::into_inner).peak_connections,
            pools_opened: state.opened,
        }
    }
}
