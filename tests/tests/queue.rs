//! Tenant-aware jobs on every engine: each job runs in exactly its own tenant's context, retries
//! back off, failures are kept with their reason, and a job whose tenant is gone, suspended or
//! missing is never run anywhere else.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use serde::{Deserialize, Serialize};
use tenancy_core::config::{QueueEngineKind, SuspendedJobs};
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::{DeleteOptions, TenantRequest};
use tenancy_core::queue::{DispatchOptions, IncomingJob, Job, JobSet, Outcome, Scope, Worker};
use tenancy_core::{BoxError, Tenancy, TenantContext, TenantName, TenantStatus, current_tenant};
use tenancy_tests::{Backend, NATS_ADDR, TestEnv, service_available};

/// A backend for tenants and the registry, and the engine keeping the jobs.
#[derive(Debug, Clone, Copy)]
struct Setup {
    backend: Backend,
    engine: QueueEngineKind,
}

const SETUPS: [Setup; 3] = [
    Setup { backend: Backend::Sqlite, engine: QueueEngineKind::Database },
    Setup { backend: Backend::Postgres, engine: QueueEngineKind::Database },
    Setup { backend: Backend::Sqlite, engine: QueueEngineKind::Nats },
];

impl Setup {
    fn name(&self) -> String {
        format!("{} registry, {:?} engine", self.backend.name(), self.engine)
    }

    fn env(&self) -> Option<TestEnv> {
        if self.engine == QueueEngineKind::Nats && !service_available("nats", NATS_ADDR) {
            return None;
        }
        TestEnv::new(self.backend)
    }
}

async fn open(env: &TestEnv, engine: QueueEngineKind, adjust: impl FnOnce(&mut tenancy_core::Config)) -> Arc<Tenancy> {
    env.create_central_database().await;
    let mut config = env.config();
    config.queue.engine = engine;
    config.queue.nats_prefix = env.prefix.trim_end_matches('_').to_owned();
    config.queue.backoff_secs = 1;
    config.queue.wait_secs = 1;
    config.queue.visibility_timeout_secs = 4;
    adjust(&mut config);
    let tenancy =
        Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await.unwrap();
    Arc::new(tenancy)
}

/// Removes the test's NATS streams (the database engine's tables go with the registry).
async fn close(tenancy: Arc<Tenancy>, engine: QueueEngineKind) {
    if engine == QueueEngineKind::Nats {
        let client = async_nats::connect(NATS_ADDR).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let prefix = &tenancy.config().queue.nats_prefix;
        for stream in ["jobs", "failed"] {
            let _ = js.delete_stream(format!("{prefix}_{stream}")).await;
        }
    }
    Arc::try_unwrap(tenancy).ok().unwrap().close().await;
}

/// A `Worker` on the default queues, in a task of its own.
struct RunningWorker {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), tenancy_core::queue::QueueError>>,
}

impl RunningWorker {
    async fn start(tenancy: &Arc<Tenancy>, jobs: JobSet, concurrency: usize) -> Self {
        let queues = tenancy.queue().default_queues(tenancy).await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tenancy = tenancy.clone();
        let task = tokio::spawn(async move { Worker::new(tenancy, jobs).work(&queues, concurrency, stopped).await });
        Self { stop, task }
    }

    /// Stops it; it must end, without error, within 30 s.
    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("the worker stops within 30 s").unwrap().unwrap();
    }
}

/// Runs a worker until every job is done or failed (or `limit` passes), then stops it.
async fn work_until_idle(tenancy: &Arc<Tenancy>, jobs: JobSet, concurrency: usize, limit: Duration) {
    let worker = RunningWorker::start(tenancy, jobs, concurrency).await;
    let engine = tenancy.queue().engine().await.unwrap().clone();
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = engine.status().await.unwrap();
        let busy: u64 = status.queues.iter().map(|(_, counts)| counts.pending + counts.running).sum();
        if busy == 0 {
            break;
        }
        assert!(!worker.task.is_finished(), "the worker stopped by itself: {:?}", worker.task.await);
        assert!(started.elapsed() < limit, "jobs still pending after {limit:?}: {status:?}");
    }
    worker.stop().await;
}

