//! The default engine: apalis' SQL storage in the registry database (SQLite or PostgreSQL).
//!
//! apalis keeps the jobs (its `Jobs` table on SQLite, its own `apalis` schema on PostgreSQL; its
//! migration records in `apalis_migrations`, apart from ours), locks them to a worker, beats a
//! heartbeat and hands a dead worker's jobs to the next one. Its SQLite `setup()` would switch
//! the registry to `synchronous = OFF`, so only its migrations are run, on a pool that carries
//! the registry's own pragmas.
//!
//! Retries: apalis runs a failed job again at its `run_at` while attempts remain, so a retry
//! moves `run_at` by the backoff before the failure is recorded. A job that must wait (its tenant
//! is suspended) moves `run_at` and gets one more attempt, so waiting costs it none. A job that
//! fails for good ends `Killed`, with the reason as its result.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::{
    AbortError, BoxDynError, Data, FromRequest, MetadataStore, TaskBuilder, TaskId, TaskSink, WorkerBuilder, WorkerBuilderExt,
};
use sea_orm::ConnectOptions;
use tokio::sync::{Semaphore, watch};

use super::engine::{
    Counts, EngineError, FailedJob, IncomingJob, JobRunner, Outcome, OutgoingJob, QueueEngine, QueueStatus, RetryTarget, Scope,
    each_queue_in_its_task, stopped,
};
use crate::config::CentralLocation;
use crate::{Config, TenantId};

/// How often a worker beats. An apalis worker that found its queue empty looks again at its next
/// heartbeat (a test measured it: an interval poll strategy did not wake it here), so this is also
/// the longest a new job waits for an idle worker. A worker is dead after `visibility_timeout_secs`
/// of missed heartbeats.
const HEARTBEAT: Duration = Duration::from_secs(1);

const TENANT_KEY: &str = "tenancy_tenant";
const JOB_KEY: &str = "tenancy_job";
/// apalis' migration records, apart from any `_sqlx_migrations` of the application's.
const MIGRATIONS_TABLE: &str = "apalis_migrations";

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

#[derive(Clone)]
pub(crate) struct DatabaseEngine {
    pool: Pool,
    /// Keeps the pool's sea-orm handle alive (it owns the pool).
    _connection: sea_orm::DatabaseConnection,
    location: String,
    visibility_timeout: Duration,
}

impl DatabaseEngine {
    pub(crate) async fn open(config: &Config) -> Result<Self, EngineError> {
        let location = config.central_location().map_err(|err| EngineError::new("database", err))?;
        let (connection, describe) = match &location {
            CentralLocation::Sqlite(path) => {
                let mut options = ConnectOptions::new("sqlite://central.sqlite");
                options.max_connections(4).sqlx_logging(false);
                crate::database::sqlite_connect_options(path, &mut options);
                let location = path.display().to_string();
                (connect(options, None, &location).await?, location)
            }
            CentralLocation::Server(url) if url.driver() == crate::Driver::Postgres => {
                let mut options = ConnectOptions::new(url.connection_url());
                options.max_connections(8).connect_timeout(config.connect_timeout()).sqlx_logging(false);
                (connect(options, Some(url), &url.to_string()).await?, url.to_string())
            }
            CentralLocation::Server(url) => {
                return Err(EngineError::new(
                    format!("database {url}"),
                    "apalis has no released MySQL/MariaDB storage (apalis-mysql is a release candidate on an older apalis): set `queue.engine = \"nats\"`",
                ));
            }
        };
        let pool = match &location {
            CentralLocation::Sqlite(_) => Pool::Sqlite(connection.get_sqlite_connection_pool().clone()),
            CentralLocation::Server(_) => Pool::Postgres(connection.get_postgres_connection_pool().clone()),
        };
        let engine = Self {
            pool,
            _connection: connection,
            location: format!("database {describe}"),
            visibility_timeout: Duration::from_secs(config.queue.visibility_timeout_secs),
        };
        engine.set_up().await?;
        Ok(engine)
    }

    fn error(&self, err: impl std::fmt::Display) -> EngineError {
        EngineError::new(self.location.clone(), err)
    }

