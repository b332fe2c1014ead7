//! The tenant context: what code running "as a tenant" gets ([`TenantContext`]), how each isolated
//! resource is attached to it ([`Bootstrapper`]), and [`current_tenant`] for code deep in a call.
//!
//! Inside a context the tenant's own connection is the only one handed out; the registry is not
//! reachable from a `TenantContext`.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use crate::Tenant;

tokio::task_local! {
    static CURRENT: TenantContext;
}

/// The tenant whose context the current task runs in, if any.
///
/// # Example
/// ```no_run
/// # async fn demo(tenancy: &tenancy_core::Tenancy, tenant: &tenancy_core::Tenant) -> Result<(), tenancy_core::ContextError> {
/// use tenancy_core::current_tenant;
/// assert!(current_tenant().is_none());
/// tenancy.run(tenant, |_ctx| async {
///     assert!(current_tenant().is_some());
/// }).await?;
/// # Ok(()) }
/// ```
pub fn current_tenant() -> Option<Arc<Tenant>> {
    CURRENT.try_with(|ctx| ctx.inner.tenant.clone()).ok()
}

/// The context the current task runs in, if any: how code that is handed no context (a session
/// store called by a web framework) finds the tenant's connection and resources.
pub fn current_context() -> Option<TenantContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Calls `f` with `ctx` and awaits its future, both with `ctx` as [`current_context`]: the
/// closure's synchronous part already runs in the tenant.
pub(crate) async fn scope<F, Fut>(ctx: TenantContext, f: F) -> Fut::Output
where
    F: FnOnce(TenantContext) -> Fut,
    Fut: Future,
{
    CURRENT.scope(ctx.clone(), async move { f(ctx).await }).await
}

/// The tenants whose contexts the current task runs in, outermost first (empty outside any).
pub(crate) fn held_tenants() -> Vec<crate::TenantId> {
    CURRENT.try_with(TenantContext::held).unwrap_or_default()
}

/// The tenant the current task is pinned to, if it runs in a pinned context (an identified web
/// request): no other tenant's context may be entered from it.
pub(crate) fn pinned_tenant() -> Option<Arc<Tenant>> {
    CURRENT.try_with(|ctx| ctx.inner.pinned.then(|| ctx.inner.tenant.clone())).ok().flatten()
}

/// Runs `future` on the Tokio runtime in the context the current task runs in.
///
/// A task started with plain `tokio::spawn` starts outside any tenant context: `current_tenant()`
/// is `None` there and the session store and cache cannot find their tenant. This re-enters the
/// context in the new task, and keeps the tenant's connection pool leased until the task ends.
///
/// # Errors
/// [`NoTenantContext`] when called outside a tenant context; nothing is spawned.
///
/// # Example
/// ```no_run
/// # async fn handler() -> Result<(), tenancy_core::NoTenantContext> {
/// tenancy_core::spawn_in_tenant(async {
///     // Still the request's tenant here, after the response has gone.
///     assert!(tenancy_core::current_tenant().is_some());
/// })?;
/// # Ok(()) }
/// ```
pub fn spawn_in_tenant<F>(future: F) -> Result<tokio::task::JoinHandle<F::Output>, NoTenantContext>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    current_context().map(|ctx| ctx.spawn(future)).ok_or(NoTenantContext)
}

/// [`spawn_in_tenant`] was called outside any tenant context.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("not in a tenant context: spawn_in_tenant needs to be called inside Tenancy::run or an identified request")]
pub struct NoTenantContext;

/// Errors from bootstrappers, seeders and other user code: any error type will do.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything code running for one tenant needs: the tenant, its database connection, and the
/// resources bootstrappers attached (cache, sessions, files…). Cheap to clone.
#[derive(Clone)]
pub struct TenantContext {
    /// One allocation per context: a clone (the task-local, the request's extensions, an
    /// extractor) is one reference count, not one for each handle inside.
    inner: Arc<ContextInner>,
}

struct ContextInner {
    tenant: Arc<Tenant>,
    /// Its own resources; `None` for those attach-only bootstrappers made for its pool, which
    /// are kept there (see [`Bootstrapper::attaches_only`]).
    resources: Option<Resources>,
    progress: Option<Arc<dyn ProgressSink>>,
    /// The tenants of the contexts this one is nested in, outermost first (`None` when it is not
    /// nested, which spares every request an allocation): their pools are in use.
    outer: Option<Arc<[crate::TenantId]>>,
    /// The tenant's connection; keeps its pool open (not evictable) while any clone of the
    /// context lives.
    lease: crate::connections::PoolLease,
    /// No other tenant's context may be entered from this one.
    pinned: bool,
}

