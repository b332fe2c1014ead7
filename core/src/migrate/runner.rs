//! Running migrations on one tenant database: apply what is pending, roll back, or show the SQL
//! that would run. Each migration runs in its own transaction (MySQL commits DDL implicitly, so
//! there it runs without one, as sea-orm-migration does) together with its tracking row, so a
//! migration reported as applied is committed, and a failed one leaves the earlier ones applied.
//! Each runs holding the tenant's migration lock ([`super::lock`]) and only if its tracking row
//! still says it is to be done: a second process migrating the same tenant waits, then skips what
//! the first one applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use sea_orm::{DatabaseConnection, DbBackend, DbErr, MockDatabase, MockExecResult, TransactionTrait};
use sea_orm_migration::{MigrationTrait, SchemaManager};

use super::meter::metered;
use super::{AllocationMeter, Direction, MigrationName, MigrationRun, MigrationSet, TenantMigrator, lock, tracking};
use crate::unwind::contain;

/// Sees each migration as it runs.
pub trait MigrationObserver: Send + Sync {
    /// A migration starts.
    fn on_migration_started(&self, _migration: &MigrationName, _direction: Direction) {}
    /// A migration finished.
    fn on_migration_finished(&self, _run: &MigrationRun) {}
    /// A migration was not run: another process applied (or rolled back) it meanwhile.
    fn on_migration_skipped(&self, _migration: &MigrationName, _direction: Direction) {}
}

/// Sees nothing.
impl MigrationObserver for () {}

/// A migration that failed; the ones in `completed` ran before it and stay applied.
#[derive(Debug, Clone, thiserror::Error)]
#[error("migration `{migration}` failed: {error}")]
pub struct MigrationFailure {
    /// The failing migration.
    pub migration: MigrationName,
    /// Which way it ran.
    pub direction: Direction,
    /// The database's message.
    pub error: String,
    /// Migrations completed before it in this run.
    pub completed: Vec<MigrationRun>,
}

/// One migration of one migrator, with where it is tracked.
struct Step {
    migrator: Arc<dyn TenantMigrator>,
    migration: Box<dyn MigrationTrait>,
    /// The first migration this run applies with its migrator: it creates the tracking table if
    /// missing (under the lock, so two processes never race to create it).
    installs_tracking: bool,
}

impl Step {
    fn name(&self) -> MigrationName {
        MigrationName { migrator: self.migrator.name().to_owned(), name: self.migration.name().to_owned() }
    }

    fn table(&self) -> String {
        self.migrator.tracking_table()
    }
}

/// The migrators of a set that have migrations, with their tracking tables: a migrator without
/// migrations has nothing to read (and its tracking table never exists, which would make the
/// one-query read fail every time).
struct Sources<'a> {
    migrators: Vec<&'a Arc<dyn TenantMigrator>>,
    tables: Vec<String>,
}

impl<'a> Sources<'a> {
    fn of(set: &'a MigrationSet) -> Self {
        let migrators: Vec<_> = set.migrators().iter().filter(|m| !m.migrations().is_empty()).collect();
        let tables = migrators.iter().map(|m| m.tracking_table()).collect();
        Self { migrators, tables }
    }

    /// Splits the migrations into applied and pending (in apply order) by what the tracking tables
    /// recorded, one map per table of [`Sources::tables`].
    fn plan(&self, recorded: Vec<HashMap<String, i64>>) -> Plan {
        let mut plan = Plan { applied: Vec::new(), pending: Vec::new() };
        for (migrator, done) in self.migrators.iter().zip(recorded) {
            for migration in migrator.migrations() {
                let step = Step { migrator: Arc::clone(migrator), migration, installs_tracking: false };
                if done.contains_key(step.migration.name()) { plan.applied.push(step) } else { plan.pending.push(step) }
            }
        }
        plan
    }

    /// Whether all of them may run in one transaction on `backend`: DDL must roll back with it
    /// (not MySQL), and no migration may have opted out of transactions.
    fn fit_one_transaction(&self, backend: DbBackend) -> bool {
        backend != DbBackend::MySql
            && self.migrators.iter().all(|m| m.migrations().iter().all(|migration| migration.use_transaction() != Some(false)))
    }
}