    /// Runs apalis' migrations only (not its SQLite `setup`, which changes pragmas). Two
    /// processes doing it at once on SQLite (no migration lock there): the loser retries.
    async fn set_up(&self) -> Result<(), EngineError> {
        let mut last = None;
        for _ in 0..5 {
            let result = match &self.pool {
                Pool::Sqlite(pool) => {
                    let mut migrator = apalis_sqlite::SqliteStorage::<()>::migrations();
                    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
                    migrator.run(pool).await
                }
                Pool::Postgres(pool) => {
                    let mut migrator = apalis_postgres::PostgresStorage::<()>::migrations();
                    migrator.create_schema("apalis");
                    migrator.dangerous_set_table_name(format!("apalis.{MIGRATIONS_TABLE}"));
                    migrator.run(pool).await
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(self.error(format!("cannot set up apalis' job tables: {}", last.map(|e| e.to_string()).unwrap_or_default())))
    }

    fn storage_config<C: StorageConfig>(&self, queue: &str) -> C {
        let missed = (self.visibility_timeout.as_secs() / HEARTBEAT.as_secs()).max(2) as usize;
        C::new(queue, missed)
    }

    /// Moves a job's `run_at` (before apalis records its failure) and, for a wait, gives it the
    /// attempt back.
    async fn reschedule(&self, id: &str, after: Duration, extra_attempt: bool) -> Result<(), sqlx::Error> {
        let extra = i64::from(extra_attempt);
        match &self.pool {
            Pool::Sqlite(pool) => {
                // Whole seconds there: round up, so a job never runs before its backoff is over.
                let due = SystemTime::now() + after;
                let run_at = due.duration_since(UNIX_EPOCH).map(|d| d.as_millis().div_ceil(1000) as i64).unwrap_or_default();
                sqlx::query("UPDATE Jobs SET run_at = ?1, max_attempts = max_attempts + ?2 WHERE id = ?3")
                    .bind(run_at)
                    .bind(extra)
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE apalis.jobs SET run_at = now() + make_interval(secs => $1), max_attempts = max_attempts + $2 WHERE id = $3",
                )
                .bind(after.as_secs_f64())
                .bind(extra as i32)
                .bind(id)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Works one queue until `stop`. An apalis worker stops by itself only when its storage
    /// failed (the server restarted, the file went away): another one is started a second later,
    /// and the first one's running jobs go to it once their heartbeats are missed.
    async fn work_queue(&self, queue: &str, shared: Arc<Shared>, concurrency: usize, stop: watch::Receiver<bool>) {
        loop {
            let result = self.run_worker(queue, shared.clone(), concurrency, stop.clone()).await;
            if *stop.borrow() {
                return;
            }
            let error = result.err().unwrap_or_else(|| "it stopped".into());
            tracing::warn!(queue, %error, "the job worker stopped; starting another in a second");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stopped(stop.clone()) => return,
            }
        }
    }

    /// One apalis worker on `queue`, until `stop` or until it fails.
    async fn run_worker(&self, queue: &str, shared: Arc<Shared>, concurrency: usize, stop: watch::Receiver<bool>) -> Result<(), String> {
        let until = async move {
            stopped(stop).await;
            Ok::<_, std::io::Error>(())
        };
        let name = worker_name(queue);
        // The same worker over either storage (their types differ, so a macro rather than a function).
        macro_rules! worker_on {
            ($storage:expr) => {
                WorkerBuilder::new(name).backend($storage).data(shared).concurrency(concurrency).build(handle).run_until(until).await
            };
        }
        let result = match &self.pool {
            Pool::Sqlite(pool) => {
                worker_on!(apalis_sqlite::SqliteStorage::<serde_json::Value>::new(pool).with_config(self.storage_config(queue)))
            }
            Pool::Postgres(pool) => {
                worker_on!(apalis_postgres::PostgresStorage::<serde_json::Value>::new(pool).with_config(self.storage_config(queue)))
            }
        };
        result.map_err(|err| err.to_string())
    }

    async fn rows(&self, tenant: Option<&TenantId>) -> Result<Vec<Row>, sqlx::Error> {
        // Done jobs are apalis' history, not work: leave them out.
        match &self.pool {
            Pool::Sqlite(pool) => {
                let rows: Vec<SqliteJobRow> = sqlx::query_as(
                    "SELECT id, job_type, status, metadata, attempts, max_attempts, run_at, last_result FROM Jobs \
                     WHERE status <> 'Done' AND (?1 IS NULL OR json_extract(metadata, '$.tenancy_tenant') = ?1) ORDER BY run_at, id",
                )
                .bind(tenant.map(ToString::to_string))
                .fetch_all(pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, queue, status, metadata, attempts, max_attempts, run_at, result)| {
                        let metadata: serde_json::Map<String, serde_json::Value> =
                            metadata.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
                        let field = |key: &str| metadata.get(key).and_then(|v| v.as_str()).map(str::to_owned);
                        Row {
                            id,
                            queue,
                            status,
                            tenant: field(TENANT_KEY),
                            job: field(JOB_KEY),
                            attempts,
                            max_attempts,
                            run_at,
                            result: result.as_deref().map(result_text),
                        }
                    })
                    .collect())
            }
            Pool::Postgres(pool) => {
                let rows: Vec<PostgresJobRow> = sqlx::query_as(
                    "SELECT id, job_type, status, metadata -> 'tenancy_tenant', metadata -> 'tenancy_job', attempts, max_attempts, \
                         extract(epoch FROM run_at)::bigint, last_result FROM apalis.jobs \
                         WHERE status <> 'Done' AND ($1::text IS NULL OR metadata -> 'tenancy_tenant' = $1) ORDER BY run_at, id",
                )
                .bind(tenant.map(ToString::to_string))
                .fetch_all(pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, queue, status, tenant, job, attempts, max_attempts, run_at, result)| Row {
                        id,
                        queue,
                        status,
                        tenant,
                        job,
                        attempts: attempts.into(),
                        max_attempts: max_attempts.into(),
                        run_at,
                        result: result.map(|value| result_text(&value.to_string())),
                    })
                    .collect())
            }
        }
    }
}

