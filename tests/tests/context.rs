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

/// A migrated, active tenant named `name`.
async fn create(tenancy: &Tenancy, name: &str) -> tenancy_core::Tenant {
    tenancy.create_tenant(&TenantRequest::new(TenantName::parse(name).unwrap()), &()).await.unwrap()
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
        let a = create(&tenancy, "A").await;
        let b = create(&tenancy, "B").await;
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
    let a = create(&tenancy, "A").await;
    let b = create(&tenancy, "B").await;
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
    let a = create(&tenancy, "A").await;
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
    let a = create(&plain, "A").await;
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
            tenants.push(create(&tenancy, n).await);
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

#[tokio::test]
async fn each_tenant_reaches_only_its_own_files_and_they_go_with_it() {
    use tenancy_core::files::FilesError;
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = tenancy_with(&env, Vec::new()).await;
    let a = create(&tenancy, "A").await;
    let b = create(&tenancy, "B").await;
    assert!(!tenancy.files_of(&a).root().exists(), "nothing is made before the first write");
    tenancy
        .run(&a, |ctx| async move {
            let files = ctx.files();
            files.write("invoices/2026/03.pdf", b"first").await.unwrap();
            files.write("invoices/2026/03.pdf", b"second").await.unwrap();
            files.write("notes.txt", "hello").await.unwrap();
            assert_eq!(files.read("invoices/2026/03.pdf").await.unwrap(), b"second");
            let listed: Vec<_> = files.list("").await.unwrap().into_iter().map(|e| (e.path, e.is_dir, e.size)).collect();
            assert_eq!(listed, [("invoices".into(), true, 0), ("notes.txt".into(), false, 5)]);
            assert_eq!(files.list("invoices/2026").await.unwrap()[0].path, "invoices/2026/03.pdf");
            assert!(files.list("nothing/here").await.unwrap().is_empty());
            assert!(files.delete("notes.txt").await.unwrap());
            assert!(!files.delete("notes.txt").await.unwrap());
            assert!(!files.exists("notes.txt").await.unwrap());
        })
        .await
        .unwrap();
    tenancy
        .run(&b, |ctx| async move {
            assert!(matches!(ctx.files().read("invoices/2026/03.pdf").await, Err(FilesError::NotFound { .. })), "B does not see A's file");
            assert!(ctx.files().list("").await.unwrap().is_empty());
        })
        .await
        .unwrap();
    assert!(tenancy.files_of(&a).root().ends_with(format!("storage/tenants/{}/files", a.id)));

    tenancy.delete_tenant(&a, Default::default()).await.unwrap();
    assert!(!tenancy.files_of(&a).root().parent().unwrap().exists(), "its files went with it");
    tenancy.close().await;
}

#[tokio::test]
async fn hostile_file_paths_and_planted_links_are_refused_on_every_call() {
    use tenancy_core::files::FilesError;
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = tenancy_with(&env, Vec::new()).await;
    let a = create(&tenancy, "A").await;
    let b = create(&tenancy, "B").await;
    tenancy.files_of(&b).write("secret.txt", "B's secret").await.unwrap();
    let outside = env.dir().join("outside.txt");
    std::fs::write(&outside, "outside").unwrap();
    let files = tenancy.files_of(&a);
    files.write("ok.txt", "fine").await.unwrap();

    let b_root = tenancy.files_of(&b).root().to_path_buf();
    let hostile = [
        "../../../outside.txt".to_owned(),
        format!("../../{}/files/secret.txt", b.id),
        outside.display().to_string(),
        b_root.join("secret.txt").display().to_string(),
        "..\\..\\outside.txt".into(),
        "ok.txt\0.png".into(),
        "C:\\Windows\\win.ini".into(),
        "a//b".into(),
        "./ok.txt".into(),
        String::new(),
    ];
    for path in &hostile {
        let refused = |result: Result<(), FilesError>| assert!(matches!(result, Err(FilesError::BadPath { .. })), "{path:?}: {result:?}");
        refused(files.write(path, "x").await);
        refused(files.read(path).await.map(drop));
        refused(files.exists(path).await.map(drop));
        refused(files.delete(path).await.map(drop));
        if !path.is_empty() {
            refused(files.list(path).await.map(drop));
        }
    }

    // Links planted inside A's folder (by something other than this API) lead nowhere.
    std::os::unix::fs::symlink(&b_root, files.root().join("to_b")).unwrap();
    std::os::unix::fs::symlink(&outside, files.root().join("outside_link")).unwrap();
    for path in ["to_b/secret.txt", "to_b/new.txt", "outside_link"] {
        let link = |result: Result<(), FilesError>| assert!(matches!(result, Err(FilesError::Link { .. })), "{path}: {result:?}");
        link(files.write(path, "overwritten").await);
        link(files.read(path).await.map(drop));
        link(files.exists(path).await.map(drop));
    }
    assert!(matches!(files.list("to_b").await, Err(FilesError::Link { .. })));
    assert!(matches!(files.list("").await, Err(FilesError::Link { .. })), "a listing does not hide a planted link");
    assert!(files.delete("to_b").await.unwrap(), "deleting removes the link itself");
    assert!(files.delete("outside_link").await.unwrap());
    assert_eq!(std::fs::read_to_string(b_root.join("secret.txt")).unwrap(), "B's secret", "B's file untouched");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "outside", "the outside file untouched");
    assert_eq!(files.list("").await.unwrap().len(), 1);
    tenancy.close().await;
}
