//! `cargo xtask bench provision`: tenants created one after another, by running every migration,
//! by copying the template, or by renaming a ready database of the pool (filled beforehand, its
//! cost shown apart), with the sample migrations and with more, so it shows whether a copy's cost
//! stays flat as migrations pile up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm_migration::prelude::*;
use tenancy_core::config::Provision;
use tenancy_core::migrate::{SeaOrmMigrator, TenantMigrator};
use tenancy_core::provisioning::{ProvisionReporter, StepOutcome, TenantRequest};
use tenancy_core::{Domain, Tenancy, TenantName};
use tenancy_tests::{Backend, TestEnv};

use crate::{ProvisionArg, RolesArg, ms};

pub struct Options<'a> {
    pub tenants: usize,
    pub backends: &'a [Backend],
    pub ways: &'a [ProvisionArg],
    pub extra_migrations: &'a [usize],
    pub roles: &'a [RolesArg],
}

pub async fn run(options: &Options<'_>) -> anyhow::Result<()> {
    println!(
        "provision: {} tenants per row, created one after another, the rows of a way taking turns (per-tenant ms; steps: mean ms)",
        options.tenants
    );
    for &backend in options.backends {
        // SQLite has no roles: one row each.
        let roles = if backend == Backend::Sqlite { &[RolesArg::Shared][..] } else { options.roles };
        for &extra in options.extra_migrations {
            let mut p50s = BTreeMap::new();
            for &way in options.ways {
                if way == ProvisionArg::Template && matches!(backend, Backend::MySql | Backend::PostgresSchema) {
                    println!("  {:<16} template: no templates for MySQL databases or PostgreSQL schemas", backend.name());
                    continue;
                }
                if way == ProvisionArg::Pool && matches!(backend, Backend::MySql | Backend::Sqlite) {
                    println!("  {:<16} pool: the engine cannot rename a database (SQLite: `template` is a file copy)", backend.name());
                    continue;
                }
                let mut rows = Vec::with_capacity(roles.len());
                for &role in roles {
                    rows.extend(Row::prepare(backend, way, role, extra, options.tenants).await?);
                }
                for (role, p50) in interleaved(rows, options.tenants).await? {
                    p50s.insert((way.to_string(), role), p50);
                }
            }
            let p50 = |way: &str, role: RolesArg| p50s.get(&(way.to_owned(), role)).copied();
            for &role in roles {
                for fast in ["template", "pool"] {
                    if let (Some(migrations), Some(other)) = (p50("migrations", role), p50(fast, role)) {
                        println!(
                            "  {:<16} {:>2} migrations, {role} roles: {fast} / migrations (p50) = {:.2}",
                            backend.name(),
                            15 + extra,
                            other / migrations
                        );
                    }
                }
            }
            for way in options.ways {
                if let (Some(shared), Some(own)) = (p50(&way.to_string(), RolesArg::Shared), p50(&way.to_string(), RolesArg::PerTenant)) {
                    println!(
                        "  {:<16} {:>2} migrations, {way}: a role per tenant / shared (p50) = {:.2}",
                        backend.name(),
                        15 + extra,
                        own / shared
                    );
                }
            }
        }
    }
    Ok(())
}

/// Adds up the time of each provisioning step.
#[derive(Default)]
struct StepTimes(Mutex<BTreeMap<String, Duration>>);

impl ProvisionReporter for StepTimes {
    fn on_step_finished(&self, step: &str, _outcome: &StepOutcome, elapsed: Duration) {
        *self.0.lock().expect("not poisoned").entry(step.to_owned()).or_default() += elapsed;
    }
}

/// One row of the table: tenants made one way, with one kind of role, in an environment of its own.
struct Row {
    backend: Backend,
    way: ProvisionArg,
    roles: RolesArg,
    extra: usize,
    tenancy: Tenancy,
    // Dropped after `tenancy` (fields drop in order): it removes the row's databases.
    _env: TestEnv,
    steps: StepTimes,
    per_tenant: Vec<Duration>,
}

