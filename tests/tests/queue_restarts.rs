//! Workers outlive their servers: a NATS server and a PostgreSQL server restarted under a
//! running worker, which reconnects and carries on. Each test starts a server of its own (a
//! `nats-server` on a free port, a PostgreSQL cluster made with `initdb`) so restarting it
//! disturbs no other test.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use serde::{Deserialize, Serialize};
use tenancy_core::config::QueueEngineKind;
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::queue::{Job, JobSet, Worker};
use tenancy_core::{BoxError, Config, Tenancy, TenantContext, TenantName};
use tenancy_tests::on_ci;

#[derive(Serialize, Deserialize)]
struct Note {
    number: u32,
}

impl Job for Note {
    const NAME: &'static str = "note";

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let db = ctx.db();
        let sql = format!("INSERT INTO accounts (name, email) VALUES ('note', '{}@notes.test')", self.number);
        db.execute_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
        Ok(())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program of the machine's, or `None` (after saying so; a failure on CI).
fn program(path: &str) -> Option<PathBuf> {
    let found = Path::new(path).exists().then(|| PathBuf::from(path));
    if found.is_none() {
        assert!(!on_ci(), "CI is set but {path} is missing");
        // Straight to stderr: the harness captures `eprintln!`, and this must be seen.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {path} is missing");
    }
    found
}

async fn open(config: Config) -> Arc<Tenancy> {
    tenancy_core::Registry::create_database_if_missing(&config).await.unwrap();
    Arc::new(Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await.unwrap())
}

/// Dispatches `numbers` to `tenant`, retrying each while the server is still coming back.
async fn dispatch(tenancy: &Tenancy, tenant: &tenancy_core::Tenant, numbers: std::ops::Range<u32>) {
    for number in numbers {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(err) = tenancy.dispatch(tenant, &Note { number }).await {
            assert!(Instant::now() < deadline, "cannot dispatch after the restart: {err}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Waits until the tenant has `count` notes.
async fn wait_for_notes(tenancy: &Tenancy, tenant: &tenancy_core::Tenant, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counted = tenancy
            .run(tenant, |ctx| async move {
                let db = ctx.db();
                let row = db
                    .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM accounts WHERE name = 'note'"))
                    .await
                    .ok()??;
                row.try_get_by_index::<i64>(0).ok()
            })
            .await
            .ok()
            .flatten();
        if counted == Some(count) {
            return;
        }
        assert!(Instant::now() < deadline, "the tenant has {counted:?} notes, not {count}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the scenario: 10 jobs, the server restarted by `restart`, 10 more; all 20 done, once each.
async fn jobs_carry_on_across(tenancy: Arc<Tenancy>, restart: impl FnOnce()) {
    let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
    let queues = tenancy.queue().default_queues(&tenancy).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn({
        let tenancy = tenancy.clone();
        async move { Worker::new(tenancy, JobSet::new().tenant::<Note>()).work(&queues, 4, stopped).await }
    });
    dispatch(&tenancy, &tenant, 0..10).await;
    wait_for_notes(&tenancy, &tenant, 10).await;
    restart();
    dispatch(&tenancy, &tenant, 10..20).await;
    wait_for_notes(&tenancy, &tenant, 20).await;
    assert!(!worker.is_finished(), "the worker gave up: {:?}", worker.await);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), worker).await.expect("the worker stops").unwrap().unwrap();
    Arc::try_unwrap(tenancy).ok().unwrap().close().await;
}

struct Nats {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    fn start() -> Self {
        let (port, store) = (free_port(), tempfile::tempdir().unwrap());
        Self { child: Self::spawn(port, store.path()), port, store }
    }

    fn spawn(port: u16, store: &Path) -> Child {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port);
        child
    }

    /// Kills the server and starts it again on the same port and store.
    fn restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        self.child = Self::spawn(self.port, self.store.path());
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_carries_on_after_the_nats_server_restarts() {
    if program("/usr/sbin/nats-server").is_none() && program("/usr/bin/nats-server").is_none() {
        return;
    }
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(dir.path(), None).unwrap();
    config.queue.engine = QueueEngineKind::Nats;
    config.queue.nats_url = format!("nats://127.0.0.1:{}", nats.port);
    let tenancy = open(config).await;
    jobs_carry_on_across(tenancy, || nats.restart()).await;
}

/// A PostgreSQL cluster of the test's own, in a temporary folder, owned by the `postgres` user
/// when the tests run as root (PostgreSQL refuses to run as root).
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|bin| bin.join("initdb").exists());
        let Some(bin) = bin else {
            program("/usr/lib/postgresql/*/bin/initdb");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cluster = Self { bin, data, port: free_port(), _dir: dir };
        if cluster.as_root() {
            assert!(Command::new("chown").args(["-R", "postgres"]).arg(cluster._dir.path()).status().unwrap().success());
        }
        let data = cluster.data.display().to_string();
        cluster.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        cluster.pg_ctl("start");
        Some(cluster)
    }

    fn as_root(&self) -> bool {
        String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap().trim() == "0"
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool);
        let mut command = if self.as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&tool);
            command
        } else {
            Command::new(&tool)
        };
        let output = command.args(args).output().unwrap();
        assert!(output.status.success(), "{} {args:?}: {}", tool.display(), String::from_utf8_lossy(&output.stderr));
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.data.display().to_string();
        let socket = self._dir.path().display().to_string();
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {socket} -c fsync=off", self.port);
        self.run("pg_ctl", &["-D", &data, "-o", &options, "-w", "-m", "fast", "-l", &format!("{socket}/log"), action]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = if self.as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output()
        } else {
            Command::new(self.bin.join("pg_ctl")).args(["-D", &data, "-m", "immediate", "stop"]).output()
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_carries_on_after_the_database_server_restarts() {
    let Some(postgres) = Postgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = format!("postgres://postgres@127.0.0.1:{}", postgres.port);
    let toml = format!(
        "[central]\nurl = \"{server}/central\"\n\n[tenant_database]\ndriver = \"postgres\"\nconnect_timeout_secs = 5\n\n[tenant_database.servers]\ndefault = \"{server}/postgres\"\n\n[queue]\nvisibility_timeout_secs = 4\n"
    );
    std::fs::write(dir.path().join("tenancy.toml"), toml).unwrap();
    let config = Config::load(dir.path(), None).unwrap();
    let tenancy = open(config).await;
    jobs_carry_on_across(tenancy, || postgres.pg_ctl("restart")).await;
}
