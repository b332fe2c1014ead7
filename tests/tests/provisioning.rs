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
    env.create_central_database().await;
    Tenancy::builder(env.config())
        .tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default()))
        .open()
        .await
        .expect("open tenancy")
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