impl Row {
    /// Opens the row's environment and makes its warm-up tenant (and pool), so the figures include
    /// neither opening the registry and the admin pool nor building the template.
    async fn prepare(backend: Backend, way: ProvisionArg, roles: RolesArg, extra: usize, count: usize) -> anyhow::Result<Option<Self>> {
        let Some(env) = TestEnv::new(backend) else { return Ok(None) };
        if roles == RolesArg::Shared {
            env.use_shared_roles();
        }
        env.create_central_database().await;
        let mut config = env.config();
        config.tenant_database.provision = match way {
            ProvisionArg::Migrations => Provision::Migrations,
            ProvisionArg::Template => Provision::Template,
            ProvisionArg::Pool => Provision::Pool,
        };
        let mut builder = Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default()));
        if extra > 0 {
            builder = builder.plugin_migrator(Arc::new(Padding(extra)));
        }
        let tenancy = builder.open().await?;
        tenancy.create_tenant(&TenantRequest::new(TenantName::parse("warm-up")?), &()).await?;
        let row =
            Self { backend, way, roles, extra, tenancy, _env: env, steps: StepTimes::default(), per_tenant: Vec::with_capacity(count) };
        if way == ProvisionArg::Pool {
            let filling = Instant::now();
            row.tenancy.fill_pool(count, &|_, _| {}).await?;
            println!("  {}  filling the pool beforehand: {:.2} ms per database", row.label(), ms(filling.elapsed()) / count as f64);
        }
        Ok(Some(row))
    }

    fn label(&self) -> String {
        let roles = if self.backend == Backend::Sqlite { "-".to_owned() } else { self.roles.to_string() };
        format!("{:<16} {:<10} {:<10} {:>2} migrations", self.backend.name(), self.way.to_string(), roles, 15 + self.extra)
    }

    /// Creates the row's tenant number `i`.
    async fn create(&mut self, i: usize) -> anyhow::Result<()> {
        let mut request = TenantRequest::new(TenantName::parse(&format!("Tenant {i}"))?);
        request.domains.push(Domain::parse(&format!("t{i}.bench.test"))?);
        let one = Instant::now();
        let tenant = self.tenancy.create_tenant(&request, &self.steps).await?;
        self.per_tenant.push(one.elapsed());
        // Untimed: rows taking turns would otherwise hold twice the server connections one row
        // does, beyond what the server allows.
        self.tenancy.connections().close(&tenant.id).await;
        Ok(())
    }

    /// Prints the row and returns its p50 in milliseconds.
    async fn finish(mut self) -> f64 {
        let count = self.per_tenant.len();
        let total: Duration = self.per_tenant.iter().sum();
        self.per_tenant.sort();
        let pct = |p: f64| ms(self.per_tenant[((count as f64 - 1.0) * p).round() as usize]);
        let breakdown: Vec<String> = self
            .steps
            .0
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(step, time)| format!("{step} {:.2}", ms(*time) / count as f64))
            .collect();
        println!(
            "  {}  total {:>6.2}s  mean {:>6.2}  p50 {:>6.2}  p95 {:>6.2}  max {:>6.2}   {}",
            self.label(),
            total.as_secs_f64(),
            ms(total) / count as f64,
            pct(0.5),
            pct(0.95),
            pct(1.0),
            breakdown.join(", ")
        );
        self.tenancy.close().await;
        pct(0.5)
    }
}

/// Creates `count` tenants in each of `rows`, taking turns (tenant 0 of each row, then tenant 1 of
/// each…), so that what drifts over a run (the server's caches and catalogs, the disk, the
/// machine's other work) weighs on every row alike; returns each row's p50 in milliseconds.
async fn interleaved(mut rows: Vec<Row>, count: usize) -> anyhow::Result<Vec<(RolesArg, f64)>> {
    for i in 0..count {
        for row in &mut rows {
            row.create(i).await?;
        }
    }
    let mut p50s = Vec::with_capacity(rows.len());
    for row in rows {
        p50s.push((row.roles, row.finish().await));
    }
    Ok(p50s)
}

/// `count` more migrations, each a small table with an index, as an application's would be.
struct Padding(usize);

impl TenantMigrator for Padding {
    fn name(&self) -> &str {
        "padding"
    }

    fn tracking_table(&self) -> String {
        "padding_migrations".into()
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        (0..self.0).map(|i| Box::new(PaddingTable(format!("m{i:04}_create_padding_{i}"), format!("padding_{i}"))) as _).collect()
    }
}

struct PaddingTable(String, String);

impl MigrationName for PaddingTable {
    fn name(&self) -> &str {
        &self.0
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PaddingTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = self.1.clone();
        manager
            .create_table(
                Table::create()
                    .table(table.clone())
                    .col(ColumnDef::new("id").integer().primary_key())
                    .col(ColumnDef::new("label").string_len(100).not_null())
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name(format!("{table}_label_idx")).table(table).col("label").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(self.1.clone()).to_owned()).await
    }
}
