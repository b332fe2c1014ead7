//! [`ResolverCache`]: what a host (or a path segment, or a header value) resolves to, kept in a
//! bounded moka cache so a warm request never touches the registry.
//!
//! Entries are checked against [`Registry::generation`]: an entry read before the last registry
//! change is stale and loaded again, however it got into the cache (a load that was in flight
//! while the change happened cannot slip an old answer back in). Changes made through this
//! process count at once; changes made by other processes count once a background task has read
//! the registry's change counter, every `web.change_poll_millis`. When that read fails, the
//! generation moves on as well: nothing cached is served on trust while the registry is away.
//! Concurrent misses for one key wait for a single load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

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
}

struct Lifetimes {
    found: Duration,
    missing: Duration,
}

impl Expiry<Lookup, Entry> for Lifetimes {
    fn expire_after_create(&self, _key: &Lookup, entry: &Entry, _created_at: Instant) -> Option<Duration> {
        Some(if entry.tenant.is_some() { self.found } else { self.missing })
    }
}

/// The resolver cache; clones share it (and its change poller, stopped with the last clone).
#[derive(Clone)]
pub struct ResolverCache {
    entries: Cache<Lookup, Entry>,
    registry: Registry,
    /// Registry look-ups made, for monitoring and tests.
    lookups: Arc<AtomicU64>,
    _poller: Option<Arc<Poller>>,
}

impl std::fmt::Debug for ResolverCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolverCache").field("entries", &self.entries.entry_count()).finish()
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
        let entries = Cache::builder()
            .max_capacity(config.resolver_cache_capacity)
            .expire_after(Lifetimes {
                found: Duration::from_secs(config.resolver_cache_ttl_secs),
                missing: Duration::from_secs(config.resolver_negative_ttl_secs),
            })
            .build();
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
        Self { entries, registry, lookups: Arc::default(), _poller: poller }
    }

    /// The tenant `lookup` finds, if any.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn resolve(&self, lookup: &Lookup) -> Result<Option<Arc<Tenant>>, Arc<RegistryError>> {
        if let Some(entry) = self.entries.get(lookup).await
            && entry.generation == self.registry.generation()
        {
            return Ok(entry.tenant);
        }
        // Boxed: the loading future is large, and every request would carry its size.
        Box::pin(self.load_coalesced(lookup)).await
    }

    /// Loads `lookup` once for all concurrent callers. Stale answers are dropped and loaded again;
    /// a registry changing faster than it can be read is asked directly.
    async fn load_coalesced(&self, lookup: &Lookup) -> Result<Option<Arc<Tenant>>, Arc<RegistryError>> {
        for _ in 0..3 {
            let generation = self.registry.generation();
            let entry = self.entries.try_get_with_by_ref(lookup, self.load(lookup, generation)).await?;
            if entry.generation == self.registry.generation() {
                return Ok(entry.tenant);
            }
            self.entries.invalidate(lookup).await;
        }
        Ok(self.load(lookup, self.registry.generation()).await?.tenant)
    }

    async fn load(&self, lookup: &Lookup, generation: u64) -> Result<Entry, RegistryError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let tenant = match lookup {
            Lookup::Domain(domain) => self.registry.find_by_domain(domain).await?,
            Lookup::Id(id) => self.registry.get(id).await?,
        };
        Ok(Entry { tenant: tenant.map(Arc::new), generation })
    }

    /// How many times the registry has been asked, since the cache was made.
    pub fn registry_lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Forgets every entry.
    pub fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }
}