impl TenantContext {
    /// The tenant.
    pub fn tenant(&self) -> &Tenant {
        &self.inner.tenant
    }

    /// The tenant's own database connection (a pooled handle; clone it freely).
    pub fn db(&self) -> &DatabaseConnection {
        self.inner.lease.connection()
    }

    /// A progress counter for long work (a seeder inserting 50,000 rows): set its total here, then
    /// `advance` it. Whoever started the work decides how it is shown; if nobody watches, it costs
    /// nothing.
    pub fn progress(&self, total: u64) -> Progress {
        if let Some(sink) = &self.inner.progress {
            sink.set_total(total);
        }
        Progress(self.inner.progress.clone())
    }

    /// The tenant's cache (on the configured store, confined to this tenant).
    pub fn cache(&self) -> Option<&crate::cache::Cache> {
        self.get::<crate::cache::Cache>()
    }

    /// The tenant's own files (`{files.root}/{tenant_id}/files`); no path reaches outside them.
    pub fn files(&self) -> &crate::files::TenantFiles {
        self.get::<crate::files::TenantFiles>().expect("the files bootstrapper is always installed")
    }

    /// The resource of type `T` a bootstrapper attached, if any.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.resources().iter().find(|(id, _)| *id == TypeId::of::<T>()).and_then(|(_, value)| value.downcast_ref())
    }

    fn resources(&self) -> &[(TypeId, Box<dyn Any + Send + Sync>)] {
        match &self.inner.resources {
            Some(own) => own,
            None => self.inner.lease.shared_resources().get().map_or(&[], Vec::as_slice),
        }
    }

    /// This tenant and those of the contexts it is nested in, outermost first.
    fn held(&self) -> Vec<crate::TenantId> {
        self.inner.outer.iter().flat_map(|outer| outer.iter().copied()).chain([self.inner.tenant.id]).collect()
    }

    /// Runs `future` on the Tokio runtime in this context (see [`spawn_in_tenant`]).
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(CURRENT.scope(self.clone(), future))
    }
}

impl fmt::Debug for TenantContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantContext").field("tenant", &self.inner.tenant.id).field("resources", &self.resources().len()).finish()
    }
}

/// What bootstrappers attached, one of each type. A handful at most: a list is cheaper to fill
/// and to search than a map.
pub(crate) type Resources = Vec<(TypeId, Box<dyn Any + Send + Sync>)>;

/// A context being assembled; bootstrappers attach their resources to it.
pub struct ContextBuilder {
    tenant: Arc<Tenant>,
    lease: crate::connections::PoolLease,
    resources: Resources,
    progress: Option<Arc<dyn ProgressSink>>,
    pinned: bool,
}

impl ContextBuilder {
    pub(crate) fn new(
        tenant: Arc<Tenant>,
        lease: crate::connections::PoolLease,
        progress: Option<Arc<dyn ProgressSink>>,
        pinned: bool,
    ) -> Self {
        Self { tenant, lease, resources: Resources::new(), progress, pinned }
    }

    /// The tenant being entered.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Its database connection.
    pub fn db(&self) -> &DatabaseConnection {
        self.lease.connection()
    }

    /// Attaches `resource`; code in the context finds it with [`TenantContext::get`].
    pub fn insert<T: Any + Send + Sync>(&mut self, resource: T) {
        let resource: Box<dyn Any + Send + Sync> = Box::new(resource);
        match self.resources.iter_mut().find(|(id, _)| *id == TypeId::of::<T>()) {
            Some((_, slot)) => *slot = resource,
            None => self.resources.push((TypeId::of::<T>(), resource)),
        }
    }

    /// Whether attach-only bootstrappers made resources for an earlier context on this pool (see
    /// [`Bootstrapper::attaches_only`]); [`ContextBuilder::build_on_pool_resources`] uses them.
    pub(crate) fn pool_has_resources(&self) -> bool {
        self.lease.shared_resources().get().is_some()
    }

    /// The context, its resources kept on its pool for the next contexts to share.
    pub(crate) fn build_and_share(mut self) -> TenantContext {
        // Another context on the pool may have got there first: either set is as good.
        let _ = self.lease.shared_resources().set(std::mem::take(&mut self.resources));
        self.finish(false)
    }

