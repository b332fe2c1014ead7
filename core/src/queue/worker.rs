//! The worker: takes jobs from an engine and runs each in exactly its own tenant's context.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::engine::{IncomingJob, JobRunner, Outcome, Scope, backoff};
use super::jobs::{Handler, JobSet};
use super::{Queue, QueueError};
use crate::config::SuspendedJobs;
use crate::unwind::contain;
use crate::{ContextError, Tenancy, TenantStatus};

/// What a worker reports after each job, for a log line or a test.
#[derive(Debug, Clone)]
pub struct JobEvent {
    /// The engine's id of the job.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its job type, if it had one.
    pub name: Option<String>,
    /// Its tenant id, or `central`, if it had one.
    pub tenant: Option<String>,
    /// Which run this was.
    pub attempt: u32,
    /// What became of it.
    pub outcome: Outcome,
    /// How long the run took.
    pub took: Duration,
}

type Listener = Arc<dyn Fn(&JobEvent) + Send + Sync>;

/// Runs queued jobs: `tenancy queue work` is a thin shell around it.
pub struct Worker {
    tenancy: Arc<Tenancy>,
    jobs: JobSet,
    listener: Option<Listener>,
    tenants: TenantCache,
}

/// The tenants of recent jobs, each stamped with the registry generation it was read at: a
/// change made in this process moves the generation at once; one made by another process (a
/// suspension, a deletion) is seen within `web.change_poll_millis`, when the change counter is
/// next read. Spares every job two registry queries.
#[derive(Default)]
struct TenantCache {
    entries: std::sync::Mutex<std::collections::HashMap<crate::TenantId, (u64, Arc<crate::Tenant>)>>,
    /// When the change counter was last read; held while one job reads it, so the others do not.
    polled: tokio::sync::Mutex<Option<Instant>>,
}

impl TenantCache {
    async fn get(&self, tenancy: &Tenancy, id: &crate::TenantId) -> Result<Option<Arc<crate::Tenant>>, crate::RegistryError> {
        let registry = tenancy.registry();
        if let Ok(mut polled) = self.polled.try_lock() {
            let every = Duration::from_millis(tenancy.config().web.change_poll_millis);
            if polled.is_none_or(|at| at.elapsed() >= every) {
                // An error moves the generation on too: every entry is read again.
                let _ = registry.poll_changes().await;
                *polled = Some(Instant::now());
            }
        }
        let generation = registry.generation();
        if let Some((seen, tenant)) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && *seen == generation
        {
            return Ok(Some(tenant.clone()));
        }
        // The generation is taken before the read: a change during it leaves the entry stale.
        let tenant = registry.get(id).await?.map(Arc::new);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match &tenant {
            Some(tenant) => entries.insert(*id, (generation, tenant.clone())),
            None => entries.remove(id),
        };
        Ok(tenant)
    }
}

impl Worker {
    /// A worker for `tenancy`'s queue that can run the jobs in `jobs`.
    pub fn new(tenancy: Arc<Tenancy>, jobs: JobSet) -> Self {
        Self { tenancy, jobs, listener: None, tenants: TenantCache::default() }
    }

