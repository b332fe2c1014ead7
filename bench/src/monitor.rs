//! `monitor`: the release `tenancy` binary's `monitor stats --all` and `monitor health --all` on
//! 1,000 SQLite and 200 PostgreSQL tenants, against the floor, the same reads by hand in the same
//! run; and a scrape of `/metrics`, in-process and over HTTP, at 10 and at 1,000 tenants.
//!
//! - stats: (s) `tenancy monitor stats --all --json` against (sf) for each tenant the file sizes
//!   (SQLite) or one `pg_database_size` query, a connection, the table count, a `count(*)` per
//!   table (SQLite) or the live-row estimate, the tracking tables and the cache table: Python's
//!   `sqlite3` loop, or one `psql` session with `\c` per database;
//! - health: (h) `tenancy monitor health --all --json` against (hf) a connection, `SELECT 1`, the
//!   tracking tables and a cache lookup per tenant, the same way;
//! - scrape: rendering `/metrics` (what a scrape does: it runs no query) in-process, and a GET
//!   through `monitor serve`, at 10 and at 1,000 tenants; and one background sample's time.
//!
//! Runs are interleaved; medians are shown.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, TenantName};
use tenancy_monitor::{MonitorConfig, exporter};
use tenancy_tests::{Backend, TestEnv};

use crate::measure::{median, pg_env, shell, tenancy_cli};

/// What to run.
pub struct Options<'a> {
    /// The release `tenancy` binary.
    pub binary: &'a Path,
    /// SQLite tenants.
    pub sqlite_tenants: usize,
    /// PostgreSQL tenants.
    pub postgres_tenants: usize,
    /// Runs of each pair.
    pub runs: usize,
}

pub async fn run(options: &Options<'_>) -> anyhow::Result<()> {
    println!("monitor: fresh tenants with the sample migrations; medians of {} interleaved runs", options.runs);
    for (backend, count) in [(Backend::Sqlite, options.sqlite_tenants), (Backend::Postgres, options.postgres_tenants)] {
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        let tenancy = open(&env).await?;
        create(&tenancy, 0..count).await?;
        tenancy.close().await;
        fleet(&env, backend, count, options)?;
    }
    scrape(options).await
}

async fn open(env: &TestEnv) -> anyhow::Result<Tenancy> {
    Ok(Tenancy::builder(env.config()).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await?)
}

async fn create(tenancy: &Tenancy, names: std::ops::Range<usize>) -> anyhow::Result<()> {
    let created: Vec<anyhow::Result<()>> = futures::stream::iter(names)
        .map(|n| async move {
            tenancy.create_tenant(&TenantRequest::new(TenantName::parse(&format!("Tenant {n}"))?), &()).await?;
            Ok(())
        })
        .buffer_unordered(4)
        .collect()
        .await;
    created.into_iter().collect()
}

fn fleet(env: &TestEnv, backend: Backend, count: usize, options: &Options<'_>) -> anyhow::Result<()> {
    let (floor_stats, floor_health) = floors(env, backend)?;
    let (mut stats, mut hand_stats, mut health, mut hand_health) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.runs {
        stats.push(tenancy_cli(options.binary, env.dir(), &["monitor", "stats", "--all", "--json"])?.elapsed);
        hand_stats.push(floor_stats()?);
        health.push(tenancy_cli(options.binary, env.dir(), &["monitor", "health", "--all", "--json"])?.elapsed);
        hand_health.push(floor_health()?);
    }
    let (s, sf, h, hf) = (median(&stats), median(&hand_stats), median(&health), median(&hand_health));
    println!("  {} ({count} tenants)", backend.name());
    println!("    (s)  tenancy monitor stats --all    {:>7.2}s", s.as_secs_f64());
    println!("    (sf) the same reads by hand          {:>7.2}s   s/sf = {:.2}", sf.as_secs_f64(), s.as_secs_f64() / sf.as_secs_f64());
    println!("    (h)  tenancy monitor health --all   {:>7.2}s", h.as_secs_f64());
    println!("    (hf) the same checks by hand         {:>7.2}s   h/hf = {:.2}", hf.as_secs_f64(), h.as_secs_f64() / hf.as_secs_f64());
    if backend == Backend::Sqlite {
        println!("    target: stats ≤ 2 s for 1,000 SQLite tenants");
    }
    Ok(())
}

type Floor = Box<dyn Fn() -> anyhow::Result<Duration>>;

/// The hand-written stats and health runs for `backend`.
fn floors(env: &TestEnv, backend: Backend) -> anyhow::Result<(Floor, Floor)> {
    if backend == Backend::Sqlite {
        let folder = env.sqlite_dir().display().to_string();
        let python = |body: &str| {
            let script = format!("{SQLITE_PRELUDE}\nfor path in sorted(glob.glob({folder:?} + '/*/*.sqlite')):\n{body}");
            move || shell(&[], &format!("python3 - <<'PY'\n{script}\nPY"))
        };
        return Ok((Box::new(python(SQLITE_STATS)), Box::new(python(SQLITE_HEALTH))));
    }
    let databases = tenant_databases(env)?;
    let script = |per_database: &str, first: &str| {
        let mut script = format!("{first}\n");
        for database in &databases {
            script.push_str(&format!("\\c {database}\n{per_database}\n"));
        }
        script
    };
    let run_psql = |text: String| {
        let env = pg_env("postgres");
        move || shell(&env, &format!("psql -qAtX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'\n{text}\nSQL"))
    };
    let sizes = format!(
        "SELECT datname, pg_database_size(oid), (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid) FROM pg_database d WHERE datname IN ({});",
        databases.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(",")
    );
    Ok((Box::new(run_psql(script(PG_STATS, &sizes))), Box::new(run_psql(script(PG_HEALTH, "")))))
}

