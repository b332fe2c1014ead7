//! Running migrations on one tenant database: apply what is pending, roll back, or show the SQL
//! that would run. Each migration runs in its own transaction (MySQL commits DDL implicitly, so
//! there it runs without one, as sea-orm-migration does) together with its tracking row, so a
//! migration reported as applied is committed, and a failed one leaves the earlier ones applied.
//! Each runs holding the tenant's migration lock ([`super::lock`]) and only if its tracking row
//! still says it is to be done: a second process migrating the same tenant waits, then skips what
//! the first one applied.

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
}

/// Reads every tracking table once and splits the migrations into applied and pending, in apply order.
async fn plan(db: &DatabaseConnection, set: &MigrationSet) -> Result<(Vec<Step>, Vec<Step>), DbErr> {
    let (mut applied, mut pending) = (Vec::new(), Vec::new());
    let tables: Vec<String> = set.migrators().iter().map(|m| m.tracking_table()).collect();
    let recorded = tracking::applied(db, &tables).await?;
    for (migrator, done) in set.migrators().iter().zip(recorded) {
        for migration in migrator.migrations() {
            let step = Step { migrator: migrator.clone(), migration, installs_tracking: false };
            if done.contains_key(step.migration.name()) { applied.push(step) } else { pending.push(step) }
        }
    }
    Ok((applied, pending))
}

/// Names of the pending migrations, in apply order. Never writes.
///
/// # Errors
/// When a tracking table cannot be read.
pub async fn pending(db: &DatabaseConnection, set: &MigrationSet) -> Result<Vec<MigrationName>, DbErr> {
    Ok(plan(db, set).await?.1.iter().map(Step::name).collect())
}

/// Applies every pending migration, core's first, one at a time.
///
/// # Errors
/// [`MigrationFailure`] at the first migration that fails; the ones before it stay applied.
pub async fn migrate(
    db: &DatabaseConnection,
    set: &MigrationSet,
    meter: Option<&dyn AllocationMeter>,
    observer: &dyn MigrationObserver,
) -> Result<Vec<MigrationRun>, MigrationFailure> {
    let (_, pending) = plan(db, set).await.map_err(|err| reading_failed(&err))?;
    let mut runs = Vec::with_capacity(pending.len());
    let mut installed: Vec<String> = Vec::new();
    for mut step in pending {
        let table = step.migrator.tracking_table();
        step.installs_tracking = !installed.contains(&table);
        if step.installs_tracking {
            installed.push(table);
        }
        runs.extend(run(db, &step, Direction::Up, meter, observer).await.map_err(|err| failure(&step, Direction::Up, &err, &runs))?);
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
    let (applied, _) = plan(db, set).await.map_err(|err| reading_failed(&err))?;
    let mut runs = Vec::new();
    for step in applied.into_iter().rev().take(steps.unwrap_or(usize::MAX)) {
        runs.extend(run(db, &step, Direction::Down, meter, observer).await.map_err(|err| failure(&step, Direction::Down, &err, &runs))?);
    }
    Ok(runs)
}

/// Runs one migration; `None` if another process did it meanwhile.
async fn run(
    db: &DatabaseConnection,
    step: &Step,
    direction: Direction,
    meter: Option<&dyn AllocationMeter>,
    observer: &dyn MigrationObserver,
) -> Result<Option<MigrationRun>, DbErr> {
    let name = step.name();
    observer.on_migration_started(&name, direction);
    let started = Instant::now();
    let (result, allocated_bytes) = metered(meter, contain(run_locked(db, step, direction))).await;
    if !result.map_err(|panicked| DbErr::Custom(panicked.to_string()))?? {
        observer.on_migration_skipped(&name, direction);
        return Ok(None);
    }
    let run = MigrationRun { migration: name, direction, elapsed: started.elapsed(), allocated_bytes };
    observer.on_migration_finished(&run);
    Ok(Some(run))
}

/// Runs `step` holding the tenant's migration lock; says whether it ran.
async fn run_locked(db: &DatabaseConnection, step: &Step, direction: Direction) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    // SQLite and PostgreSQL roll DDL back with the transaction; on SQLite it also makes the
    // migration one commit instead of one per statement.
    let transactional = step.migration.use_transaction().unwrap_or(backend != DbBackend::MySql);
    // SQLite's lock is a file, taken before the transaction: one that had read before waiting
    // would hold a stale snapshot and be refused its first write. Released after the commit.
    let file_lock = match backend {
        DbBackend::Sqlite => Some(lock::acquire(db, lock::Scope::Session).await?),
        _ => None,
    };
    if transactional {
        let txn = db.begin().await?;
        let held = match file_lock {
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
    if file_lock.is_some() {
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
    let table = step.migrator.tracking_table();
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

fn failure(step: &Step, direction: Direction, err: &DbErr, completed: &[MigrationRun]) -> MigrationFailure {
    MigrationFailure { migration: step.name(), direction, error: crate::secret::scrub(&err.to_string()), completed: completed.to_vec() }
}

fn reading_failed(err: &DbErr) -> MigrationFailure {
    MigrationFailure {
        migration: MigrationName { migrator: "tenancy".into(), name: "(reading the tracking tables)".into() },
        direction: Direction::Up,
        error: crate::secret::scrub(&err.to_string()),
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
    let (_, pending) = plan(db, set).await?;
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