    /// Calls `listener` after every job (from the job's task; keep it quick).
    pub fn on_job(mut self, listener: impl Fn(&JobEvent) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Runs jobs from `queues`, at most `concurrency` at once, until `stop` turns true; then
    /// lets the running jobs finish and returns.
    ///
    /// # Errors
    /// When the engine cannot be reached or fails.
    pub async fn work(self, queues: &[String], concurrency: usize, stop: watch::Receiver<bool>) -> Result<(), QueueError> {
        let queue: &Queue = self.tenancy.queue();
        let engine = queue.engine().await?.clone();
        let runner: Arc<dyn JobRunner> = Arc::new(self);
        engine.work(queues, concurrency, runner, stop).await?;
        Ok(())
    }

    /// Runs one job as a worker would, and says what became of it.
    pub async fn run_one(&self, job: IncomingJob) -> Outcome {
        let started = Instant::now();
        let event = |outcome: &Outcome| JobEvent {
            id: job.id.clone(),
            queue: job.queue.clone(),
            name: job.name.clone(),
            tenant: job.scope.map(|scope| scope.encode()),
            attempt: job.attempt,
            outcome: outcome.clone(),
            took: started.elapsed(),
        };
        let outcome = self.decide(&job).await;
        crate::metrics::job_ran(
            match outcome {
                Outcome::Done => "done",
                Outcome::Retry { .. } => "retry",
                Outcome::Fail { .. } => "failed",
                Outcome::Wait { .. } => "waiting",
            },
            started.elapsed(),
        );
        let event = event(&outcome);
        match &event.outcome {
            Outcome::Done => tracing::debug!(job = ?event.name, tenant = ?event.tenant, "job done"),
            Outcome::Retry { error, .. } => tracing::warn!(job = ?event.name, tenant = ?event.tenant, %error, "job failed, will retry"),
            Outcome::Fail { reason } => tracing::warn!(job = ?event.name, tenant = ?event.tenant, %reason, "job failed for good"),
            Outcome::Wait { reason, .. } => tracing::info!(job = ?event.name, tenant = ?event.tenant, %reason, "job waits"),
        }
        if let Some(listener) = &self.listener {
            listener(&event);
        }
        outcome
    }

    /// Checks the job's name and tenant, then runs it. Fails closed: anything that does not
    /// name a registered job and an active tenant is never run.
    async fn decide(&self, job: &IncomingJob) -> Outcome {
        let fail = |reason: String| Outcome::Fail { reason };
        let Some(name) = job.name.as_deref() else {
            return fail("the job names no job type in its metadata".into());
        };
        let Some(handler) = self.jobs.handler(name) else {
            return fail(format!("no job named `{name}` is registered in this worker (known: {})", self.jobs.names().join(", ")));
        };
        let Some(scope) = job.scope else {
            return fail("the job names no tenant in its metadata; it is never run without one".into());
        };
        let result = match (scope, handler) {
            (Scope::Central, Handler::Central(run)) => contain(run(job.payload.clone(), self.tenancy.clone())).await,
            (Scope::Tenant(id), Handler::Tenant(run)) => {
                let config = &self.tenancy.config().queue;
                let wait = Duration::from_secs(config.wait_secs);
                let tenant = match self.tenants.get(&self.tenancy, &id).await {
                    Ok(Some(tenant)) => tenant,
                    Ok(None) => return fail(format!("tenant {id} does not exist (deleted?)")),
                    Err(err) => return Outcome::Wait { reason: format!("the registry cannot be read: {err}"), after: wait },
                };
                match tenant.status {
                    TenantStatus::Active => {}
                    TenantStatus::Creating => {
                        return Outcome::Wait { reason: format!("tenant {tenant} is still being created"), after: wait };
                    }
                    TenantStatus::Suspended if config.suspended == SuspendedJobs::Wait => {
                        return Outcome::Wait { reason: format!("tenant {tenant} is suspended"), after: wait };
                    }
                    status => return fail(format!("tenant {tenant} is {status}")),
                }
                if tenant.maintenance.is_some() {
                    // As its web requests do, its jobs wait until it is up again (its schema may be changing).
                    return Outcome::Wait { reason: format!("tenant {tenant} is down for maintenance"), after: wait };
                }
                let run = run.clone();
                let payload = job.payload.clone();
                // Pinned: a job is its tenant's, and cannot enter another's. Lazy: a job that never
                // queries opens no connection.
                match self.tenancy.run_pinned(tenant.clone(), move |ctx| contain(run(payload, ctx))).await {
                    Ok(result) => result,
                    Err(ContextError::Closed { .. }) => return fail(format!("tenant {tenant} is being deleted")),
                    Err(err) => Ok(Err(crate::migrate::fleet::error_chain(&err).into())),
                }
            }
            (Scope::Central, Handler::Tenant(_)) => return fail(format!("`{name}` is a tenant job but this one names no tenant")),
            (Scope::Tenant(id), Handler::Central(_)) => return fail(format!("`{name}` is a central job but this one names tenant {id}")),
        };
        let error = match result {
            Ok(Ok(())) => return Outcome::Done,
            Ok(Err(error)) => crate::migrate::fleet::error_chain(error.as_ref()),
            Err(panicked) => format!("the job panicked: {panicked}"),
        };
        if job.attempt >= job.max_attempts {
            return fail(format!("failed after {} attempt(s): {error}", job.attempt));
        }
        let config = &self.tenancy.config().queue;
        let after = backoff(Duration::from_secs(config.backoff_secs), Duration::from_secs(config.max_backoff_secs), job.attempt);
        Outcome::Retry { error, after }
    }
}

#[async_trait::async_trait]
impl JobRunner for Worker {
    async fn run(&self, job: IncomingJob) -> Outcome {
        self.run_one(job).await
    }
}