async fn connect(
    options: ConnectOptions,
    server: Option<&crate::database::ServerUrl>,
    location: &str,
) -> Result<sea_orm::DatabaseConnection, EngineError> {
    crate::database::connect(options, server, location.to_owned())
        .await
        .map_err(|err| EngineError::new(format!("database {location}"), err))
}

/// id, queue, status, metadata (JSON), attempts, max_attempts, run_at (Unix seconds), last_result.
type SqliteJobRow = (String, String, String, Option<String>, i64, i64, i64, Option<String>);
/// id, queue, status, tenant, job, attempts, max_attempts, run_at (Unix seconds), last_result.
type PostgresJobRow = (String, String, String, Option<String>, Option<String>, i32, i32, i64, Option<serde_json::Value>);

/// A job row as `status`, `failed`, `retry` and `clear` see it.
struct Row {
    id: String,
    queue: String,
    status: String,
    tenant: Option<String>,
    job: Option<String>,
    attempts: i64,
    max_attempts: i64,
    run_at: i64,
    result: Option<String>,
}

impl Row {
    fn is_failed(&self) -> bool {
        self.status == "Killed" || (self.status == "Failed" && self.attempts >= self.max_attempts)
    }

    fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "Running" | "Queued")
    }
}

/// apalis records a result as `{"Err": "…"}` (or `{"Ok": …}`); the error text is what users want,
/// without the `AbortError: ` apalis puts before a job failed for good.
fn result_text(raw: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(raw).ok();
    let text = match parsed.as_ref().and_then(|value| value.get("Err")) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => raw.to_owned(),
    };
    text.strip_prefix("AbortError: ").map(str::to_owned).unwrap_or(text)
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// The two storages' `Config`s, built the same way.
trait StorageConfig {
    /// A worker that missed `missed` heartbeats is dead: its jobs go to the next worker.
    fn new(queue: &str, missed: usize) -> Self;
}

impl StorageConfig for apalis_sqlite::Config {
    fn new(queue: &str, missed: usize) -> Self {
        apalis_sqlite::Config::default().queue(queue).heartbeat_interval(HEARTBEAT).missed_heartbeats(missed).batch_size(10)
    }
}

impl StorageConfig for apalis_postgres::Config {
    fn new(queue: &str, missed: usize) -> Self {
        apalis_postgres::Config::default().queue(queue).heartbeat_interval(HEARTBEAT).missed_heartbeats(missed).batch_size(10)
    }
}

/// What a handler needs besides the job: the runner, the engine (to reschedule), and the
/// permits that bound the worker's concurrency over all its queues.
struct Shared {
    runner: Arc<dyn JobRunner>,
    engine: Arc<DatabaseEngine>,
    permits: Arc<Semaphore>,
    queue: String,
}

/// The parts of an apalis task a job run needs.
struct Delivery {
    id: String,
    attempt: u32,
    max_attempts: u32,
    metadata: MetadataStore,
}

