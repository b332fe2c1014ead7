//! Creating and deleting tenants.
//!
//! Creation is a [`Provisioner`]: a list of [`ProvisioningStep`]s (register → create database →
//! migrate → seed → activate; plugins may add their own). If a step fails, the steps already done are
//! undone in reverse order, so a failure leaves neither a database without a tenant nor a tenant
//! without a database, and running the same request again is safe. Deletion drops the database first
//! and the registry rows last, so an interrupted delete can simply be run again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::command::UsageError;
use crate::config::Provision;
use crate::database::{Adopt, DatabaseError, DatabaseManager, DatabaseName, Login};
use crate::migrate::fleet::error_chain;
use crate::migrate::runner;
use crate::pool::FromPool;
use crate::registry::{NewTenant, RegistryError};
use crate::unwind::contain;
use crate::{BoxError, Domain, Seeder, Tenancy, Tenant, TenantId, TenantName, TenantStatus};

/// What to create.
#[derive(Clone)]
pub struct TenantRequest {
    /// The tenant's name.
    pub name: TenantName,
    /// Its domains; the first is primary.
    pub domains: Vec<Domain>,
    /// The status it ends in (`active` unless told otherwise).
    pub status: TenantStatus,
    /// Whether to run the tenant migrations.
    pub migrate: bool,
    /// Seeders to run after migrating, in order.
    pub seeders: Vec<Arc<dyn Seeder>>,
    /// Whether its homepage is served.
    pub homepage_enabled: bool,
    /// Application data.
    pub data: serde_json::Value,
    /// Plugins' switches given to `tenant create` (`with-homepage`), read by their steps.
    pub flags: BTreeSet<String>,
    /// The server to put it on (`--server`); `None` lets `tenant_database.placement` choose.
    pub server: Option<String>,
}

impl TenantRequest {
    /// An active, migrated tenant with no domain, seeders or data.
    pub fn new(name: TenantName) -> Self {
        Self {
            name,
            domains: Vec::new(),
            status: TenantStatus::Active,
            migrate: true,
            seeders: Vec::new(),
            homepage_enabled: false,
            data: serde_json::json!({}),
            flags: BTreeSet::new(),
            server: None,
        }
    }
}

/// A tenant being provisioned: what steps read and write.
pub struct Provisioning<'a> {
    /// The setup it is provisioned in.
    pub tenancy: &'a Tenancy,
    /// What was asked for.
    pub request: &'a TenantRequest,
    /// The id chosen for it.
    pub id: TenantId,
    /// Its database name.
    pub database: DatabaseName,
    /// The server its database goes on, chosen before the first step.
    pub server: String,
    tenant: Option<Tenant>,
    /// Set when the database came migrated: a copy of the template, or from the pool.
    made_from: Option<MadeFrom>,
}

impl Provisioning<'_> {
    /// The registry record, once the `register` step has run.
    ///
    /// # Errors
    /// When called by a step placed before `register`.
    pub fn tenant(&self) -> Result<&Tenant, BoxError> {
        self.tenant.as_ref().ok_or_else(|| "the tenant is not registered yet: this step must come after `register`".into())
    }

    /// Replaces the registry record (after a step changed it).
    pub fn set_tenant(&mut self, tenant: Tenant) {
        self.tenant = Some(tenant);
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// It did its work; the text says what, for the step's line ("3 migrations").
    Done(String),
    /// It had nothing to do, and why.
    Skipped(String),
}

/// One step of tenant creation.
///
/// # Errors
/// `run` fails the creation: earlier steps are undone. `undo` errors are reported; the tenant is then
/// left with status `creating` so an operator can delete it.
///
/// # Example
/// ```
/// use tenancy_core::provisioning::{Provisioning, ProvisioningStep, StepOutcome};
/// use tenancy_core::BoxError;
///
/// /// Tells the billing system about every new tenant.
/// struct NotifyBilling;
///
/// #[async_trait::async_trait]
/// impl ProvisioningStep for NotifyBilling {
///     fn name(&self) -> &str { "notify billing" }
///     async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
///         let tenant = job.tenant()?;
///         Ok(StepOutcome::Done(format!("sent {}", tenant.id)))
///     }
/// }
/// ```
#[async_trait]
pub trait ProvisioningStep: Send + Sync {
    /// A short name, shown on the step's line and in errors.
    fn name(&self) -> &str;

