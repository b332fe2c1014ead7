//! [`Tenancy`]: the configuration, the registry, the database managers and the connection cache,
//! together; the entry point of the library.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::{Cache, CacheBootstrapper, CacheError, CacheScope};
use crate::connections::ConnectionCache;
use crate::context::ProgressSink;
use crate::context::{self, Bootstrapper, ContextBuilder, ContextError, TenantContext};
use crate::database::{DatabaseError, DatabaseManager, Login, RoleKey, RoleKeyError, manager_for};
use crate::migrate::{AllocationMeter, MigrationSet, TenantMigrator};
use crate::provisioning::{ProvisioningStep, TenantHook};
use crate::registry::{Registry, RegistryError};
use crate::{Config, Tenant};

/// A configured multi-tenancy setup: open it once and share it.
///
/// # Example
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use sea_orm::ConnectionTrait;
/// use tenancy_core::{Config, Tenancy};
///
/// let config = Config::load(&std::env::current_dir()?, None)?;
/// let tenancy = Tenancy::builder(config).open().await?;
/// let tenant = tenancy.registry().resolve("acme.example.com").await?;
/// let rows = tenancy
///     .run(&tenant, |ctx| async move { ctx.db().execute_unprepared("DELETE FROM sessions").await })
///     .await??;
/// # Ok(()) }
/// ```
pub struct Tenancy {
    config: Arc<Config>,
    registry: Registry,
    managers: BTreeMap<String, Arc<dyn DatabaseManager>>,
    /// With a role per tenant: the key their passwords come from, or why it could not be read
    /// (said when a tenant's database is first needed, so that commands needing none still run).
    role_key: Option<Result<RoleKey, Arc<RoleKeyError>>>,
    connections: ConnectionCache,
    files: crate::files::FilesStorage,
    bootstrappers: Vec<Arc<dyn Bootstrapper>>,
    /// Every bootstrapper only attaches: contexts on one pool share what they attach.
    attach_only: bool,
    migrations: MigrationSet,
    provisioning_steps: Vec<Arc<dyn ProvisioningStep>>,
    tenant_hooks: Vec<Arc<dyn TenantHook>>,
    copier: Option<Arc<dyn crate::moves::TenantCopier>>,
    meter: Option<Arc<dyn AllocationMeter>>,
    caches: Arc<CacheBootstrapper>,
    sessions: crate::sessions::TenantSessionStore,
    /// Tenants being deleted (or deleted) by this process: their contexts can no longer be entered.
    closed: std::sync::Mutex<std::collections::HashSet<crate::TenantId>>,
    /// How many tenants `closed` holds, so entering a context takes no lock when it is none.
    closing: std::sync::atomic::AtomicUsize,
    /// Template provisioning's fingerprint and the templates seen sealed.
    pub(crate) templates: crate::template::Templates,
    #[cfg(feature = "queue")]
    queue: Arc<crate::queue::Queue>,
}

/// The pool a context needs, if the tenant's is not open yet.
enum PoolSize {
    /// `pool_size` connections.
    Full,
    /// One connection.
    One,
    /// `pool_size` connections, none opened until a query runs (web requests).
    #[cfg_attr(not(any(feature = "web", feature = "queue")), allow(dead_code))]
    Lazy,
}

/// Keeps a tenant closed while it lives; reopens it on drop unless [`ClosedTenant::keep`] is called.
pub(crate) struct ClosedTenant<'a> {
    tenancy: &'a Tenancy,
    tenant: Option<crate::TenantId>,
}

impl ClosedTenant<'_> {
    /// Leaves the tenant closed for good.
    pub(crate) fn keep(mut self) {
        self.tenant = None;
    }
}

impl Drop for ClosedTenant<'_> {
    fn drop(&mut self) {
        if let Some(tenant) = self.tenant.take() {
            let mut closed = self.tenancy.closed.lock().unwrap_or_else(|p| p.into_inner());
            closed.remove(&tenant);
            self.tenancy.closing.store(closed.len(), std::sync::atomic::Ordering::Release);
        }
    }
}

