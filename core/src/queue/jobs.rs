//! The job traits applications implement, and the set of job types a worker can run.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{BoxError, Tenancy, TenantContext};

/// Work for one tenant, run later by a worker inside that tenant's context.
///
/// The job's fields are its payload: they say *what* to do. *Whose* job it is travels apart, in
/// the job's metadata, and a worker trusts nothing else: a tenant id field in a payload is just a
/// field. A job may run more than once (a worker that dies mid-job is replaced and the job is
/// delivered again), so make it idempotent.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name jobs of this type are queued and registered under; unique in an application.
    const NAME: &'static str;

    /// Does the work, in the job's tenant's context (no other tenant's can be entered from it).
    /// An error is retried with backoff until the job's attempts are spent; a panic counts as an
    /// error.
    fn run(&self, ctx: &TenantContext) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Work outside any tenant (a nightly report over all tenants), run by the same workers.
pub trait CentralJob: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name jobs of this type are queued and registered under.
    const NAME: &'static str;

    /// Does the work; it may enter tenants' contexts through `tenancy.run`, one at a time.
    fn run(&self, tenancy: &Tenancy) -> impl Future<Output = Result<(), BoxError>> + Send;
}

type TenantRun = dyn Fn(serde_json::Value, TenantContext) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync;
type CentralRun = dyn Fn(serde_json::Value, Arc<Tenancy>) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync;
type Check = fn(&serde_json::Value) -> Result<(), String>;

#[derive(Clone)]
pub(crate) enum Handler {
    Tenant(Arc<TenantRun>),
    Central(Arc<CentralRun>),
}

/// The job types an application registers, by name: what its workers can run and what
/// `tenancy queue dispatch` accepts.
#[derive(Clone, Default)]
pub struct JobSet {
    jobs: BTreeMap<&'static str, (Handler, Check)>,
}

impl JobSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the tenant job `J`.
    ///
    /// # Panics
    /// When another job type is registered under the same name: a programming error.
    pub fn tenant<J: Job>(mut self) -> Self {
        let run: Arc<TenantRun> = Arc::new(|payload, ctx| {
            Box::pin(async move {
                let job: J = serde_json::from_value(payload)?;
                job.run(&ctx).await
            })
        });
        self.insert(J::NAME, Handler::Tenant(run), check::<J>);
        self
    }

    /// Registers the central job `J`.
    ///
    /// # Panics
    /// When another job type is registered under the same name: a programming error.
    pub fn central<J: CentralJob>(mut self) -> Self {
        let run: Arc<CentralRun> = Arc::new(|payload, tenancy| {
            Box::pin(async move {
                let job: J = serde_json::from_value(payload)?;
                job.run(&tenancy).await
            })
        });
        self.insert(J::NAME, Handler::Central(run), check::<J>);
        self
    }

    fn insert(&mut self, name: &'static str, handler: Handler, check: Check) {
        assert!(self.jobs.insert(name, (handler, check)).is_none(), "two job types are registered as `{name}`");
    }

    /// Adds every job of `other`.
    ///
    /// # Panics
    /// When both register a name.
    pub fn merge(mut self, other: JobSet) -> Self {
        for (name, (handler, check)) in other.jobs {
            self.insert(name, handler, check);
        }
        self
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.keys().copied().collect()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// `Some(true)` for a central job, `Some(false)` for a tenant job, `None` if unknown.
    pub fn is_central(&self, name: &str) -> Option<bool> {
        self.jobs.get(name).map(|(handler, _)| matches!(handler, Handler::Central(_)))
    }

    /// Whether `payload` reads as the job `name`.
    pub(crate) fn check_payload(&self, name: &str, payload: &serde_json::Value) -> Result<(), String> {
        let (_, check) = self.jobs.get(name).ok_or_else(|| format!("no job named `{name}` is registered"))?;
        check(payload).map_err(|err| format!("the payload is not a `{name}` job: {err}"))
    }

    pub(crate) fn handler(&self, name: &str) -> Option<&Handler> {
        self.jobs.get(name).map(|(handler, _)| handler)
    }
}

fn check<J: DeserializeOwned>(payload: &serde_json::Value) -> Result<(), String> {
    J::deserialize(payload).map(drop).map_err(|err| err.to_string())
}

impl std::fmt::Debug for JobSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.jobs.keys()).finish()
    }
}