/// Writes a row into its tenant's database and counts in its tenant's cache, after checking that
/// the context is its own. `meant_for` is a forged field: the worker must not trust it, and it is
/// checked against the context only to catch a mix-up.
#[derive(Serialize, Deserialize)]
struct Record {
    number: u32,
    meant_for: String,
}

impl Job for Record {
    const NAME: &'static str = "record";

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let current = current_tenant().ok_or("no current tenant inside a job")?;
        if current.id != ctx.tenant().id || ctx.tenant().id.to_string() != self.meant_for {
            return Err(format!("job {} for {} ran as {}", self.number, self.meant_for, ctx.tenant().id).into());
        }
        let db = ctx.db();
        let sql = format!("INSERT INTO accounts (name, email) VALUES ('job', '{}@jobs.test')", self.number);
        db.execute_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
        let cache = ctx.cache().ok_or("no cache")?;
        cache.increment("jobs", 1).await?;
        Ok(())
    }
}

async fn job_emails(tenancy: &Tenancy, tenant: &tenancy_core::Tenant) -> Vec<String> {
    tenancy
        .run(tenant, |ctx| async move {
            let db = ctx.db();
            let rows = db
                .query_all_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT email FROM accounts WHERE name = 'job' ORDER BY email",
                ))
                .await
                .unwrap();
            rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_jobs_each_see_only_their_own_tenant() {
    const TENANTS: u32 = 20;
    const JOBS: u32 = 50;
    for setup in SETUPS {
        let Some(env) = setup.env() else { continue };
        let tenancy = open(&env, setup.engine, |_| {}).await;
        let mut tenants = Vec::new();
        for index in 0..TENANTS {
            tenants.push(tenancy.create_tenant(&TenantRequest::new(TenantName::parse(&format!("T{index}")).unwrap()), &()).await.unwrap());
        }
        for number in 0..JOBS {
            for tenant in &tenants {
                tenancy.dispatch(tenant, &Record { number, meant_for: tenant.id.to_string() }).await.unwrap();
            }
        }
        work_until_idle(&tenancy, JobSet::new().tenant::<Record>(), 8, Duration::from_secs(240)).await;
        let failed = tenancy.queue().engine().await.unwrap().failed(None).await.unwrap();
        assert!(failed.is_empty(), "{}: {failed:?}", setup.name());
        let expected: Vec<String> = {
            let mut emails: Vec<String> = (0..JOBS).map(|n| format!("{n}@jobs.test")).collect();
            emails.sort();
            emails
        };
        for tenant in &tenants {
            assert_eq!(job_emails(&tenancy, tenant).await, expected, "{}: tenant {tenant}", setup.name());
            let count: Option<i64> =
                tenancy.run(tenant, |ctx| async move { ctx.cache().unwrap().get("jobs").await.unwrap() }).await.unwrap();
            assert_eq!(count, Some(i64::from(JOBS)), "{}: tenant {tenant}'s cache", setup.name());
        }
        close(tenancy, setup.engine).await;
    }
}

#[tokio::test]
async fn after_a_job_the_worker_holds_no_tenant_context() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = open(&env, QueueEngineKind::Database, |_| {}).await;
    let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
    let worker = Worker::new(tenancy.clone(), JobSet::new().tenant::<Record>().tenant::<Panics>());
    for (name, payload) in
        [("record", serde_json::json!({"number": 1, "meant_for": tenant.id.to_string()})), ("panics", serde_json::json!({}))]
    {
        let job = IncomingJob {
            id: "1".into(),
            queue: "default".into(),
            name: Some(name.into()),
            scope: Some(Scope::Tenant(tenant.id)),
            payload,
            attempt: 1,
            max_attempts: 1,
        };
        let outcome = worker.run_one(job).await;
        assert!(current_tenant().is_none(), "{name}: the worker is still in a tenant's context");
        match name {
            "record" => assert_eq!(outcome, Outcome::Done),
            _ => assert!(matches!(&outcome, Outcome::Fail { reason } if reason.contains("panicked")), "{outcome:?}"),
        }
    }
    drop(worker);
    close(tenancy, QueueEngineKind::Database).await;
}

