//! Tenant creation is all or nothing on every backend: a failure injected at every step, a failing
//! migration, a failing seeder and a failing step added on the builder (as a plugin adds one) each
//! leave no registry row and no database behind, and creating again afterwards works.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::Arc;

use sea_orm_migration::prelude::*;
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::{DeleteOptions, Provisioner, Provisioning, ProvisioningStep, StepOutcome, TenantRequest};
use tenancy_core::{BoxError, Domain, Seeder, Tenancy, TenantContext, TenantName, TenantStatus};
use tenancy_tests::migrators::BrokenMigrator;
use tenancy_tests::{Backend, TestEnv, table_names};

async fn open(env: &TestEnv) -> Tenancy {
    env.open_sample().await
}

fn request(name: &str, domain: &str) -> TenantRequest {
    let mut request = TenantRequest::new(TenantName::parse(name).unwrap());
    request.domains.push(Domain::parse(domain).unwrap());
    request
}

struct InjectedFailure;

#[async_trait::async_trait]
impl ProvisioningStep for InjectedFailure {
    fn name(&self) -> &str {
        "injected failure"
    }

    async fn run(&self, _job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        Err("injected failure".into())
    }
}

async fn assert_nothing_left(env: &TestEnv, tenancy: &Tenancy) {
    assert_eq!(tenancy.registry().list(None).await.unwrap().len(), 0, "{}: registry rows left behind", env.backend.name());
    assert_eq!(env.tenant_databases().await, Vec::<String>::new(), "{}: databases left behind", env.backend.name());
    assert_eq!(env.roles().await, Vec::<String>::new(), "{}: tenant roles left behind", env.backend.name());
}

#[tokio::test]
async fn a_failure_at_any_step_undoes_the_steps_before_it() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open(&env).await;
        let steps = Provisioner::standard().step_names().len();
        for position in 0..=steps {
            let mut provisioner = Provisioner::standard();
            provisioner.insert(position, Arc::new(InjectedFailure));
            let mut req = request("Acme", "acme.test");
            req.seeders = vec![Arc::new(OwnerSeeder)];
            let err = provisioner.provision(&tenancy, &req, &()).await.expect_err("the injected step fails");
            assert_eq!(err.step, "injected failure");
            assert!(err.undo_failures.is_empty(), "{}: {:?}", backend.name(), err.undo_failures);
            assert_nothing_left(&env, &tenancy).await;
        }
        // The same request succeeds afterwards: nothing half-made is in the way.
        let tenant = tenancy.create_tenant(&request("Acme", "acme.test"), &()).await.unwrap();
        assert_eq!(tenant.status, TenantStatus::Active);
        assert_eq!(env.count_tenant_databases().await, 1);
        tenancy.close().await;
    }
}

#[tokio::test]
async fn a_step_added_on_the_builder_runs_in_create_tenant_and_its_failure_undoes_everything() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        // How a plugin's provisioning step arrives: through the builder, not a hand-made Provisioner.
        let tenancy = Tenancy::builder(env.config())
            .tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default()))
            .provisioning_step(Arc::new(InjectedFailure))
            .open()
            .await
            .unwrap();
        let err = tenancy.create_tenant(&request("Acme", "acme.test"), &()).await.expect_err("the added step fails");
        assert_eq!(err.step, "injected failure", "{}", backend.name());
        assert_nothing_left(&env, &tenancy).await;
        tenancy.close().await;
    }
}

/// Refuses requests for `refused.test` when checking, before anything runs.
struct PickyStep {
    ran: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ProvisioningStep for PickyStep {
    fn name(&self) -> &str {
        "picky"
    }

    async fn check(&self, _tenancy: &Tenancy, request: &TenantRequest) -> Result<(), BoxError> {
        match request.domains.first() {
            Some(domain) if domain.as_str() == "refused.test" => Err("refused.test is not welcome".into()),
            _ => Ok(()),
        }
    }

    async fn run(&self, _job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        self.ran.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(StepOutcome::Done("ran".into()))
    }
}

#[tokio::test]
async fn a_request_a_step_refuses_when_checking_is_bad_input_and_creates_nothing() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let step = Arc::new(PickyStep { ran: Default::default() });
    env.create_central_database().await;
    let tenancy = Tenancy::builder(env.config()).provisioning_step(step.clone()).open().await.unwrap();
    let err = tenancy.create_tenant(&request("Acme", "refused.test"), &()).await.expect_err("refused");
    assert_eq!(err.step, "picky");
    assert!(err.source.is::<tenancy_core::command::UsageError>(), "bad input, exit 2: {:?}", err.source);
    assert!(err.source.to_string().contains("not welcome"));
    assert!(!step.ran.load(std::sync::atomic::Ordering::SeqCst));
    assert_nothing_left(&env, &tenancy).await;
    tenancy.create_tenant(&request("Acme", "welcome.test"), &()).await.unwrap();
    assert!(step.ran.load(std::sync::atomic::Ordering::SeqCst));
    tenancy.close().await;
}