/// Assembles a [`Tenancy`]: the tenant migrator and the bootstrappers, then [`TenancyBuilder::open`].
pub struct TenancyBuilder {
    config: Config,
    bootstrappers: Vec<Arc<dyn Bootstrapper>>,
    migrator: Option<Arc<dyn TenantMigrator>>,
    plugin_migrators: Vec<Arc<dyn TenantMigrator>>,
    provisioning_steps: Vec<Arc<dyn ProvisioningStep>>,
    tenant_hooks: Vec<Arc<dyn TenantHook>>,
    copier: Option<Arc<dyn crate::moves::TenantCopier>>,
    meter: Option<Arc<dyn AllocationMeter>>,
}

/// Opening a [`Tenancy`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The configuration does not hold together (it was changed in code after loading).
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The registry could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A configured server could not be set up.
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

impl TenancyBuilder {
    /// Sets the migrator run on every new tenant database and by `db migrate`.
    pub fn tenant_migrator(mut self, migrator: Arc<dyn TenantMigrator>) -> Self {
        self.migrator = Some(migrator);
        self
    }

    /// Adds a plugin's migrator, run after the application's on every tenant database. It needs
    /// a tracking table of its own.
    pub fn plugin_migrator(mut self, migrator: Arc<dyn TenantMigrator>) -> Self {
        self.plugin_migrators.push(migrator);
        self
    }

    /// Adds a step to tenant creation, before the tenant is marked active; steps run in the
    /// order added.
    pub fn provisioning_step(mut self, step: Arc<dyn ProvisioningStep>) -> Self {
        self.provisioning_steps.push(step);
        self
    }

    /// Adds hooks run when a tenant is deleted or loses a domain, in the order added.
    pub fn tenant_hook(mut self, hook: Arc<dyn TenantHook>) -> Self {
        self.tenant_hooks.push(hook);
        self
    }

    /// Sets what copies a tenant's database to another server (`tenancy tenant move`): the
    /// backup plugin's.
    pub fn tenant_copier(mut self, copier: Arc<dyn crate::moves::TenantCopier>) -> Self {
        self.copier = Some(copier);
        self
    }

    /// Lets migration and seeding reports say how much memory each step allocated.
    pub fn allocation_meter(mut self, meter: Arc<dyn AllocationMeter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Adds a bootstrapper; they run in the order added and are reverted in reverse.
    pub fn bootstrapper(mut self, bootstrapper: Arc<dyn Bootstrapper>) -> Self {
        self.bootstrappers.push(bootstrapper);
        self
    }

    /// Connects to the registry (migrating it if needed) and prepares a manager per server.
    /// Tenant databases are connected lazily, on first use.
    ///
    /// # Errors
    /// [`OpenError`] when the configuration is inconsistent or the registry cannot be opened.
    pub async fn open(self) -> Result<Tenancy, OpenError> {
        self.config.check()?;
        let registry = Registry::open(&self.config).await?;
        let mut managers = BTreeMap::new();
        for server in self.config.server_names() {
            let manager = manager_for(&self.config, &server)?;
            managers.insert(server, manager);
        }
        let role_key = self.config.per_tenant_roles().then(|| RoleKey::load(&self.config.role_key_path()).map_err(Arc::new));
        let caches = Arc::new(CacheBootstrapper::new(&self.config, registry.clone()));
        let files = crate::files::FilesStorage::from_config(&self.config)?;
        let mut bootstrappers: Vec<Arc<dyn Bootstrapper>> =
            vec![caches.clone(), Arc::new(crate::files::FilesBootstrapper::new(files.clone()))];
        bootstrappers.extend(self.bootstrappers);
        let config = Arc::new(self.config);
        #[allow(unused_mut)]
        let mut tenant_hooks = self.tenant_hooks;
        #[cfg(feature = "queue")]
        let queue = {
            let queue = Arc::new(crate::queue::Queue::new(config.clone()));
            bootstrappers.push(Arc::new(crate::queue::QueueBootstrapper(queue.clone())));
            tenant_hooks.push(Arc::new(crate::queue::ClearJobsOnDelete(queue.clone())));
            queue
        };
        Ok(Tenancy {
            sessions: crate::sessions::TenantSessionStore::new(&config),
            caches,
            connections: ConnectionCache::new(&config),
            files,
            config,
            registry,
            managers,
            role_key,
            attach_only: bootstrappers.iter().all(|bootstrapper| bootstrapper.attaches_only()),
            bootstrappers,
            migrations: MigrationSet::new(self.migrator).with(self.plugin_migrators),
            provisioning_steps: self.provisioning_steps,
            tenant_hooks,
            copier: self.copier,
            meter: self.meter,
            closed: Default::default(),
            closing: Default::default(),
            templates: Default::default(),
            #[cfg(feature = "queue")]
            queue,
        })
    }
}

impl Tenancy {
    /// Starts building a `Tenancy` from a loaded configuration.
    pub fn builder(config: Config) -> TenancyBuilder {
        TenancyBuilder {
            config,
            bootstrappers: Vec::new(),
            migrator: None,
            plugin_migrators: Vec::new(),
            provisioning_steps: Vec::new(),
            tenant_hooks: Vec::new(),
            copier: None,
            meter: None,
        }
    }