impl<Args: Sync> FromRequest<apalis::prelude::Task<Args>> for Delivery {
    type Error = std::convert::Infallible;

    async fn from_request(task: &apalis::prelude::Task<Args>) -> Result<Self, Self::Error> {
        Ok(Self {
            id: task.task_id().map(ToString::to_string).unwrap_or_default(),
            attempt: u32::try_from(task.attempt()).unwrap_or(u32::MAX).max(1),
            max_attempts: task.max_attempts().and_then(|max| u32::try_from(max).ok()).unwrap_or(1),
            metadata: task.metadata().clone(),
        })
    }
}

async fn handle(payload: serde_json::Value, delivery: Delivery, shared: Data<Arc<Shared>>) -> Result<(), BoxDynError> {
    let _permit = shared.permits.clone().acquire_owned().await?;
    let job = IncomingJob {
        id: delivery.id.clone(),
        queue: shared.queue.clone(),
        name: delivery.metadata.get(JOB_KEY).map(str::to_owned),
        scope: delivery.metadata.get(TENANT_KEY).and_then(Scope::decode),
        payload,
        attempt: delivery.attempt,
        max_attempts: delivery.max_attempts,
    };
    match shared.runner.run(job).await {
        Outcome::Done => Ok(()),
        Outcome::Fail { reason } => Err(Box::new(AbortError::new(reason))),
        Outcome::Retry { error, after } => {
            shared.engine.reschedule(&delivery.id, after, false).await?;
            Err(error.into())
        }
        Outcome::Wait { reason, after } => {
            shared.engine.reschedule(&delivery.id, after, true).await?;
            Err(reason.into())
        }
    }
}

fn worker_name(queue: &str) -> String {
    format!("tenancy-{}-{queue}-{}", std::process::id(), uuid::Uuid::now_v7().simple())
}

#[async_trait::async_trait]
impl QueueEngine for DatabaseEngine {
    fn describe(&self) -> String {
        self.location.clone()
    }

