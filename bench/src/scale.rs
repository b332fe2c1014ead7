//! `scale`: many tenants on one machine, through the stock `tenancy` binary (migrations as SQL
//! files, so a new one can be added between runs): `tenant list`, `db status --all`, `db migrate
//! --all` with nothing pending (the first run reads every tenant and records it up to date; the
//! next trusts the record), one new migration over all, and the peak memory of each. The tenants
//! are created in-process beforehand (SQLite: copies of the template), which is timed apart.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::sql_files::{MIGRATIONS_FOLDER, SqlMigrator};
use tenancy_core::{Tenancy, TenantName};
use tenancy_tests::{Backend, TestEnv};

/// The migrations every tenant starts with: small tables with an index each.
const TABLES: usize = 10;

/// What to run.
pub struct Options<'a> {
    /// The release stock `tenancy` binary.
    pub binary: &'a Path,
    /// Tenants created in-process at once.
    pub create_concurrency: usize,
}

pub async fn run(backend: Backend, count: usize, options: &Options<'_>) -> anyhow::Result<()> {
    let Some(env) = TestEnv::new(backend) else { return Ok(()) };
    let folder = env.dir().join(MIGRATIONS_FOLDER);
    std::fs::create_dir_all(&folder)?;
    for table in 1..=TABLES {
        write_migration(&folder, table)?;
    }
    if backend == Backend::Sqlite {
        // A copy of the template per tenant: what a fleet this size would configure.
        let toml = std::fs::read_to_string(env.dir().join("tenancy.toml"))?;
        std::fs::write(
            env.dir().join("tenancy.toml"),
            toml.replace("[tenant_database]\n", "[tenant_database]\nprovision = \"template\"\n"),
        )?;
    }
    env.create_central_database().await;
    let created = create_tenants(&env, &folder, count, options.create_concurrency).await?;
    let cli = |args: &[&str]| crate::measure::tenancy_cli(options.binary, env.dir(), args);
    let list = cli(&["tenant", "list"])?;
    let status = cli(&["db", "status", "--all", "--quiet"])?;
    let summary_unrecorded = cli(&["db", "status", "--all", "--summary", "--quiet"])?;
    let first_noop = cli(&["db", "migrate", "--all", "--quiet"])?;
    let noop = cli(&["db", "migrate", "--all", "--quiet"])?;
    let summary = cli(&["db", "status", "--all", "--summary", "--quiet"])?;
    write_migration(&folder, TABLES + 1)?;
    let one_new = cli(&["db", "migrate", "--all", "--quiet"])?;
    let noop_after = cli(&["db", "migrate", "--all", "--quiet"])?;

    let row = |out: &mut String, what: &str, measured: &crate::measure::Measured| {
        let mib = measured.peak_rss as f64 / 1024.0 / 1024.0;
        let _ = writeln!(out, "    {what:<44} {:>8.2}s   peak RSS {mib:>5.0} MiB", measured.elapsed.as_secs_f64());
    };
    let mut out = format!("  {:<16} N={count:<6} {TABLES} migrations each (SQL files)\n", backend.name());
    let _ = writeln!(out, "    {:<44} {:>8.2}s   ({} at once, in-process)", "created", created.as_secs_f64(), options.create_concurrency);
    row(&mut out, "tenant list", &list);
    row(&mut out, "db status --all", &status);
    row(&mut out, "db status --all --summary, nothing recorded", &summary_unrecorded);
    row(&mut out, "db migrate --all, nothing pending, first run", &first_noop);
    row(&mut out, "db migrate --all, nothing pending (recorded)", &noop);
    row(&mut out, "db status --all --summary (recorded)", &summary);
    row(&mut out, "db migrate --all, one new migration", &one_new);
    row(&mut out, "db migrate --all, nothing pending again", &noop_after);
    print!("{out}");
    Ok(())
}

/// Migration `n`: a small table with an index, and its undoing.
fn write_migration(folder: &Path, n: usize) -> anyhow::Result<()> {
    let up = format!(
        "CREATE TABLE scale_{n} (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, created_at BIGINT NOT NULL);\n\
         CREATE INDEX scale_{n}_name ON scale_{n} (name);\n"
    );
    std::fs::write(folder.join(format!("{n:04}_create_scale_{n}.up.sql")), up)?;
    std::fs::write(folder.join(format!("{n:04}_create_scale_{n}.down.sql")), format!("DROP TABLE scale_{n};\n"))?;
    Ok(())
}

async fn create_tenants(env: &TestEnv, folder: &Path, count: usize, concurrency: usize) -> anyhow::Result<Duration> {
    let migrator = Arc::new(SqlMigrator::load(folder)?);
    let tenancy = Tenancy::builder(env.config()).tenant_migrator(migrator).open().await?;
    let started = Instant::now();
    let created: Vec<anyhow::Result<()>> = futures::stream::iter(0..count)
        .map(|i| {
            let tenancy = &tenancy;
            async move {
                let request = TenantRequest::new(TenantName::parse(&format!("Tenant {i}"))?);
                tenancy.create_tenant(&request, &()).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let took = started.elapsed();
    created.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    tenancy.close().await;
    Ok(took)
}