struct Plan {
    applied: Vec<Step>,
    pending: Vec<Step>,
}

/// Reads every tracking table once and splits the migrations into applied and pending, in apply order.
async fn plan(db: &DatabaseConnection, sources: &Sources<'_>) -> Result<Plan, DbErr> {
    Ok(sources.plan(tracking::applied(db, &sources.tables).await?))
}

/// Names of the pending migrations, in apply order. Never writes.
///
/// # Errors
/// When a tracking table cannot be read.
pub async fn pending(db: &DatabaseConnection, set: &MigrationSet) -> Result<Vec<MigrationName>, DbErr> {
    Ok(plan(db, &Sources::of(set)).await?.pending.iter().map(Step::name).collect())
}

/// Applies every pending migration, core's first.
///
/// A database with no migration applied yet (a new tenant) gets them all in one transaction,
/// where the backend rolls DDL back with it (PostgreSQL, SQLite) and no migration opts out of
/// transactions: all or nothing, one commit, one lock. A database that has migrations applied
/// gets one transaction per pending migration, so a failure keeps the ones before it.
///
/// # Errors
/// [`MigrationFailure`] at the first migration that fails; the ones before it stay applied, except
/// on a new database migrated in one transaction, where nothing stays (`completed` is empty).
pub async fn migrate(
    db: &DatabaseConnection,
    set: &MigrationSet,
    meter: Option<&dyn AllocationMeter>,
    observer: &dyn MigrationObserver,
) -> Result<Vec<MigrationRun>, MigrationFailure> {
    let sources = Sources::of(set);
    // One query answers the usual question (is anything pending?); it fails when a tracking table
    // is missing, which is what a new database looks like.
    let quick = tracking::applied_in_one_query(db, &sources.tables).await.ok().map(|recorded| sources.plan(recorded));
    let plan = match quick {
        Some(plan) if plan.pending.is_empty() => return Ok(Vec::new()),
        Some(plan) if !plan.applied.is_empty() => plan,
        _ if sources.fit_one_transaction(db.get_database_backend()) => match in_one_transaction(db, &sources, meter, observer).await? {
            OneTransaction::Applied(runs) => return Ok(runs),
            OneTransaction::NotNew(plan) => plan,
        },
        Some(plan) => plan,
        None => plan(db, &sources).await.map_err(|err| failed_outside_a_migration(READING, &err))?,
    };
    one_transaction_each(db, plan.pending, meter, observer).await
}

/// [`migrate`] for a database just created (by provisioning): it skips reading the tracking
/// tables outside the transaction, which on a new database could only find them missing.
///
/// # Errors
/// As [`migrate`].
pub async fn migrate_new_database(
    db: &DatabaseConnection,
    set: &MigrationSet,
    meter: Option<&dyn AllocationMeter>,
    observer: &dyn MigrationObserver,
) -> Result<Vec<MigrationRun>, MigrationFailure> {
    let sources = Sources::of(set);
    if !sources.fit_one_transaction(db.get_database_backend()) {
        return migrate(db, set, meter, observer).await;
    }
    match in_one_transaction(db, &sources, meter, observer).await? {
        OneTransaction::Applied(runs) => Ok(runs),
        OneTransaction::NotNew(plan) => one_transaction_each(db, plan.pending, meter, observer).await,
    }
}

/// How [`in_one_transaction`] ended.
enum OneTransaction {
    /// Every migration is applied and committed.
    Applied(Vec<MigrationRun>),
    /// Read under the lock, the database turned out to have migrations applied (another process
    /// got there first): nothing was done, and this is what is left to do.
    NotNew(Plan),
}