    /// The context with the resources this builder was given.
    pub(crate) fn build(self) -> TenantContext {
        self.finish(true)
    }

    /// The context with the resources kept on its pool (see [`ContextBuilder::pool_has_resources`]).
    pub(crate) fn build_on_pool_resources(self) -> TenantContext {
        self.finish(false)
    }

    fn finish(self, own_resources: bool) -> TenantContext {
        let Self { tenant, lease, resources, progress, pinned } = self;
        let outer = CURRENT.try_with(|ctx| Arc::from(ctx.held())).ok();
        let inner = ContextInner {
            tenant,
            resources: own_resources.then_some(resources),
            progress,
            outer,
            lease,
            // A context nested in a pinned one is pinned too, or it would be a way out.
            pinned: pinned || pinned_tenant().is_some(),
        };
        TenantContext { inner: Arc::new(inner) }
    }
}

/// Receives the progress of long work done in a tenant context (see [`TenantContext::progress`]).
pub trait ProgressSink: Send + Sync {
    /// The work has `total` units.
    fn set_total(&self, total: u64);
    /// `units` more are done.
    fn advance(&self, units: u64);
}

/// A progress counter handed out by [`TenantContext::progress`].
#[derive(Clone)]
pub struct Progress(Option<Arc<dyn ProgressSink>>);

impl Progress {
    /// Marks `units` more as done.
    pub fn advance(&self, units: u64) {
        if let Some(sink) = &self.0 {
            sink.advance(units);
        }
    }
}

/// Makes one concern tenant-aware: attaches a tenant-scoped resource when a context is entered and
/// cleans up when it is left. Cache, sessions, Redis, queues and files are each one bootstrapper.
///
/// # Errors
/// `bootstrap` fails the context: the closure does not run and bootstrappers already run are reverted.
/// A failing `revert` is logged and does not hide the closure's result.
///
/// # Example
/// ```
/// use tenancy_core::{BoxError, Bootstrapper, ContextBuilder};
///
/// /// Gives every tenant its own folder for uploads.
/// struct Files { root: std::path::PathBuf }
///
/// #[async_trait::async_trait]
/// impl Bootstrapper for Files {
///     fn name(&self) -> &str { "files" }
///     async fn bootstrap(&self, ctx: &mut ContextBuilder) -> Result<(), BoxError> {
///         let folder = self.root.join(ctx.tenant().id.simple());
///         ctx.insert(folder);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Bootstrapper: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &str;

    /// Attaches this concern's tenant-scoped resource.
    async fn bootstrap(&self, ctx: &mut ContextBuilder) -> Result<(), BoxError>;

    /// Undoes `bootstrap` when the context ends.
    async fn revert(&self, _ctx: &TenantContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// True when `bootstrap` only attaches handles made from nothing but the tenant's id and its
    /// connection (the same every time for the same pool: not its name or status, which change)
    /// and `revert` has nothing to undo. When
    /// every bootstrapper says so, what they attach is made for the first context on a tenant's
    /// pool and shared by the contexts entered on it afterwards, which then run no bootstrapper:
    /// entering a warm tenant (a web request, a job) costs no allocation for them. Say false (the
    /// default) for anything that does work on entry or on exit.
    fn attaches_only(&self) -> bool {
        false
    }
}

/// Entering a tenant's context failed; the closure did not run.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The tenant's database could not be opened.
    #[error("cannot open the database of tenant {tenant}")]
    Database {
        /// `name (id)`.
        tenant: String,
        /// Why.
        source: crate::database::DatabaseError,
    },
    /// Code pinned to one tenant (an identified web request) tried to enter another's context.
    #[error("cannot enter tenant {requested} from a request of tenant {current}: a request runs as its own tenant only")]
    Pinned {
        /// The tenant of the request, `name (id)`.
        current: String,
        /// The tenant asked for, `name (id)`.
        requested: String,
    },
    /// The tenant is being deleted, or was, by this process.
    #[error("tenant {tenant} is being deleted")]
    Closed {
        /// `name (id)`.
        tenant: String,
    },
    /// A bootstrapper failed.
    #[error("bootstrapper `{bootstrapper}` failed for tenant {tenant}")]
    Bootstrap {
        /// Its name.
        bootstrapper: String,
        /// `name (id)`.
        tenant: String,
        /// Its error.
        source: BoxError,
    },
}
