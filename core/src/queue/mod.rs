//! Tenant-aware jobs: queued work that always runs in its own tenant's context.
//!
//! A job is a serde type implementing [`Job`] (or [`CentralJob`] for work outside any tenant).
//! [`Tenancy::dispatch`] (or [`TenantContext::dispatch`] inside a context) queues it with the
//! tenant's id in the job's *metadata* — never read from the payload — and a worker
//! ([`Worker`], `tenancy queue work`) resolves that id through the registry and runs the job in
//! [`Tenancy::run`] for exactly that tenant, reverted afterwards even when the job fails or
//! panics. A job whose tenant is unknown, deleted, inactive or suspended is never run anywhere
//! else: it goes to the failed set with the reason (or, for suspended tenants if configured, waits).
//!
//! Jobs are kept by an existing engine behind the small [`QueueEngine`] trait: apalis' SQL
//! storage in the registry database (SQLite or PostgreSQL; the default, no broker), or NATS
//! JetStream.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use tenancy_core::queue::Job;
//! use tenancy_core::{BoxError, TenantContext};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendInvoice { invoice: i64 }
//!
//! impl Job for SendInvoice {
//!     const NAME: &'static str = "send-invoice";
//!     async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
//!         // ctx.db() is the invoice's tenant's database, and only that.
//!         Ok(())
//!     }
//! }
//! ```

mod database;
mod engine;
mod jobs;
mod nats;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{QueueConfig, QueueEngineKind, check_queue_name};
use crate::{Config, Tenancy, Tenant, TenantContext};

pub use engine::{
    Counts, EngineError, FailedJob, IncomingJob, JobRunner, Outcome, OutgoingJob, QueueEngine, QueueStatus, RetryTarget, Scope, backoff,
};
pub use jobs::{CentralJob, Job, JobSet};
pub use worker::{JobEvent, Worker};

/// How one job is queued; the defaults come from `[queue]`.
#[derive(Debug, Clone, Default)]
pub struct DispatchOptions {
    /// The queue (default: `queue.default_queue` for tenant jobs, `queue.central_queue` for central ones).
    pub queue: Option<String>,
    /// Not run before this much time has passed.
    pub delay: Option<Duration>,
    /// Runs at most this many times (default: `queue.attempts`).
    pub attempts: Option<u32>,
    /// A second job with this key in the same queue is not queued (both engines honour it).
    pub idempotency_key: Option<String>,
}

/// Queueing or reading jobs failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The engine could not be reached or refused.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The job could not be turned into JSON.
    #[error("job `{job}` cannot be serialized: {source}")]
    Serialize {
        /// The job type.
        job: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A bad queue name or option.
    #[error("{0}")]
    Invalid(String),
    /// The tenant cannot be given jobs.
    #[error("tenant {tenant} is {status}: its jobs would never run")]
    NotActive {
        /// The tenant.
        tenant: String,
        /// Its status.
        status: crate::TenantStatus,
    },
}

impl QueueError {
    /// Whether the error is in what was asked (exit 2) rather than a failure (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::NotActive { .. })
    }
}

/// The queue of an installation: dispatches jobs to its engine (connected on first use).
pub struct Queue {
    config: Arc<Config>,
    engine: tokio::sync::OnceCell<Arc<dyn QueueEngine>>,
}

