//! `tenancy-cli`: the `tenancy` command-line tool, and the [`App`] builder an application's own
//! binary calls to get the same tool with its own migrations and seeders.
//!
//! ```no_run
//! # mod migration {
//! #     use sea_orm_migration::prelude::*;
//! #     pub struct Migrator;
//! #     impl MigratorTrait for Migrator {
//! #         fn migrations() -> Vec<Box<dyn MigrationTrait>> { Vec::new() }
//! #     }
//! # }
//! # mod seeders {
//! #     pub fn all() -> Vec<std::sync::Arc<dyn tenancy_core::Seeder>> { Vec::new() }
//! # }
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
mod extensions;
mod fleet_view;
mod logging;
mod memory;
pub mod output;
mod prompt;
mod tenant_progress;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::FromArgMatches;
use sea_orm_migration::MigratorTrait;
use tenancy_core::command::{AppContext, Console, Plugin};
use tenancy_core::migrate::{SeaOrmMigrator, TenantMigrator};
use tenancy_core::sql_files::{self, SqlMigrator, SqlSeeder};
use tenancy_core::{Config, OpenError, Seeder, Tenancy};

pub use args::Cli;
use args::GlobalArgs;
pub use commands::serve::application as serve_application;
use exit::ExitStatus;
use extensions::Extensions;
use output::Output;

/// The `tenancy` tool, configured with an application's migrator, seeders and plugins.
#[derive(Default)]
pub struct App {
    migrator: Option<Arc<dyn TenantMigrator>>,
    seeders: Vec<Arc<dyn Seeder>>,
    plugins: Vec<Arc<dyn Plugin>>,
    sql_files: bool,
    jobs: tenancy_core::queue::JobSet,
}

impl App {
    /// A tool with no tenant migrations, no seeders and no plugins.
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

    /// Tenant migrations and seeders from SQL files beside `tenancy.toml`: `migrations/` and
    /// `seeders/` (see [`tenancy_core::sql_files`]), read when the configuration is. For a tool
    /// that serves an application written in another language, or before it has Rust of its own.
    pub fn sql_files(mut self) -> Self {
        self.sql_files = true;
        self
    }

    /// The job types `tenancy queue work` runs and `tenancy queue dispatch` accepts.
    pub fn jobs(mut self, jobs: tenancy_core::queue::JobSet) -> Self {
        self.jobs = std::mem::take(&mut self.jobs).merge(jobs);
        self
    }

    /// Adds a plugin linked into the binary: its commands join the command line, its migrators
    /// run on every tenant database and its provisioning steps on every new tenant.
    pub fn plugin(mut self, plugin: impl Plugin + 'static) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// Parses the process arguments, runs the command and returns its exit code.
    pub fn run(self) -> ExitCode {
        if !report_bugs_plainly() {
            return self.run_from(std::env::args_os()).into();
        }
        // A panic tenancy does not contain itself (it contains those of migrations, seeders,
        // provisioning steps and fleet tenants) ends here, reported once as the bug it is.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_from(std::env::args_os()))) {
            Ok(status) => status.into(),
            Err(_) => {
                let panic = LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()).take();
                let message = format!("internal error{}", panic.map(|p| format!(" {p}")).unwrap_or_default());
                let hint = "this is a bug in tenancy, not in what you typed; please report it with the command you ran (RUST_BACKTRACE=1 adds a backtrace)";
                Output::new(false, false, false).error(&message, &[], &[hint.to_owned()]);
                ExitStatus::Failure.into()
            }
        }
    }

    /// Reads the configuration, with the sections the plugins own, and lets each check its own.
    pub(crate) fn load_config(&self, cwd: &std::path::Path, file: Option<&std::path::Path>) -> Result<Config, tenancy_core::ConfigError> {
        let sections: Vec<&str> = self.plugins.iter().filter_map(|plugin| plugin.config_section()).collect();
        let config = Config::load_with_sections(cwd, file, &sections)?;
        for plugin in &self.plugins {
            plugin.check_config(&config)?;
        }
        Ok(config)
    }

    /// With [`App::sql_files`], reads `migrations/` and `seeders/` beside the configuration; a bad
    /// file is reported as the configuration's error is, by the commands that need it.
    fn load_sql_files(&mut self, config: &Config) -> Result<(), tenancy_core::ConfigError> {
        if !self.sql_files {
            return Ok(());
        }
        let migrator = SqlMigrator::load(&config.root.join(sql_files::MIGRATIONS_FOLDER))?;
        let seeders = SqlSeeder::load_all(&config.root.join(sql_files::SEEDERS_FOLDER))?;
        self.migrator = Some(Arc::new(migrator));
        self.seeders = seeders.into_iter().map(|seeder| Arc::new(seeder) as Arc<dyn Seeder>).collect();
        Ok(())
    }

    /// Runs with the given arguments (the first is the program name).
    pub fn run_from<I, T>(mut self, args: I) -> ExitStatus
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cwd = match std::env::current_dir() {
            Ok(cwd) => cwd,
            Err(err) => {
                return exit::report(
                    &Output::new(false, false, false),
                    &anyhow::Error::new(err).context("cannot read the current directory"),
                );
            }
        };
        // The configuration says where plugins are, and plugins shape the command line: so it is
        // read before the arguments are parsed, and its error reported only by commands needing it.
        let config_file = args::config_flag(&args);
        let config = self.load_config(&cwd, config_file.as_deref()).and_then(|config| self.load_sql_files(&config).map(|()| config));
        let extensions = Extensions::discover(&self.plugins, config.as_ref().ok());
        let matches = match extensions.command().try_get_matches_from(&args) {
            Ok(matches) => matches,
            Err(err) => {
                let out = Output::new(false, false, false);
                extensions.print_warnings(&out);
                if let (Err(config_error), clap::error::ErrorKind::InvalidSubcommand) = (&config, err.kind()) {
                    // The command may be a plugin's that the unreadable file would have pointed at.
                    out.warn(format!("plugins were looked for without the configuration, which cannot be read: {config_error}"));
                }
                // clap prints help and version to stdout and usage errors to stderr, and knows which.
                out.clap_message(&err);
                return if err.use_stderr() { ExitStatus::Usage } else { ExitStatus::Success };
            }
        };
        let mut global = GlobalArgs::from_arg_matches(&matches).unwrap_or_default();
        let extension_args = extensions.arguments_of(&matches, &mut global);
        let out = Output::new(global.json, global.quiet, global.no_color).verbosity(global.verbose);
        logging::install(&out, global.verbose, global.log_format);
        extensions.print_warnings(&out);
        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => return exit::report(&out, &anyhow::Error::new(err).context("failed to start the async runtime")),
        };
        let invocation = commands::Invocation {
            app: &self,
            cwd: &cwd,
            config_file: config_file.as_deref(),
            config,
            extensions: &extensions,
            extension_args,
            out: &out,
        };
        let result = runtime.block_on(commands::dispatch(invocation, &matches));
        out.clear_spinner();
        match result {
            Ok(status) => status,
            Err(err) => exit::report(&out, &err),
        }
    }
}