/// Applies every migration of a database that has none applied, in one transaction with their
/// tracking rows, holding the tenant's migration lock. The migrations are reported finished only
/// once the commit succeeded.
async fn in_one_transaction(
    db: &DatabaseConnection,
    sources: &Sources<'_>,
    meter: Option<&dyn AllocationMeter>,
    observer: &dyn MigrationObserver,
) -> Result<OneTransaction, MigrationFailure> {
    let outside = |what: &'static str| move |err: DbErr| failed_outside_a_migration(what, &err);
    // SQLite's lock is a file, taken before the transaction (see `run_locked`).
    let lock_file = match db.get_database_backend() {
        DbBackend::Sqlite => Some(lock::LockFile::open(db).await.map_err(outside(LOCKING))?),
        _ => None,
    };
    let _file_held = match &lock_file {
        Some(file) => Some(file.lock().await.map_err(outside(LOCKING))?),
        None => None,
    };
    let txn = db.begin().await.map_err(outside(BEGINNING))?;
    if lock_file.is_none() {
        let _released_by_commit = lock::acquire(&txn, lock::Scope::Transaction).await.map_err(outside(LOCKING))?;
    }
    let plan = sources.plan(tracking::applied_checking_catalog(&txn, &sources.tables).await.map_err(outside(READING))?);
    if !plan.applied.is_empty() || plan.pending.is_empty() {
        txn.commit().await.map_err(outside(READING))?;
        return Ok(OneTransaction::NotNew(plan));
    }
    let mut installed: Vec<String> = Vec::new();
    let mut runs = Vec::with_capacity(plan.pending.len());
    for step in &plan.pending {
        let name = step.name();
        observer.on_migration_started(&name, Direction::Up);
        let started = Instant::now();
        let table = step.table();
        let install = !installed.contains(&table);
        let apply = async {
            if install {
                tracking::install(&txn, &table).await?;
            }
            step.migration.up(&SchemaManager::new(&txn)).await?;
            tracking::record(&txn, &table, step.migration.name()).await
        };
        let (result, allocated_bytes) = metered(meter, contain(apply)).await;
        if let Err(err) = result.unwrap_or_else(|panicked| Err(DbErr::Custom(panicked.to_string()))) {
            // Nothing of this database's migrations stays: the rollback takes every one with it.
            let _ = txn.rollback().await;
            return Err(failure(step, Direction::Up, &err, &[]));
        }
        if install {
            installed.push(table);
        }
        runs.push(MigrationRun { migration: name, direction: Direction::Up, elapsed: started.elapsed(), allocated_bytes });
    }
    txn.commit().await.map_err(outside(COMMITTING))?;
    for run in &runs {
        finished(observer, run);
    }
    Ok(OneTransaction::Applied(runs))
}

/// Applies `pending` in order, each in a transaction of its own.
async fn one_transaction_each(
    db: &DatabaseConnection,
    pending: Vec<Step>,
    meter: Option<&dyn AllocationMeter>,
    observer: &dyn MigrationObserver,
) -> Result<Vec<MigrationRun>, MigrationFailure> {
    let lock = MigrationLock::open(db).await.map_err(|err| failed_outside_a_migration(LOCKING, &err))?;
    let mut runs = Vec::with_capacity(pending.len());
    let mut installed: Vec<String> = Vec::new();
    for mut step in pending {
        let table = step.table();
        step.installs_tracking = !installed.contains(&table);
        if step.installs_tracking {
            installed.push(table);
        }
        let ran = run(db, &lock, &step, Direction::Up, meter, observer).await;
        runs.extend(ran.map_err(|err| failure(&step, Direction::Up, &err, &runs))?);
    }
    Ok(runs)
}

/// Rolls back the last `steps` applied migrations (all of them with `None`), the application's
/// newest first, core's last.
///
/// # Errors
/// [`MigrationFailure`] at the first `down` that fails.
pub async fn rollback(
    db: &DatabaseConnection,
    set: &MigrationSet,
    steps: Option<usize>,
    meter: Option<&dyn AllocationMeter>,
    observer: &dyn MigrationObserver,
) -> Result<Vec<MigrationRun>, MigrationFailure> {
    let applied = plan(db, &Sources::of(set)).await.map_err(|err| failed_outside_a_migration(READING, &err))?.applied;
    let lock = MigrationLock::open(db).await.map_err(|err| failed_outside_a_migration(LOCKING, &err))?;
    let mut runs = Vec::new();
    for step in applied.into_iter().rev().take(steps.unwrap_or(usize::MAX)) {
        let ran = run(db, &lock, &step, Direction::Down, meter, observer).await;
        runs.extend(ran.map_err(|err| failure(&step, Direction::Down, &err, &runs))?);
    }
    Ok(runs)
}