impl Queue {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Self { config, engine: tokio::sync::OnceCell::new() }
    }

    /// `[queue]`.
    pub fn config(&self) -> &QueueConfig {
        &self.config.queue
    }

    /// Whether the configured engine can hold jobs here at all: the database engine has no
    /// MySQL/MariaDB storage (opening it says so).
    fn can_keep_jobs(&self) -> bool {
        let mysql_registry = matches!(
            self.config.central_location(),
            Ok(crate::config::CentralLocation::Server(url)) if url.driver() == crate::Driver::MySql
        );
        !(self.config.queue.engine == QueueEngineKind::Database && mysql_registry)
    }

    /// The engine, connected (and its tables or streams set up) on first use.
    ///
    /// # Errors
    /// When it cannot be reached or set up.
    pub async fn engine(&self) -> Result<&Arc<dyn QueueEngine>, QueueError> {
        self.engine
            .get_or_try_init(|| {
                // Boxed: the engines' set-up futures are deep, and every dispatch awaits this.
                let open: futures::future::BoxFuture<'_, Result<Arc<dyn QueueEngine>, QueueError>> = Box::pin(async {
                    let engine: Arc<dyn QueueEngine> = match self.config.queue.engine {
                        QueueEngineKind::Database => Arc::new(database::DatabaseEngine::open(&self.config).await?),
                        QueueEngineKind::Nats => Arc::new(nats::NatsEngine::connect(&self.config.queue).await?),
                    };
                    Ok(engine)
                });
                open
            })
            .await
    }

    /// Queues `job` for `tenant` (active or being created; an inactive or suspended tenant's
    /// jobs would only fail, so they are refused here).
    ///
    /// # Errors
    /// [`QueueError`] when the job cannot be serialized or queued.
    pub async fn dispatch<J: Job>(&self, tenant: &Tenant, job: &J, options: DispatchOptions) -> Result<Option<String>, QueueError> {
        use crate::TenantStatus::{Active, Creating};
        if !matches!(tenant.status, Active | Creating) {
            return Err(QueueError::NotActive { tenant: tenant.to_string(), status: tenant.status });
        }
        self.push(J::NAME, Scope::Tenant(tenant.id), job, options).await
    }

    /// Queues a central job.
    ///
    /// # Errors
    /// [`QueueError`] when the job cannot be serialized or queued.
    pub async fn dispatch_central<J: CentralJob>(&self, job: &J, options: DispatchOptions) -> Result<Option<String>, QueueError> {
        self.push(J::NAME, Scope::Central, job, options).await
    }

    /// Queues a job given by name and JSON (`tenancy queue dispatch`): checked against `jobs`,
    /// so a name no worker knows is refused here rather than failed later.
    ///
    /// # Errors
    /// [`QueueError::Invalid`] for an unknown name, a central job given a tenant or the reverse,
    /// or a payload the job type cannot read.
    pub async fn dispatch_named(
        &self,
        jobs: &JobSet,
        name: &str,
        tenant: Option<&Tenant>,
        payload: serde_json::Value,
        options: DispatchOptions,
    ) -> Result<Option<String>, QueueError> {
        let central = jobs
            .is_central(name)
            .ok_or_else(|| QueueError::Invalid(format!("no job named `{name}` is registered; known: {}", jobs.names().join(", "))))?;
        jobs.check_payload(name, &payload).map_err(QueueError::Invalid)?;
        let scope = match (central, tenant) {
            (true, None) => Scope::Central,
            (false, Some(tenant)) => {
                if !matches!(tenant.status, crate::TenantStatus::Active | crate::TenantStatus::Creating) {
                    return Err(QueueError::NotActive { tenant: tenant.to_string(), status: tenant.status });
                }
                Scope::Tenant(tenant.id)
            }
            (true, Some(_)) => return Err(QueueError::Invalid(format!("`{name}` is a central job: it takes no tenant"))),
            (false, None) => return Err(QueueError::Invalid(format!("`{name}` is a tenant job: name its tenant with --tenant"))),
        };
        self.push(name, scope, &payload, options).await
    }

    async fn push<P: serde::Serialize>(
        &self,
        name: &str,
        scope: Scope,
        job: &P,
        options: DispatchOptions,
    ) -> Result<Option<String>, QueueError> {
        let payload = serde_json::to_value(job).map_err(|source| QueueError::Serialize { job: name.to_owned(), source })?;
        let queue = match (&options.queue, scope) {
            (Some(queue), _) => queue.clone(),
            (None, Scope::Tenant(id)) => self.config.queue.tenant_queue(&id),
            (None, Scope::Central) => self.config.queue.central_queue.clone(),
        };
        check_queue_name(&queue).map_err(|err| QueueError::Invalid(format!("queue `{queue}`: {err}")))?;
        if options.attempts == Some(0) {
            return Err(QueueError::Invalid("a job needs at least one attempt".into()));
        }
        if let Some(key) = &options.idempotency_key
            && (key.is_empty() || key.len() > 200 || key.chars().any(char::is_control))
        {
            return Err(QueueError::Invalid("an idempotency key has 1 to 200 printable characters".into()));
        }
        let outgoing = OutgoingJob {
            queue,
            name: name.to_owned(),
            scope,
            payload,
            delay: options.delay,
            max_attempts: options.attempts.unwrap_or(self.config.queue.attempts),
            idempotency_key: options.idempotency_key,
        };
        let id = self.engine().await?.push(outgoing).await?;
        crate::metrics::job_dispatched();
        Ok(id)
    }

    /// The queues a worker takes when told none: the shared tenant queue (or, with a queue per
    /// tenant, each existing tenant's) and the central queue.
    ///
    /// # Errors
    /// When the registry cannot list tenants.
    pub async fn default_queues(&self, tenancy: &Tenancy) -> Result<Vec<String>, crate::RegistryError> {
        let mut queues = vec![self.config.queue.central_queue.clone()];
        if self.config.queue.per_tenant_queues() {
            for tenant in tenancy.registry().list(None).await? {
                queues.push(self.config.queue.tenant_queue(&tenant.id));
            }
        } else {
            queues.push(self.config.queue.default_queue.clone());
        }
        Ok(queues)
    }
}

