//! Moving a tenant to another database server (`tenancy tenant move T --to SERVER`): a state
//! machine recorded in the registry, so that a move interrupted at any step is resumed by the next
//! run (or undone by `--abort`), and the tenant is always served from exactly one place.
//!
//! The steps, each recorded once done:
//!
//! 1. **started**: the move is recorded (one per tenant: the registry's primary key).
//! 2. **down**: the tenant is down for maintenance (unless its operator had it down already), and
//!    every serving process has had one registry poll to see it: no request or job touches it.
//! 3. **copied**: its database is copied to the target server by the [`TenantCopier`] (the backup
//!    plugin's: a verified backup restored there), then checked: the same tables with the same
//!    row counts, and the same applied migrations, on both sides. A copy left by an interrupted
//!    run is dropped and made again; a check that fails drops it and stops.
//! 4. **switched**: the tenant's server is the target, in one registry transaction with this step;
//!    the change counter tells every process, whose pools follow the tenant's server.
//! 5. **done**: the tenant is up again (if the move took it down). The source database is kept
//!    until `tenant move --cleanup` drops it (and forgets the move).
//!
//! Before the switch the tenant's data is on its source server and the registry says so; after
//! it, on the target and the registry says that. `--abort` before the switch drops the copy and
//! brings the tenant up; after it, a move back is another move.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::maintenance::{Maintenance, MaintenanceOrigin};
use crate::migrate::fleet::error_chain;
use crate::registry::RegistryError;
use crate::{BoxError, Tenancy, Tenant, TenantId};

/// Where a move stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveStep {
    /// Recorded; nothing done yet.
    Started,
    /// The tenant is down for maintenance.
    Down,
    /// Its database is on the target server too, checked equal.
    Copied,
    /// The registry points it at the target server.
    Switched,
    /// It is up again; its old database is kept until `--cleanup`.
    Done,
}

impl MoveStep {
    const ALL: [MoveStep; 5] = [Self::Started, Self::Down, Self::Copied, Self::Switched, Self::Done];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Down => "down",
            Self::Copied => "copied",
            Self::Switched => "switched",
            Self::Done => "done",
        }
    }
}

impl fmt::Display for MoveStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MoveStep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|step| step.as_str() == s).ok_or_else(|| format!("unknown move step `{s}`"))
    }
}

/// A move as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MoveRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The server it moves from.
    pub from: String,
    /// The server it moves to.
    pub to: String,
    /// The last step done.
    pub step: MoveStep,
    /// Whether the move took it down (and so brings it up).
    pub down_by_move: bool,
    /// When the move started.
    pub started_at: DateTime<Utc>,
    /// Until when its old database is kept; `None`: until `tenant move --cleanup`.
    pub keep_source_until: Option<DateTime<Utc>>,
}

/// Copies a tenant's database to another server: the backup plugin's, as a backup restored.
#[async_trait]
pub trait TenantCopier: Send + Sync {
    /// Copies the database of `tenant` (on its server) into `target`'s database, which exists and
    /// is empty (`target` is the tenant with its server changed). Returns a line saying how
    /// ("backup 20261203-… restored, 12.1 MiB").
    async fn copy(&self, tenancy: &Tenancy, tenant: &Tenant, target: &Tenant) -> Result<String, BoxError>;
}

/// Why a move could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The request itself is wrong: an unknown or closed server, the tenant's own server.
    #[error("{0}")]
    Refused(String),
    /// Another move of the tenant is under way.
    #[error("tenant {tenant} is being moved to `{to}` already: run `tenancy tenant move {id} --to {to}` to finish it, or `--abort`")]
    OtherMove {
        /// The tenant.
        tenant: String,
        /// Its id.
        id: TenantId,
        /// Where that move goes.
        to: String,
    },
    /// No copier: the binary has no backup plugin.
    #[error("moving a tenant copies its database with the backup plugin, which this binary does not have")]
    NoCopier,
    /// A step failed; the move stays recorded at the step before it.
    #[error("moving tenant {tenant} to `{to}` failed at step `{step}`: {reason}")]
    Step {
        /// The tenant.
        tenant: String,
        /// The target server.
        to: String,
        /// The step that failed.
        step: &'static str,
        /// Why.
        reason: String,
    },
    /// The registry could not be read or written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl MoveError {
    /// A mistake in the command, not a failure of the operation.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Refused(_))
    }
}

/// Told of each step as it ends: its name, what it did, how long it took.
pub trait MoveReporter: Send + Sync {
    /// A step is done.
    fn on_step(&self, step: &str, detail: &str, elapsed: Duration);
}

