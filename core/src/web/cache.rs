//! [`ResolverCache`]: what a host (or a path segment, or a header value) resolves to, kept in
//! memory so a warm request never touches the registry.
//!
//! Entries are checked against [`Registry::generation`]: an entry read before the last registry
//! change is stale and loaded again, however it got into the cache (a load that was in flight
//! while the change happened cannot slip an old answer back in). Changes made through this
//! process count at once; changes made by other processes count once a background task has read
//! the registry's change counter, every `web.change_poll_millis`. When that read fails, the
//! generation moves on as well: nothing cached is served on trust while the registry is away.
//! Concurrent misses for one key wait for a single load, and share its answer or its error.
//!
//! A map behind a read-write lock rather than moka: a warm hit is one read-locked look-up, where
//! moka's read recording and housekeeping were the largest cost left in a served request (about
//! 8% of the server's time under load). The generation check already does what moka's
//! invalidation would; what is left is a bound, kept by dropping expired and stale entries, then
//! an eighth of the rest, when the map is full.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::config::WebConfig;
use crate::registry::{Registry, RegistryError};
use crate::{Domain, Tenant, TenantId};

/// What is looked up in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// The tenant that has this domain.
    Domain(Domain),
    /// The tenant with this id.
    Id(TenantId),
}

impl Lookup {
    /// A path segment or header value: a tenant id if it reads as one, else a domain.
    pub fn parse_reference(input: &str) -> Option<Self> {
        if let Ok(id) = TenantId::parse(input) {
            return Some(Self::Id(id));
        }
        Domain::parse(input).ok().map(Self::Domain)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    tenant: Option<Arc<Tenant>>,
    /// The registry generation read before the lookup started.
    generation: u64,
    /// `None`: a lifetime too long to count.
    expires: Option<Instant>,
}

/// A load in flight, which every concurrent miss for its key waits on.
type Loading = Arc<OnceCell<Result<Entry, Arc<RegistryError>>>>;

/// The resolver cache; clones share it (and its change poller, stopped with the last clone).
#[derive(Clone)]
pub struct ResolverCache {
    shared: Arc<Shared>,
    _poller: Option<Arc<Poller>>,
}

struct Shared {
    entries: RwLock<HashMap<Lookup, Entry>>,
    loading: Mutex<HashMap<Lookup, Loading>>,
    capacity: usize,
    found_for: Duration,
    missing_for: Duration,
    registry: Registry,
    /// Registry look-ups made, for monitoring and tests.
    lookups: AtomicU64,
}

impl std::fmt::Debug for ResolverCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolverCache").field("entries", &self.entry_count()).finish()
    }
}