/// How a run over one tenant database takes its migration lock.
enum MigrationLock {
    /// A server lock (PostgreSQL, MySQL), taken on a connection for each migration.
    Server,
    /// SQLite's lock file, opened once for the run.
    File(lock::LockFile),
}

impl MigrationLock {
    async fn open(db: &DatabaseConnection) -> Result<Self, DbErr> {
        match db.get_database_backend() {
            DbBackend::Sqlite => Ok(Self::File(lock::LockFile::open(db).await?)),
            _ => Ok(Self::Server),
        }
    }
}

/// Runs one migration; `None` if another process did it meanwhile.
async fn run(
    db: &DatabaseConnection,
    lock: &MigrationLock,
    step: &Step,
    direction: Direction,
    meter: Option<&dyn AllocationMeter>,
    observer: &dyn MigrationObserver,
) -> Result<Option<MigrationRun>, DbErr> {
    let name = step.name();
    observer.on_migration_started(&name, direction);
    let started = Instant::now();
    let (result, allocated_bytes) = metered(meter, contain(run_locked(db, lock, step, direction))).await;
    if !result.map_err(|panicked| DbErr::Custom(panicked.to_string()))?? {
        observer.on_migration_skipped(&name, direction);
        return Ok(None);
    }
    let run = MigrationRun { migration: name, direction, elapsed: started.elapsed(), allocated_bytes };
    finished(observer, &run);
    Ok(Some(run))
}

/// Runs `step` holding the tenant's migration lock; says whether it ran.
async fn run_locked(db: &DatabaseConnection, lock: &MigrationLock, step: &Step, direction: Direction) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    // SQLite and PostgreSQL roll DDL back with the transaction; on SQLite it also makes the
    // migration one commit instead of one per statement.
    let transactional = step.migration.use_transaction().unwrap_or(backend != DbBackend::MySql);
    // SQLite's lock is a file, taken before the transaction: one that had read before waiting
    // would hold a stale snapshot and be refused its first write. Released after the commit.
    let file_held = match lock {
        MigrationLock::File(file) => Some(file.lock().await?),
        MigrationLock::Server => None,
    };
    if transactional {
        let txn = db.begin().await?;
        let held = match file_held {
            Some(_) => None,
            None => Some(lock::acquire(&txn, lock::Scope::Transaction).await?),
        };
        let ran = apply_unless_done(&SchemaManager::new(&txn), step, direction).await?;
        if let Some(held) = held {
            lock::release(&txn, held).await?;
        }
        txn.commit().await?;
        return Ok(ran);
    }
    if file_held.is_some() {
        return apply_unless_done(&SchemaManager::new(db), step, direction).await;
    }
    // A session lock needs one connection for taking and giving it back: a transaction pins one
    // (its DDL commits implicitly on MySQL, which runs the migration on it too).
    let pinned = db.begin().await?;
    let held = lock::acquire(&pinned, lock::Scope::Session).await?;
    let ran = match backend {
        DbBackend::MySql => apply_unless_done(&SchemaManager::new(&pinned), step, direction).await,
        _ => apply_unless_done(&SchemaManager::new(db), step, direction).await,
    };
    lock::release(&pinned, held).await?;
    pinned.commit().await?;
    ran
}