#[derive(Serialize, Deserialize)]
struct Panics {}

impl Job for Panics {
    const NAME: &'static str = "panics";

    async fn run(&self, _ctx: &TenantContext) -> Result<(), BoxError> {
        panic!("a job that panics")
    }
}

/// Fails until it has run `succeed_on` times (counted per `key`, in this process).
#[derive(Serialize, Deserialize)]
struct Flaky {
    key: String,
    succeed_on: u32,
}

/// Per key: how many runs, and when each started.
type Runs = HashMap<String, (u32, Vec<Instant>)>;

fn runs() -> &'static Mutex<Runs> {
    static RUNS: OnceLock<Mutex<Runs>> = OnceLock::new();
    RUNS.get_or_init(Default::default)
}

impl Job for Flaky {
    const NAME: &'static str = "flaky";

    async fn run(&self, _ctx: &TenantContext) -> Result<(), BoxError> {
        let run = {
            let mut runs = runs().lock().unwrap();
            let entry = runs.entry(self.key.clone()).or_default();
            entry.0 += 1;
            entry.1.push(Instant::now());
            entry.0
        };
        if run < self.succeed_on { Err(format!("flaky run {run} failed").into()) } else { Ok(()) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jobs_are_retried_with_backoff_then_kept_with_their_error() {
    for setup in SETUPS {
        let Some(env) = setup.env() else { continue };
        let tenancy = open(&env, setup.engine, |_| {}).await;
        let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
        let recovers = format!("{}-recovers", env.prefix);
        let never = format!("{}-never", env.prefix);
        tenancy.dispatch(&tenant, &Flaky { key: recovers.clone(), succeed_on: 3 }).await.unwrap();
        let options = DispatchOptions { attempts: Some(2), ..Default::default() };
        tenancy.dispatch_with(&tenant, &Flaky { key: never.clone(), succeed_on: u32::MAX }, options).await.unwrap();
        work_until_idle(&tenancy, JobSet::new().tenant::<Flaky>(), 2, Duration::from_secs(60)).await;
        let (recovered_runs, times) = runs().lock().unwrap().get(&recovers).cloned().unwrap();
        assert_eq!(recovered_runs, 3, "{}: runs of the job that recovers", setup.name());
        // Backoff 1 s, then 2 s (the database engine counts whole seconds: allow for rounding).
        assert!(times[1] - times[0] >= Duration::from_millis(900), "{}: first retry after {:?}", setup.name(), times[1] - times[0]);
        assert!(times[2] - times[1] >= Duration::from_millis(1_800), "{}: second retry after {:?}", setup.name(), times[2] - times[1]);
        assert_eq!(runs().lock().unwrap().get(&never).unwrap().0, 2, "{}: runs of the job that never succeeds", setup.name());
        let failed = tenancy.queue().engine().await.unwrap().failed(Some(&tenant.id)).await.unwrap();
        assert_eq!(failed.len(), 1, "{}: {failed:?}", setup.name());
        assert!(failed[0].reason.contains("failed after 2 attempt(s): flaky run 2 failed"), "{}: {}", setup.name(), failed[0].reason);
        assert_eq!(failed[0].name.as_deref(), Some("flaky"));
        assert_eq!(failed[0].tenant.as_deref(), Some(tenant.id.to_string().as_str()));
        // Retried, it runs again (its attempts start over) and fails again.
        let engine = tenancy.queue().engine().await.unwrap().clone();
        assert_eq!(engine.retry(&tenancy_core::queue::RetryTarget::One(failed[0].id.clone())).await.unwrap(), 1, "{}", setup.name());
        work_until_idle(&tenancy, JobSet::new().tenant::<Flaky>(), 2, Duration::from_secs(60)).await;
        // Two more attempts. Delivery is at least once: a message whose acknowledgement reached
        // JetStream late is delivered again and runs again (its next step is then dropped as a
        // duplicate), so a third run is allowed; what must hold is that it failed for good again.
        let runs_after = runs().lock().unwrap().get(&never).unwrap().0;
        assert!((4..=5).contains(&runs_after), "{}: runs after the retry: {runs_after}", setup.name());
        let failed = engine.failed(Some(&tenant.id)).await.unwrap();
        assert_eq!(failed.len(), 1, "{}: {failed:?}", setup.name());
        assert!(failed[0].reason.contains("failed after 2 attempt(s)"), "{}: {}", setup.name(), failed[0].reason);
        close(tenancy, setup.engine).await;
    }
}

static WAITING_RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Serialize, Deserialize)]
struct CountRuns {}

impl Job for CountRuns {
    const NAME: &'static str = "count-runs";