    /// Looks at the request before any step runs, so that a request this step would refuse changes
    /// nothing at all (no registry row, no database). An error here is the caller's bad input.
    async fn check(&self, _tenancy: &Tenancy, _request: &TenantRequest) -> Result<(), BoxError> {
        Ok(())
    }

    /// Does the step.
    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError>;

    /// Undoes a completed `run` after a later step failed.
    async fn undo(&self, _job: &Provisioning<'_>) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Watches provisioning; the CLI draws it, tests record it. Every method does nothing by default.
pub trait ProvisionReporter: Send + Sync {
    /// A step starts.
    fn on_step_started(&self, _step: &str) {}
    /// A step ended.
    fn on_step_finished(&self, _step: &str, _outcome: &StepOutcome, _elapsed: Duration) {}
    /// A step failed; undoing follows.
    fn on_step_failed(&self, _step: &str, _error: &BoxError) {}
    /// A step was undone (or undoing it failed).
    fn on_step_undone(&self, _step: &str, _result: Result<(), &BoxError>) {}
}

/// Reports nothing.
impl ProvisionReporter for () {}

/// Creating a tenant failed at `step`; the steps before it were undone.
#[derive(Debug, thiserror::Error)]
#[error("failed to create tenant `{name}` at step `{step}`")]
pub struct ProvisionError {
    /// The tenant's name.
    pub name: String,
    /// The id it would have had.
    pub id: TenantId,
    /// The failing step.
    pub step: String,
    /// Why it failed.
    pub source: BoxError,
    /// Steps whose undo failed, with the reason: what may be left behind.
    pub undo_failures: Vec<(String, String)>,
}

/// The steps of tenant creation, in order.
#[derive(Clone)]
pub struct Provisioner {
    steps: Vec<Arc<dyn ProvisioningStep>>,
}

impl Default for Provisioner {
    fn default() -> Self {
        Self::standard()
    }
}

impl Provisioner {
    /// `register`, `create database`, `migrate`, `seed`, `activate`.
    pub fn standard() -> Self {
        Self { steps: vec![Arc::new(Register), Arc::new(CreateDatabase), Arc::new(Migrate), Arc::new(Seed), Arc::new(Activate)] }
    }

    /// The step names, in order.
    pub fn step_names(&self) -> Vec<&str> {
        self.steps.iter().map(|step| step.name()).collect()
    }

    /// Inserts `step` at `index` (0 = first).
    ///
    /// # Panics
    /// If `index` is past the end.
    pub fn insert(&mut self, index: usize, step: Arc<dyn ProvisioningStep>) {
        self.steps.insert(index, step);
    }

    /// Inserts `step` just after the step named `after` (`create database`); appends if there is
    /// no such step.
    pub fn insert_after(&mut self, after: &str, step: Arc<dyn ProvisioningStep>) {
        let index = self.steps.iter().position(|s| s.name() == after).map_or(self.steps.len(), |i| i + 1);
        self.steps.insert(index, step);
    }

    /// Inserts `step` just before `activate`, where plugin steps belong: the database exists and is
    /// migrated, and the tenant is not yet visible as active. Appends if there is no `activate` step.
    pub fn add_before_activate(&mut self, step: Arc<dyn ProvisioningStep>) {
        let index = self.steps.iter().position(|s| s.name() == "activate").unwrap_or(self.steps.len());
        self.steps.insert(index, step);
    }

    /// Checks the request with every step ([`ProvisioningStep::check`]), then runs every step;
    /// on failure undoes the completed ones in reverse.
    ///
    /// # Errors
    /// [`ProvisionError`] naming the step; when a check refused the request, its source is a
    /// [`UsageError`] and nothing was done.
    pub async fn provision(
        &self,
        tenancy: &Tenancy,
        request: &TenantRequest,
        reporter: &dyn ProvisionReporter,
    ) -> Result<Tenant, ProvisionError> {
        let id = TenantId::new();
        for step in &self.steps {
            let source: BoxError = match contain(step.check(tenancy, request)).await {
                Ok(Ok(())) => continue,
                Ok(Err(reason)) => {
                    Box::new(UsageError::new(reason.to_string(), "nothing was created; correct the request and run it again"))
                }
                // A check that panics is the step's bug, not the request's fault.
                Err(panicked) => Box::new(panicked),
            };
            return Err(ProvisionError {
                name: request.name.to_string(),
                id,
                step: step.name().to_owned(),
                source,
                undo_failures: Vec::new(),
            });
        }
        if let Err(err) = tenancy.check_role_key() {
            let source: BoxError = Box::new(UsageError::new(err.to_string(), "nothing was created"));
            return Err(ProvisionError { name: request.name.to_string(), id, step: "register".into(), source, undo_failures: Vec::new() });
        }
        let server = tenancy.place_new_tenant(request.server.as_deref()).await.map_err(|err| {
            let source: BoxError = if err.is_bad_input() {
                Box::new(UsageError::new(err.to_string(), "nothing was created; name a configured server"))
            } else {
                Box::new(err)
            };
            ProvisionError { name: request.name.to_string(), id, step: "place".into(), source, undo_failures: Vec::new() }
        })?;
        let database = tenancy.config().naming().name_for(&id);
        let mut job = Provisioning { tenancy, request, id, database, server, tenant: None, made_from: None };
        for (index, step) in self.steps.iter().enumerate() {
            reporter.on_step_started(step.name());
            let started = Instant::now();
            match contain(step.run(&mut job)).await.unwrap_or_else(|panicked| Err(Box::new(panicked))) {
                Ok(outcome) => {
                    crate::metrics::provisioning_step(step.name(), "succeeded", started.elapsed());
                    reporter.on_step_finished(step.name(), &outcome, started.elapsed());
                }
                Err(source) => {
                    crate::metrics::provisioning_step(step.name(), "failed", started.elapsed());
                    reporter.on_step_failed(step.name(), &source);
                    let mut undo_failures = Vec::new();
                    for done in self.steps[..index].iter().rev() {
                        let result = contain(done.undo(&job)).await.unwrap_or_else(|panicked| Err(Box::new(panicked)));
                        reporter.on_step_undone(done.name(), result.as_ref().map(|_| ()));
                        if let Err(err) = result {
                            undo_failures.push((done.name().to_owned(), error_chain(&*err)));
                        }
                    }
                    return Err(ProvisionError { name: request.name.to_string(), id, step: step.name().to_owned(), source, undo_failures });
                }
            }
        }
        job.tenant.ok_or_else(|| ProvisionError {
            name: request.name.to_string(),
            id,
            step: self.steps.last().map_or("register", |step| step.name()).to_owned(),
            source: "no step registered the tenant: a provisioner needs the `register` step".into(),
            undo_failures: Vec::new(),
        })
    }
}

/// Records the tenant with status `creating`.
struct Register;

#[async_trait]
impl ProvisioningStep for Register {
    fn name(&self) -> &str {
        "register"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        let new = NewTenant {
            id: job.id,
            name: job.request.name.clone(),
            status: TenantStatus::Creating,
            database: job.database.clone(),
            server: job.server.clone(),
            domains: job.request.domains.clone(),
            homepage_enabled: job.request.homepage_enabled,
            data: job.request.data.clone(),
        };
        let tenant = job.tenancy.registry().insert(&new).await?;
        let detail = if job.tenancy.config().server_names().len() > 1 {
            format!("{tenant} on server `{}`", job.server)
        } else {
            format!("{tenant}")
        };
        job.tenant = Some(tenant);
        Ok(StepOutcome::Done(detail))
    }

    async fn undo(&self, job: &Provisioning<'_>) -> Result<(), BoxError> {
        Ok(job.tenancy.registry().delete(&job.id).await?)
    }
}

/// Creates the tenant's database (or schema, or file).
struct CreateDatabase;

#[async_trait]
impl ProvisioningStep for CreateDatabase {
    fn name(&self) -> &str {
        "create database"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        // The role is made here, with the database, so that undoing this step takes both.
        let login = job.tenancy.login_of(job.tenant()?)?;
        let made = make_database(job, login.as_ref()).await?;
        let Some(login) = login else { return Ok(StepOutcome::Done(made)) };
        let owned = format!("{made}, owned by role `{}`", login.role);
        let manager = job.tenancy.manager_on(&job.server)?;
        let adopt = match &job.made_from {
            Some(MadeFrom::Template { template, .. }) => Adopt::CopyOf(template),
            Some(MadeFrom::Pool(FromPool { secured: true, .. })) => return Ok(StepOutcome::Done(owned)),
            Some(MadeFrom::Pool(FromPool { secured: false, .. })) => Adopt::Everything,
            None => Adopt::Nothing,
        };
        if let Err(err) = manager.secure(&job.database, &login, adopt).await {
            if let Err(undo) = job.tenancy.drop_tenant_database(manager.as_ref(), &job.database).await {
                tracing::warn!(database = %job.database, error = %undo, "could not drop the database whose role failed; `tenant delete` drops it");
            }
            return Err(err.into());
        }
        Ok(StepOutcome::Done(owned))
    }

    async fn undo(&self, job: &Provisioning<'_>) -> Result<(), BoxError> {
        job.tenancy.connections().close(&job.id).await;
        let manager = job.tenancy.manager_on(&job.server)?;
        Ok(job.tenancy.drop_tenant_database(manager.as_ref(), &job.database).await?)
    }
}

/// Makes the database of the tenant `job` provisions, the way `provision` says; what was done.
/// One taken from the pool is given to `login` in the same transaction, where it can be.
async fn make_database(job: &mut Provisioning<'_>, login: Option<&Login>) -> Result<String, BoxError> {
    let manager = job.tenancy.manager_on(&job.server)?;
    let location = manager.location(&job.database);
    let provision = job.tenancy.config().tenant_database.provision;
    // The pool is on the main server; elsewhere a template (where there is one) stands in.
    if job.request.migrate && provision == Provision::Pool && job.server == job.tenancy.config().tenant_database.server {
        if let Some(taken) = job.tenancy.take_from_pool(&job.database, login).await? {
            job.made_from = Some(MadeFrom::Pool(taken));
            return Ok(format!("database `{location}`, taken from the pool"));
        }
        tracing::info!("the pool of ready databases is empty: `tenancy tenant pool --fill N` refills it");
    }
    if job.request.migrate && (provision == Provision::Template || (provision == Provision::Pool && manager.supports_templates())) {
        let (migrations, template) = job.tenancy.create_from_template(manager, &job.database).await?;
        job.made_from = Some(MadeFrom::Template { template, migrations });
        return Ok(format!("database `{location}`, a copy of the template"));
    }
    manager.create_database(&job.database).await?;
    Ok(format!("database `{location}`"))
}

/// Where a tenant's database came from, when it was not made empty: it came migrated.
enum MadeFrom {
    /// A copy of this template, carrying this many migrations.
    Template { template: DatabaseName, migrations: usize },
    /// A ready database of the pool.
    Pool(FromPool),
}

impl MadeFrom {
    /// How many migrations the database came with, and whence, for the `migrate` step's line.
    fn premigrated(&self) -> (usize, &'static str) {
        match self {
            Self::Template { migrations, .. } => (*migrations, "copied with the template"),
            Self::Pool(taken) => (taken.migrations, "in the ready-made database"),
        }
    }
}

/// Applies the tenant migrations.
struct Migrate;

#[async_trait]
impl ProvisioningStep for Migrate {
    fn name(&self) -> &str {
        "migrate"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        if !job.request.migrate {
            return Ok(StepOutcome::Skipped("--no-migrate".into()));
        }
        if let Some((migrations, whence)) = job.made_from.as_ref().map(MadeFrom::premigrated) {
            // A template is sealed, and a pool database renamed into the pool, only once every
            // migration of its set is applied to it.
            return Ok(StepOutcome::Done(format!("{} ({whence})", plural(migrations, "migration"))));
        }
        let tenant = job.tenant()?;
        let tenancy = job.tenancy;
        let (set, meter) = (tenancy.migrations(), tenancy.meter());
        let applied = tenancy
            .run_with_one_connection(tenant, |ctx| async move { runner::migrate_new_database(ctx.db(), set, meter, &()).await })
            .await??;
        Ok(StepOutcome::Done(plural(applied.len(), "migration")))
    }
}

/// Runs the requested seeders.
struct Seed;

#[async_trait]
impl ProvisioningStep for Seed {
    fn name(&self) -> &str {
        "seed"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        let seeders = &job.request.seeders;
        if seeders.is_empty() {
            return Ok(StepOutcome::Skipped("no seeder requested".into()));
        }
        let tenant = job.tenant()?;
        let seeders = &crate::seeder::expand(seeders);
        job.tenancy
            .run(tenant, |ctx| async move {
                for seeder in seeders {
                    let result = contain(seeder.run(&ctx)).await.unwrap_or_else(|panicked| Err(Box::new(panicked)));
                    result.map_err(|err| -> BoxError { format!("seeder `{}` failed: {}", seeder.name(), error_chain(&*err)).into() })?;
                }
                Ok::<_, BoxError>(())
            })
            .await??;
        Ok(StepOutcome::Done(seeders.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")))
    }
}

/// Sets the requested final status.
struct Activate;

#[async_trait]
impl ProvisioningStep for Activate {
    fn name(&self) -> &str {
        "activate"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        let tenant = job.tenancy.registry().set_status(&job.id, job.request.status).await?;
        job.tenant = Some(tenant);
        Ok(StepOutcome::Done(job.request.status.to_string()))
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// How to delete a tenant.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Keep the database and the tenant's files; remove only the registry rows.
    pub keep_database: bool,
    /// Plugins' switches given to `tenant delete` (`keep-homepage`), read by their hooks.
    pub flags: BTreeSet<String>,
}

/// What a plugin does when a tenant is deleted or loses a domain; creation has
/// [`ProvisioningStep`]s. Every method does nothing by default.
#[async_trait]
pub trait TenantHook: Send + Sync {
    /// A short name, for errors.
    fn name(&self) -> &str;

    /// Runs while `tenant` is deleted, after its database is dropped and before its registry rows
    /// are removed. An error stops the deletion with the registry rows kept, and deleting again
    /// runs the hook again: make it idempotent. Returns a line for the operator, if any.
    async fn deleting(&self, _tenancy: &Tenancy, _tenant: &Tenant, _options: &DeleteOptions) -> Result<Option<String>, BoxError> {
        Ok(None)
    }

    /// Runs after `domain` was removed from `tenant` (which no longer lists it). Returns a line
    /// for the operator, if any: the removal itself is done and is not undone.
    async fn domain_removed(&self, _tenancy: &Tenancy, _tenant: &Tenant, _domain: &Domain) -> Option<String> {
        None
    }
}

/// Deleting a tenant failed; what was not yet removed is still there, and deleting again is safe.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The recorded database name does not look like this tenant's: refuse to drop it.
    #[error(
        "refusing to drop database `{database}` of tenant {tenant}: its name does not contain the tenant id, so it may not be a tenant database"
    )]
    NotATenantDatabase {
        /// The recorded name.
        database: DatabaseName,
        /// `name (id)`.
        tenant: String,
    },
    /// Dropping the database failed; the registry rows are kept.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// Removing the registry rows failed (the database is already gone).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A plugin's [`TenantHook::deleting`] failed; the database is gone, the registry rows are
    /// kept, and deleting again is safe.
    #[error("plugin hook `{hook}` failed while deleting tenant {tenant}")]
    Hook {
        /// The hook.
        hook: String,
        /// `name (id)`.
        tenant: String,
        /// Why.
        source: BoxError,
    },
    /// The tenant's cache entries or sessions outside its database could not be removed; nothing
    /// was deleted.
    #[error("failed to remove the cache entries and sessions of tenant {tenant}")]
    Cache {
        /// `name (id)`.
        tenant: String,
        /// Why.
        source: crate::cache::CacheError,
    },
    /// The tenant's files could not be removed; its database is gone, the registry rows are kept,
    /// and deleting again is safe.
    #[error("failed to remove the files of tenant {tenant}")]
    Files {
        /// `name (id)`.
        tenant: String,
        /// Why.
        source: crate::files::FilesError,
    },
}

impl Tenancy {
    /// Creates a tenant with the standard steps and those plugins added.
    ///
    /// # Errors
    /// [`ProvisionError`] naming the failing step; what earlier steps did is undone.
    pub async fn create_tenant(&self, request: &TenantRequest, reporter: &dyn ProvisionReporter) -> Result<Tenant, ProvisionError> {
        self.provisioner().provision(self, request, reporter).await
    }

    /// The steps [`Tenancy::create_tenant`] runs: the standard ones and those plugins added. A
    /// plugin that creates tenants its own way (from a backup) inserts its step and provisions.
    pub fn provisioner(&self) -> Provisioner {
        let mut provisioner = Provisioner::standard();
        for step in self.provisioning_steps() {
            provisioner.add_before_activate(step.clone());
        }
        provisioner
    }

    /// Drops a tenant's database (unless kept) and removes it from the registry.
    ///
    /// Order matters: everything is checked before anything is removed; then the tenant is closed
    /// in this process (no new context starts, those running end first), so nothing writes behind
    /// the sweep of its cache and sessions outside its database; then the database goes, and the
    /// registry rows last, so an interrupted delete can be run again.
    ///
    /// Plugins' [`TenantHook::deleting`] run between the two; what they say is returned.
    ///
    /// # Errors
    /// [`DeleteError`]; nothing is removed from the registry unless the database is gone.
    pub async fn delete_tenant(&self, tenant: &Tenant, options: DeleteOptions) -> Result<Vec<String>, DeleteError> {
        if !options.keep_database && !tenant.database.belongs_to(&tenant.id) {
            return Err(DeleteError::NotATenantDatabase { database: tenant.database.clone(), tenant: tenant.to_string() });
        }
        let closed = self.close_tenant(&tenant.id);
        self.connections().close_when_idle(&tenant.id).await;
        self.caches().sweep_tenant(tenant).await.map_err(|source| DeleteError::Cache { tenant: tenant.to_string(), source })?;
        // A context refused since may have opened a pool on its way to seeing the tenant closed.
        self.connections().close(&tenant.id).await;
        if !options.keep_database {
            self.drop_tenant_database(self.manager_of(tenant)?.as_ref(), &tenant.database).await?;
            // A move under way (or kept for cleanup) has a second copy on the other server.
            if let Some(moving) = self.registry().move_of(&tenant.id).await? {
                let other = if moving.to == tenant.server { &moving.from } else { &moving.to };
                self.drop_tenant_database(self.manager_on(other)?.as_ref(), &tenant.database).await?;
            }
            // Its files are its data as much as its database is, and go (or stay) with it.
            self.files_of(tenant).delete_all().await.map_err(|source| DeleteError::Files { tenant: tenant.to_string(), source })?;
        }
        let mut notes = Vec::new();
        for hook in self.tenant_hooks() {
            let result = contain(hook.deleting(self, tenant, &options)).await.unwrap_or_else(|panicked| Err(Box::new(panicked)));
            match result {
                Ok(note) => notes.extend(note),
                Err(source) => return Err(DeleteError::Hook { hook: hook.name().to_owned(), tenant: tenant.to_string(), source }),
            }
        }
        self.registry().delete(&tenant.id).await?;
        self.caches().forget_tenant(&tenant.id);
        // A deleted tenant stays closed: a copy of its record elsewhere in this process cannot bring it back.
        closed.keep();
        Ok(notes)
    }

    /// Drops a tenant's `database` on `manager`'s server and, where tenants have roles, its role
    /// (named as the database), ending the role's sessions: none outlives its tenant.
    ///
    /// # Errors
    /// When either drop fails; dropping again is safe.
    pub async fn drop_tenant_database(&self, manager: &dyn DatabaseManager, database: &DatabaseName) -> Result<(), DatabaseError> {
        manager.drop_database(database).await?;
        if self.config().per_tenant_roles() {
            manager.drop_role(database).await?;
        }
        Ok(())
    }

    /// Removes `domain` from `tenant`, then tells plugins' [`TenantHook::domain_removed`]; returns
    /// the tenant as it is now and what the hooks said.
    ///
    /// # Errors
    /// When the registry refuses (the tenant does not have the domain, or it is its only
    /// identification) or the queries fail; hooks then do not run.
    pub async fn remove_domain(&self, tenant: &Tenant, domain: &Domain) -> Result<(Tenant, Vec<String>), RegistryError> {
        let updated = self.registry().remove_domain(tenant, domain).await?;
        let mut notes = Vec::new();
        for hook in self.tenant_hooks() {
            match contain(hook.domain_removed(self, &updated, domain)).await {
                Ok(note) => notes.extend(note),
                Err(panicked) => notes.push(format!("plugin hook `{}` failed after the domain was removed: {panicked}", hook.name())),
            }
        }
        Ok((updated, notes))
    }
}
