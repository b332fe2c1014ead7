//! The monitor plugin through the real binary: figures that are measured (a seeded tenant is
//! larger than an empty one, tables are counted), health that notices a database dropped behind
//! tenancy's back and a recorded migration failure, and `/metrics` that a real Prometheus parser
//! accepts and whose figures follow the fleet.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Cli;
use tenancy_core::Tenancy;
use tenancy_core::migrate::fleet::{FleetOptions, Operation};
use tenancy_core::migrate::{SeaOrmMigrator, TenantMigrator};
use tenancy_tests::Backend;
use tenancy_tests::prometheus::{self, Sample};

fn events(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect()
}

fn event_of<'a>(events: &'a [serde_json::Value], kind: &str, tenant: &str) -> &'a serde_json::Value {
    events.iter().find(|e| e["event"] == kind && e["tenant"] == tenant).unwrap_or_else(|| panic!("no {kind} of {tenant} in {events:?}"))
}

/// Drops the tenant's database the way an operator's mistake would: on the server, not through
/// tenancy, so the registry still lists it.
fn drop_behind_our_back(cli: &Cli, reference: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tenancy = Tenancy::builder(cli.env.config()).open().await.unwrap();
        let tenant = tenancy.registry().resolve(reference).await.unwrap();
        tenancy.manager_of(&tenant).unwrap().drop_database(&tenant.database).await.unwrap();
        tenancy.close().await;
    });
}

/// Runs a migration that fails on the tenant, so the registry records the failure as a real run
/// does.
fn fail_a_migration(cli: &Cli, reference: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let broken: Arc<dyn TenantMigrator> = Arc::new(SeaOrmMigrator::<tenancy_tests::migrators::BrokenMigrator>::default());
        let tenancy = Tenancy::builder(cli.env.config()).tenant_migrator(broken).open().await.unwrap();
        let tenant = tenancy.registry().resolve(reference).await.unwrap();
        let options = FleetOptions { concurrency: 1, fail_fast: false, down_during: false, verify: false };
        let report = tenancy.run_fleet(vec![tenant], &Operation::Migrate, options, Arc::new(())).await.pop().unwrap();
        assert!(report.failure.is_some(), "the broken migration fails");
        tenancy.close().await;
    });
}

/// Tables in the tenant's database, as the catalog lists them.
fn table_count(cli: &Cli, reference: &str) -> usize {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tenancy = Tenancy::builder(cli.env.config()).open().await.unwrap();
        let tenant = tenancy.registry().resolve(reference).await.unwrap();
        let count = tenancy.run(&tenant, |ctx| async move { tenancy_tests::table_names(ctx.db()).await.len() }).await.unwrap();
        tenancy.close().await;
        count
    })
}