/// Aborts the change poller when the last cache clone is gone.
struct Poller(tokio::task::JoinHandle<()>);

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ResolverCache {
    /// A cache over `registry` sized and timed by `config`. Inside a Tokio runtime it starts the
    /// task that reads the registry's change counter; outside one, only this process's own
    /// changes invalidate it.
    pub fn new(registry: Registry, config: &WebConfig) -> Self {
        let poller = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let registry = registry.clone();
            let every = Duration::from_millis(config.change_poll_millis);
            Arc::new(Poller(runtime.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(err) = registry.poll_changes().await {
                        tracing::warn!(error = %err, "cannot read the registry's change counter; the resolver cache is not trusted until it can");
                    }
                }
            })))
        });
        let shared = Shared {
            entries: RwLock::default(),
            loading: Mutex::default(),
            capacity: usize::try_from(config.resolver_cache_capacity).unwrap_or(usize::MAX).max(1),
            found_for: Duration::from_secs(config.resolver_cache_ttl_secs),
            missing_for: Duration::from_secs(config.resolver_negative_ttl_secs),
            registry,
            lookups: AtomicU64::new(0),
        };
        Self { shared: Arc::new(shared), _poller: poller }
    }

    /// The tenant `lookup` finds, if any.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn resolve(&self, lookup: &Lookup) -> Result<Option<Arc<Tenant>>, Arc<RegistryError>> {
        if let Some(tenant) = self.shared.fresh(lookup) {
            return Ok(tenant);
        }
        // Boxed: the loading future is large, and every request would carry its size.
        Box::pin(self.shared.load_coalesced(lookup)).await
    }

    /// How many times the registry has been asked, since the cache was made.
    pub fn registry_lookups(&self) -> u64 {
        self.shared.lookups.load(Ordering::Relaxed)
    }

    /// How many answers are kept (stale ones included until they are replaced or pushed out).
    pub fn entry_count(&self) -> usize {
        self.shared.read().len()
    }

    /// Forgets every entry.
    pub fn invalidate_all(&self) {
        self.shared.write().clear();
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Lookup, Entry>> {
        // A panic while holding the lock leaves whole entries behind: still a valid cache.
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Lookup, Entry>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached answer for `lookup`, if it is of the registry's current generation and unexpired.
    fn fresh(&self, lookup: &Lookup) -> Option<Option<Arc<Tenant>>> {
        let entries = self.read();
        let entry = entries.get(lookup)?;
        let unexpired = entry.expires.is_none_or(|at| at > Instant::now());
        (entry.generation == self.registry.generation() && unexpired).then(|| entry.tenant.clone())
    }

    /// Loads `lookup` once for all concurrent callers. Stale answers are dropped and loaded again;
    /// a registry changing faster than it can be read is asked directly.
    async fn load_coalesced(&self, lookup: &Lookup) -> Result<Option<Arc<Tenant>>, Arc<RegistryError>> {
        for _ in 0..3 {
            let generation = self.registry.generation();
            let loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner).entry(lookup.clone()).or_default().clone();
            let loaded = loading.get_or_init(|| async { self.load(lookup, generation).await.map_err(Arc::new) }).await.clone();
            let current = loaded.as_ref().is_ok_and(|entry| entry.generation == self.registry.generation());
            // Kept before the load is let go of, so a miss arriving in between finds one or the other.
            if let (true, Ok(entry)) = (current, &loaded) {
                self.insert(lookup, entry.clone());
            }
            {
                let mut in_flight = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
                if in_flight.get(lookup).is_some_and(|in_flight| Arc::ptr_eq(in_flight, &loading)) {
                    in_flight.remove(lookup);
                }
            }
            let entry = loaded?;
            if current {
                return Ok(entry.tenant);
            }
        }
        Ok(self.load(lookup, self.registry.generation()).await?.tenant)
    }

    async fn load(&self, lookup: &Lookup, generation: u64) -> Result<Entry, RegistryError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let tenant = match lookup {
            Lookup::Domain(domain) => self.registry.find_by_domain(domain).await?,
            Lookup::Id(id) => self.registry.get(id).await?,
        };
        let lifetime = if tenant.is_some() { self.found_for } else { self.missing_for };
        Ok(Entry { tenant: tenant.map(Arc::new), generation, expires: Instant::now().checked_add(lifetime) })
    }

    /// Keeps `entry`, making room first when the map is full: expired and stale entries go, then
    /// (if that was not enough) an eighth of the rest, whichever the map yields first.
    fn insert(&self, lookup: &Lookup, entry: Entry) {
        let mut entries = self.write();
        if entries.len() >= self.capacity && !entries.contains_key(lookup) {
            let (now, generation) = (Instant::now(), self.registry.generation());
            entries.retain(|_, kept| kept.generation == generation && kept.expires.is_none_or(|at| at > now));
            if entries.len() >= self.capacity {
                let surplus: Vec<Lookup> = entries.keys().take(self.capacity.div_ceil(8)).cloned().collect();
                for key in surplus {
                    entries.remove(&key);
                }
            }
        }
        entries.insert(lookup.clone(), entry);
    }
}
