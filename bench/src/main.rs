//! `tenancy-bench`: the benchmarks behind `cargo xtask bench`. Each prints one line per backend with
//! totals, per-tenant percentiles and a per-step breakdown, so runs can be compared.
//!
//! Benchmarks run the library in-process (no process start-up in the figures) against the same
//! servers as the tests, in uniquely named databases that are dropped afterwards.

#![allow(clippy::print_stdout)] // a benchmark's output is its figures

mod backup;
mod cache;
mod measure;
mod migrate;
mod monitor;
mod provision;
mod queue;
mod scale;
mod startup;
mod web;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tenancy_tests::Backend;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Create N tenants one after another: registry row, database, migrations (or a copy of the
    /// template), activation
    Provision {
        /// How many tenants per backend
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        /// Which backends (default: sqlite and postgres)
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BackendArg::Sqlite, BackendArg::Postgres])]
        backend: Vec<BackendArg>,
        /// How each tenant gets its tables: `migrations`, `template` (not mysql, postgres-schema), `pool` (postgres only)
        #[arg(long, value_delimiter = ',', default_values_t = [ProvisionArg::Migrations, ProvisionArg::Template, ProvisionArg::Pool])]
        provision: Vec<ProvisionArg>,
        /// Migrations added to the sample's 15 (a small table with an index each), one run per
        /// value: 0,25 shows 15 and 40
        #[arg(long, value_delimiter = ',', default_values_t = [0, 25])]
        extra_migrations: Vec<usize>,
        /// Who tenants log in as on servers, one row each: `shared`, `per_tenant` (SQLite has no roles)
        #[arg(long, value_delimiter = ',', default_values_t = [RolesArg::Shared, RolesArg::PerTenant])]
        roles: Vec<RolesArg>,
    },
    /// Cache operations per second on each store, against a raw Redis client; warm context entry
    Cache {
        /// Puts (and then gets) per store
        #[arg(long, default_value_t = 20_000)]
        operations: usize,
    },
    /// Migrate N fresh tenants: the CLI, the CLI again with nothing pending, the floor (plain sqlx
    /// or one psql session) and a peer (`Migrator::up` over `buffer_unordered`); see `migrate.rs`
    Migrate {
        /// SQLite tenants
        #[arg(long, default_value_t = 1000)]
        sqlite_tenants: usize,
        /// PostgreSQL tenants (database and schema per tenant)
        #[arg(long, default_value_t = 200)]
        postgres_tenants: usize,
        /// Passed to `tenancy db migrate --concurrency` [default: its own default]
        #[arg(long)]
        concurrency: Option<usize>,
        /// How many tenants the peer migrates at once; each is measured and the best one compared
        #[arg(long, value_delimiter = ',', default_values_t = [4, 8, 16])]
        peer_concurrency: Vec<usize>,
        /// Which backends (default: sqlite, postgres and postgres-schema)
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BackendArg::Sqlite, BackendArg::Postgres, BackendArg::PostgresSchema])]
        backend: Vec<BackendArg>,
        /// The release `tenancy` binary to measure
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/tenancy-sample"))]
        binary: std::path::PathBuf,
        /// Tenants sharing the server's user, or each with its own role (servers), in this order;
        /// one named twice is run twice (the ratio is of the means)
        #[arg(long, value_delimiter = ',', default_values_t = [RolesArg::Shared, RolesArg::PerTenant, RolesArg::PerTenant, RolesArg::Shared])]
        roles: Vec<RolesArg>,
    },
    /// `tenancy serve`'s tenant page against plain axum under wrk, and a warm resolver hit
    Web {
        /// Tenants registered, each with its own host
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        /// Seconds per load run
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Keep-alive connections
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Runs of each server, interleaved; the median is shown
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Only the in-process figures, no load runs
        #[arg(long)]
        in_process_only: bool,
        /// The release `tenancy` binary to measure
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/tenancy-sample"))]
        binary: std::path::PathBuf,
    },
    /// Row (a) of `web`: plain axum answering the same page (started by `web` itself)
    #[command(hide = true)]
    PlainAxum,
    /// A large PostgreSQL tenant backed up and restored, and many small ones, against pg_dump and
    /// pg_restore by hand; see `backup.rs`
    Backup {
        /// Rows of the large table (about 125 bytes of dump each: 1,600,000 is about 200 MB)
        #[arg(long, default_value_t = 1_600_000)]
        rows: u64,
        /// Small tenants for `backup create --all`
        #[arg(long, default_value_t = 100)]
        small_tenants: usize,
        /// Runs of each pair, interleaved; the median is shown
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The release `tenancy` binary to measure
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/tenancy-sample"))]
        binary: std::path::PathBuf,
    },
    /// `monitor stats --all` and `monitor health --all` against the same reads by hand, and a
    /// scrape of `/metrics` at 10 and 1,000 tenants; see `monitor.rs`
    Monitor {
        /// SQLite tenants
        #[arg(long, default_value_t = 1000)]
        sqlite_tenants: usize,
        /// PostgreSQL tenants
        #[arg(long, default_value_t = 200)]
        postgres_tenants: usize,
        /// Runs of each pair, interleaved; the median is shown
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The release `tenancy` binary to measure
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/tenancy-sample"))]
        binary: std::path::PathBuf,
    },
    /// Jobs per second, dispatch to completion, on each engine with tenancy and without; see `queue.rs`
    Queue {
        /// Tenants the jobs are spread over
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        /// Jobs per run [default: 2000 on the database engine, 10000 on NATS]
        #[arg(long)]
        jobs: Option<usize>,
        /// Jobs run at once
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Runs of each pair, interleaved; the median is shown
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Which engines: sqlite, postgres (the database engine on that registry), nats
        #[arg(long, value_delimiter = ',')]
        engine: Vec<String>,
    },
    /// Many tenants on one machine: tenant list, db status --all, db migrate --all with nothing
    /// pending and with one new migration, and peak memory, through the stock binary; see `scale.rs`
    Scale {
        /// SQLite tenants (template provisioning)
        #[arg(long, default_value_t = 10_000)]
        sqlite_tenants: usize,
        /// PostgreSQL tenants (a schema each)
        #[arg(long, default_value_t = 2_000)]
        postgres_tenants: usize,
        /// Which backends (default: sqlite and postgres-schema)
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BackendArg::Sqlite, BackendArg::PostgresSchema])]
        backend: Vec<BackendArg>,
        /// Tenants created at once beforehand
        #[arg(long, default_value_t = 4)]
        create_concurrency: usize,
        /// Then move a tenant of this many MiB between two PostgreSQL clusters (0: no move)
        #[arg(long, default_value_t = 50)]
        move_mib: u64,
        /// The release stock `tenancy` binary to measure
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/tenancy"))]
        binary: std::path::PathBuf,
    },
    /// `tenancy --help` with no plugin libraries, and with N copies of the hello plugin
    Startup {
        /// How many plugin libraries
        #[arg(long, default_value_t = 10)]
        plugins: usize,
        /// Runs of each
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// The release `tenancy` binary to measure
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/tenancy-sample"))]
        binary: std::path::PathBuf,
        /// The plugin library to load
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/libtenancy_hello.so"))]
        library: std::path::PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProvisionArg {
    Migrations,
    Template,
    Pool,
}

impl std::fmt::Display for ProvisionArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Migrations => "migrations",
            Self::Template => "template",
            Self::Pool => "pool",
        })
    }
}

