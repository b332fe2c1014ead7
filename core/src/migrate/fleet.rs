//! One operation (migrate, roll back, seed…) over many tenants at once.
//!
//! Tenants are taken from one shared queue by up to `concurrency` workers, so a slow tenant holds up
//! nobody; connections come from the [`crate::ConnectionCache`], so the run never holds more than the
//! budget. A tenant that fails stops at its failing step, is reported and (for migrations) recorded
//! in the registry, and every other tenant carries on; with `fail_fast`, tenants not yet started are
//! skipped after the first failure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::meter::metered;
use super::runner::{self, MigrationFailure, MigrationObserver, PretendedMigration};
use super::{Direction, MigrationName, MigrationRun};
use crate::context::ProgressSink;
use crate::maintenance::{Maintenance, MaintenanceOrigin};
use crate::placement::ServerState;
use crate::unwind::contain;
use crate::{Config, Seeder, Tenancy, Tenant, TenantId};

/// What to do to each tenant.
#[derive(Clone)]
pub enum Operation {
    /// Apply pending migrations.
    Migrate,
    /// Show the SQL of pending migrations; change nothing.
    Pretend,
    /// Roll back the last `steps` migrations.
    Rollback {
        /// How many.
        steps: usize,
    },
    /// Roll back every migration.
    Reset,
    /// Roll back every migration, then apply them all.
    Refresh,
    /// Recreate the database empty, then apply every migration.
    Fresh,
    /// Run these seeders in order.
    Seed(Vec<Arc<dyn Seeder>>),
}

impl Operation {
    /// Whether this operation applies migrations, so a failure is one to record.
    fn migrates_up(&self) -> bool {
        matches!(self, Self::Migrate | Self::Refresh | Self::Fresh)
    }

    /// Whether this operation changes a tenant's schema (and so may take it down for maintenance).
    fn changes_schema(&self) -> bool {
        !matches!(self, Self::Pretend | Self::Seed(_))
    }

    /// Whether this operation writes to a tenant's database (so not on a read-only server).
    fn writes(&self) -> bool {
        !matches!(self, Self::Pretend)
    }

    /// Whether this operation has nothing to do on a tenant whose database is up to date, so the
    /// registry's record of that ([`Tenant::migrated_set`]) can stand in for reading it.
    fn idle_when_up_to_date(&self) -> bool {
        matches!(self, Self::Migrate | Self::Pretend)
    }

    /// Whether this operation may move a tenant's schema back (or away from what was recorded).
    fn may_move_back(&self) -> bool {
        matches!(self, Self::Rollback { .. } | Self::Reset | Self::Refresh | Self::Fresh)
    }
}

/// The step a failure to take a tenant down, or bring it up, is reported under.
const MAINTENANCE_STEP: &str = "(maintenance mode)";

/// What [`Tenancy::down_while`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownWhile {
    /// Nothing to do, or the operator had it down already: it stays as it is.
    NotNeeded,
    /// Down for this operation (or left down by an interrupted one): to bring up afterwards.
    TakenDown,
}

impl Tenancy {
    /// Takes `tenant` down for maintenance before `operation` changes its schema, unless there is
    /// nothing to migrate or its operator took it down already (then it stays down afterwards).
    /// A tenant an interrupted run left down ([`MaintenanceOrigin::Migration`]) is this run's to
    /// bring up. After taking it down this waits one `web.change_poll_millis`, the longest other
    /// processes serving it take to notice, so no request reaches it while its schema changes.
    async fn down_while(&self, tenant: &Tenant, operation: &Operation) -> Result<DownWhile, crate::BoxError> {
        let current = self.registry().require(&tenant.id).await?;
        match current.maintenance.map(|m| m.origin) {
            Some(MaintenanceOrigin::Operator | MaintenanceOrigin::Move) => return Ok(DownWhile::NotNeeded),
            Some(MaintenanceOrigin::Migration) => return Ok(DownWhile::TakenDown),
            None => {}
        }
        if let Operation::Migrate = operation {
            let set = self.migrations();
            let status = self.run_with_one_connection(tenant, |ctx| async move { super::status::read(ctx.db(), set).await }).await??;
            if status.pending() == 0 {
                return Ok(DownWhile::NotNeeded);
            }
        }
        self.registry().set_maintenance(&tenant.id, Some(&Maintenance::new(MaintenanceOrigin::Migration))).await?;
        tokio::time::sleep(Duration::from_millis(self.config().web.change_poll_millis)).await;
        Ok(DownWhile::TakenDown)
    }
}