impl Tenancy {
    /// Queues `job` to run later in `tenant`'s context (see [`crate::queue`]).
    ///
    /// # Errors
    /// [`QueueError`] when it cannot be serialized or queued, or the tenant is not active.
    pub async fn dispatch<J: Job>(&self, tenant: &Tenant, job: &J) -> Result<Option<String>, QueueError> {
        self.queue().dispatch(tenant, job, DispatchOptions::default()).await
    }

    /// Like [`Tenancy::dispatch`], with a queue, a delay, attempts or an idempotency key.
    ///
    /// # Errors
    /// As [`Tenancy::dispatch`].
    pub async fn dispatch_with<J: Job>(&self, tenant: &Tenant, job: &J, options: DispatchOptions) -> Result<Option<String>, QueueError> {
        self.queue().dispatch(tenant, job, options).await
    }
}

impl TenantContext {
    /// Queues `job` for this context's tenant. Outside [`Tenancy::run`] there is no context, so
    /// a job can never be queued for "whatever tenant was last".
    ///
    /// # Errors
    /// As [`Tenancy::dispatch`].
    pub async fn dispatch<J: Job>(&self, job: &J) -> Result<Option<String>, QueueError> {
        let queue = self.get::<Arc<Queue>>().expect("the queue bootstrapper attaches the queue to every context");
        queue.dispatch(self.tenant(), job, DispatchOptions::default()).await
    }
}

/// Attaches the queue to every context, so [`TenantContext::dispatch`] needs nothing else.
pub(crate) struct QueueBootstrapper(pub(crate) Arc<Queue>);

#[async_trait::async_trait]
impl crate::Bootstrapper for QueueBootstrapper {
    fn name(&self) -> &str {
        "queue"
    }

    fn attaches_only(&self) -> bool {
        true
    }

    async fn bootstrap(&self, ctx: &mut crate::ContextBuilder) -> Result<(), crate::BoxError> {
        ctx.insert(self.0.clone());
        Ok(())
    }
}

/// Removes a deleted tenant's waiting and failed jobs (running ones finish, or fail when their
/// tenant is gone).
pub(crate) struct ClearJobsOnDelete(pub(crate) Arc<Queue>);

#[async_trait::async_trait]
impl crate::provisioning::TenantHook for ClearJobsOnDelete {
    fn name(&self) -> &str {
        "queue"
    }

    async fn deleting(
        &self,
        _tenancy: &Tenancy,
        tenant: &Tenant,
        _options: &crate::provisioning::DeleteOptions,
    ) -> Result<Option<String>, crate::BoxError> {
        if !self.0.can_keep_jobs() {
            return Ok(None);
        }
        // Never a reason to keep the tenant: a job left behind fails closed ("does not exist").
        let removed = match self.0.engine().await {
            Ok(engine) => engine.clear(&tenant.id).await.map_err(QueueError::from),
            Err(err) => Err(err),
        };
        Ok(match removed {
            Ok(0) => None,
            Ok(removed) => Some(format!("removed {removed} queued job(s) of the tenant")),
            Err(err) => Some(format!("its queued jobs could not be removed ({err}); they will fail, naming a tenant that does not exist")),
        })
    }
}