#[test]
fn stats_and_health_measure_every_backend() {
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        if backend != Backend::Sqlite {
            tokio::runtime::Runtime::new().unwrap().block_on(cli.env.create_central_database());
        }
        let seeded = cli.create("Seeded", &["seeded.test"]);
        cli.ok(&["db", "seed", "--tenant", &seeded]);
        let empty = cli.create("Empty", &["empty.test"]);
        let failing = cli.create("Failing", &["failing.test"]);

        let stats = events(&cli.ok(&["monitor", "stats", "--all", "--json"]));
        let (big, small) = (event_of(&stats, "tenant_stats", &seeded), event_of(&stats, "tenant_stats", &empty));
        let size = |e: &serde_json::Value| e["size_bytes"].as_u64().unwrap_or_else(|| panic!("{backend:?}: no size in {e}"));
        assert!(size(big) > size(small), "{backend:?}: the seeded tenant is larger: {big} vs {small}");
        assert!(size(small) > 0, "{backend:?}: an empty tenant still has its tables: {small}");
        let tables = table_count(&cli, &empty);
        assert_eq!(small["tables"], tables, "{backend:?}: the table count is the catalog's");
        assert_eq!(big["tables"], tables, "{backend:?}");
        assert!(big["rows"].as_u64().unwrap() > 1000, "{backend:?}: the seeders' rows are counted: {big}");
        assert_eq!(small["pending_migrations"], 0, "{backend:?}");
        assert!(small["last_migration_at"].is_string(), "{backend:?}: {small}");
        assert_eq!(small["cache"]["store"], "database", "{backend:?}: {small}");
        assert_eq!(big["facts"]["backups"]["value"]["count"], 0, "{backend:?}: the backup plugin's figures are there: {big}");
        let totals = stats.iter().find(|e| e["event"] == "totals").unwrap();
        assert_eq!(totals["tenants"], 3);
        assert_eq!(totals["size_bytes"].as_u64().unwrap(), stats.iter().filter_map(|e| e["size_bytes"].as_u64()).take(3).sum::<u64>());

        let run = cli.run(&["monitor", "health", "--all"]);
        assert_eq!(run.code, 0, "{backend:?}: every tenant is healthy at first: {}{}", run.stdout, run.stderr);

        drop_behind_our_back(&cli, &empty);
        fail_a_migration(&cli, &failing);
        let run = cli.run(&["monitor", "health", "--all", "--json"]);
        assert_eq!(run.code, 1, "{backend:?}: {}{}", run.stdout, run.stderr);
        let health = events(&run.stdout);
        let healthy = event_of(&health, "tenant_health", &seeded);
        assert_eq!(healthy["healthy"], true, "{backend:?}: {healthy}");
        assert_eq!(healthy["database"]["ok"], true, "{backend:?}: {healthy}");
        assert!(healthy["database"]["round_trip_ms"].as_f64().unwrap() > 0.0, "{backend:?}: a round trip, timed: {healthy}");
        assert_eq!(healthy["cache"], serde_json::json!({"ok": true, "store": "database"}), "{backend:?}");
        let dropped = event_of(&health, "tenant_health", &empty);
        assert_eq!(dropped["healthy"], false);
        assert!(dropped["problems"][0].as_str().unwrap().starts_with("database unreachable"), "{backend:?}: {dropped}");
        let failed = event_of(&health, "tenant_health", &failing);
        assert_eq!(failed["healthy"], false, "{backend:?}: {failed}");
        assert_eq!(failed["last_failure"]["migration"], "app/m2_broken", "{backend:?}: {failed}");
        let summary = health.iter().find(|e| e["event"] == "summary").unwrap();
        assert_eq!((summary["healthy"].as_u64(), summary["unhealthy"].as_u64()), (Some(1), Some(2)), "{backend:?}");

        // The plain lines say the same, one per tenant.
        let run = cli.run(&["monitor", "health", "--tenant", "empty.test"]);
        assert_eq!(run.code, 1);
        assert!(run.stdout.starts_with("FAIL Empty") && run.stdout.contains("database unreachable"), "{backend:?}: {}", run.stdout);
        assert!(run.stderr.contains("1 unhealthy"), "{}", run.stderr);

        let run = cli.run(&["monitor", "stats", "--all", "--json"]);
        assert_eq!(run.code, 1, "{backend:?}: an unreadable tenant fails the run");
        let missing = events(&run.stdout);
        let gone = event_of(&missing, "tenant_stats", &empty);
        assert!(gone["size_bytes"].is_null() && gone["error"].is_string(), "{backend:?}: {gone}");
    }
}

