//! `scale`: many tenants on one machine, through the stock `tenancy` binary (migrations as SQL
//! files, so a new one can be added between runs): `tenant list`, `db status --all`, `db migrate
//! --all` with nothing pending (the first run reads every tenant and records it up to date; the
//! next trusts the record), one new migration over all, and the peak memory of each. The tenants
//! are created in-process beforehand (SQLite: copies of the template), which is timed apart.
//! Then a move of one large tenant between two PostgreSQL clusters, with the window a client
//! polling its page sees it down ([`measure_move`]).

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

/// A move of a tenant of about `mib` MiB from the main PostgreSQL cluster to a second one
/// (database isolation), while a client asks for the tenant's page every 10 ms through `tenancy
/// serve`: how long the move took, and how long that client was answered 503.
pub async fn measure_move(mib: u64, options: &Options<'_>) -> anyhow::Result<()> {
    let Some(mut env) = TestEnv::new(Backend::Postgres) else { return Ok(()) };
    if env.add_postgres_servers(["", "", ""], "least_tenants").await.is_none() {
        println!("  move: skipped, the extra PostgreSQL clusters do not answer (`bash .ci/services` starts them)");
        return Ok(());
    }
    let folder = env.dir().join(MIGRATIONS_FOLDER);
    std::fs::create_dir_all(&folder)?;
    write_migration(&folder, 1)?;
    let cli = |args: &[&str]| crate::measure::tenancy_cli(options.binary, env.dir(), args);
    cli(&["init"])?;
    let tenant = cli(&["tenant", "create", "--name", "Moving", "--domain", "moving.localhost", "--server", "default"])?;
    let tenant = tenant.stdout.trim().to_owned();
    // md5 text of 32 bytes twice a row, about 100 bytes a row on disk with its header.
    let rows = mib * 1024 * 1024 / 100;
    let tenancy = Tenancy::builder(env.config()).open().await?;
    let moving = tenancy.registry().resolve(&tenant).await?;
    tenancy
        .run(&moving, |ctx| async move {
            use sea_orm::ConnectionTrait;
            ctx.db()
                .execute_unprepared(&format!(
                    "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b FROM generate_series(1, {rows}) g"
                ))
                .await
        })
        .await??;
    let bytes = tenancy.manager_of(&moving)?.bytes_of(std::slice::from_ref(&moving.database)).await?;
    tenancy.close().await;

    let mut server = std::process::Command::new(options.binary)
        .args(["serve", "--json", "--listen", "127.0.0.1:0"])
        .current_dir(env.dir())
        // `/` is then the built-in tenant page (no homepage folder to make).
        .env("TENANCY_HOMEPAGE__ENABLED", "false")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(server.stdout.take().expect("piped")));
    let listening: serde_json::Value = serde_json::from_str(&lines.next().transpose()?.unwrap_or_default())?;
    // Read on, so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let address: std::net::SocketAddr = listening["address"].as_str().unwrap_or_default().parse()?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                seen.push((Instant::now(), tenancy_tests::http::get(address, "moving.localhost", "/").await.status));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let binary = options.binary.to_owned();
    let dir = env.dir().to_owned();
    let moved = tokio::task::spawn_blocking(move || {
        crate::measure::tenancy_cli(&binary, &dir, &["tenant", "move", &tenant, "--to", "second", "--keep-source-for", "0"])
    })
    .await??;
    // Long enough for the server to see the switch (one registry poll) and answer again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = poller.await?;
    let _ = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();

    let others: Vec<u16> = seen.iter().map(|(_, status)| *status).filter(|status| !matches!(status, 200 | 503)).collect();
    anyhow::ensure!(others.is_empty(), "the polling client got {} answers other than 200 and 503: {others:?}", others.len());
    let down: Vec<Instant> = seen.iter().filter(|(_, status)| *status == 503).map(|(at, _)| *at).collect();
    let window = match (down.first(), seen.iter().rev().find(|(_, status)| *status == 503)) {
        (Some(first), Some((last, _))) => {
            let up_again = seen.iter().find(|(at, status)| at > last && *status == 200).map_or(*last, |(at, _)| *at);
            up_again.duration_since(*first)
        }
        _ => Duration::ZERO,
    };
    println!(
        "  move of a {:.0} MiB tenant between two PostgreSQL clusters (database isolation)\n    {:<44} {:>8.2}s   peak RSS {:>5.0} MiB\n    {:<44} {:>8.2}s   ({} of {} answers 503, none other than 200)",
        bytes as f64 / 1024.0 / 1024.0,
        "tenant move --to second",
        moved.elapsed.as_secs_f64(),
        moved.peak_rss as f64 / 1024.0 / 1024.0,
        "down, seen by a client polling every 10 ms",
        window.as_secs_f64(),
        down.len(),
        seen.len()
    );
    Ok(())
}