    async fn push(&self, job: OutgoingJob) -> Result<Option<String>, EngineError> {
        // Both storages read ids back as ULIDs; a UUIDv7 has the same layout.
        let ulid = ulid::Ulid::from_bytes(uuid::Uuid::now_v7().into_bytes()); // both: 48 bits of time, then random
        let id = ulid.to_string();
        let metadata: MetadataStore = [(TENANT_KEY, job.scope.encode()), (JOB_KEY, job.name.clone())].into_iter().collect();
        let mut builder =
            TaskBuilder::new(job.payload).task_id(TaskId::from_ulid(ulid)).with_metadata(metadata).max_attempts(job.max_attempts as usize);
        if let Some(delay) = job.delay {
            builder = builder.run_after(delay);
        }
        if let Some(key) = &job.idempotency_key {
            builder = builder.idempotency_key(key);
        }
        let task = builder.build();
        let pushed = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut storage = apalis_sqlite::SqliteStorage::<serde_json::Value>::new(pool).with_config(self.storage_config(&job.queue));
                storage.push_task(task).await.map_err(|err| err.to_string())
            }
            Pool::Postgres(pool) => {
                let mut storage =
                    apalis_postgres::PostgresStorage::<serde_json::Value>::new(pool).with_config(self.storage_config(&job.queue));
                storage.push_task(task).await.map_err(|err| err.to_string())
            }
        };
        match pushed {
            Ok(()) => {}
            // PostgreSQL refuses a second job with a key (SQLite ignores it, below).
            Err(err) if job.idempotency_key.is_some() && err.contains("idempotency_key") => return Ok(None),
            Err(err) => return Err(self.error(format!("cannot queue job `{}`: {err}", job.name))),
        }
        if job.idempotency_key.is_none() {
            return Ok(Some(id));
        }
        // A key already queued made the insert a no-op: say so.
        let exists = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query("SELECT 1 FROM Jobs WHERE id = ?1").bind(&id).fetch_optional(pool).await.map(|row| row.is_some())
            }
            Pool::Postgres(pool) => {
                sqlx::query("SELECT 1 FROM apalis.jobs WHERE id = $1").bind(&id).fetch_optional(pool).await.map(|row| row.is_some())
            }
        };
        Ok(exists.map_err(|err| self.error(err))?.then_some(id))
    }

    async fn work(
        &self,
        queues: &[String],
        concurrency: usize,
        runner: Arc<dyn JobRunner>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        let engine = Arc::new(self.clone());
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let workers = queues.iter().map(|queue| {
            let shared =
                Arc::new(Shared { runner: runner.clone(), engine: engine.clone(), permits: permits.clone(), queue: queue.clone() });
            let (engine, queue, stop) = (engine.clone(), queue.clone(), stop.clone());
            async move {
                engine.work_queue(&queue, shared, concurrency.max(1), stop).await;
                Ok(())
            }
        });
        each_queue_in_its_task(workers).await
    }

    async fn status(&self) -> Result<QueueStatus, EngineError> {
        let rows = self.rows(None).await.map_err(|err| self.error(err))?;
        let now = unix_now();
        let mut status = QueueStatus { engine: self.location.clone(), ..Default::default() };
        let mut queues = std::collections::BTreeMap::<String, Counts>::new();
        let mut tenants = std::collections::BTreeMap::<String, Counts>::new();
        for row in &rows {
            let tenant = row.tenant.clone().unwrap_or_else(|| "(none)".into());
            for counts in [queues.entry(row.queue.clone()).or_default(), tenants.entry(tenant).or_default()] {
                if row.is_failed() {
                    counts.failed += 1;
                } else if row.is_running() {
                    counts.running += 1;
                } else {
                    counts.pending += 1;
                    if row.run_at <= now {
                        let age = (now - row.run_at) as u64;
                        counts.oldest_pending_secs = Some(counts.oldest_pending_secs.map_or(age, |oldest| oldest.max(age)));
                    }
                }
            }
        }
        status.queues = queues.into_iter().collect();
        status.tenants = tenants.into_iter().collect();
        Ok(status)
    }

    async fn failed(&self, tenant: Option<&TenantId>) -> Result<Vec<FailedJob>, EngineError> {
        let rows = self.rows(tenant).await.map_err(|err| self.error(err))?;
        Ok(rows
            .into_iter()
            .filter(Row::is_failed)
            .map(|row| FailedJob {
                id: row.id,
                queue: row.queue,
                name: row.job,
                tenant: row.tenant,
                attempts: u32::try_from(row.attempts).unwrap_or_default(),
                reason: row.result.unwrap_or_else(|| "no reason recorded".into()),
            })
            .collect())
    }

    async fn retry(&self, target: &RetryTarget) -> Result<u64, EngineError> {
        let id = match target {
            RetryTarget::One(id) => Some(id.as_str()),
            RetryTarget::AllFailed => None,
        };
        // Failed for good: killed, or failed with no attempts left.
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE Jobs SET status = 'Pending', attempts = 0, run_at = strftime('%s', 'now'), lock_by = NULL, lock_at = NULL, \
                 done_at = NULL, last_result = NULL \
                 WHERE (status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts)) AND (?1 IS NULL OR id = ?1)",
            )
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(), lock_by = NULL, lock_at = NULL, \
                 done_at = NULL, last_result = NULL \
                 WHERE (status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts)) AND ($1::text IS NULL OR id = $1)",
            )
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
        };
        result.map_err(|err| self.error(err))
    }

    async fn clear(&self, tenant: &TenantId) -> Result<u64, EngineError> {
        // Running jobs are left to finish (or to fail on finding their tenant gone). Finished
        // jobs are apalis' history, not work: removed too (their payloads are the tenant's data),
        // but not counted, so the count matches what `queue status` showed.
        let id = tenant.to_string();
        // In one transaction; the same on either storage (their pool types differ, so a macro).
        macro_rules! clear_on {
            ($pool:expr, $table:literal, $select:literal) => {
                async {
                    let mut tx = $pool.begin().await?;
                    let sql = concat!("DELETE FROM ", $table, " WHERE ", $select, " AND status NOT IN ('Running', 'Queued', 'Done')");
                    let removed = sqlx::query(sql).bind(&id).execute(&mut *tx).await?.rows_affected();
                    let sql = concat!("DELETE FROM ", $table, " WHERE ", $select, " AND status = 'Done'");
                    sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
                    tx.commit().await.map(|()| removed)
                }
                .await
            };
        }
        let result: Result<u64, sqlx::Error> = match &self.pool {
            Pool::Sqlite(pool) => clear_on!(pool, "Jobs", "json_extract(metadata, '$.tenancy_tenant') = ?1"),
            Pool::Postgres(pool) => clear_on!(pool, "apalis.jobs", "metadata -> 'tenancy_tenant' = $1"),
        };
        result.map_err(|err| self.error(err))
    }
}
