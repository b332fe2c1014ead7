//! `queue`: jobs per second, dispatch to completion, for a trivial tenant job spread over 100
//! tenants, on each engine, against the same engine used directly without tenancy in the same run.
//!
//! - (t) tenancy: `Tenancy::dispatch` of N jobs round-robin over the tenants while a `Worker`
//!   (concurrency C) runs them, each in its tenant's context (registry look-up, pool lease,
//!   bootstrappers, revert), until the last is done;
//! - (d) direct: the same engine as a user would drive it without tenancy: apalis' storage on the
//!   same database with a `WorkerBuilder` at concurrency C, beating every second as ours does (an
//!   idle apalis worker looks for jobs at its heartbeat), or a JetStream work-queue stream with a
//!   pull consumer handling C messages at once; the same N jobs, the same no-op body.
//!
//! Runs are interleaved; medians are shown, with when the last dispatch returned (a run whose
//! dispatching ends when its jobs do is bound by dispatching). Target: (t) within 15% of (d).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, Data, TaskBuilder, TaskSink, WorkerBuilder, WorkerBuilderExt};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tenancy_core::config::QueueEngineKind;
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::queue::{Job, JobSet, Worker};
use tenancy_core::{BoxError, Tenancy, TenantContext, TenantName};
use tenancy_tests::{Backend, NATS_ADDR, TestEnv};

use crate::measure::median;

/// What to run.
pub struct Options {
    /// Tenants the jobs are spread over.
    pub tenants: usize,
    /// Jobs per run; by default 2,000 on the database engine and 10,000 on NATS, whose runs of
    /// 2,000 last half a second: too short to tell two apart on this machine.
    pub jobs: Option<usize>,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Runs of each pair.
    pub runs: usize,
    /// Which engines (`sqlite`, `postgres`, `nats`); all when empty.
    pub engines: Vec<String>,
}

static DONE: AtomicUsize = AtomicUsize::new(0);

/// The trivial job: it only counts itself.
#[derive(Serialize, Deserialize)]
struct Noop {}

impl Job for Noop {
    const NAME: &'static str = "noop";

    async fn run(&self, _ctx: &TenantContext) -> Result<(), BoxError> {
        DONE.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    println!(
        "queue: no-op jobs over {} tenants, {} at once, dispatch to completion; medians of {} interleaved runs",
        options.tenants, options.concurrency, options.runs
    );
    for (name, label, backend, engine) in [
        ("sqlite", "database engine, SQLite registry", Backend::Sqlite, QueueEngineKind::Database),
        ("postgres", "database engine, PostgreSQL registry (schema tenants)", Backend::PostgresSchema, QueueEngineKind::Database),
        ("nats", "NATS JetStream engine", Backend::Sqlite, QueueEngineKind::Nats),
    ] {
        if !options.engines.is_empty() && !options.engines.iter().any(|engine| engine == name) {
            continue;
        }
        if engine == QueueEngineKind::Nats && !tenancy_tests::service_available("nats", NATS_ADDR) {
            continue;
        }
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        let mut config = env.config();
        config.queue.engine = engine;
        config.queue.nats_prefix = env.prefix.trim_end_matches('_').to_owned();
        let tenancy =
            Arc::new(Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await?);
        let mut tenants = Vec::new();
        for n in 0..options.tenants {
            tenants.push(tenancy.create_tenant(&TenantRequest::new(TenantName::parse(&format!("Tenant {n}"))?), &()).await?);
        }
        let direct = Direct::open(&env, engine).await?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let default_jobs = if engine == QueueEngineKind::Nats { 10_000 } else { 2_000 };
        let run = Run { jobs: options.jobs.unwrap_or(default_jobs), concurrency: options.concurrency };
        for _ in 0..options.runs {
            ours.push(tenancy_run(&tenancy, &tenants, &run).await?);
            theirs.push(direct.run(&run).await?);
        }
        let (t, d) = (Timing::median(&ours), Timing::median(&theirs));
        let rate = |took: Duration| run.jobs as f64 / took.as_secs_f64();
        println!("  {label}: {} jobs a run", run.jobs);
        for (row, timing) in [("(t) tenancy: dispatch + Worker  ", t), ("(d) the engine directly        ", d)] {
            println!(
                "    {row}{:>8.0} jobs/s  ({:.2}s; the last dispatch returned at {:.2}s)",
                rate(timing.done),
                timing.done.as_secs_f64(),
                timing.dispatched.as_secs_f64()
            );
        }
        let (t, d) = (t.done, d.done);
        println!("    overhead (t vs d): {:+.1}%   target ≤ 15%", (t.as_secs_f64() / d.as_secs_f64() - 1.0) * 100.0);
        direct.close().await;
        if engine == QueueEngineKind::Nats {
            delete_streams(&tenancy.config().queue.nats_prefix).await;
        }
        Arc::try_unwrap(tenancy).ok().expect("no other handle").close().await;
    }
    Ok(())
}

/// Waits until `DONE` reaches `target` (at most five minutes).
async fn until_done(target: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while DONE.load(Ordering::Relaxed) < target {
        anyhow::ensure!(Instant::now() < deadline, "only {} of {target} jobs done after 5 minutes", DONE.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// When one run's dispatching ended and when its last job had run, from its start.
#[derive(Clone, Copy)]
struct Timing {
    dispatched: Duration,
    done: Duration,
}

impl Timing {
    /// The median run by completion, and the median dispatch time on its own.
    fn median(runs: &[Self]) -> Self {
        let pick = |of: fn(&Self) -> Duration| median(&runs.iter().map(of).collect::<Vec<_>>());
        Self { dispatched: pick(|run| run.dispatched), done: pick(|run| run.done) }
    }
}

/// One run's size.
struct Run {
    jobs: usize,
    concurrency: usize,
}

async fn tenancy_run(tenancy: &Arc<Tenancy>, tenants: &[tenancy_core::Tenant], options: &Run) -> anyhow::Result<Timing> {
    DONE.store(0, Ordering::Relaxed);
    let queues = tenancy.queue().default_queues(tenancy).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn({
        let (tenancy, concurrency) = (tenancy.clone(), options.concurrency);
        async move { Worker::new(tenancy, JobSet::new().tenant::<Noop>()).work(&queues, concurrency, stopped).await }
    });
    let started = Instant::now();
    for n in 0..options.jobs {
        tenancy.dispatch(&tenants[n % tenants.len()], &Noop {}).await?;
    }
    let dispatched = started.elapsed();
    until_done(options.jobs).await?;
    let done = started.elapsed();
    stop.send(true)?;
    worker.await??;
    Ok(Timing { dispatched, done })
}

/// The engine without tenancy.
enum Direct {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    Nats(Box<async_nats::jetstream::Context>, String),
}

async fn noop(_job: serde_json::Value, _data: Data<()>) -> Result<(), BoxDynError> {
    DONE.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

impl Direct {
    async fn open(env: &TestEnv, engine: QueueEngineKind) -> anyhow::Result<Self> {
        if engine == QueueEngineKind::Nats {
            let context = async_nats::jetstream::new(async_nats::connect(NATS_ADDR).await?);
            let prefix = format!("{}direct", env.prefix);
            context
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: prefix.clone(),
                    subjects: vec![format!("{prefix}.>")],
                    retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
                    ..Default::default()
                })
                .await?;
            return Ok(Self::Nats(Box::new(context), prefix));
        }
        // The registry's own database, as tenancy's engine uses it (its tables are set up by then).
        Ok(match env.backend {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(env.dir().join("storage/central.sqlite"))
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5));
                let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
                let mut migrator = apalis_sqlite::SqliteStorage::<()>::migrations();
                migrator.dangerous_set_table_name("apalis_migrations");
                migrator.run(&pool).await?;
                Self::Sqlite(pool)
            }
            _ => {
                let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect(&env.central_url()).await?;
                Self::Postgres(pool)
            }
        })
    }