/// How to run over the tenants.
#[derive(Debug, Clone, Copy)]
pub struct FleetOptions {
    /// Tenants worked on at once.
    pub concurrency: usize,
    /// Start no new tenant after one fails.
    pub fail_fast: bool,
    /// Take each tenant down for maintenance while the operation changes its schema, and up
    /// again afterwards, even when it fails (see [`Tenancy::down_while`]).
    pub down_during: bool,
    /// Read every tenant's database, even one the registry records as up to date with the
    /// current migrations (`db migrate --verify`): what catches a database changed behind
    /// tenancy's back.
    pub verify: bool,
}

impl FleetOptions {
    /// As many tenants at once as the connection budget has room for pools.
    pub fn default_concurrency(config: &Config) -> usize {
        let db = &config.tenant_database;
        ((config.connection_budgets().0 / db.pool_size.max(1)) as usize).clamp(1, db.max_open_pools.max(1) as usize)
    }

    /// Where [`FleetOptions::default_concurrency`] comes from: `connection_budget 64 / pool_size 5`,
    /// and `max_open_pools` when that is lower.
    pub fn default_concurrency_reason(config: &Config) -> String {
        let db = &config.tenant_database;
        let (budget, per_server) = config.connection_budgets();
        let by_budget = budget / db.pool_size.max(1);
        let budget = if per_server.is_empty() { format!("connection_budget {budget}") } else { format!("the servers' budgets {budget}") };
        let mut reason = format!("{budget} / pool_size {}", db.pool_size);
        if by_budget > db.max_open_pools {
            reason.push_str(&format!(", at most max_open_pools {}", db.max_open_pools));
        }
        reason
    }
}

/// One seeder run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeederRun {
    /// Its name.
    pub seeder: String,
    /// How long it took.
    #[serde(serialize_with = "super::serialize_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
    /// Bytes allocated while it ran, when measurable.
    pub allocated_bytes: Option<u64>,
}

/// Why a tenant failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantFailure {
    /// The failing migration (`migrator/name`), seeder, or `connect`.
    pub step: String,
    /// The error.
    pub error: String,
}

/// What happened to one tenant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantReport {
    /// The tenant.
    pub tenant: Tenant,
    /// Migrations run (up or down), in order.
    pub migrations: Vec<MigrationRun>,
    /// Seeders run, in order.
    pub seeders: Vec<SeederRun>,
    /// What pending migrations would run (`Pretend`).
    pub pretended: Vec<PretendedMigration>,
    /// Set if the tenant failed.
    pub failure: Option<TenantFailure>,
    /// Set if the tenant was not worked on, and why.
    pub skipped: Option<String>,
    /// Problems that did not fail the tenant (a failure that could not be recorded).
    pub warnings: Vec<String>,
    /// Time spent on this tenant.
    #[serde(serialize_with = "super::serialize_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

impl TenantReport {
    /// Whether the tenant succeeded without anything to do (up to date, nothing to roll back).
    pub fn had_nothing_to_do(&self) -> bool {
        self.failure.is_none()
            && self.skipped.is_none()
            && self.migrations.is_empty()
            && self.seeders.is_empty()
            && self.pretended.is_empty()
    }