#[tokio::test]
async fn a_failing_migration_drops_the_new_database() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        let tenancy =
            Tenancy::builder(env.config()).tenant_migrator(Arc::new(SeaOrmMigrator::<BrokenMigrator>::default())).open().await.unwrap();
        let err = tenancy.create_tenant(&request("Acme", "acme.test"), &()).await.expect_err("the migration fails");
        assert_eq!(err.step, "migrate", "{}", backend.name());
        assert!(err.to_string().contains("at step `migrate`"));
        assert_nothing_left(&env, &tenancy).await;
        tenancy.close().await;
    }
}

struct OwnerSeeder;

#[async_trait::async_trait]
impl Seeder for OwnerSeeder {
    fn name(&self) -> &str {
        "OwnerSeeder"
    }
    fn description(&self) -> &str {
        "one account"
    }
    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        ctx.db().execute_unprepared("INSERT INTO accounts (name, email) VALUES ('Owner', 'owner@acme.test')").await?;
        Ok(())
    }
}

struct FailingSeeder;

#[async_trait::async_trait]
impl Seeder for FailingSeeder {
    fn name(&self) -> &str {
        "FailingSeeder"
    }
    fn description(&self) -> &str {
        "inserts into a table that does not exist"
    }
    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        ctx.db().execute_unprepared("INSERT INTO no_such_table VALUES (1)").await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_seeder_undoes_the_tenant_and_a_good_one_runs_in_the_tenant_database() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open(&env).await;
        let mut failing = request("Acme", "acme.test");
        failing.seeders = vec![Arc::new(OwnerSeeder), Arc::new(FailingSeeder)];
        let err = tenancy.create_tenant(&failing, &()).await.expect_err("the seeder fails");
        assert_eq!(err.step, "seed");
        assert!(err.source.to_string().contains("FailingSeeder"), "{}", err.source);
        assert_nothing_left(&env, &tenancy).await;

        let mut good = request("Acme", "acme.test");
        good.seeders = vec![Arc::new(OwnerSeeder)];
        let tenant = tenancy.create_tenant(&good, &()).await.unwrap();
        let (tables, owners) = tenancy
            .run(&tenant, |ctx| async move {
                let rows = ctx
                    .db()
                    .query_all_raw(sea_orm::Statement::from_string(ctx.db().get_database_backend(), "SELECT email FROM accounts"))
                    .await
                    .unwrap();
                (table_names(ctx.db()).await, rows.len())
            })
            .await
            .unwrap();
        assert!(tables.contains(&"accounts".to_owned()), "{}: {tables:?}", backend.name());
        assert_eq!(owners, 1);
        tenancy.close().await;
    }
}

#[tokio::test]
async fn no_migrate_creates_an_empty_database_and_delete_removes_everything() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open(&env).await;
        let mut req = request("Bare", "bare.test");
        req.migrate = false;
        req.status = TenantStatus::Inactive;
        let tenant = tenancy.create_tenant(&req, &()).await.unwrap();
        assert_eq!(tenant.status, TenantStatus::Inactive);
        let tables = tenancy.run(&tenant, |ctx| async move { table_names(ctx.db()).await }).await.unwrap();
        assert!(tables.is_empty(), "{}: {tables:?}", backend.name());
        assert!(tenancy.manager_of(&tenant).unwrap().database_exists(&tenant.database).await.unwrap());

        tenancy.delete_tenant(&tenant, DeleteOptions::default()).await.unwrap();
        assert!(!tenancy.manager_of(&tenant).unwrap().database_exists(&tenant.database).await.unwrap());
        assert_nothing_left(&env, &tenancy).await;
        // Deleting again is safe: the database is dropped with IF EXISTS, the rows are already gone.
        tenancy.delete_tenant(&tenant, DeleteOptions::default()).await.unwrap();
        tenancy.close().await;
    }
}

