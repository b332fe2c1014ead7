//! `backup`: one PostgreSQL tenant with a large table (about 200 MB dumped), backed up and restored
//! by the release `tenancy` binary, against the floor, the same work by hand in the same run:
//!
//! - create: (a) `tenancy backup create` against (f) `pg_dump -Fc -Z0 | zstd -3 > file`, the
//!   pipeline an operator would write (and the one the tool runs, minus hashing and the manifest),
//!   and (fs) the same followed by `sync FILE`, since a backup the tool reports is on disk;
//! - restore: (r) `tenancy backup restore --force` against (rf) `zstd -dc file | pg_restore
//!   --single-transaction --clean --if-exists`, which like ours replaces the data atomically;
//! - many small tenants: (s) `tenancy backup create --all` against (sh) the hand pipeline run
//!   tenant after tenant in one shell loop.
//!
//! Each pair runs `--runs` times, interleaved; medians are shown. The peak resident memory is the
//! `tenancy` process's (pg_dump's is the same in both rows).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, TenantName};
use tenancy_tests::{Backend, TestEnv};

use crate::measure::{median, pg_env, shell, tenancy_cli};

/// What to run.
pub struct Options<'a> {
    /// The release `tenancy` binary.
    pub binary: &'a Path,
    /// Rows of the large table (about 125 bytes of dump each).
    pub rows: u64,
    /// Small tenants for the `--all` case.
    pub small_tenants: usize,
    /// Runs of each pair.
    pub runs: usize,
}

pub async fn run(options: &Options<'_>) -> anyhow::Result<()> {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return Ok(()) };
    env.create_central_database().await;
    let tenancy = Tenancy::builder(env.config()).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await?;
    let big = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Big")?), &()).await?;
    let rows = options.rows;
    tenancy
        .run(&big, |ctx| async move {
            ctx.db()
                .execute_unprepared(&format!(
                    "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, \
                     repeat(chr(65 + g % 26), 40) AS c, g * 1.5 AS d FROM generate_series(1, {rows}) g; \
                     ALTER TABLE bulk ADD PRIMARY KEY (id)"
                ))
                .await
        })
        .await??;
    tenancy.connections().close_all().await;
    let scratch = tempfile::tempdir()?;

    let mut ours = Vec::new();
    let mut floor = Vec::new();
    let mut floor_synced = Vec::new();
    let mut dump_bytes = 0;
    let mut last_backup = String::new();
    for _ in 0..options.runs {
        let measured = tenancy_cli(options.binary, env.dir(), &["backup", "create", "--tenant", &big.id.to_string(), "--json"])?;
        let created = created_events(&measured.stdout);
        let event = created.first().ok_or_else(|| anyhow::anyhow!("no backup was created"))?;
        dump_bytes = event["dump_bytes"].as_u64().unwrap_or(0);
        last_backup = event["backup"].as_str().unwrap_or_default().to_owned();
        ours.push((measured.elapsed, measured.peak_rss));
        let hand = format!("pg_dump -Fc -Z0 | zstd -q -3 -f -o {}/hand.zst", scratch.path().display());
        floor.push(shell(&pg_env(big.database.as_str()), &hand)?);
        floor_synced.push(shell(&pg_env(big.database.as_str()), &format!("{hand} && sync {}/hand.zst", scratch.path().display()))?);
    }
    let (a, peak) = median_with_peak(&ours);
    let (f, fs) = (median(&floor), median(&floor_synced));
    let mib = |bytes: u64, d: Duration| bytes as f64 / 1024.0 / 1024.0 / d.as_secs_f64();
    println!(
        "backup: 1 PostgreSQL tenant, {:.0} MiB dumped ({} rows), medians of {} interleaved runs",
        dump_bytes as f64 / 1048576.0,
        rows,
        options.runs
    );
    println!(
        "  (a)  tenancy backup create           {:>7.2}s  {:>6.1} MiB/s  peak RSS {:>5.1} MiB",
        a.as_secs_f64(),
        mib(dump_bytes, a),
        peak as f64 / 1048576.0
    );
    println!("  (f)  pg_dump -Fc -Z0 | zstd -3       {:>7.2}s  {:>6.1} MiB/s", f.as_secs_f64(), mib(dump_bytes, f));
    println!("  (fs) the same, then sync FILE        {:>7.2}s  {:>6.1} MiB/s", fs.as_secs_f64(), mib(dump_bytes, fs));
    println!(
        "       create throughput a/f = {:.2}, a/fs = {:.2} (target ≥ 0.90); peak RSS target ≤ 64 MiB",
        f.as_secs_f64() / a.as_secs_f64(),
        fs.as_secs_f64() / a.as_secs_f64()
    );

    let mut restores = Vec::new();
    let mut hand_restores = Vec::new();
    for _ in 0..options.runs {
        restores.push(tenancy_cli(options.binary, env.dir(), &["backup", "restore", &last_backup, "--force", "--quiet"])?.elapsed);
        hand_restores.push(shell(
            &pg_env(big.database.as_str()),
            &format!(
                "zstd -dc {}/hand.zst | pg_restore --no-owner --no-privileges --single-transaction --clean --if-exists -d \"$PGDATABASE\"",
                scratch.path().display()
            ),
        )?);
    }
    let (r, rf) = (median(&restores), median(&hand_restores));
    println!("  (r)  tenancy backup restore --force  {:>7.2}s  {:>6.1} MiB/s", r.as_secs_f64(), mib(dump_bytes, r));
    println!("  (rf) zstd -dc | pg_restore -1 --clean {:>6.2}s  {:>6.1} MiB/s", rf.as_secs_f64(), mib(dump_bytes, rf));
    println!("       restore throughput r/rf = {:.2}", rf.as_secs_f64() / r.as_secs_f64());

    // Many small tenants: the big one goes, so `--all` is the small ones only.
    tenancy.delete_tenant(&big, Default::default()).await?;
    let mut small = Vec::new();
    for i in 0..options.small_tenants {
        small.push(tenancy.create_tenant(&TenantRequest::new(TenantName::parse(&format!("Small {i}"))?), &()).await?);
    }
    tenancy.connections().close_all().await;
    let databases: Vec<String> = small.iter().map(|t| t.database.to_string()).collect();
    let mut all = Vec::new();
    let mut by_hand = Vec::new();
    for _ in 0..options.runs {
        all.push(tenancy_cli(options.binary, env.dir(), &["backup", "create", "--all", "--quiet"])?.elapsed);
        let script = format!(
            "for db in {}; do pg_dump -Fc -Z0 -d \"$db\" | zstd -q -3 -f -o {}/$db.zst || exit 1; done",
            databases.join(" "),
            scratch.path().display()
        );
        by_hand.push(shell(&pg_env(small[0].database.as_str()), &script)?);
    }
    let (s, sh) = (median(&all), median(&by_hand));
    println!("  (s)  tenancy backup create --all      {:>7.2}s  for {} small tenants", s.as_secs_f64(), small.len());
    println!("  (sh) the hand pipeline, one by one    {:>7.2}s", sh.as_secs_f64());
    println!("       --all is {:.2}× the hand loop's speed (target > 1)", sh.as_secs_f64() / s.as_secs_f64());
    tenancy.close().await;
    Ok(())
}

fn created_events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "backup_created")
        .collect()
}

fn median_with_peak(values: &[(Duration, u64)]) -> (Duration, u64) {
    let times: Vec<Duration> = values.iter().map(|(d, _)| *d).collect();
    (median(&times), values.iter().map(|(_, p)| *p).max().unwrap_or(0))
}