    /// The job queue (see [`crate::queue`]).
    #[cfg(feature = "queue")]
    pub fn queue(&self) -> &Arc<crate::queue::Queue> {
        &self.queue
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The central registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The per-tenant connection pools.
    pub fn connections(&self) -> &ConnectionCache {
        &self.connections
    }

    /// Where tenants' files are (`[files]`).
    pub fn files_storage(&self) -> &crate::files::FilesStorage {
        &self.files
    }

    /// The cache of code outside any tenant (`database` store: a table in the registry's database).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn central_cache(&self) -> Result<Cache, CacheError> {
        self.caches.cache_for(CacheScope::Central, self.registry.connection()).await
    }

    /// The session store for a web framework (tower-sessions): one store for every tenant, which
    /// keeps each request's session in the tenant of the [`Tenancy::run`] the request runs in.
    /// Clones share one Redis connection.
    pub fn session_store(&self) -> crate::sessions::TenantSessionStore {
        self.sessions.clone()
    }

    /// The cache builder, for operations on a tenant's cache outside its context (delete).
    pub fn caches(&self) -> &CacheBootstrapper {
        &self.caches
    }

    /// Every migration a tenant database gets: core's tables, then the application's, then plugins'.
    pub fn migrations(&self) -> &MigrationSet {
        &self.migrations
    }

    /// The steps plugins added to tenant creation.
    pub fn provisioning_steps(&self) -> &[Arc<dyn ProvisioningStep>] {
        &self.provisioning_steps
    }

    /// The hooks run when a tenant is deleted or loses a domain.
    pub fn tenant_hooks(&self) -> &[Arc<dyn TenantHook>] {
        &self.tenant_hooks
    }

    /// What copies a tenant's database to another server, if the binary has one.
    pub fn tenant_copier(&self) -> Option<&Arc<dyn crate::moves::TenantCopier>> {
        self.copier.as_ref()
    }

    /// The allocation meter, if the binary set one.
    pub fn meter(&self) -> Option<&dyn AllocationMeter> {
        self.meter.as_deref()
    }

    /// The manager of the server new tenants go on.
    pub fn default_manager(&self) -> &Arc<dyn DatabaseManager> {
        self.managers.get(&self.config.tenant_database.server).expect("the default server's manager is made in TenancyBuilder::open")
    }

    /// The manager of the server named `server` (SQLite: the one folder, whatever the name).
    ///
    /// # Errors
    /// [`DatabaseError::UnknownServer`] if no server of that name is configured.
    pub fn manager_on(&self, server: &str) -> Result<&Arc<dyn DatabaseManager>, DatabaseError> {
        if self.config.tenant_database.servers.is_empty() {
            return Ok(self.default_manager());
        }
        self.managers.get(server).ok_or_else(|| DatabaseError::UnknownServer(server.to_owned()))
    }

    /// The manager of the server `tenant`'s database is on.
    ///
    /// # Errors
    /// [`DatabaseError::UnknownServer`] if the tenant's server is no longer configured.
    pub fn manager_of(&self, tenant: &Tenant) -> Result<&Arc<dyn DatabaseManager>, DatabaseError> {
        self.manager_on(&tenant.server)
    }

    /// Who `tenant`'s connections log in as: its own role (`roles = "per_tenant"`), or `None` for
    /// the server's user.
    ///
    /// # Errors
    /// [`DatabaseError::RoleKey`] when tenants have roles and the role key cannot be read.
    pub fn login_of(&self, tenant: &Tenant) -> Result<Option<Login>, DatabaseError> {
        Ok(self.tenant_roles()?.map(|key| key.login_for(&tenant.database, tenant.credentials_generation)))
    }