#[tokio::test]
async fn delete_keep_database_leaves_the_database() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = open(&env).await;
    let tenant = tenancy.create_tenant(&request("Keep", "keep.test"), &()).await.unwrap();
    tenancy.delete_tenant(&tenant, DeleteOptions { keep_database: true, ..DeleteOptions::default() }).await.unwrap();
    assert!(tenancy.registry().get(&tenant.id).await.unwrap().is_none());
    assert_eq!(env.count_tenant_databases().await, 1);
}

#[tokio::test]
async fn create_database_never_adopts_an_existing_database() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open(&env).await;
        let name = tenancy.config().naming().name_for(&tenancy_core::TenantId::new());
        let manager = tenancy.default_manager();
        manager.create_database(&name).await.unwrap();
        let err = manager.create_database(&name).await.expect_err("it exists");
        assert!(matches!(err, tenancy_core::database::DatabaseError::AlreadyExists { .. }), "{}: {err:?}", backend.name());
        manager.drop_database(&name).await.unwrap();
        assert!(!manager.database_exists(&name).await.unwrap());
        tenancy.close().await;
    }
}

#[tokio::test]
async fn delete_refuses_a_database_not_named_for_the_tenant() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = open(&env).await;
    let tenant = tenancy.create_tenant(&request("Acme", "acme.test"), &()).await.unwrap();
    // A registry row edited by hand to point at a database that is not the tenant's.
    std::fs::write(env.sqlite_dir().join("billing.sqlite"), b"precious").unwrap();
    let sql = format!("UPDATE tenants SET database = 'billing' WHERE id = '{}'", tenant.id);
    tenancy.registry().connection().execute_unprepared(&sql).await.unwrap();
    let edited = tenancy.registry().require(&tenant.id).await.unwrap();

    let err = tenancy.delete_tenant(&edited, DeleteOptions::default()).await.expect_err("refused");
    assert!(matches!(err, tenancy_core::provisioning::DeleteError::NotATenantDatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("refusing to drop database `billing`"), "{err}");
    assert_eq!(std::fs::read(env.sqlite_dir().join("billing.sqlite")).unwrap(), b"precious");
    assert!(tenancy.registry().get(&tenant.id).await.unwrap().is_some(), "the registry row stays too");
}

/// A tenancy that provisions from templates, with `M` as the application's migrations.
async fn templated<M: MigratorTrait + 'static>(env: &TestEnv) -> Tenancy {
    env.create_central_database().await;
    let mut config = env.config();
    config.tenant_database.provision = tenancy_core::config::Provision::Template;
    Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<M>::default())).open().await.expect("open tenancy")
}

/// What a tenant database holds of its schema: tables, indexes and applied migrations.
async fn schema_of(tenancy: &Tenancy, tenant: &tenancy_core::Tenant) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (tables, indexes) =
        tenancy.run(tenant, |ctx| async move { (table_names(ctx.db()).await, tenancy_tests::index_names(ctx.db()).await) }).await.unwrap();
    let applied = tenancy.migration_status(tenant).await.unwrap().status.applied_names();
    (tables, indexes, applied)
}

/// Template databases of this environment (sealed or being built).
async fn templates(env: &TestEnv) -> Vec<String> {
    match env.backend {
        Backend::Sqlite => std::fs::read_dir(env.sqlite_dir().join("templates"))
            .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".sqlite")).collect())
            .unwrap_or_default(),
        _ => env.tenant_databases().await.into_iter().filter(|name| name.contains("template_")).collect(),
    }
}

const TEMPLATE_BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