    async fn run(&self, _ctx: &TenantContext) -> Result<(), BoxError> {
        WAITING_RUNS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_missing_deleted_or_suspended_tenants_never_run_elsewhere() {
    for setup in SETUPS {
        let Some(env) = setup.env() else { continue };
        let tenancy = open(&env, setup.engine, |_| {}).await;
        let engine = tenancy.queue().engine().await.unwrap().clone();
        let suspended = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Suspended").unwrap()), &()).await.unwrap();
        let deleted = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Deleted").unwrap()), &()).await.unwrap();
        let bystander = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Bystander").unwrap()), &()).await.unwrap();
        let record = |tenant: &tenancy_core::Tenant| Record { number: 7, meant_for: tenant.id.to_string() };
        tenancy.dispatch(&suspended, &record(&suspended)).await.unwrap();
        tenancy.dispatch(&deleted, &record(&deleted)).await.unwrap();
        tenancy.dispatch(&bystander, &record(&bystander)).await.unwrap();
        // A job naming a tenant that never existed, as a forged or stale message would.
        let ghost = tenancy_core::TenantId::new();
        engine
            .push(tenancy_core::queue::OutgoingJob {
                queue: tenancy.config().queue.default_queue.clone(),
                name: "record".into(),
                scope: Scope::Tenant(ghost),
                payload: serde_json::json!({"number": 1, "meant_for": bystander.id.to_string()}),
                delay: None,
                max_attempts: 3,
                idempotency_key: None,
            })
            .await
            .unwrap();
        tenancy.registry().set_status(&suspended.id, TenantStatus::Suspended).await.unwrap();
        // Deleting a tenant removes its queued jobs.
        tenancy.delete_tenant(&deleted, DeleteOptions::default()).await.unwrap();
        let status = engine.status().await.unwrap();
        assert!(status.tenants.iter().all(|(tenant, _)| tenant != &deleted.id.to_string()), "{}: {status:?}", setup.name());
        work_until_idle(&tenancy, JobSet::new().tenant::<Record>(), 4, Duration::from_secs(60)).await;
        let failed = engine.failed(None).await.unwrap();
        let reason = |id: &str| failed.iter().find(|job| job.tenant.as_deref() == Some(id)).map(|job| job.reason.clone());
        assert!(reason(&suspended.id.to_string()).is_some_and(|r| r.contains("is suspended")), "{}: {failed:?}", setup.name());
        assert!(reason(&ghost.to_string()).is_some_and(|r| r.contains("does not exist")), "{}: {failed:?}", setup.name());
        assert_eq!(failed.len(), 2, "{}: {failed:?}", setup.name());
        // Only the bystander's own job wrote to the bystander: not the ghost's, which named it in its payload.
        assert_eq!(job_emails(&tenancy, &bystander).await, vec!["7@jobs.test".to_owned()], "{}", setup.name());
        assert!(job_emails(&tenancy, &suspended).await.is_empty(), "{}", setup.name());
        // `queue clear` removes the failed job of that tenant only, and counts what `queue status` showed.
        let shown = engine.failed(Some(&suspended.id)).await.unwrap();
        assert_eq!(shown.len(), 1, "{}: {shown:?}", setup.name());
        assert_eq!(engine.clear(&suspended.id).await.unwrap(), 1, "{}", setup.name());
        assert!(engine.status().await.unwrap().tenants.iter().all(|(tenant, _)| tenant != &suspended.id.to_string()), "{}", setup.name());
        let left = engine.failed(None).await.unwrap();
        assert!(left.len() == 1 && left[0].tenant.as_deref() == Some(ghost.to_string().as_str()), "{}: {left:?}", setup.name());
        close(tenancy, setup.engine).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_of_a_suspended_or_down_tenant_can_wait_for_it() {
    use tenancy_core::maintenance::{Maintenance, MaintenanceOrigin};
    for setup in SETUPS {
        let Some(env) = setup.env() else { continue };
        let tenancy = open(&env, setup.engine, |config| config.queue.suspended = SuspendedJobs::Wait).await;
        let suspended = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
        let down = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("B").unwrap()), &()).await.unwrap();
        for tenant in [&suspended, &down] {
            tenancy.dispatch(tenant, &Record { number: 1, meant_for: tenant.id.to_string() }).await.unwrap();
        }
        tenancy.registry().set_status(&suspended.id, TenantStatus::Suspended).await.unwrap();
        // Maintenance holds jobs whatever `queue.suspended` says: the tenant's schema may be changing.
        tenancy.registry().set_maintenance(&down.id, Some(&Maintenance::new(MaintenanceOrigin::Migration))).await.unwrap();
        let worker = RunningWorker::start(&tenancy, JobSet::new().tenant::<Record>(), 2).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(job_emails(&tenancy, &suspended).await.is_empty(), "{}: ran while suspended", setup.name());
        assert!(job_emails(&tenancy, &down).await.is_empty(), "{}: ran while down for maintenance", setup.name());
        tenancy.registry().set_status(&suspended.id, TenantStatus::Active).await.unwrap();
        tenancy.registry().set_maintenance(&down.id, None).await.unwrap();
        let started = Instant::now();
        for tenant in [&suspended, &down] {
            while job_emails(&tenancy, tenant).await.is_empty() {
                assert!(started.elapsed() < Duration::from_secs(30), "{}: the job did not run once the tenant was back", setup.name());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        worker.stop().await;
        assert!(tenancy.queue().engine().await.unwrap().failed(None).await.unwrap().is_empty(), "{}", setup.name());
        close(tenancy, setup.engine).await;
    }
}

#[tokio::test]
async fn idempotency_keys_queue_a_job_once_and_bad_dispatches_are_refused() {
    for setup in SETUPS {
        let Some(env) = setup.env() else { continue };
        let tenancy = open(&env, setup.engine, |_| {}).await;
        let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
        let keyed = || DispatchOptions { idempotency_key: Some("invoice-42".into()), ..Default::default() };
        let job = CountRuns {};
        assert!(tenancy.dispatch_with(&tenant, &job, keyed()).await.unwrap().is_some(), "{}", setup.name());
        assert!(
            tenancy.dispatch_with(&tenant, &job, keyed()).await.unwrap().is_none(),
            "{}: a second job with the key was queued",
            setup.name()
        );
        let bad_queue = DispatchOptions { queue: Some("../etc".into()), ..Default::default() };
        assert!(tenancy.dispatch_with(&tenant, &job, bad_queue).await.unwrap_err().is_bad_input(), "{}", setup.name());
        let suspended = tenancy.registry().set_status(&tenant.id, TenantStatus::Suspended).await.unwrap();
        assert!(tenancy.dispatch(&suspended, &job).await.unwrap_err().is_bad_input(), "{}", setup.name());
        let status = tenancy.queue().engine().await.unwrap().status().await.unwrap();
        let pending: u64 = status.queues.iter().map(|(_, counts)| counts.pending).sum();
        assert_eq!(pending, 1, "{}: {status:?}", setup.name());
        close(tenancy, setup.engine).await;
    }
}

#[tokio::test]
async fn the_database_engine_says_plainly_that_it_has_no_mariadb_storage() {
    let Some(env) = TestEnv::new(Backend::MySql) else { return };
    let tenancy = open(&env, QueueEngineKind::Database, |_| {}).await;
    let err = tenancy.queue().engine().await.err().unwrap().to_string();
    assert!(err.contains("queue.engine = \"nats\""), "{err}");
    close(tenancy, QueueEngineKind::Database).await;
}

static CENTRAL_RUNS: AtomicU32 = AtomicU32::new(0);

/// Runs outside any tenant: it must find no current tenant.
#[derive(Serialize, Deserialize)]
struct Nightly {}

impl tenancy_core::queue::CentralJob for Nightly {
    const NAME: &'static str = "nightly";

    async fn run(&self, tenancy: &Tenancy) -> Result<(), BoxError> {
        if current_tenant().is_some() {
            return Err("a central job ran inside a tenant's context".into());
        }
        tenancy.registry().list(None).await?;
        CENTRAL_RUNS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_jobs_delayed_jobs_and_a_queue_per_tenant() {
    for setup in SETUPS {
        let Some(env) = setup.env() else { continue };
        let tenancy = open(&env, setup.engine, |config| config.queue.default_queue = "tenant_{tenant_id}".into()).await;
        let a = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
        let b = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("B").unwrap()), &()).await.unwrap();
        let queues = tenancy.queue().default_queues(&tenancy).await.unwrap();
        let mut expected = vec!["central".to_owned(), format!("tenant_{}", a.id), format!("tenant_{}", b.id)];
        expected.sort();
        let mut sorted = queues;
        sorted.sort();
        assert_eq!(sorted, expected, "{}", setup.name());
        let before = CENTRAL_RUNS.load(Ordering::SeqCst);
        tenancy.queue().dispatch_central(&Nightly {}, DispatchOptions::default()).await.unwrap();
        tenancy.dispatch(&a, &Record { number: 1, meant_for: a.id.to_string() }).await.unwrap();
        let later = DispatchOptions { delay: Some(Duration::from_secs(4)), ..Default::default() };
        tenancy.dispatch_with(&b, &Record { number: 2, meant_for: b.id.to_string() }, later).await.unwrap();
        let status = tenancy.queue().engine().await.unwrap().status().await.unwrap();
        let names: Vec<&str> = status.queues.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names.len(), 3, "{}: {status:?}", setup.name());

        let worker = RunningWorker::start(&tenancy, JobSet::new().tenant::<Record>().central::<Nightly>(), 4).await;
        let started = Instant::now();
        while job_emails(&tenancy, &a).await.is_empty() || CENTRAL_RUNS.load(Ordering::SeqCst) == before {
            assert!(started.elapsed() < Duration::from_secs(30), "{}: the undelayed jobs did not run", setup.name());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(job_emails(&tenancy, &b).await.is_empty(), "{}: the delayed job ran at once", setup.name());
        while job_emails(&tenancy, &b).await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "{}: the delayed job never ran", setup.name());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(started.elapsed() >= Duration::from_secs(2), "{}: the delayed job ran after {:?}", setup.name(), started.elapsed());
        worker.stop().await;
        assert!(tenancy.queue().engine().await.unwrap().failed(None).await.unwrap().is_empty(), "{}", setup.name());
        close(tenancy, setup.engine).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_takes_a_new_job_promptly() {
    for setup in SETUPS {
        let Some(env) = setup.env() else { continue };
        // A long visibility timeout: the database engine's heartbeat is then minutes apart.
        let tenancy = open(&env, setup.engine, |config| config.queue.visibility_timeout_secs = 600).await;
        let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
        let worker = RunningWorker::start(&tenancy, JobSet::new().tenant::<Record>(), 2).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let dispatched = Instant::now();
        tenancy.dispatch(&tenant, &Record { number: 1, meant_for: tenant.id.to_string() }).await.unwrap();
        while job_emails(&tenancy, &tenant).await.is_empty() {
            if dispatched.elapsed() > Duration::from_secs(5) {
                let engine = tenancy.queue().engine().await.unwrap();
                panic!("{}: an idle worker did not take a new job within 5 s: {:?}", setup.name(), engine.status().await.unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worker.stop().await;
        close(tenancy, setup.engine).await;
    }
}