impl MoveReporter for () {
    fn on_step(&self, _step: &str, _detail: &str, _elapsed: Duration) {}
}

/// How a move goes.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// Keep the old database this long after the move; `None`: until [`Tenancy::clean_up_moves`].
    pub keep_source_for: Option<Duration>,
    /// How long to wait, once the tenant is down, for sessions still busy in its database (a
    /// request or job that began before it went down) before the copy gives up.
    pub wait_for_sessions: Duration,
}

impl Default for MoveOptions {
    fn default() -> Self {
        Self { keep_source_for: None, wait_for_sessions: Duration::from_secs(30) }
    }
}

/// What a table-by-table look at a tenant's database found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Census {
    rows: BTreeMap<String, u64>,
    migrations: Vec<String>,
}

impl Tenancy {
    /// Moves `tenant` to the server `to`, or resumes its recorded move there. Returns the move as
    /// it ended (`done`, the source kept until [`Tenancy::clean_up_moves`]).
    ///
    /// # Errors
    /// [`MoveError`]; a failed step leaves the move recorded where it stood, and the tenant served
    /// from its source (before the switch) or its target (after): run it again, or abort it.
    pub async fn move_tenant(
        &self,
        tenant: &Tenant,
        to: &str,
        options: &MoveOptions,
        reporter: &dyn MoveReporter,
    ) -> Result<MoveRecord, MoveError> {
        let copier = self.tenant_copier().cloned().ok_or(MoveError::NoCopier)?;
        let mut record = match self.registry().move_of(&tenant.id).await? {
            Some(record) if record.step == MoveStep::Done => {
                let kept = match record.keep_source_until {
                    Some(until) if until > Utc::now() => format!("is kept until {}", until.format("%Y-%m-%d %H:%M UTC")),
                    _ => "waits for `tenancy tenant move --cleanup`".to_owned(),
                };
                return Err(MoveError::Refused(format!(
                    "tenant {tenant} was moved to `{}`, and its old database on `{}` {kept}: it moves again once that is dropped",
                    record.to, record.from
                )));
            }
            Some(record) if record.to != to => {
                return Err(MoveError::OtherMove { tenant: tenant.to_string(), id: tenant.id, to: record.to });
            }
            Some(record) => record,
            None => {
                self.check_move(tenant, to).await?;
                let started = Instant::now();
                let keep_until =
                    options.keep_source_for.map(|keep| Utc::now() + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX));
                let record = self.registry().start_move(&tenant.id, &tenant.server, to, keep_until).await?;
                reporter.on_step("start", &format!("from `{}` to `{to}`", tenant.server), started.elapsed());
                record
            }
        };
        let fail = |step: &'static str, reason: String| MoveError::Step { tenant: tenant.to_string(), to: to.to_owned(), step, reason };
        if record.step == MoveStep::Started {
            let started = Instant::now();
            record.down_by_move = self.take_down_for_move(tenant).await.map_err(|err| fail("down", error_chain(&*err)))?;
            self.registry().set_move_step(&tenant.id, MoveStep::Down, record.down_by_move).await?;
            record.step = MoveStep::Down;
            let detail = if record.down_by_move { "for maintenance, seen by every serving process" } else { "already, by its operator" };
            reporter.on_step("down", detail, started.elapsed());
        }
        if record.step == MoveStep::Down {
            // Every time before a copy, resumed or not: the old copy must no longer change.
            let started = Instant::now();
            let waited = self.wait_for_sessions(tenant, &record.from, options.wait_for_sessions).await.map_err(|err| fail("quiet", err))?;
            reporter.on_step("quiet", &waited, started.elapsed());
            let started = Instant::now();
            let detail = self.copy_checked(copier.as_ref(), tenant, &record).await.map_err(|err| fail("copy", error_chain(&*err)))?;
            self.registry().set_move_step(&tenant.id, MoveStep::Copied, record.down_by_move).await?;
            record.step = MoveStep::Copied;
            reporter.on_step("copy", &detail, started.elapsed());
        }
        if record.step == MoveStep::Copied {
            let started = Instant::now();
            self.registry().switch_server(&tenant.id, &record.from, &record.to).await.map_err(|err| fail("switch", error_chain(&err)))?;
            record.step = MoveStep::Switched;
            // This process's pool points at the old database: closed now; others reopen theirs
            // when they see the tenant's new server.
            self.connections().close(&tenant.id).await;
            reporter.on_step("switch", &format!("served from `{}`", record.to), started.elapsed());
        }
        if record.step == MoveStep::Switched {
            let started = Instant::now();
            if record.down_by_move {
                self.registry().set_maintenance(&tenant.id, None).await.map_err(|err| fail("up", error_chain(&err)))?;
            }
            self.registry().set_move_step(&tenant.id, MoveStep::Done, record.down_by_move).await?;
            record.step = MoveStep::Done;
            let detail = if record.down_by_move { "serving again" } else { "left down, as its operator had it" };
            reporter.on_step("up", detail, started.elapsed());
        }
        // `--keep-source-for 0`: nothing to keep.
        if record.keep_source_until.is_some_and(|until| until <= Utc::now()) {
            let started = Instant::now();
            self.drop_source(&record).await.map_err(|err| fail("drop the old database", error_chain(&*err)))?;
            reporter.on_step("cleanup", &format!("the old database on `{}` dropped", record.from), started.elapsed());
        }
        Ok(record)
    }

    /// Refuses a move nothing could carry out: to the tenant's own server, or to one that is not
    /// configured or takes no tenants.
    async fn check_move(&self, tenant: &Tenant, to: &str) -> Result<(), MoveError> {
        if tenant.server == to {
            return Err(MoveError::Refused(format!("tenant {tenant} is on server `{to}` already")));
        }
        let configured = self.config().server_names();
        if self.config().tenant_database.servers.is_empty() || !configured.iter().any(|name| name == to) {
            return Err(MoveError::Refused(format!(
                "no server named `{}` in `tenant_database.servers` (configured: {})",
                to.escape_debug(),
                configured.join(", ")
            )));
        }
        let state = self.registry().server_state(to).await?;
        if !state.takes_new_tenants() {
            return Err(MoveError::Refused(format!("server `{to}` is {state} and takes no tenants (`tenancy server activate {to}`)")));
        }
        Ok(())
    }

    /// Takes `tenant` down, unless it is down already; whether it did. Waits one registry poll,
    /// so no serving process still lets requests (or jobs) through.
    async fn take_down_for_move(&self, tenant: &Tenant) -> Result<bool, BoxError> {
        let current = self.registry().require(&tenant.id).await?;
        match current.maintenance.map(|m| m.origin) {
            Some(MaintenanceOrigin::Move) => Ok(true),
            Some(_) => Ok(false),
            None => {
                self.registry().set_maintenance(&tenant.id, Some(&Maintenance::new(MaintenanceOrigin::Move))).await?;
                tokio::time::sleep(Duration::from_millis(self.config().web.change_poll_millis)).await;
                Ok(true)
            }
        }
    }

    /// Waits until no other session is busy in the tenant's database on `server` (the engine's
    /// view: running a statement or holding a transaction), polling, for at most `patience`.
    /// Returns what it saw; engines that cannot tell (SQLite) are not waited for.
    async fn wait_for_sessions(&self, tenant: &Tenant, server: &str, patience: Duration) -> Result<String, String> {
        const POLL: Duration = Duration::from_millis(100);
        let manager = self.manager_on(server).map_err(|err| err.to_string())?;
        let started = Instant::now();
        loop {
            match manager.busy_sessions(&tenant.database).await.map_err(|err| error_chain(&err))? {
                None => return Ok("its engine shows no sessions; one registry poll was waited".to_owned()),
                Some(0) => return Ok("no session busy in its database".to_owned()),
                Some(busy) if started.elapsed() >= patience => {
                    return Err(format!(
                        "{busy} session(s) still busy in its database after {:.1}s (a request or job that began before it went down, or a session of another program); the tenant stays down: run the move again, or --abort",
                        patience.as_secs_f64()
                    ));
                }
                Some(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Copies the tenant's database to the move's target (afresh: a copy an interrupted run left
    /// there is dropped first) and checks it against the source; a copy that differs is dropped.
    async fn copy_checked(&self, copier: &dyn TenantCopier, tenant: &Tenant, record: &MoveRecord) -> Result<String, BoxError> {
        let target = Tenant { server: record.to.clone(), ..tenant.clone() };
        let target_manager = self.manager_on(&record.to)?.clone();
        target_manager.drop_database(&tenant.database).await?;
        target_manager.create_database(&tenant.database).await?;
        let copied = async {
            let source = Tenant { server: record.from.clone(), ..tenant.clone() };
            let before = self.census(&source).await?;
            let detail = copier.copy(self, &source, &target).await?;
            let after = self.census(&target).await?;
            if before != after {
                return Err(format!("the copy differs from the source: {}", difference(&before, &after)).into());
            }
            let rows: u64 = after.rows.values().sum();
            // The copy was made by the server's user: the tenant's role there takes it over.
            self.give_to_role(tenant, Some(&record.to)).await?;
            Ok::<_, BoxError>(format!("{detail}; checked: {} tables, {rows} rows, {} migrations", after.rows.len(), after.migrations.len()))
        }
        .await;
        if copied.is_err()
            && let Err(err) = self.drop_tenant_database(target_manager.as_ref(), &tenant.database).await
        {
            tracing::warn!(tenant = %tenant, error = %err, "could not drop the failed copy; the next run drops it");
        }
        copied
    }

    /// Every table's rows and the applied migrations of `tenant`'s database on its server, read
    /// on a connection of its own.
    async fn census(&self, tenant: &Tenant) -> Result<Census, BoxError> {
        let db = self.manager_of(tenant)?.open_sized(&tenant.database, None, 1).await?;
        let census = async {
            let rows = crate::migrate::stats::count_rows(&db).await?;
            let migrations = crate::migrate::status::read(&db, self.migrations()).await?.applied_names();
            Ok::<_, BoxError>(Census { rows, migrations })
        }
        .await;
        let _ = db.close().await;
        census
    }

    /// Stops the recorded move of `tenant` if it has not switched yet: drops the copy on the
    /// target, brings the tenant up (if the move took it down) and forgets the move.
    ///
    /// # Errors
    /// [`MoveError::Refused`] when there is no move, or it has switched already (a move back is
    /// another move).
    pub async fn abort_move(&self, tenant: &Tenant) -> Result<MoveRecord, MoveError> {
        let Some(record) = self.registry().move_of(&tenant.id).await? else {
            return Err(MoveError::Refused(format!("tenant {tenant} is not being moved")));
        };
        if matches!(record.step, MoveStep::Switched | MoveStep::Done) {
            return Err(MoveError::Refused(format!(
                "tenant {tenant} is served from `{}` already; to go back, `tenancy tenant move {} --to {}` (after `--cleanup`)",
                record.to, tenant.id, record.from
            )));
        }
        let fail = |step: &'static str, reason: String| MoveError::Step { tenant: tenant.to_string(), to: record.to.clone(), step, reason };
        let manager = self.manager_on(&record.to).map_err(|err| fail("abort", error_chain(&err)))?;
        self.drop_tenant_database(manager.as_ref(), &tenant.database).await.map_err(|err| fail("abort", error_chain(&err)))?;
        if record.down_by_move {
            self.registry().set_maintenance(&tenant.id, None).await?;
        }
        self.registry().delete_move(&tenant.id).await?;
        Ok(record)
    }

    /// Drops the old database of every finished move whose keeping time is over (or that has
    /// none: kept until this is asked for), on the server it moved from and only while the tenant
    /// is recorded elsewhere, and forgets the move. Returns the moves cleaned up, and those that
    /// could not be, with why; moves still kept are left out.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn clean_up_moves(&self) -> Result<(Vec<MoveRecord>, Vec<(MoveRecord, String)>), MoveError> {
        let (mut cleaned, mut failed) = (Vec::new(), Vec::new());
        let now = Utc::now();
        for record in self.registry().moves().await? {
            if record.step != MoveStep::Done || record.keep_source_until.is_some_and(|until| until > now) {
                continue;
            }
            match self.drop_source(&record).await {
                Ok(()) => cleaned.push(record),
                Err(err) => failed.push((record, error_chain(&*err))),
            }
        }
        Ok((cleaned, failed))
    }

    /// Drops the old database of a finished move and forgets the move; never the database the
    /// tenant is served from.
    async fn drop_source(&self, record: &MoveRecord) -> Result<(), BoxError> {
        let tenant = self.registry().require(&record.tenant).await?;
        if tenant.server == record.from {
            return Err(format!("tenant {tenant} is on `{}` again; its database there is kept", record.from).into());
        }
        self.drop_tenant_database(self.manager_on(&record.from)?.as_ref(), &tenant.database).await?;
        self.registry().delete_move(&record.tenant).await?;
        Ok(())
    }
}

/// The first few ways `after` differs from `before`, for the message.
fn difference(before: &Census, after: &Census) -> String {
    let mut found = Vec::new();
    for (table, rows) in &before.rows {
        match after.rows.get(table) {
            None => found.push(format!("table `{table}` is missing")),
            Some(copied) if copied != rows => found.push(format!("`{table}` has {copied} rows, the source {rows}")),
            Some(_) => {}
        }
    }
    found.extend(after.rows.keys().filter(|table| !before.rows.contains_key(*table)).map(|table| format!("table `{table}` is extra")));
    if before.migrations != after.migrations {
        found.push(format!("{} migrations applied, the source {}", after.migrations.len(), before.migrations.len()));
    }
    found.truncate(5);
    found.join("; ")
}