/// `tenant_database.roles`, for the provision and migrate benchmarks.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum RolesArg {
    Shared,
    #[value(name = "per_tenant")]
    PerTenant,
}

impl std::fmt::Display for RolesArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Shared => "shared",
            Self::PerTenant => "per_tenant",
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    PostgresSchema,
    Mysql,
}

impl From<BackendArg> for Backend {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Sqlite => Backend::Sqlite,
            BackendArg::Postgres => Backend::Postgres,
            BackendArg::PostgresSchema => Backend::PostgresSchema,
            BackendArg::Mysql => Backend::MySql,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().bench {
        Bench::Provision { tenants, backend, provision: ways, extra_migrations, roles } => {
            let backends: Vec<Backend> = backend.into_iter().map(Backend::from).collect();
            provision::run(&provision::Options {
                tenants: tenants.max(1),
                backends: &backends,
                ways: &ways,
                extra_migrations: &extra_migrations,
                roles: &roles,
            })
            .await?;
        }
        Bench::Cache { operations } => cache::run(operations).await?,
        Bench::Queue { tenants, jobs, concurrency, runs, engine } => {
            let options = queue::Options {
                tenants: tenants.max(1),
                jobs: jobs.map(|jobs| jobs.max(1)),
                concurrency: concurrency.max(1),
                runs: runs.max(1),
                engines: engine,
            };
            queue::run(&options).await?;
        }
        Bench::Startup { plugins, runs, binary, library } => startup::run(&binary, &library, plugins, runs)?,
        Bench::Web { tenants, seconds, connections, runs, in_process_only, binary } => {
            web::run(&web::Options { binary: &binary, tenants, seconds, connections, runs, in_process_only }).await?;
        }
        Bench::PlainAxum => web::plain_axum().await?,
        Bench::Backup { rows, small_tenants, runs, binary } => {
            anyhow::ensure!(
                binary.is_file(),
                "no tenancy binary at `{}`: build it with `cargo build --release -p tenancy-sample`",
                binary.display()
            );
            backup::run(&backup::Options { binary: &binary, rows, small_tenants, runs: runs.max(1) }).await?;
        }
        Bench::Monitor { sqlite_tenants, postgres_tenants, runs, binary } => {
            anyhow::ensure!(
                binary.is_file(),
                "no tenancy binary at `{}`: build it with `cargo build --release -p tenancy-sample`",
                binary.display()
            );
            monitor::run(&monitor::Options { binary: &binary, sqlite_tenants, postgres_tenants, runs: runs.max(1) }).await?;
        }
        Bench::Scale { sqlite_tenants, postgres_tenants, backend, create_concurrency, move_mib, binary } => {
            anyhow::ensure!(
                binary.is_file(),
                "no tenancy binary at `{}`: build it with `cargo build --release -p tenancy`",
                binary.display()
            );
            println!("scale: many tenants through the stock binary");
            let options = scale::Options { binary: &binary, create_concurrency };
            for backend in backend.into_iter().map(Backend::from) {
                let count = if backend == Backend::Sqlite { sqlite_tenants } else { postgres_tenants };
                scale::run(backend, count, &options).await?;
            }
            if move_mib > 0 {
                scale::measure_move(move_mib, &options).await?;
            }
        }
        Bench::Migrate { sqlite_tenants, postgres_tenants, concurrency, peer_concurrency, backend, binary, roles } => {
            anyhow::ensure!(
                binary.is_file(),
                "no tenancy binary at `{}`: build it with `cargo build --release -p tenancy-sample`",
                binary.display()
            );
            println!("migrate: fresh tenants, the sample migrations plus core's tables");
            let options = migrate::Options { binary: &binary, concurrency, peer_concurrency: &peer_concurrency };
            for backend in backend.into_iter().map(Backend::from) {
                let count = if backend == Backend::Sqlite { sqlite_tenants } else { postgres_tenants };
                // SQLite has no roles: one run.
                let roles = if backend == Backend::Sqlite { &[RolesArg::Shared][..] } else { &roles[..] };
                let mut runs = Vec::with_capacity(roles.len());
                for &role in roles {
                    runs.push((role, migrate::run(backend, count, role, &options).await?));
                }
                // A mode named twice is run twice and its mean taken: `shared,per_tenant,per_tenant,shared`
                // cancels what drifts over the runs.
                let mean = |wanted: RolesArg| {
                    let times: Vec<f64> =
                        runs.iter().filter(|(role, _)| *role == wanted).filter_map(|(_, time)| time.map(|t| t.as_secs_f64())).collect();
                    (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64)
                };
                if let (Some(shared), Some(own)) = (mean(RolesArg::Shared), mean(RolesArg::PerTenant)) {
                    println!("  {:<16} (a): a role per tenant / shared = {:.2} (means of the runs of each)", backend.name(), own / shared);
                }
            }
        }
    }
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
