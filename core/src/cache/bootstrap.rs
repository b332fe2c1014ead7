//! [`CacheBootstrapper`]: gives every tenant context its [`Cache`] on the configured store, and
//! the central scope its own.

use std::sync::Arc;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use sea_orm::DatabaseConnection;
use tokio::sync::OnceCell;

use super::{Cache, CacheError, CacheStore, DatabaseCache, KeyLocks, MemoryStore, RedisCache};
use crate::config::{CacheStoreKind, Config, RedisConfig};
use crate::registry::Registry;
use crate::{Bootstrapper, BoxError, ContextBuilder, Tenant};

/// Builds the caches of the configured store.
pub struct CacheBootstrapper {
    kind: CacheStoreKind,
    /// `session.store = "redis"`: a tenant's sessions are under its prefix too.
    sessions_in_redis: bool,
    memory: MemoryStore,
    redis: RedisConfig,
    connection: OnceCell<ConnectionManager>,
    /// `redis.per_tenant_database`: a connection per database index, opened on first use.
    indexed: tokio::sync::Mutex<std::collections::HashMap<u32, ConnectionManager>>,
    /// Indexes already read from the registry, so entering a context costs no registry query.
    assigned: std::sync::Mutex<std::collections::HashMap<crate::TenantId, u32>>,
    registry: Registry,
    locks: Arc<KeyLocks>,
}

/// Whose cache.
#[derive(Debug, Clone, Copy)]
pub enum CacheScope<'a> {
    /// A tenant's.
    Tenant(&'a Tenant),
    /// Code outside any tenant.
    Central,
}

impl CacheBootstrapper {
    /// The bootstrapper for `config`'s `[cache]` and `[redis]`. Connects to Redis on first use;
    /// `registry` remembers per-tenant Redis databases.
    pub fn new(config: &Config, registry: Registry) -> Self {
        Self {
            kind: config.cache.store,
            sessions_in_redis: config.session.store == crate::config::SessionStoreKind::Redis,
            memory: MemoryStore::new(config.cache.memory_capacity),
            redis: config.redis.clone(),
            connection: OnceCell::new(),
            indexed: tokio::sync::Mutex::default(),
            assigned: std::sync::Mutex::default(),
            registry,
            locks: Arc::default(),
        }
    }

