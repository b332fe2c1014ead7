//! `tenancy-cli`: the `tenancy` command-line tool, and the [`App`] builder an application's own
//! binary calls to get the same tool with its own migrations and seeders.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     tenancy_cli::App::new()
//!         .tenant_migrator::<migration::Migrator>()
//!         .seeders(seeders::all())
//!         .run()
//! }
//! ```
//!
//! Commands are thin: each module under `commands/` parses its arguments into a core request and
//! calls `tenancy-core`. All output goes through [`output::Output`]; exit codes come from
//! [`exit::ExitStatus`].

#![recursion_limit = "256"] // the futures of fleet commands nest deeply enough to need it

mod args;
mod commands;
pub mod exit;
mod fleet_view;
mod memory;
pub mod output;
mod prompt;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sea_orm_migration::MigratorTrait;
use tenancy_core::migrate::{SeaOrmMigrator, TenantMigrator};
use tenancy_core::{Config, OpenError, Seeder, Tenancy};

pub use args::Cli;
use exit::ExitStatus;
use output::Output;

/// The `tenancy` tool, configured with an application's migrator and seeders.
#[derive(Default)]
pub struct App {
    migrator: Option<Arc<dyn TenantMigrator>>,
    seeders: Vec<Arc<dyn Seeder>>,
}

impl App {
    /// A tool with no tenant migrations and no seeders.
    pub fn new() -> Self {
        Self::default()
    }

    /// The migrations every tenant database gets.
    pub fn tenant_migrator<M: MigratorTrait + 'static>(mut self) -> Self {
        self.migrator = Some(Arc::new(SeaOrmMigrator::<M>::default()));
        self
    }

    /// The seeders `--seed` and `db seed` can run; the first is the default.
    pub fn seeders(mut self, seeders: Vec<Arc<dyn Seeder>>) -> Self {
        self.seeders = seeders;
        self
    }

    /// Parses the process arguments, runs the command and returns its exit code.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os()).into()
    }

    /// Runs with the given arguments (the first is the program name).
    pub fn run_from<I, T>(self, args: I) -> ExitStatus
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(err) => {
                // clap prints help and version to stdout and usage errors to stderr, and knows which.
                let _ = err.print();
                return if err.use_stderr() { ExitStatus::Usage } else { ExitStatus::Success };
            }
        };
        let out = Output::new(cli.global.json, cli.global.quiet, cli.global.no_color);
        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => return exit::report(&out, &anyhow::Error::new(err).context("failed to start the async runtime")),
        };
        let result = runtime.block_on(commands::dispatch(&self, cli, &out));
        out.clear_spinner();
        match result {
            Ok(status) => status,
            Err(err) => exit::report(&out, &err),
        }
    }
}

/// What every command gets: the output, the loaded configuration, and the application's parts.
pub struct AppContext<'a> {
    /// The terminal.
    pub out: &'a Output,
    /// The configuration, loaded and checked.
    pub config: Config,
    app: &'a App,
}

impl AppContext<'_> {
    /// Opens the registry and the database managers (migrating the registry if needed).
    pub async fn open_tenancy(&self) -> anyhow::Result<Tenancy> {
        let mut builder = Tenancy::builder(self.config.clone());
        if let Some(migrator) = &self.app.migrator {
            builder = builder.tenant_migrator(migrator.clone());
        }
        if let Some(meter) = memory::JemallocMeter::detect() {
            builder = builder.allocation_meter(Arc::new(meter));
        }
        // Unwrap the transparent `OpenError` so the edge can classify the real error and hint at a fix.
        builder.open().await.map_err(|err| match err {
            OpenError::Registry(err) => anyhow::Error::new(err),
            OpenError::Database(err) => anyhow::Error::new(err),
        })
    }

    /// Opens the tenancy, runs `work` with it, and closes it whatever `work` returned, so pools are
    /// shut down (and SQLite checkpointed) before the process exits.
    pub async fn with_tenancy<T>(&self, work: impl AsyncFnOnce(&Tenancy) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let tenancy = self.open_tenancy().await?;
        let result = work(&tenancy).await;
        tenancy.close().await;
        result
    }

    /// The application's seeders, the default first.
    pub fn seeders(&self) -> &[Arc<dyn Seeder>] {
        &self.app.seeders
    }
}