/// Where and why the last panic happened, recorded by the hook for [`App::run`].
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// A panic is either contained (a seeder's: that piece of work fails with its message) or a bug in
/// `tenancy` (or a linked plugin), never the user's doing. So the hook prints nothing: it records
/// where it happened, and [`App::run`] reports an uncontained one in one plain line with what to
/// do, instead of Rust's panic message and backtrace hint. With `RUST_BACKTRACE` set, Rust's own
/// hook stays, for the developer; returns whether the plain hook was installed.
fn report_bugs_plainly() -> bool {
    #[allow(clippy::disallowed_methods)] // RUST_BACKTRACE is Rust's convention, not tenancy configuration
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value != "0") {
        return false;
    }
    std::panic::set_hook(Box::new(|info| {
        let message =
            info.payload().downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| info.payload().downcast_ref::<String>().cloned());
        let place = info.location().map(|l| format!("at {}:{}: ", l.file(), l.line())).unwrap_or_default();
        let text = format!("{place}{}", message.as_deref().unwrap_or("a panic with no message"));
        *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }));
    true
}

/// What every command gets: the output, the loaded configuration, and the application's parts.
pub struct CliContext<'a> {
    /// The terminal.
    pub out: &'a Output,
    /// The configuration, loaded and checked.
    pub config: Config,
    app: &'a App,
    extensions: &'a Extensions,
    /// The plugins' switches given to `tenant create` or `tenant delete`.
    tenant_flags: std::collections::BTreeSet<String>,
}

impl CliContext<'_> {
    /// Opens the registry and the database managers (migrating the registry if needed).
    pub async fn open_tenancy(&self) -> anyhow::Result<Tenancy> {
        let mut builder = Tenancy::builder(self.config.clone());
        if let Some(migrator) = &self.app.migrator {
            builder = builder.tenant_migrator(migrator.clone());
        }
        for plugin in &self.app.plugins {
            for migrator in plugin.migrators() {
                builder = builder.plugin_migrator(migrator);
            }
            for step in plugin.provisioning_steps() {
                builder = builder.provisioning_step(step);
            }
            for hook in plugin.tenant_hooks() {
                builder = builder.tenant_hook(hook);
            }
        }
        if let Some(copier) = self.app.plugins.iter().find_map(|plugin| plugin.tenant_copier()) {
            builder = builder.tenant_copier(copier);
        }
        if let Some(meter) = memory::JemallocMeter::detect() {
            builder = builder.allocation_meter(Arc::new(meter));
        }
        // Unwrap the transparent `OpenError` so the edge can classify the real error and hint at a fix.
        builder.open().await.map_err(|err| match err {
            OpenError::Config(err) => anyhow::Error::new(err),
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

    /// The job types the application registers.
    pub fn jobs(&self) -> &tenancy_core::queue::JobSet {
        &self.app.jobs
    }

    /// The linked plugins, in the order the application added them.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.app.plugins
    }

    /// The plugins' switches given to this `tenant create` or `tenant delete`.
    pub fn tenant_flags(&self) -> &std::collections::BTreeSet<String> {
        &self.tenant_flags
    }

    /// The plugins found, and the commands they add.
    pub fn extensions(&self) -> &Extensions {
        self.extensions
    }
}

/// Plugin commands get the same context as the core ones, through core's trait.
#[async_trait::async_trait]
impl AppContext for CliContext<'_> {
    fn config(&self) -> &Config {
        &self.config
    }

    fn console(&self) -> &dyn Console {
        self.out
    }

    async fn open_tenancy(&self) -> anyhow::Result<Tenancy> {
        CliContext::open_tenancy(self).await
    }

    fn seeders(&self) -> &[Arc<dyn Seeder>] {
        CliContext::seeders(self)
    }

    fn tenant_facts(&self) -> Vec<Arc<dyn tenancy_core::command::TenantFacts>> {
        self.plugins().iter().flat_map(|plugin| plugin.tenant_facts()).collect()
    }
}