    /// The connection to `tenant`'s own Redis database (assigning one if it has none yet).
    async fn redis_of(&self, tenant: &Tenant) -> Result<ConnectionManager, CacheError> {
        let known = self.assigned.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant.id).copied();
        let index = match known {
            Some(index) => index,
            None => {
                let index = self
                    .registry
                    .redis_database_of(tenant, self.redis.database_offset, self.redis.databases)
                    .await
                    .map_err(|e| CacheError::store("redis", format!("give tenant {tenant} a Redis database"))(Box::new(e)))?;
                self.assigned.lock().unwrap_or_else(|p| p.into_inner()).insert(tenant.id, index);
                index
            }
        };
        self.redis_database(index).await
    }

    /// A connection to the Redis database `index` of the server `redis.url` names.
    async fn redis_database(&self, index: u32) -> Result<ConnectionManager, CacheError> {
        let mut connections = self.indexed.lock().await;
        if let Some(connection) = connections.get(&index) {
            return Ok(connection.clone());
        }
        let mut url = url::Url::parse(self.redis.url.expose()).map_err(|e| CacheError::store("redis", "parse `redis.url`")(Box::new(e)))?;
        url.set_path(&format!("/{index}"));
        let connection =
            connect(url.as_str(), || format!("connect to Redis database {index} at `{}`", redis_location(self.redis.url.expose()))).await?;
        connections.insert(index, connection.clone());
        Ok(connection)
    }

    /// Removes everything `tenant` keeps outside its own database: its cache entries (Redis or
    /// memory) and its Redis sessions, everything under its prefix; with per-tenant Redis
    /// databases, every key of its database, which is its alone. Returns how many were removed.
    /// Run it when the tenant can no longer be entered, so that nothing writes behind it.
    ///
    /// # Errors
    /// When Redis or the registry fails.
    pub async fn sweep_tenant(&self, tenant: &Tenant) -> Result<u64, CacheError> {
        let mut removed = 0;
        if self.kind == CacheStoreKind::Memory {
            removed += self.memory.scope(&tenant.id.to_string()).flush().await?;
        }
        if self.kind == CacheStoreKind::Redis || self.sessions_in_redis {
            removed += RedisCache::new(self.redis().await?, self.redis.prefix_for(&tenant.id)).flush().await?;
        }
        if self.kind == CacheStoreKind::Redis && self.redis.per_tenant_database {
            let assigned = self
                .registry
                .assigned_redis_database(&tenant.id)
                .await
                .map_err(|e| CacheError::store("redis", format!("read the Redis database of tenant {tenant}"))(Box::new(e)))?;
            if let Some(index) = assigned {
                removed += RedisCache::new(self.redis_database(index).await?, String::new()).flush().await?;
            }
        }
        Ok(removed)
    }

    /// Connects to `redis.url` (if not yet connected) and sends `PING`.
    ///
    /// # Errors
    /// When Redis cannot be reached or does not answer.
    pub async fn ping_redis(&self) -> Result<(), CacheError> {
        let mut connection = self.redis().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(|e| CacheError::store("redis", format!("ping `{}`", redis_location(self.redis.url.expose())))(Box::new(e)))
    }

    /// The shared Redis connection (multiplexed; it reconnects after the server restarts).
    async fn redis(&self) -> Result<ConnectionManager, CacheError> {
        let url = self.redis.url.expose().to_owned();
        self.connection
            .get_or_try_init(|| async move { connect(&url, || format!("connect to `{}`", redis_location(&url))).await })
            .await
            .cloned()
    }

    /// The cache of `scope`; `db` is the database a `database` store keeps it in (the tenant's, or
    /// the registry's for the central scope).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn cache_for(&self, scope: CacheScope<'_>, db: &DatabaseConnection) -> Result<Cache, CacheError> {
        let name = match scope {
            CacheScope::Tenant(tenant) => tenant.id.to_string(),
            CacheScope::Central => "central".to_owned(),
        };
        let store: Arc<dyn super::CacheStore> = match self.kind {
            CacheStoreKind::Database => Arc::new(DatabaseCache::new(db.clone())),
            CacheStoreKind::Memory => Arc::new(self.memory.scope(&name)),
            CacheStoreKind::Redis => match scope {
                CacheScope::Tenant(tenant) if self.redis.per_tenant_database => {
                    Arc::new(RedisCache::new(self.redis_of(tenant).await?, self.redis.cache_prefix_for(&tenant.id)))
                }
                CacheScope::Tenant(tenant) => Arc::new(RedisCache::new(self.redis().await?, self.redis.cache_prefix_for(&tenant.id))),
                CacheScope::Central => Arc::new(RedisCache::new(self.redis().await?, self.redis.central_cache_prefix())),
            },
        };
        Ok(Cache::new(store, &name, self.locks.clone()))
    }

    /// Forgets `tenant`'s remembered Redis database index (its assignment is being removed).
    pub fn forget_tenant(&self, tenant: &crate::TenantId) {
        self.assigned.lock().unwrap_or_else(|p| p.into_inner()).remove(tenant);
    }
}

/// A reconnecting, multiplexed connection to the Redis at `url`; `action` says what was being done,
/// for the error.
async fn connect(url: &str, action: impl FnOnce() -> String) -> Result<ConnectionManager, CacheError> {
    let client = redis::Client::open(url).map_err(|e| CacheError::store("redis", "parse `redis.url`")(Box::new(e)))?;
    client.get_connection_manager().await.map_err(|e| CacheError::store("redis", action())(Box::new(e)))
}

/// `redis://host:port/db` without credentials, for messages.
fn redis_location(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            format!("{}://{}:{}{}", parsed.scheme(), parsed.host_str().unwrap_or_default(), parsed.port().unwrap_or(6379), parsed.path())
        }
        Err(_) => "redis.url".to_owned(),
    }
}

#[async_trait]
impl Bootstrapper for CacheBootstrapper {
    fn name(&self) -> &str {
        "cache"
    }

    fn attaches_only(&self) -> bool {
        true
    }

    async fn bootstrap(&self, ctx: &mut ContextBuilder) -> Result<(), BoxError> {
        let cache = self.cache_for(CacheScope::Tenant(ctx.tenant()), ctx.db()).await?;
        ctx.insert(cache);
        Ok(())
    }
}
