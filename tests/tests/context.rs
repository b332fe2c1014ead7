//! Running code as a tenant: each tenant's queries reach only its own database, `current_tenant()`
//! follows the context, and bootstrappers attach resources and are reverted.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, Statement};
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Bootstrapper, BoxError, ContextBuilder, ContextError, Tenancy, TenantContext, TenantName, current_tenant};
use tenancy_tests::{Backend, TestEnv};

async fn tenancy_with(env: &TestEnv, bootstrappers: Vec<Arc<dyn Bootstrapper>>) -> Tenancy {
    env.create_central_database().await;
    let mut builder = Tenancy::builder(env.config()).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default()));
    for bootstrapper in bootstrappers {
        builder = builder.bootstrapper(bootstrapper);
    }
    builder.open().await.unwrap()
}

async fn emails(ctx: &TenantContext) -> Vec<String> {
    let db = ctx.db();
    let rows =
        db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT email FROM accounts ORDER BY email")).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_rows() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = tenancy_with(&env, Vec::new()).await;
        let a = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
        let b = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("B").unwrap()), &()).await.unwrap();
        tenancy
            .run(&a, |ctx| async move {
                ctx.db().execute_unprepared("INSERT INTO accounts (name, email) VALUES ('a', 'a@a.test')").await.unwrap();
            })
            .await
            .unwrap();
        let seen_by_b = tenancy.run(&b, |ctx| async move { emails(&ctx).await }).await.unwrap();
        let seen_by_a = tenancy.run(&a, |ctx| async move { emails(&ctx).await }).await.unwrap();
        assert_eq!(seen_by_a, vec!["a@a.test".to_owned()], "{}", backend.name());
        assert!(seen_by_b.is_empty(), "{}: tenant B read {seen_by_b:?}", backend.name());
        tenancy.close().await;
    }
}

#[tokio::test]
async fn current_tenant_follows_the_context() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = tenancy_with(&env, Vec::new()).await;
    let a = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
    let b = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("B").unwrap()), &()).await.unwrap();
    assert!(current_tenant().is_none());
    let inside = tenancy
        .run(&a, |_| async {
            let outer = current_tenant().unwrap().id;
            let inner = tenancy.run(&b, |_| async { current_tenant().unwrap().id }).await.unwrap();
            (outer, inner, current_tenant().unwrap().id)
        })
        .await
        .unwrap();
    assert_eq!(inside, (a.id, b.id, a.id));
    assert!(current_tenant().is_none());
}

/// Records what it did, and attaches the tenant's name as a resource.
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
    fail: bool,
}

#[async_trait::async_trait]
impl Bootstrapper for Recorder {
    fn name(&self) -> &str {
        if self.fail { "broken" } else { "recorder" }
    }

    async fn bootstrap(&self, ctx: &mut ContextBuilder) -> Result<(), BoxError> {
        if self.fail {
            return Err("cannot reach the cache".into());
        }
        self.log.lock().unwrap().push(format!("bootstrap {}", ctx.tenant().name));
        ctx.insert(ctx.tenant().name.to_string());
        Ok(())
    }

    async fn revert(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        self.log.lock().unwrap().push(format!("revert {}", ctx.tenant().name));
        Ok(())
    }
}

#[tokio::test]
async fn bootstrappers_attach_resources_and_revert() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let log = Arc::new(Mutex::new(Vec::new()));
    let tenancy = tenancy_with(&env, vec![Arc::new(Recorder { log: log.clone(), fail: false })]).await;
    let a = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
    log.lock().unwrap().clear();
    let resource = tenancy.run(&a, |ctx| async move { ctx.get::<String>().cloned() }).await.unwrap();
    assert_eq!(resource.as_deref(), Some("A"));
    assert_eq!(*log.lock().unwrap(), vec!["bootstrap A", "revert A"]);
}

#[tokio::test]
async fn a_failing_bootstrapper_stops_the_context_and_reverts_the_others() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let log = Arc::new(Mutex::new(Vec::new()));
    let ok = Arc::new(Recorder { log: log.clone(), fail: false });
    let broken = Arc::new(Recorder { log: log.clone(), fail: true });
    let plain = tenancy_with(&env, Vec::new()).await;
    let a = plain.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
    plain.close().await;

    let tenancy = tenancy_with(&env, vec![ok, broken]).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let err = tenancy
        .run(&a, |_| async move {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .await
        .expect_err("the broken bootstrapper fails");
    assert!(matches!(&err, ContextError::Bootstrap { bootstrapper, .. } if bootstrapper == "broken"), "{err:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the closure must not run");
    assert_eq!(*log.lock().unwrap(), vec!["bootstrap A", "revert A"]);
}

#[tokio::test]
async fn for_each_runs_in_every_tenants_own_context_within_its_limit_and_a_panic_fails_one() {
    use tenancy_core::each::EachError;
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let name = backend.name();
        let tenancy = tenancy_with(&env, Vec::new()).await;
        let mut tenants = Vec::new();
        for n in ["A", "B", "C", "D", "E"] {
            tenants.push(tenancy.create_tenant(&TenantRequest::new(TenantName::parse(n).unwrap()), &()).await.unwrap());
        }
        let (alive, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let outcomes = tenancy
            .for_each(tenants.clone(), 2, |ctx| {
                let (alive, most) = (&alive, &most);
                async move {
                    most.fetch_max(alive.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    let email = format!("{}@each.test", ctx.tenant().name);
                    ctx.db().execute_unprepared(&format!("INSERT INTO accounts (name, email) VALUES ('x', '{email}')")).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    alive.fetch_sub(1, Ordering::SeqCst);
                    assert_ne!(ctx.tenant().name.as_str(), "C", "C's work panics");
                    (current_tenant().unwrap(), emails(&ctx).await)
                }
            })
            .await;
        assert_eq!(most.load(Ordering::SeqCst), 2, "{name}: at most 2 at once, and 2 together");
        let order: Vec<_> = outcomes.iter().map(|(tenant, _)| tenant.name.to_string()).collect();
        assert_eq!(order, ["A", "B", "C", "D", "E"], "{name}: in the order given");
        for (tenant, outcome) in &outcomes {
            match outcome {
                Ok((current, emails)) => {
                    assert_eq!(current.id, tenant.id, "{name}");
                    assert_eq!(*emails, [format!("{}@each.test", tenant.name)], "{name}: only its own row");
                }
                Err(EachError::Panicked(panicked)) => {
                    assert_eq!(tenant.name.as_str(), "C", "{name}");
                    assert!(panicked.to_string().contains("C's work panics"), "{name}: {panicked}");
                }
                Err(err) => panic!("{name}: {tenant}: {err}"),
            }
        }
        tenancy.close().await;
    }
}