#[test]
fn stats_sorts_limits_and_refuses_bad_input() {
    let cli = Cli::sqlite();
    let seeded = cli.create("Seeded", &["seeded.test"]);
    cli.ok(&["db", "seed", "--tenant", &seeded]);
    cli.create("Aardvark", &["aardvark.test"]);
    let out = cli.ok(&["monitor", "stats", "--all", "--top", "1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("TENANT") && lines[0].contains("SIZE") && lines[0].contains("BACKUPS"), "{out}");
    assert!(lines[1].starts_with("Seeded"), "the largest first: {out}");
    assert!(lines[2].starts_with("total (2 tenants)"), "totals count every tenant, shown or not: {out}");
    cli.ok(&["backup", "create", "--tenant", "seeded.test"]);
    let out = cli.ok(&["monitor", "stats", "--all"]);
    assert!(out.lines().nth(1).unwrap().contains(", not verified"), "{out}");
    cli.ok(&["backup", "verify", "--tenant", "seeded.test"]);
    let stats = events(&cli.ok(&["monitor", "stats", "--tenant", "seeded.test", "--json"]));
    let backups = &stats[0]["facts"]["backups"];
    assert_eq!(backups["value"]["count"], 1, "{backups}");
    assert!(backups["value"]["newest"]["verified_at"].is_string(), "backup verify recorded when: {backups}");
    assert!(backups["text"].as_str().unwrap().starts_with("1, newest ") && backups["text"].as_str().unwrap().ends_with(", verified"));

    let by_name = cli.ok(&["monitor", "stats", "--all", "--sort", "name"]);
    assert!(by_name.lines().nth(1).unwrap().starts_with("Aardvark"), "{by_name}");

    for args in [
        &["monitor", "stats", "--all", "--sort", "colour"][..],
        &["monitor", "stats", "--all", "--top", "0"],
        &["monitor", "stats"],
        &["monitor", "health", "--tenant", "nobody.test"],
        &["monitor", "watch", "--interval", "0"],
        &["monitor", "serve", "--listen", "nowhere"],
    ] {
        let run = cli.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    std::fs::write(cli.dir().join("tenancy.toml"), "[monitor]\ntenant_series = 1000\n").unwrap();
    let run = cli.run(&["monitor", "stats", "--all"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("monitor.tenant_series") && run.stderr.contains("more than 100"), "{}", run.stderr);
}

#[test]
fn a_cache_whose_redis_is_down_makes_tenants_unhealthy_and_says_why() {
    let cli = Cli::sqlite();
    let acme = cli.create("Acme", &["acme.test"]);
    std::fs::write(cli.dir().join("tenancy.toml"), "[cache]\nstore = \"redis\"\n\n[redis]\nurl = \"redis://127.0.0.1:1\"\n").unwrap();
    let run = cli.run(&["monitor", "health", "--all", "--json"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let health = events(&run.stdout);
    let acme = event_of(&health, "tenant_health", &acme);
    assert!(acme["database"].is_null(), "the database answered; it is not blamed: {acme}");
    let problem = acme["problems"][0].as_str().unwrap();
    assert!(problem.starts_with("cannot enter its context") && problem.contains("cache"), "{problem}");
}

#[test]
fn watch_prints_one_json_object_per_interval_off_a_terminal() {
    let cli = Cli::sqlite();
    let seeded = cli.create("Seeded", &["seeded.test"]);
    cli.ok(&["db", "seed", "--tenant", &seeded]);
    let out = cli.ok(&["monitor", "watch", "--interval", "1", "--count", "2"]);
    let snapshots = events(&out);
    assert_eq!(snapshots.len(), 2, "{out}");
    assert_eq!(snapshots[0]["tenants"]["active"], 1);
    assert_eq!(snapshots[0]["largest"][0]["name"], "Seeded");
    assert!(snapshots[0]["total_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn watch_draws_on_a_terminal_and_q_restores_it() {
    let cli = Cli::sqlite();
    cli.create("Seeded", &["seeded.test"]);
    // A pty starts with no size; a real terminal has one.
    let mut command = cli.process(std::path::Path::new("sh"));
    command.args(["-c", "stty cols 100 rows 30 && exec \"$0\" monitor watch --interval 1", env!("CARGO_BIN_EXE_tenancy-sample")]);
    let mut session = rexpect::session::spawn_command(command, Some(30_000)).unwrap();
    // ratatui moves the cursor between words, so words, in drawing order, are what can be expected.
    for word in ["monitor", "tenant", "active)", "connections", "largest", "Seeded", "failures", "quits"] {
        session.exp_string(word).unwrap();
    }
    session.send("q").unwrap();
    session.flush().unwrap();
    // Leaving the alternate screen and showing the cursor again is the terminal restored.
    session.exp_string("\x1b[?1049l").unwrap();
    session.exp_eof().unwrap();
}

/// A running `tenancy` serving on a port it chose, stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Server {
    fn start(cli: &Cli, args: &[&str]) -> Self {
        let mut child =
            cli.tenancy_process().args(args).args(["--json", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).spawn().unwrap();
        let (lines, received) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = lines.send(line.unwrap());
            }
        });
        let listening: serde_json::Value = serde_json::from_str(&received.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
        assert_eq!(listening["event"], "listening");
        Self { child, address: listening["address"].as_str().unwrap().parse().unwrap() }
    }

    fn get(&self, host: &str, path: &str) -> tenancy_tests::http::Response {
        tokio::runtime::Runtime::new().unwrap().block_on(tenancy_tests::http::get(self.address, host, path))
    }

    /// The parsed `/metrics`, once `ready` holds of it (samples are taken in the background).
    fn metrics_when(&self, host: &str, ready: impl Fn(&[Sample]) -> bool) -> Option<Vec<Sample>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let response = self.get(host, "/metrics");
            assert_eq!(response.status, 200, "{response:?}");
            assert!(response.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"), "{response:?}");
            let samples = prometheus::parse(&response.body)?;
            if ready(&samples) {
                return Some(samples);
            }
            assert!(Instant::now() < deadline, "the metrics never got there:\n{}", response.body);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(mut self) -> i32 {
        let terminated = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(terminated.success());
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn active_tenants(samples: &[Sample]) -> Option<f64> {
    prometheus::value(samples, "tenancy_tenants", &[("status", "active")])
}

#[test]
fn metrics_parse_follow_the_fleet_and_label_only_the_largest_tenants() {
    let cli = Cli::sqlite();
    std::fs::write(cli.dir().join("tenancy.toml"), "[monitor]\nsample_interval_secs = 1\ntenant_series = 2\n").unwrap();
    let seeded = cli.create("Seeded", &["seeded.test"]);
    cli.ok(&["db", "seed", "--tenant", &seeded]);
    cli.create("Small", &["small.test"]);
    cli.create("Smaller", &["smaller.test"]);

    let server = Server::start(&cli, &["monitor", "serve"]);
    let Some(samples) = server.metrics_when("127.0.0.1", |s| active_tenants(s) == Some(3.0)) else { return };
    let tenant_series: Vec<&Sample> = samples.iter().filter(|s| s.labels.contains_key("tenant")).collect();
    assert_eq!(tenant_series.len(), 3, "two tenants and `other`: {tenant_series:?}");
    assert!(tenant_series.iter().any(|s| s.labels["tenant"] == seeded), "the largest has its own series");
    assert_eq!(prometheus::value(&samples, "tenancy_tenant_series_folded", &[]), Some(1.0));
    let bytes = prometheus::value(&samples, "tenancy_fleet_database_bytes", &[]).unwrap();
    assert!(bytes > 1_000_000.0, "the fleet's bytes are measured: {bytes}");
    assert!(prometheus::value(&samples, "tenancy_monitor_samples_total", &[]).unwrap() >= 1.0);

    // Another process creates a tenant; the next sample shows it.
    cli.create("Newcomer", &["newcomer.test"]);
    server.metrics_when("127.0.0.1", |s| active_tenants(s) == Some(4.0)).unwrap();
    assert_eq!(server.stop(), 0);
}

#[test]
fn tenancy_serve_answers_metrics_on_central_hosts_only() {
    let cli = Cli::sqlite();
    std::fs::write(cli.dir().join("tenancy.toml"), "[monitor]\nsample_interval_secs = 1\n").unwrap();
    cli.create("Acme", &["acme.localhost"]);
    let server = Server::start(&cli, &["serve"]);
    // A request through the tenant layer, so its counter has something to count.
    assert_eq!(server.get("acme.localhost", "/healthz").status, 200);
    let Some(samples) = server.metrics_when("localhost", |s| active_tenants(s) == Some(1.0)) else { return };
    let served = prometheus::value(&samples, "tenancy_web_requests_total", &[("identified", "tenant"), ("outcome", "served")]);
    assert_eq!(served, Some(1.0), "the tenant's request was counted");
    assert!(samples.iter().all(|s| !s.labels.contains_key("tenant")), "no tenant label unless asked for");
    assert_eq!(server.get("acme.localhost", "/metrics").status, 404, "the fleet's figures are not a tenant's to see");
    assert_eq!(server.stop(), 0);
}

#[test]
fn a_server_that_does_not_answer_is_named_and_nothing_hangs() {
    let Some(cli) = Cli::new(Backend::Postgres) else { return };
    tokio::runtime::Runtime::new().unwrap().block_on(cli.env.create_central_database());
    let acme = cli.create("Acme", &["acme.test"]);
    // The tenants' server moves to a port nothing listens on; the registry stays where it is.
    let config = cli.env.config_toml();
    let moved: String = config
        .lines()
        .map(|line| {
            if line.starts_with("default = ") {
                "default = \"postgres://postgres@127.0.0.1:1/postgres\"".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(cli.dir().join("tenancy.toml"), moved).unwrap();
    let started = Instant::now();

    let run = cli.run(&["monitor", "stats", "--all", "--json"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    // With --json the warning is an event of its own.
    let stats = events(&run.stdout);
    let warning =
        stats.iter().find(|e| e.to_string().contains("server `default` could not be asked")).unwrap_or_else(|| panic!("{stats:?}"));
    assert!(warning.to_string().contains("127.0.0.1:1"), "{warning}");
    assert!(event_of(&stats, "tenant_stats", &acme)["error"].is_string());

    let run = cli.run(&["monitor", "health", "--all", "--json"]);
    assert_eq!(run.code, 1);
    let health = events(&run.stdout);
    assert!(event_of(&health, "tenant_health", &acme)["problems"][0].as_str().unwrap().starts_with("database unreachable"));

    let out = cli.ok(&["monitor", "watch", "--count", "1"]);
    let snapshot: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(snapshot["problems"][0].as_str().unwrap().starts_with("server default"), "{snapshot}");
    assert!(snapshot["missing"].as_array().unwrap().is_empty(), "a tenant on a server that cannot be asked is not called missing");
    assert!(started.elapsed() < Duration::from_secs(60), "a refused connection fails fast");
}
