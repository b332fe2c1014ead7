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
    println!("provision: {} tenants per row, created one after another (per-tenant ms; steps: mean ms)", options.tenants);
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
                for &role in roles {
                    p50s.insert((way.to_string(), role), provision(backend, way, role, extra, options.tenants).await?);
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

/// Creates `count` tenants; prints the row and returns the p50 in milliseconds.
async fn provision(backend: Backend, way: ProvisionArg, roles: RolesArg, extra: usize, count: usize) -> anyhow::Result<f64> {
    let Some(env) = TestEnv::new(backend) else { return Ok(f64::NAN) };
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
    // One tenant first, so the figures include neither opening the registry and the admin pool
    // nor building the template (once per migration set).
    tenancy.create_tenant(&TenantRequest::new(TenantName::parse("warm-up")?), &()).await?;
    if way == ProvisionArg::Pool {
        let filling = Instant::now();
        tenancy.fill_pool(count, &|_, _| {}).await?;
        println!(
            "  {:<16} {:<10} {:<10} {:>2} migrations  filling the pool beforehand: {:.2} ms per database",
            backend.name(),
            "pool",
            roles.to_string(),
            15 + extra,
            ms(filling.elapsed()) / count as f64
        );
    }

    let steps = StepTimes::default();
    let mut per_tenant = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let mut request = TenantRequest::new(TenantName::parse(&format!("Tenant {i}"))?);
        request.domains.push(Domain::parse(&format!("t{i}.bench.test"))?);
        let one = Instant::now();
        tenancy.create_tenant(&request, &steps).await?;
        per_tenant.push(one.elapsed());
    }
    let total = started.elapsed();
    per_tenant.sort();
    let pct = |p: f64| ms(per_tenant[((per_tenant.len() as f64 - 1.0) * p).round() as usize]);
    let breakdown: Vec<String> =
        steps.0.lock().expect("not poisoned").iter().map(|(step, time)| format!("{step} {:.2}", ms(*time) / count as f64)).collect();
    println!(
        "  {:<16} {:<10} {:<10} {:>2} migrations  total {:>6.2}s  mean {:>6.2}  p50 {:>6.2}  p95 {:>6.2}  max {:>6.2}   {}",
        backend.name(),
        way.to_string(),
        if backend == Backend::Sqlite { "-".to_owned() } else { roles.to_string() },
        15 + extra,
        total.as_secs_f64(),
        ms(total) / count as f64,
        pct(0.5),
        pct(0.95),
        pct(1.0),
        breakdown.join(", ")
    );
    tenancy.close().await;
    Ok(pct(0.5))
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
