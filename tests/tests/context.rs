//! Running code as a tenant: each tenant's queries reach only its own database, `current_tenant()`
//! follows the context, and bootstrappers attach resources and are reverted.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, Statement};
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Bootstrapper, BoxError, ContextBuilder, ContextError, Tenancy, TenantContext, TenantName, current_tenant};
use tenancy_tests::bucket::TestBucket;
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

/// Attaches the tenant's id and counts how often it is asked to; it says it only attaches, and it
/// fails while `failing` is set.
#[derive(Default)]
struct Attacher {
    runs: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl Attacher {
    fn counting(runs: &Arc<AtomicUsize>) -> Arc<dyn Bootstrapper> {
        Arc::new(Self { runs: runs.clone(), ..Self::default() })
    }
}

#[async_trait::async_trait]
impl Bootstrapper for Attacher {
    fn name(&self) -> &str {
        "attacher"
    }

    async fn bootstrap(&self, ctx: &mut ContextBuilder) -> Result<(), BoxError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err("the attachment is not ready".into());
        }
        ctx.insert(ctx.tenant().id);
        Ok(())
    }

    fn attaches_only(&self) -> bool {
        true
    }
}

/// Enters `tenant`'s context and checks that everything in it is the tenant's own: its id as
/// attached, `current_tenant()`, and a cache that counts its own visits.
async fn visit(tenancy: &Tenancy, tenant: &tenancy_core::Tenant) -> i64 {
    let expected = tenant.clone();
    tenancy
        .run(tenant, |ctx| async move {
            assert_eq!(ctx.get::<tenancy_core::TenantId>(), Some(&expected.id));
            assert_eq!(current_tenant().unwrap().id, expected.id);
            ctx.cache().unwrap().increment("visits", 1).await.unwrap()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn attach_only_bootstrappers_run_once_per_pool_and_each_context_keeps_its_own_tenant() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let runs = Arc::new(AtomicUsize::new(0));
    let tenancy = tenancy_with(&env, vec![Attacher::counting(&runs)]).await;
    let (a, b) = (create(&tenancy, "A").await, create(&tenancy, "B").await);
    tenancy.connections().close_all().await;
    runs.store(0, Ordering::SeqCst);
    for round in 1..=3 {
        assert_eq!(visit(&tenancy, &a).await, round);
        assert_eq!(visit(&tenancy, &b).await, round);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "once for each tenant's pool");
    // A pool made again makes its resources again.
    tenancy.connections().close(&a.id).await;
    assert_eq!(visit(&tenancy, &a).await, 4);
    assert_eq!(runs.load(Ordering::SeqCst), 3);

    // Beside a bootstrapper that does work on entry and exit, every bootstrapper runs every time.
    let log = Arc::new(Mutex::new(Vec::new()));
    let both: Vec<Arc<dyn Bootstrapper>> = vec![Attacher::counting(&runs), Arc::new(Recorder { log: log.clone(), fail: false })];
    let mixed = tenancy_with(&env, both).await;
    runs.store(0, Ordering::SeqCst);
    for _ in 0..2 {
        mixed.run(&a, |ctx| async move { assert!(ctx.get::<tenancy_core::TenantId>().is_some()) }).await.unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(*log.lock().unwrap(), vec!["bootstrap A", "revert A", "bootstrap A", "revert A"]);
}

#[tokio::test]
async fn a_failed_attach_only_bootstrap_shares_nothing_and_the_next_context_runs_it_again() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let (runs, failing) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let tenancy = tenancy_with(&env, vec![Arc::new(Attacher { runs: runs.clone(), failing: failing.clone() })]).await;
    let a = create(&tenancy, "A").await;
    tenancy.connections().close_all().await;
    runs.store(0, Ordering::SeqCst);
    failing.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let err = tenancy.run(&a, |_| async {}).await.expect_err("the bootstrapper fails");
        assert!(matches!(&err, ContextError::Bootstrap { bootstrapper, .. } if bootstrapper == "attacher"), "{err:?}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "a failure is not kept: each context tries again");
    failing.store(false, Ordering::SeqCst);
    for round in 1..=3 {
        assert_eq!(visit(&tenancy, &a).await, round);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3, "made once it succeeds, then shared");
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

/// Asserts that every call of `files` refuses `path` as a bad path.
async fn refused_on_every_call(files: &tenancy_core::files::TenantFiles, path: &str, storage: &str) {
    use tenancy_core::files::FilesError;
    let refused =
        |result: Result<(), FilesError>| assert!(matches!(result, Err(FilesError::BadPath { .. })), "{storage}: {path:?}: {result:?}");
    refused(files.write(path, "x").await);
    refused(files.read(path).await.map(drop));
    refused(files.exists(path).await.map(drop));
    refused(files.delete(path).await.map(drop));
    if !path.is_empty() {
        refused(files.list(path).await.map(drop));
    }
}

/// Files on disk, and (when the S3 tests run) in a bucket: the same calls, the same answers.
async fn files_tenancies(env: &TestEnv) -> Vec<(&'static str, Tenancy, Option<TestBucket>)> {
    let mut tenancies = vec![("disk", tenancy_with(env, Vec::new()).await, None)];
    if let Some(bucket) = TestBucket::new(&format!("files-{}", env.prefix.trim_end_matches('_').replace('_', "-"))) {
        let mut config = env.config();
        config.files.s3 = Some(bucket.config("app/tenants"));
        let tenancy =
            Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await.unwrap();
        tenancies.push(("bucket", tenancy, Some(bucket)));
    }
    tenancies
}

#[tokio::test]
async fn each_tenant_reaches_only_its_own_files_and_they_go_with_it() {
    use tenancy_core::files::FilesError;
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    for (storage, tenancy, bucket) in files_tenancies(&env).await {
        let a = create(&tenancy, &format!("A {storage}")).await;
        let b = create(&tenancy, &format!("B {storage}")).await;
        if let Some(root) = tenancy.files_of(&a).local_root() {
            assert!(!root.exists(), "nothing is made before the first write");
        }
        tenancy
            .run(&a, |ctx| async move {
                let files = ctx.files();
                files.write("invoices/2026/03.pdf", b"first").await.unwrap();
                files.write("invoices/2026/03.pdf", b"second").await.unwrap();
                files.write("notes.txt", "hello").await.unwrap();
                files.write("odd name %2F [x] #1.txt", "odd").await.unwrap();
                assert_eq!(files.read("invoices/2026/03.pdf").await.unwrap(), b"second", "{storage}");
                assert_eq!(files.read("odd name %2F [x] #1.txt").await.unwrap(), b"odd", "{storage}: names come back as written");
                let listed: Vec<_> = files.list("").await.unwrap().into_iter().map(|e| (e.path, e.is_dir, e.size)).collect();
                assert_eq!(
                    listed,
                    [("invoices".into(), true, 0), ("notes.txt".into(), false, 5), ("odd name %2F [x] #1.txt".into(), false, 3)],
                    "{storage}"
                );
                assert_eq!(files.list("invoices/2026").await.unwrap()[0].path, "invoices/2026/03.pdf", "{storage}");
                assert!(files.list("nothing/here").await.unwrap().is_empty());
                assert!(files.exists("invoices").await.unwrap(), "{storage}: a folder exists");
                let walked: Vec<_> = files.walk().await.unwrap().into_iter().map(|e| e.path).collect();
                assert_eq!(walked, ["invoices/2026/03.pdf", "notes.txt", "odd name %2F [x] #1.txt"], "{storage}");
                // A file cannot be a folder too, in a bucket as on disk.
                assert!(matches!(files.write("notes.txt/inner", "x").await, Err(FilesError::Io { .. })), "{storage}");
                assert!(matches!(files.write("invoices", "x").await, Err(FilesError::Io { .. })), "{storage}");
                assert!(files.delete("notes.txt").await.unwrap());
                assert!(!files.delete("notes.txt").await.unwrap());
                assert!(!files.exists("notes.txt").await.unwrap());
                assert!(files.delete("invoices").await.unwrap(), "{storage}: a folder goes with everything in it");
                assert!(!files.exists("invoices/2026/03.pdf").await.unwrap(), "{storage}");
                files.write("kept.txt", "kept").await.unwrap();
            })
            .await
            .unwrap();
        tenancy
            .run(&b, |ctx| async move {
                assert!(
                    matches!(ctx.files().read("kept.txt").await, Err(FilesError::NotFound { .. })),
                    "{storage}: B does not see A's file"
                );
                assert!(ctx.files().list("").await.unwrap().is_empty());
                ctx.files().write("b.txt", "B's").await.unwrap();
            })
            .await
            .unwrap();
        let files = tenancy.files_of(&a);
        for path in ["../x", &format!("../{}/files/b.txt", b.id), "/etc/passwd", "a\\b", "a\0b", "a//b", "./kept.txt", ""] {
            refused_on_every_call(&files, path, storage).await;
        }
        if let Some(root) = files.local_root() {
            assert!(root.ends_with(format!("storage/tenants/{}/files", a.id)));
        }
        if let Some(bucket) = &bucket {
            let keys = bucket.keys();
            assert!(keys.contains(&format!("app/tenants/{}/files/kept.txt", a.id)), "{keys:?}");
            assert!(keys.contains(&format!("app/tenants/{}/files/b.txt", b.id)), "{keys:?}");
        }

        tenancy.delete_tenant(&a, Default::default()).await.unwrap();
        assert!(tenancy.files_of(&a).walk().await.unwrap().is_empty(), "{storage}: its files went with it");
        if let Some(root) = tenancy.files_of(&a).local_root() {
            assert!(!root.parent().unwrap().exists(), "its folder went with it");
        }
        assert_eq!(tenancy.files_of(&b).read("b.txt").await.unwrap(), b"B's", "{storage}: B's files stay");
        tenancy.close().await;
    }
}

#[tokio::test]
async fn replacing_a_tenants_files_leaves_exactly_the_new_ones_and_refuses_links() {
    use tenancy_core::files::FilesError;
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    for (storage, tenancy, _bucket) in files_tenancies(&env).await {
        let a = create(&tenancy, &format!("A {storage}")).await;
        let files = tenancy.files_of(&a);
        files.write("old.txt", "old").await.unwrap();
        files.write("shared/x.txt", "old x").await.unwrap();
        let incoming = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(incoming.path().join("shared/deeper")).unwrap();
        std::fs::write(incoming.path().join("shared/x.txt"), "new x").unwrap();
        std::fs::write(incoming.path().join("shared/deeper/y.txt"), "y").unwrap();
        files.replace_with(incoming.path()).await.unwrap();
        let walked: Vec<_> = files.walk().await.unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(walked, ["shared/deeper/y.txt", "shared/x.txt"], "{storage}");
        assert_eq!(files.read("shared/x.txt").await.unwrap(), b"new x");

        // A link in what is to come in is refused, and nothing changes.
        std::os::unix::fs::symlink("/etc/passwd", incoming.path().join("passwd")).unwrap();
        assert!(matches!(files.replace_with(incoming.path()).await, Err(FilesError::Link { .. })), "{storage}");
        assert_eq!(files.walk().await.unwrap().len(), 2, "{storage}");
        files.delete_all().await.unwrap();
        assert!(files.walk().await.unwrap().is_empty(), "{storage}");
        tenancy.close().await;
    }
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

    let b_root = tenancy.files_of(&b).local_root().unwrap();
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
        refused_on_every_call(&files, path, "disk").await;
    }

    // Links planted inside A's folder (by something other than this API) lead nowhere.
    let root = files.local_root().unwrap();
    std::os::unix::fs::symlink(&b_root, root.join("to_b")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("outside_link")).unwrap();
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