    fn new(tenant: Tenant) -> Self {
        Self {
            tenant,
            migrations: Vec::new(),
            seeders: Vec::new(),
            pretended: Vec::new(),
            failure: None,
            skipped: None,
            warnings: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// Watches a fleet run; the CLI draws it, tests record it. Methods may be called from several
/// tenants at once.
pub trait FleetReporter: Send + Sync {
    /// Work on a tenant starts.
    fn on_tenant_started(&self, _tenant: &Tenant) {}
    /// A migration starts.
    fn on_migration_started(&self, _tenant: &Tenant, _migration: &MigrationName, _direction: Direction) {}
    /// A migration finished.
    fn on_migration_finished(&self, _tenant: &Tenant, _run: &MigrationRun) {}
    /// The SQL a pending migration would run.
    fn on_pretended(&self, _tenant: &Tenant, _migration: &PretendedMigration) {}
    /// A seeder starts.
    fn on_seeder_started(&self, _tenant: &Tenant, _seeder: &str) {}
    /// A seeder reported progress.
    fn on_seeder_progress(&self, _tenant: &Tenant, _seeder: &str, _done: u64, _total: u64) {}
    /// A seeder finished.
    fn on_seeder_finished(&self, _tenant: &Tenant, _run: &SeederRun) {}
    /// Work on a tenant ended (or it was skipped).
    fn on_tenant_finished(&self, _report: &TenantReport) {}
}

/// Reports nothing.
impl FleetReporter for () {}

impl Tenancy {
    /// Runs `operation` on every tenant in `tenants`, `options.concurrency` at a time, and returns a
    /// report per tenant in the order they finished.
    pub async fn run_fleet(
        &self,
        tenants: Vec<Tenant>,
        operation: &Operation,
        options: FleetOptions,
        reporter: Arc<dyn FleetReporter>,
    ) -> Vec<TenantReport> {
        let stop = AtomicBool::new(false);
        // Read once, so a tenant without a recorded failure costs the registry no write.
        let failed_before = match operation.migrates_up() {
            true => self.registry().last_migration_failures().await.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "could not read recorded migration failures; they will not be cleared in this run");
                Default::default()
            }),
            false => Default::default(),
        };
        let failed_before = &failed_before;
        let not_to_write = &self.not_to_write(operation).await;
        let fingerprint = self.migration_fingerprint().await;
        let reports: Vec<TenantReport> = futures::stream::iter(tenants)
            .map(|tenant| {
                let had_failure = failed_before.contains_key(&tenant.id);
                let trusted = operation.idle_when_up_to_date()
                    && !options.verify
                    && !had_failure
                    && tenant.migrated_set.as_deref() == Some(fingerprint);
                let flags = RunFlags { fail_fast: options.fail_fast, had_failure, down_during: options.down_during, trusted };
                let skip = if trusted { None } else { not_to_write.reason(&tenant) };
                self.run_one(tenant, operation, flags, skip, &stop, reporter.clone())
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        if let Operation::Migrate = operation {
            self.record_up_to_date(fingerprint, &reports).await;
        }
        reports
    }

    /// Records in the registry that the tenants `db migrate` just brought up to date are, so the
    /// next run need not read their databases; one transaction, after the run.
    async fn record_up_to_date(&self, fingerprint: &str, reports: &[TenantReport]) {
        let done: Vec<(TenantId, i64)> = reports
            .iter()
            .filter(|r| r.failure.is_none() && r.skipped.is_none() && r.tenant.migrated_set.as_deref() != Some(fingerprint))
            .map(|r| (r.tenant.id, r.tenant.schema_epoch))
            .collect();
        if done.is_empty() {
            return;
        }
        if let Err(err) = self.registry().record_migrated_set(fingerprint, &done).await {
            tracing::warn!(error = %err, "could not record which tenants are up to date; the next run reads their databases");
        }
    }

    /// Tenants a writing `operation` must leave alone: those on a read-only server, and those
    /// being moved. Read once per run.
    async fn not_to_write(&self, operation: &Operation) -> NotToWrite {
        if !operation.writes() {
            return NotToWrite::default();
        }
        let read_only = self.registry().server_states().await.map_or_else(
            |err| {
                tracing::warn!(error = %err, "could not read the servers' states; none is taken as read-only in this run");
                Vec::new()
            },
            |states| states.into_iter().filter(|(_, state)| *state == ServerState::ReadOnly).map(|(name, _)| name).collect(),
        );
        let moving = self.registry().moves().await.map_or_else(
            |err| {
                tracing::warn!(error = %err, "could not read the tenant moves; none is taken as under way in this run");
                Vec::new()
            },
            |moves| moves.into_iter().filter(|m| m.step != crate::moves::MoveStep::Done).map(|m| (m.tenant, m.to)).collect(),
        );
        NotToWrite { read_only, moving }
    }

    async fn run_one(
        &self,
        tenant: Tenant,
        operation: &Operation,
        flags: RunFlags,
        skip: Option<String>,
        stop: &AtomicBool,
        reporter: Arc<dyn FleetReporter>,
    ) -> TenantReport {
        let mut report = TenantReport::new(tenant.clone());
        if stop.load(Ordering::SeqCst) {
            report.skipped = Some("not started: an earlier tenant failed and --fail-fast is set".into());
            reporter.on_tenant_finished(&report);
            return report;
        }
        if let Some(reason) = skip {
            report.skipped = Some(reason);
            reporter.on_tenant_finished(&report);
            return report;
        }
        reporter.on_tenant_started(&tenant);
        if flags.trusted {
            // The registry records this tenant up to date with these migrations, and nothing
            // that could move its schema back has run since: there is nothing to read.
            reporter.on_tenant_finished(&report);
            return report;
        }
        let started = Instant::now();
        if operation.may_move_back()
            && let Err(err) = self.registry().forget_migrated_set(&tenant.id).await
        {
            report.failure = Some(TenantFailure { step: "(registry)".into(), error: error_chain(&err) });
            reporter.on_tenant_finished(&report);
            return report;
        }
        let down = match flags.down_during && operation.changes_schema() {
            true => self.down_while(&tenant, operation).await,
            false => Ok(DownWhile::NotNeeded),
        };
        match &down {
            // A panic the steps below did not contain (in tenancy itself, or a bootstrapper) fails
            // this tenant only; the others go on and the run ends with its summary.
            Ok(_) => {
                if let Err(panicked) = contain(self.work_on(&tenant, operation, &mut report, reporter.clone())).await {
                    report.failure = Some(TenantFailure { step: "(working on the tenant)".into(), error: panicked.to_string() });
                }
            }
            Err(err) => report.failure = Some(TenantFailure { step: MAINTENANCE_STEP.into(), error: error_chain(err.as_ref()) }),
        }
        if let Ok(DownWhile::TakenDown) = down
            && let Err(err) = self.registry().set_maintenance(&tenant.id, None).await
        {
            let error =
                format!("it is still down for maintenance: {}; bring it up with `tenancy tenant up {}`", error_chain(&err), tenant.id);
            match report.failure {
                None => report.failure = Some(TenantFailure { step: MAINTENANCE_STEP.into(), error }),
                Some(_) => report.warnings.push(error),
            }
        }
        // Again after the work: a `db migrate` that read the epoch before the first one and records
        // after this work must find it moved.
        if operation.may_move_back()
            && let Err(err) = self.registry().forget_migrated_set(&tenant.id).await
        {
            report.warnings.push(format!("the registry still records it up to date: {}; run `db migrate --verify`", error_chain(&err)));
        }
        if matches!(operation, Operation::Migrate)
            && report.failure.is_some()
            && tenant.migrated_set.is_some()
            && let Err(err) = self.registry().forget_migrated_set(&tenant.id).await
        {
            report.warnings.push(format!("its recorded migrations could not be forgotten: {}", error_chain(&err)));
        }
        report.elapsed = started.elapsed();
        if let Some(failure) = &report.failure {
            if flags.fail_fast {
                stop.store(true, Ordering::SeqCst);
            }
            if operation.migrates_up()
                && let Err(err) = self.registry().record_migration_failure(&tenant.id, &failure.step, &failure.error).await
            {
                report.warnings.push(format!("the failure could not be recorded in the registry: {}", error_chain(&err)));
            }
        } else if operation.migrates_up()
            && flags.had_failure
            && let Err(err) = self.registry().clear_migration_failures(&tenant.id).await
        {
            report.warnings.push(format!("its old failure could not be cleared from the registry: {}", error_chain(&err)));
        }
        reporter.on_tenant_finished(&report);
        report
    }

    async fn work_on(&self, tenant: &Tenant, operation: &Operation, report: &mut TenantReport, reporter: Arc<dyn FleetReporter>) {
        let observer = &Observer { tenant, reporter: reporter.as_ref(), skipped: AtomicU64::new(0) };
        let (set, meter) = (self.migrations(), self.meter());
        let fail = |report: &mut TenantReport, step: String, error: String| report.failure = Some(TenantFailure { step, error });
        if let Operation::Fresh = operation
            && let Err(err) = self.recreate_database(tenant).await
        {
            return fail(report, "recreate database".into(), error_chain(&err));
        }
        let result = match operation {
            Operation::Migrate => {
                self.run_with_one_connection(tenant, |ctx| async move { runner::migrate(ctx.db(), set, meter, observer).await }).await
            }
            Operation::Fresh => {
                self.run_with_one_connection(
                    tenant,
                    |ctx| async move { runner::migrate_new_database(ctx.db(), set, meter, observer).await },
                )
                .await
            }
            Operation::Rollback { steps } => {
                self.run_with_one_connection(
                    tenant,
                    |ctx| async move { runner::rollback(ctx.db(), set, Some(*steps), meter, observer).await },
                )
                .await
            }
            Operation::Reset => {
                self.run_with_one_connection(tenant, |ctx| async move { runner::rollback(ctx.db(), set, None, meter, observer).await })
                    .await
            }
            Operation::Refresh => {
                self.run_with_one_connection(tenant, |ctx| async move {
                    let mut runs = runner::rollback(ctx.db(), set, None, meter, observer).await?;
                    runs.extend(runner::migrate(ctx.db(), set, meter, observer).await.map_err(|mut failure| {
                        failure.completed.splice(0..0, runs.iter().cloned());
                        failure
                    })?);
                    Ok(runs)
                })
                .await
            }
            Operation::Pretend => {
                match self.run_with_one_connection(tenant, |ctx| async move { runner::pretend(ctx.db(), set).await }).await {
                    Ok(Ok(pretended)) => {
                        for migration in &pretended {
                            reporter.on_pretended(tenant, migration);
                        }
                        report.pretended = pretended;
                    }
                    Ok(Err(err)) => fail(report, "(reading the tracking tables)".into(), err.to_string()),
                    Err(err) => fail(report, "connect".into(), error_chain(&err)),
                }
                return;
            }
            Operation::Seed(seeders) => return self.seed(tenant, seeders, report, reporter).await,
        };
        report.warnings.extend(observer.skipped_warning());
        match result {
            Ok(Ok(runs)) => report.migrations = runs,
            Ok(Err(MigrationFailure { migration, error, completed, .. })) => {
                report.migrations = completed;
                fail(report, migration.to_string(), error);
            }
            Err(err) => fail(report, "connect".into(), error_chain(&err)),
        }
    }

    /// Drops and recreates a tenant's database, empty (for `Fresh`).
    async fn recreate_database(&self, tenant: &Tenant) -> Result<(), crate::database::DatabaseError> {
        self.connections().close(&tenant.id).await;
        let manager = self.manager_of(tenant)?;
        manager.drop_database(&tenant.database).await?;
        manager.create_database(&tenant.database).await?;
        // Made by the server's user: the tenant's role (kept through the drop) takes it.
        self.give_to_role(tenant, None).await
    }

    async fn seed(&self, tenant: &Tenant, seeders: &[Arc<dyn Seeder>], report: &mut TenantReport, reporter: Arc<dyn FleetReporter>) {
        let sink = Arc::new(SeederProgress {
            tenant: tenant.clone(),
            reporter: reporter.clone(),
            seeder: Mutex::default(),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
        });
        let meter = self.meter();
        let seeders = &crate::seeder::expand(seeders);
        let outcome = self
            .run_reporting(tenant, Some(sink.clone()), |ctx| async move {
                let mut runs = Vec::new();
                for seeder in seeders {
                    sink.start(seeder.name());
                    reporter.on_seeder_started(tenant, seeder.name());
                    let started = Instant::now();
                    let (result, allocated_bytes) = metered(meter, contain(seeder.run(&ctx))).await;
                    let result = result.unwrap_or_else(|panicked| Err(Box::new(panicked)));
                    if let Err(err) = result {
                        return (runs, Some(TenantFailure { step: seeder.name().to_owned(), error: error_chain(err.as_ref()) }));
                    }
                    let run = SeederRun { seeder: seeder.name().to_owned(), elapsed: started.elapsed(), allocated_bytes };
                    reporter.on_seeder_finished(tenant, &run);
                    runs.push(run);
                }
                (runs, None)
            })
            .await;
        match outcome {
            Ok((runs, failure)) => {
                report.seeders = runs;
                report.failure = failure;
            }
            Err(err) => report.failure = Some(TenantFailure { step: "connect".into(), error: error_chain(&err) }),
        }
    }
}

/// How one tenant is run.
#[derive(Clone, Copy)]
struct RunFlags {
    /// Stop starting tenants after this one fails.
    fail_fast: bool,
    /// The registry has a failure recorded for it, to clear if it now succeeds.
    had_failure: bool,
    /// Take it down for maintenance while its schema changes.
    down_during: bool,
    /// The registry records it up to date with the current migrations, and the run trusts that.
    trusted: bool,
}

/// The tenants a run that writes leaves alone, and why.
#[derive(Default)]
struct NotToWrite {
    /// Servers in the `read_only` state.
    read_only: Vec<String>,
    /// Tenants being moved, and where to.
    moving: Vec<(TenantId, String)>,
}

impl NotToWrite {
    fn reason(&self, tenant: &Tenant) -> Option<String> {
        if let Some((_, to)) = self.moving.iter().find(|(id, _)| *id == tenant.id) {
            return Some(format!("being moved to server `{to}`: run this again once `tenancy tenant move` is done"));
        }
        self.read_only.contains(&tenant.server).then(|| {
            format!("server `{}` is read-only: nothing is written there until `tenancy server activate {}`", tenant.server, tenant.server)
        })
    }
}

/// Forwards one tenant's migration events to the fleet reporter, and counts the migrations
/// another process did meanwhile.
struct Observer<'a> {
    tenant: &'a Tenant,
    reporter: &'a dyn FleetReporter,
    skipped: AtomicU64,
}

impl Observer<'_> {
    /// A line for the report, if another process did some of the work.
    fn skipped_warning(&self) -> Option<String> {
        match self.skipped.load(Ordering::SeqCst) {
            0 => None,
            1 => Some("1 migration was done by another process migrating this tenant at the same time; it was skipped here".into()),
            n => {
                Some(format!("{n} migrations were done by another process migrating this tenant at the same time; they were skipped here"))
            }
        }
    }
}