    async fn run(&self, options: &Run) -> anyhow::Result<Timing> {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        DONE.store(0, Ordering::Relaxed);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until = async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
            Ok::<_, std::io::Error>(())
        };
        let started = Instant::now();
        // Worker names are unique in apalis' table.
        let name = format!("direct-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
        macro_rules! apalis_run {
            ($crate_:ident, $storage:ident, $pool:expr) => {{
                let config = $crate_::Config::default().queue("direct").batch_size(10).heartbeat_interval(Duration::from_secs(1));
                let mut storage = $crate_::$storage::<serde_json::Value>::new($pool).with_config(config);
                let worker = WorkerBuilder::new(name).backend(storage.clone()).data(()).concurrency(options.concurrency).build(noop);
                let worker = tokio::spawn(worker.run_until(until));
                for _ in 0..options.jobs {
                    storage.push_task(TaskBuilder::new(serde_json::json!({})).build()).await?;
                }
                let dispatched = started.elapsed();
                until_done(options.jobs).await?;
                let done = started.elapsed();
                stop.send(true)?;
                worker.await??;
                Ok(Timing { dispatched, done })
            }};
        }
        match self {
            // The same run over either storage (their types differ, so a macro rather than a function).
            Self::Sqlite(pool) => apalis_run!(apalis_sqlite, SqliteStorage, pool),
            Self::Postgres(pool) => apalis_run!(apalis_postgres, PostgresStorage, pool),
            Self::Nats(context, prefix) => {
                let stream = context.get_stream(prefix).await?;
                let consumer: async_nats::jetstream::consumer::PullConsumer = stream
                    .get_or_create_consumer(
                        "direct",
                        async_nats::jetstream::consumer::pull::Config { durable_name: Some("direct".into()), ..Default::default() },
                    )
                    .await?;
                let concurrency = options.concurrency;
                let worker = tokio::spawn(async move {
                    let messages = consumer.messages().await?;
                    messages
                        .take_until(until)
                        .for_each_concurrent(concurrency, |message| async move {
                            if let Ok(message) = message {
                                DONE.fetch_add(1, Ordering::Relaxed);
                                let _ = message.ack().await;
                            }
                        })
                        .await;
                    anyhow::Ok(())
                });
                for n in 0..options.jobs {
                    let subject = format!("{prefix}.jobs.{}", n % 100);
                    context.publish(subject, "{}".into()).await?.await?;
                }
                let dispatched = started.elapsed();
                until_done(options.jobs).await?;
                let done = started.elapsed();
                stop.send(true)?;
                worker.await??;
                Ok(Timing { dispatched, done })
            }
        }
    }

    async fn close(self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
            Self::Nats(context, prefix) => {
                let _ = context.delete_stream(prefix).await;
            }
        }
    }
}

async fn delete_streams(prefix: &str) {
    if let Ok(client) = async_nats::connect(NATS_ADDR).await {
        let context = async_nats::jetstream::new(client);
        for stream in ["jobs", "failed"] {
            let _ = context.delete_stream(format!("{prefix}_{stream}")).await;
        }
    }
}