#[tokio::test]
async fn a_tenant_copied_from_the_template_equals_a_migrated_one_and_takes_later_migrations() {
    use tenancy_tests::migrators::{NewerMigrator, OlderMigrator};
    for backend in TEMPLATE_BACKENDS {
        let Some(env) = TestEnv::new(backend) else { continue };
        let name = backend.name();
        let migrated = open(&env).await;
        let copied = templated::<migration::Migrator>(&env).await;
        let by_migrations = migrated.create_tenant(&request("Migrated", "migrated.test"), &()).await.unwrap();
        let by_copy = copied.create_tenant(&request("Copied", "copied.test"), &()).await.unwrap();
        assert_eq!(by_copy.status, TenantStatus::Active, "{name}");
        assert_eq!(schema_of(&copied, &by_copy).await, schema_of(&migrated, &by_migrations).await, "{name}: indistinguishable");
        assert_eq!(templates(&env).await.len(), 1, "{name}: one template");
        let second = copied.create_tenant(&request("Second", "second.test"), &()).await.unwrap();
        assert_eq!(schema_of(&copied, &second).await, schema_of(&migrated, &by_migrations).await, "{name}");
        // Each copy is its own database: a row in one is in no other.
        copied
            .run(&by_copy, |ctx| async move {
                sea_orm::ConnectionTrait::execute_unprepared(ctx.db(), "INSERT INTO accounts (name, email) VALUES ('a', 'a@a.test')").await
            })
            .await
            .unwrap()
            .unwrap();
        let count = |tenant| {
            let copied = &copied;
            async move {
                copied
                    .run(tenant, |ctx| async move {
                        let db = ctx.db();
                        let sql = sea_orm::Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM accounts");
                        sea_orm::ConnectionTrait::query_one_raw(db, sql).await.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap()
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!((count(&by_copy).await, count(&second).await), (1, 0), "{name}");
        copied.close().await;
        migrated.close().await;
    }

    // A release adds a migration: the next create builds a new template (the old one goes), and the
    // tenants copied from the old one migrate as any other.
    for backend in TEMPLATE_BACKENDS {
        let Some(env) = TestEnv::new(backend) else { continue };
        let name = backend.name();
        let older = templated::<OlderMigrator>(&env).await;
        let old_tenant = older.create_tenant(&request("Old", "old.test"), &()).await.unwrap();
        let old_templates = templates(&env).await;
        older.close().await;
        let newer = templated::<NewerMigrator>(&env).await;
        let new_tenant = newer.create_tenant(&request("New", "new.test"), &()).await.unwrap();
        let new_templates = templates(&env).await;
        assert_eq!(new_templates.len(), 1, "{name}: the old template was dropped: {new_templates:?}");
        assert_ne!(new_templates, old_templates, "{name}: a new template for the new migrations");
        assert!(schema_of(&newer, &new_tenant).await.2.contains(&"app/m2_create_widgets".to_owned()), "{name}");
        let pending = newer.migration_status(&old_tenant).await.unwrap().status.pending();
        assert_eq!(pending, 1, "{name}: the copy of the old template knows what it lacks");
        let reports = newer
            .run_fleet(
                vec![old_tenant.clone()],
                &tenancy_core::migrate::fleet::Operation::Migrate,
                tenancy_core::migrate::fleet::FleetOptions { concurrency: 1, fail_fast: false, down_during: false, verify: false },
                Arc::new(()),
            )
            .await;
        assert!(reports[0].failure.is_none(), "{name}: {reports:?}");
        assert_eq!(schema_of(&newer, &old_tenant).await, schema_of(&newer, &new_tenant).await, "{name}");
        newer.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_creates_at_once_build_one_template_and_all_get_every_migration() {
    for backend in TEMPLATE_BACKENDS {
        let Some(env) = TestEnv::new(backend) else { continue };
        let name = backend.name();
        // Separate `Tenancy`s: as separate processes, they meet only at the template's lock.
        let mut processes = Vec::new();
        for _ in 0..4 {
            processes.push(Arc::new(templated::<migration::Migrator>(&env).await));
        }
        let creates = (0..20).map(|i| {
            let tenancy = processes[i % 4].clone();
            async move { tenancy.create_tenant(&request(&format!("T{i}"), &format!("t{i}.test")), &()).await }
        });
        let created = tokio::time::timeout(std::time::Duration::from_secs(120), futures::future::join_all(creates)).await.unwrap();
        let expected = processes[0].migrations().migration_count();
        for tenant in created {
            let tenant = tenant.unwrap_or_else(|err| panic!("{name}: {err:?}"));
            assert_eq!(schema_of(&processes[0], &tenant).await.2.len(), expected, "{name}: {tenant}");
        }
        assert_eq!(templates(&env).await.len(), 1, "{name}");
        for tenancy in processes {
            tenancy.connections().close_all().await;
        }
    }
}

#[tokio::test]
async fn a_template_that_fails_to_build_creates_nothing_and_leaves_no_template() {
    for backend in TEMPLATE_BACKENDS {
        let Some(env) = TestEnv::new(backend) else { continue };
        let name = backend.name();
        let tenancy = templated::<BrokenMigrator>(&env).await;
        let err = tenancy.create_tenant(&request("Broken", "broken.test"), &()).await.unwrap_err();
        assert_eq!(err.step, "create database", "{name}: {err:?}");
        assert!(tenancy_core::migrate::fleet::error_chain(&err).contains("m2_broken"), "{name}: {err:?}");
        assert_nothing_left(&env, &tenancy).await;
        assert!(templates(&env).await.is_empty(), "{name}");
        tenancy.close().await;
    }
}