    /// The key of tenants' passwords where they log in as roles of their own; `None` where they
    /// share the server's user.
    pub(crate) fn tenant_roles(&self) -> Result<Option<&RoleKey>, DatabaseError> {
        match &self.role_key {
            None => Ok(None),
            Some(Ok(key)) => Ok(Some(key)),
            Some(Err(err)) => Err(DatabaseError::RoleKey(err.clone())),
        }
    }

    /// The role key: the one loaded where tenants have roles; read now where they share the
    /// server's user, for making their roles before switching (`tenancy tenant secure`).
    pub(crate) fn role_key(&self) -> Result<RoleKey, DatabaseError> {
        match &self.role_key {
            Some(Ok(key)) => Ok(key.clone()),
            Some(Err(err)) => Err(DatabaseError::RoleKey(err.clone())),
            None if self.config.tenant_database.driver == crate::database::Driver::Sqlite => {
                Err(DatabaseError::NoRoles(crate::database::Driver::Sqlite))
            }
            None => RoleKey::load(&self.config.role_key_path()).map_err(|err| DatabaseError::RoleKey(Arc::new(err))),
        }
    }

    /// Whether the role key can be had, where tenants have roles.
    ///
    /// # Errors
    /// [`DatabaseError::RoleKey`] when it cannot.
    pub fn check_role_key(&self) -> Result<(), DatabaseError> {
        self.tenant_roles().map(drop)
    }

    /// Every configured server's manager, by server name.
    pub fn managers(&self) -> &BTreeMap<String, Arc<dyn DatabaseManager>> {
        &self.managers
    }

    /// Runs `f` in `tenant`'s context: its own database connection, the resources of every
    /// bootstrapper, and [`crate::current_tenant`] set. The pool stays open while `f` runs.
    ///
    /// # Errors
    /// [`ContextError`] if the context could not be entered; `f`'s own result is returned as `Ok`.
    pub async fn run<F, Fut, T>(&self, tenant: &Tenant, f: F) -> Result<T, ContextError>
    where
        F: FnOnce(TenantContext) -> Fut,
        Fut: Future<Output = T>,
    {
        self.run_reporting(tenant, None, f).await
    }

    /// [`Tenancy::run`], with [`TenantContext::progress`] reporting to `progress`.
    ///
    /// # Errors
    /// As [`Tenancy::run`].
    pub async fn run_reporting<F, Fut, T>(&self, tenant: &Tenant, progress: Option<Arc<dyn ProgressSink>>, f: F) -> Result<T, ContextError>
    where
        F: FnOnce(TenantContext) -> Fut,
        Fut: Future<Output = T>,
    {
        self.enter(Arc::new(tenant.clone()), progress, PoolSize::Full, false, f).await
    }

    /// [`Tenancy::run`] for an identified web request or a queued job: code inside cannot enter
    /// another tenant's context ([`ContextError::Pinned`]), and a pool opened for it connects on its
    /// first query, so a request or job that never touches the database opens no connection.
    #[cfg(any(feature = "web", feature = "queue"))]
    pub(crate) async fn run_pinned<F, Fut, T>(&self, tenant: Arc<Tenant>, f: F) -> Result<T, ContextError>
    where
        F: FnOnce(TenantContext) -> Fut,
        Fut: Future<Output = T>,
    {
        self.enter(tenant, None, PoolSize::Lazy, true, f).await
    }

    /// [`Tenancy::run`] for work that sends one statement at a time, such as migrations and
    /// reading their status: if the tenant's pool is not open, it is opened with one connection
    /// (see [`ConnectionCache::lease_one_connection`]).
    ///
    /// # Errors
    /// As [`Tenancy::run`].
    pub async fn run_with_one_connection<F, Fut, T>(&self, tenant: &Tenant, f: F) -> Result<T, ContextError>
    where
        F: FnOnce(TenantContext) -> Fut,
        Fut: Future<Output = T>,
    {
        self.enter(Arc::new(tenant.clone()), None, PoolSize::One, false, f).await
    }