fn tenant_databases(env: &TestEnv) -> anyhow::Result<Vec<String>> {
    let runtime = tokio::runtime::Handle::current();
    let config = env.config();
    tokio::task::block_in_place(|| {
        runtime.block_on(async {
            let tenancy = Tenancy::builder(config).open().await?;
            let names = tenancy.registry().list(None).await?.into_iter().map(|t| t.database.to_string()).collect();
            tenancy.close().await;
            anyhow::Ok(names)
        })
    })
}

const SQLITE_PRELUDE: &str = "import glob, os, sqlite3";

const SQLITE_STATS: &str = "    size = os.stat(path).st_size + (os.stat(path + '-wal').st_size if os.path.exists(path + '-wal') else 0)
    db = sqlite3.connect('file:' + path + '?mode=rw', uri=True)
    names = [r[0] for r in db.execute(\"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'\")]
    rows = db.execute('SELECT ' + ' + '.join('(SELECT COUNT(*) FROM \"%s\")' % n for n in names)).fetchone()[0]
    applied = [db.execute('SELECT version, applied_at FROM %s' % t).fetchall() for t in ('seaql_migrations', 'tenancy_migrations')]
    cache = db.execute('SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM tenancy_cache').fetchone()
    db.close()";

const SQLITE_HEALTH: &str = "    db = sqlite3.connect('file:' + path + '?mode=rw', uri=True)
    db.execute('SELECT 1').fetchone()
    applied = [db.execute('SELECT version, applied_at FROM %s' % t).fetchall() for t in ('seaql_migrations', 'tenancy_migrations')]
    db.execute('SELECT value FROM tenancy_cache WHERE key = ?', ('tenancy:monitor:probe',)).fetchone()
    db.close()";

const PG_STATS: &str = "SELECT count(*), sum(coalesce(s.n_live_tup, 0)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p');
SELECT version, applied_at FROM seaql_migrations; SELECT version, applied_at FROM tenancy_migrations;
SELECT count(*), coalesce(sum(length(value)), 0) FROM tenancy_cache;";

const PG_HEALTH: &str = "SELECT 1; SELECT version, applied_at FROM seaql_migrations; SELECT version, applied_at FROM tenancy_migrations;
SELECT value FROM tenancy_cache WHERE key = 'tenancy:monitor:probe';";

/// Rendering `/metrics` at 10 and at 1,000 tenants, in-process and through `monitor serve`.
async fn scrape(options: &Options<'_>) -> anyhow::Result<()> {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return Ok(()) };
    let config = MonitorConfig { tenant_series: 10, ..MonitorConfig::default() };
    let handle = exporter::recorder(&config)?;
    let tenancy = open(&env).await?;
    println!("  scrape of /metrics (tenant_series = 10)");
    let mut created = 0;
    for tenants in [10, 1000] {
        create(&tenancy, created..tenants).await?;
        created = tenants;
        let started = Instant::now();
        exporter::sample(&tenancy, &config).await;
        let sampled = started.elapsed();
        let mut renders = Vec::with_capacity(1000);
        let mut bytes = 0;
        for _ in 0..1000 {
            let started = Instant::now();
            bytes = exporter::render(&handle).len();
            renders.push(started.elapsed());
        }
        let series = exporter::render(&handle).lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
        let http = over_http(options.binary, &env)?;
        println!(
            "    {tenants:>5} tenants: render {:>7.1} µs (median of 1,000), GET /metrics {:>6.2} ms (median of 200), {series} series, {bytes} bytes; one background sample {:>7.1} ms",
            median(&renders).as_secs_f64() * 1e6,
            http.as_secs_f64() * 1000.0,
            sampled.as_secs_f64() * 1000.0
        );
    }
    println!("    target: a scrape ≤ 10 ms and independent of the tenant count");
    tenancy.close().await;
    Ok(())
}

/// The median time of a GET of `/metrics` from `tenancy monitor serve`, after its first sample.
fn over_http(binary: &Path, env: &TestEnv) -> anyhow::Result<Duration> {
    use std::io::BufRead as _;
    let mut server = std::process::Command::new(binary)
        .args(["monitor", "serve", "--json", "--listen", "127.0.0.1:0"])
        .current_dir(env.dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut lines = std::io::BufReader::new(server.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).lines();
    let listening: serde_json::Value = serde_json::from_str(&lines.next().ok_or_else(|| anyhow::anyhow!("serve said nothing"))??)?;
    let address = listening["address"].as_str().unwrap_or_default().parse()?;
    let runtime = tokio::runtime::Handle::current();
    let times = tokio::task::block_in_place(|| {
        runtime.block_on(async {
            // The first sample runs when the server starts; wait until it has been rendered.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !tenancy_tests::http::get(address, "127.0.0.1", "/metrics").await.body.contains("tenancy_tenants{") {
                anyhow::ensure!(Instant::now() < deadline, "no sample after 30 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut times = Vec::with_capacity(200);
            for _ in 0..200 {
                let started = Instant::now();
                let response = tenancy_tests::http::get(address, "127.0.0.1", "/metrics").await;
                anyhow::ensure!(response.status == 200, "GET /metrics answered {}", response.status);
                times.push(started.elapsed());
            }
            anyhow::Ok(times)
        })
    });
    let _ = server.kill();
    let _ = server.wait();
    Ok(median(&times?))
}