impl MigrationObserver for Observer<'_> {
    fn on_migration_skipped(&self, _migration: &MigrationName, _direction: Direction) {
        self.skipped.fetch_add(1, Ordering::SeqCst);
    }

    fn on_migration_started(&self, migration: &MigrationName, direction: Direction) {
        self.reporter.on_migration_started(self.tenant, migration, direction);
    }

    fn on_migration_finished(&self, run: &MigrationRun) {
        self.reporter.on_migration_finished(self.tenant, run);
    }
}

/// Turns `ctx.progress(…)` calls of the running seeder into reporter events.
struct SeederProgress {
    tenant: Tenant,
    reporter: Arc<dyn FleetReporter>,
    seeder: Mutex<String>,
    total: AtomicU64,
    done: AtomicU64,
}

impl SeederProgress {
    fn start(&self, seeder: &str) {
        *self.seeder.lock().unwrap_or_else(|p| p.into_inner()) = seeder.to_owned();
        self.total.store(0, Ordering::SeqCst);
        self.done.store(0, Ordering::SeqCst);
    }

    fn report(&self) {
        let seeder = self.seeder.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.reporter.on_seeder_progress(&self.tenant, &seeder, self.done.load(Ordering::SeqCst), self.total.load(Ordering::SeqCst));
    }
}

impl ProgressSink for SeederProgress {
    fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::SeqCst);
        self.report();
    }

    fn advance(&self, units: u64) {
        self.done.fetch_add(units, Ordering::SeqCst);
        self.report();
    }
}

/// An error and its causes on one line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