    async fn enter<F, Fut, T>(
        &self,
        tenant: Arc<Tenant>,
        progress: Option<Arc<dyn ProgressSink>>,
        size: PoolSize,
        pinned: bool,
        f: F,
    ) -> Result<T, ContextError>
    where
        F: FnOnce(TenantContext) -> Fut,
        Fut: Future<Output = T>,
    {
        // Every event while in a tenant's context (a bootstrapper's warning, a migration's log)
        // carries `tenant.id`. Error level, so the span is on whenever any event is.
        let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
        let span = tracing::error_span!("tenant", tenant.id = tenant.id.encode(&mut id));
        let entered = async move {
            if let Some(current) = context::pinned_tenant()
                && current.id != tenant.id
            {
                return Err(ContextError::Pinned { current: current.to_string(), requested: tenant.to_string() });
            }
            let database_error = |source| ContextError::Database { tenant: tenant.to_string(), source };
            let manager = self.manager_of(&tenant).map_err(database_error)?.as_ref();
            let roles = self.tenant_roles().map_err(database_error)?;
            let lease = match size {
                PoolSize::Full => self.connections.lease(&tenant, manager, roles).await,
                PoolSize::One => self.connections.lease_one_connection(&tenant, manager, roles).await,
                PoolSize::Lazy => self.connections.lease_lazily(&tenant, manager, roles).await,
            }
            .map_err(database_error)?;
            // Checked with the lease held: a delete closes the tenant, then waits for its leases to
            // end, so a context either started before (and is waited for) or sees it closed.
            if self.closing.load(std::sync::atomic::Ordering::Acquire) > 0
                && self.closed.lock().unwrap_or_else(|p| p.into_inner()).contains(&tenant.id)
            {
                return Err(ContextError::Closed { tenant: tenant.to_string() });
            }
            let builder = ContextBuilder::new(tenant.clone(), lease, progress, pinned);
            let ctx = if self.attach_only && builder.pool_has_resources() {
                builder.build_on_pool_resources()
            } else {
                Box::pin(self.bootstrap(builder, &tenant)).await?
            };
            tracing::debug!(bootstrappers = self.bootstrappers.len(), "entered the tenant's context");
            let output = context::scope(ctx.clone(), f).await;
            if !self.attach_only {
                self.revert(&self.bootstrappers, &ctx).await;
            }
            // The pool stays leased until the last clone of `ctx` (a task it spawned) is gone.
            Ok::<_, ContextError>(output)
        };
        tracing::Instrument::instrument(entered, span).await
    }

    /// Runs every bootstrapper on `builder`; when one fails, reverts those before it.
    async fn bootstrap(&self, mut builder: ContextBuilder, tenant: &Tenant) -> Result<TenantContext, ContextError> {
        for (index, bootstrapper) in self.bootstrappers.iter().enumerate() {
            if let Err(source) = bootstrapper.bootstrap(&mut builder).await {
                let partial = builder.build();
                self.revert(&self.bootstrappers[..index], &partial).await;
                return Err(ContextError::Bootstrap { bootstrapper: bootstrapper.name().to_owned(), tenant: tenant.to_string(), source });
            }
        }
        Ok(if self.attach_only { builder.build_and_share() } else { builder.build() })
    }

    /// Closes `tenant` in this process: [`Tenancy::run`] refuses it until the guard is dropped.
    pub(crate) fn close_tenant(&self, tenant: &crate::TenantId) -> ClosedTenant<'_> {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        closed.insert(*tenant);
        self.closing.store(closed.len(), std::sync::atomic::Ordering::Release);
        ClosedTenant { tenancy: self, tenant: Some(*tenant) }
    }

    async fn revert(&self, bootstrappers: &[Arc<dyn Bootstrapper>], ctx: &TenantContext) {
        for bootstrapper in bootstrappers.iter().rev() {
            if let Err(err) = bootstrapper.revert(ctx).await {
                tracing::warn!(bootstrapper = bootstrapper.name(), tenant = %ctx.tenant().id, error = %err, "bootstrapper failed to revert");
            }
        }
    }

    /// Closes every pool (the registry's too). Call before exit so SQLite checkpoints cleanly.
    pub async fn close(self) {
        self.connections.close_all().await;
        let _ = self.registry.connection().clone().close().await;
    }
}