/// Applies (or rolls back) `step` with its tracking row, unless the tracking table says it is
/// already done; says whether it ran.
async fn apply_unless_done(manager: &SchemaManager<'_>, step: &Step, direction: Direction) -> Result<bool, DbErr> {
    let db = manager.get_connection();
    let table = step.table();
    let version = step.migration.name();
    if step.installs_tracking {
        tracking::install(db, &table).await?;
    }
    if tracking::is_recorded(db, &table, version).await? == (direction == Direction::Up) {
        return Ok(false);
    }
    match direction {
        Direction::Up => {
            step.migration.up(manager).await?;
            tracking::record(db, &table, version).await?;
        }
        Direction::Down => {
            step.migration.down(manager).await?;
            tracking::forget(db, &table, version).await?;
        }
    }
    Ok(true)
}

/// Tells the observer and the metrics that `run` is done.
fn finished(observer: &dyn MigrationObserver, run: &MigrationRun) {
    let direction = match run.direction {
        Direction::Up => "up",
        Direction::Down => "down",
    };
    crate::metrics::migration_ran(direction, run.elapsed);
    observer.on_migration_finished(run);
}

fn failure(step: &Step, direction: Direction, err: &DbErr, completed: &[MigrationRun]) -> MigrationFailure {
    crate::metrics::migration_failed();
    MigrationFailure { migration: step.name(), direction, error: explained(err), completed: completed.to_vec() }
}

/// The driver's message, scrubbed; a refusal of rights says why a migration may have met one.
fn explained(err: &DbErr) -> String {
    let message = crate::secret::scrub(&err.to_string());
    // PostgreSQL's 42501 says "permission denied"; MySQL's 1044, 1142 and 1227 say "denied".
    if message.contains("permission denied") || message.contains("command denied") || message.contains("Access denied") {
        return format!(
            "{message} (with `tenant_database.roles = \"per_tenant\"` migrations run as the tenant's own role, which owns its database and reaches nothing else: what needs more, such as `CREATE EXTENSION`, must be done by the server's user, in the template database or by hand)"
        );
    }
    message
}

/// What was being done when a failure happened outside any one migration, shown where a
/// migration's name would be.
const READING: &str = "(reading the tracking tables)";
const LOCKING: &str = "(taking the migration lock)";
const BEGINNING: &str = "(starting the new database's transaction)";
const COMMITTING: &str = "(committing the new database's migrations)";

fn failed_outside_a_migration(what: &str, err: &DbErr) -> MigrationFailure {
    MigrationFailure {
        migration: MigrationName { migrator: "tenancy".into(), name: what.into() },
        direction: Direction::Up,
        error: explained(err),
        completed: Vec::new(),
    }
}

/// What a pending migration would run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PretendedMigration {
    /// Which.
    pub migration: MigrationName,
    /// Its SQL statements, or why they cannot be shown without running it.
    pub statements: Result<Vec<String>, String>,
}

/// The SQL of every pending migration, found by running each against a recording mock connection:
/// nothing is sent to the tenant database except the read of its tracking tables.
///
/// # Errors
/// When a tracking table cannot be read.
pub async fn pretend(db: &DatabaseConnection, set: &MigrationSet) -> Result<Vec<PretendedMigration>, DbErr> {
    let backend = db.get_database_backend();
    let pending = plan(db, &Sources::of(set)).await?.pending;
    let mut pretended = Vec::with_capacity(pending.len());
    for step in pending {
        let statements = statements_of(step.migration.as_ref(), backend).await;
        pretended.push(PretendedMigration { migration: step.name(), statements });
    }
    Ok(pretended)
}

/// The SQL `migration.up` sends on `backend`, recorded by running it against a mock connection.
///
/// # Errors
/// A message saying why, when the migration needs answers from a real database.
pub async fn statements_of(migration: &dyn MigrationTrait, backend: DbBackend) -> Result<Vec<String>, String> {
    let recorder =
        MockDatabase::new(backend).append_exec_results(std::iter::repeat_with(MockExecResult::default).take(1024)).into_connection();
    match migration.up(&SchemaManager::new(&recorder)).await {
        Ok(()) => Ok(recorder.into_transaction_log().iter().flat_map(|txn| txn.statements().iter().map(ToString::to_string)).collect()),
        Err(err) => Err(format!("it reads the database while running, so its SQL cannot be shown without running it ({err})")),
    }
}
