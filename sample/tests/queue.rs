//! `tenancy queue` through the real binary: the sample's job queued, worked, and its figure in
//! exactly its own tenant's cache; a suspended tenant's job failed with the reason, retried once the
//! tenant is active; bad input refused with exit 2 and nothing queued; and a worker SIGKILLed in the
//! middle of a job replaced by another that completes it, on the database engine and on NATS.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Cli;
use tenancy_tests::{Backend, NATS_ADDR, service_available};

/// A `tenancy queue work --json` process and the JSON lines it prints.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Worker {
    fn start(cli: &Cli) -> Self {
        let mut child =
            cli.tenancy_process().args(["queue", "work", "--json", "--concurrency", "4"]).stdout(Stdio::piped()).spawn().unwrap();
        let (send, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = send.send(serde_json::from_str(&line.unwrap()).unwrap());
            }
        });
        let worker = Self { child, lines };
        worker.wait_for(|event| event["event"] == "working");
        worker
    }

    /// The first event `wanted` accepts (within 60 s).
    fn wait_for(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no such event within 60 s; seen: {seen:?}"));
            if wanted(&event) {
                return event;
            }
            seen.push(event);
        }
    }

    fn stop(mut self) -> i32 {
        let terminated = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(terminated.success());
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        assert!(self.lines.recv_timeout(Duration::from_secs(5)).is_ok_and(|event| event["event"] == "stopped" || event["event"] == "job"));
        code
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn queue_status(cli: &Cli) -> serde_json::Value {
    serde_json::from_str(&cli.ok(&["queue", "status", "--json"])).unwrap()
}

fn total(status: &serde_json::Value, field: &str) -> u64 {
    status["queues"].as_array().unwrap().iter().map(|queue| queue[field].as_u64().unwrap()).sum()
}

/// The tenant's cached airport count, read through the library.
fn cached_count(cli: &Cli, reference: &str) -> Option<i64> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tenancy = tenancy_core::Tenancy::builder(cli.env.config()).open().await.unwrap();
        let tenant = tenancy.registry().resolve(reference).await.unwrap();
        let count =
            tenancy.run(&tenant, |ctx| async move { ctx.cache().unwrap().get::<i64>("airports:count").await.unwrap() }).await.unwrap();
        tenancy.close().await;
        count
    })
}

fn use_nats(cli: &Cli, visibility_timeout_secs: u64) {
    let prefix = cli.env.prefix.trim_end_matches('_');
    let toml = cli.env.config_toml();
    let queue = format!("\n[queue]\nengine = \"nats\"\nnats_prefix = \"{prefix}\"\nvisibility_timeout_secs = {visibility_timeout_secs}\n");
    std::fs::write(cli.dir().join("tenancy.toml"), toml + &queue).unwrap();
}

fn set_queue(cli: &Cli, extra: &str) {
    let toml = cli.env.config_toml();
    std::fs::write(cli.dir().join("tenancy.toml"), format!("{toml}\n[queue]\n{extra}\n")).unwrap();
}

/// Removes the NATS streams a test made.
fn drop_streams(cli: &Cli) {
    let prefix = cli.env.prefix.trim_end_matches('_').to_owned();
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let js = async_nats::jetstream::new(async_nats::connect(NATS_ADDR).await.unwrap());
        for stream in ["jobs", "failed"] {
            let _ = js.delete_stream(format!("{prefix}_{stream}")).await;
        }
    });
}

#[test]
fn a_job_runs_for_its_tenant_only_and_a_suspended_tenants_job_fails_until_retried() {
    let cli = Cli::sqlite();
    let seeded = cli.create("Seeded", &["seeded.test"]);
    cli.ok(&["db", "seed", "--tenant", &seeded]);
    let other = cli.create("Other", &["other.test"]);
    let airports = cli.scalar(&seeded, "SELECT COUNT(*) FROM airports").unwrap();
    assert!(airports > 0);

    let listed = cli.ok(&["queue", "dispatch", "--list"]);
    assert!(listed.contains("recount-airports  (tenant job)"), "{listed}");
    cli.ok(&["queue", "dispatch", "recount-airports", "--tenant", "seeded.test"]);
    cli.ok(&["queue", "dispatch", "recount-airports", "--tenant", "other.test"]);
    cli.ok(&["tenant", "suspend", "other.test"]);
    let status = queue_status(&cli);
    assert_eq!(total(&status, "pending"), 2, "{status}");

    let worker = Worker::start(&cli);
    // Both run at once: in either order.
    let (mut first, mut second) = (worker.wait_for(|event| event["event"] == "job"), worker.wait_for(|event| event["event"] == "job"));
    if first["outcome"] == "failed" {
        std::mem::swap(&mut first, &mut second);
    }
    let (done, failed) = (first, second);
    assert_eq!((done["tenant"].as_str(), done["outcome"].as_str()), (Some(seeded.as_str()), Some("done")), "{done}");
    assert_eq!((failed["tenant"].as_str(), failed["outcome"].as_str()), (Some(other.as_str()), Some("failed")), "{failed}");
    assert!(failed["detail"].as_str().unwrap().contains("is suspended"), "{failed}");
    assert_eq!(worker.stop(), 0);

    assert_eq!(cached_count(&cli, &seeded), Some(airports));
    assert_eq!(cached_count(&cli, &other), None, "the suspended tenant's job ran");
    let failed: Vec<serde_json::Value> = serde_json::from_str(&cli.ok(&["queue", "failed", "--tenant", "other.test", "--json"])).unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["reason"].as_str().unwrap().contains("is suspended"), "{failed:?}");
    let listed = cli.ok(&["queue", "failed"]);
    assert!(listed.contains("Other") && listed.contains("is suspended"), "{listed}");

    // Once the tenant is active again, retrying runs it.
    cli.ok(&["tenant", "activate", "other.test"]);
    cli.ok(&["queue", "retry", "--all-failed"]);
    let worker = Worker::start(&cli);
    let done = worker.wait_for(|event| event["event"] == "job");
    assert_eq!((done["tenant"].as_str(), done["outcome"].as_str()), (Some(other.as_str()), Some("done")), "{done}");
    assert_eq!(worker.stop(), 0);
    assert_eq!(cached_count(&cli, &other), Some(0));
    assert_eq!(total(&queue_status(&cli), "failed"), 0);

    // Clearing one tenant's jobs leaves the other's.
    cli.ok(&["queue", "dispatch", "recount-airports", "--tenant", "seeded.test", "--delay", "3600"]);
    cli.ok(&["queue", "dispatch", "recount-airports", "--tenant", "other.test", "--delay", "3600"]);
    let cleared = cli.run(&["queue", "clear", "--tenant", "other.test"]);
    assert_eq!(cleared.code, 0, "{}", cleared.stderr);
    let status = queue_status(&cli);
    let tenants = status["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "{status}");
    assert_eq!(tenants[0]["name"], seeded.as_str());
    // Deleting a tenant removes its queued jobs.
    cli.ok(&["tenant", "delete", "seeded.test", "--force"]);
    assert_eq!(total(&queue_status(&cli), "pending"), 0);
}

#[test]
fn bad_queue_input_is_refused_with_exit_2_and_queues_nothing() {
    let cli = Cli::sqlite();
    cli.create("Acme", &["acme.test"]);
    for (args, expected) in [
        (vec!["queue", "dispatch", "no-such-job", "--tenant", "acme.test"], "no job named `no-such-job`"),
        (vec!["queue", "dispatch", "recount-airports"], "name its tenant with --tenant"),
        (vec!["queue", "dispatch", "recount-airports", "--tenant", "acme.test", "--payload", "{bad"], "--payload is not JSON"),
        (
            vec!["queue", "dispatch", "recount-airports", "--tenant", "acme.test", "--payload", "{\"pause_ms\": \"soon\"}"],
            "is not a `recount-airports` job",
        ),
        (vec!["queue", "dispatch", "recount-airports", "--tenant", "nobody.test"], "nobody.test"),
        (vec!["queue", "dispatch", "recount-airports", "--tenant", "acme.test", "--queue", "../etc"], "queue `../etc`"),
        (vec!["queue", "dispatch", "recount-airports", "--tenant", "acme.test", "--attempts", "0"], "--attempts"),
        (vec!["queue", "retry", "01a2b3c4d5e6f7a8b9c0d1e2f3"], "no failed job has the id"),
        (vec!["queue", "retry"], "required"),
        (vec!["queue", "clear"], "--tenant"),
        (vec!["queue", "failed", "--tenant", "nobody.test"], "nobody.test"),
        (vec!["queue", "work", "--queue", "a.b"], "queue `a.b`"),
    ] {
        let run = cli.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"), "{args:?}: {}", run.stderr);
    }
    cli.ok(&["tenant", "suspend", "acme.test"]);
    let run = cli.run(&["queue", "dispatch", "recount-airports", "--tenant", "acme.test"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is suspended: its jobs would never run"), "{}", run.stderr);
    assert_eq!(total(&queue_status(&cli), "pending"), 0);

    set_queue(&cli, "engine = \"nats\"\nnats_prefix = \"a.b\"");
    let run = cli.run(&["queue", "status"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("queue.nats_prefix"), "{}", run.stderr);
    set_queue(&cli, "default_queue = \"same\"\ncentral_queue = \"same\"");
    let run = cli.run(&["queue", "status"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("queue.central_queue"), "{}", run.stderr);
    // No server there: a plain error, exit 1, quickly.
    set_queue(&cli, "engine = \"nats\"\nnats_url = \"nats://127.0.0.1:1\"");
    let started = Instant::now();
    let run = cli.run(&["queue", "status"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("nats://127.0.0.1:1"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

fn killed_worker_mid_job(cli: &Cli) {
    let tenant = cli.create("Acme", &["acme.test"]);
    cli.ok(&["db", "seed", "--tenant", &tenant]);
    let airports = cli.scalar(&tenant, "SELECT COUNT(*) FROM airports").unwrap();
    cli.ok(&["queue", "dispatch", "recount-airports", "--tenant", "acme.test", "--payload", "{\"pause_ms\": 5000}"]);
    let mut first = Worker::start(cli);
    // Wait until the job is taken, then kill the worker mid-job.
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&queue_status(cli), "running") == 0 {
        assert!(Instant::now() < deadline, "the job was never taken");
        std::thread::sleep(Duration::from_millis(100));
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(cached_count(cli, &tenant), None, "the job finished before the kill");
    let second = Worker::start(cli);
    let done = second.wait_for(|event| event["event"] == "job");
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(second.stop(), 0);
    assert_eq!(cached_count(cli, &tenant), Some(airports));
    let status = queue_status(cli);
    assert_eq!((total(&status, "pending"), total(&status, "running"), total(&status, "failed")), (0, 0, 0), "{status}");
}

#[test]
fn a_job_of_a_killed_worker_is_completed_by_the_next_worker_on_the_database_engine() {
    let cli = Cli::sqlite();
    set_queue(&cli, "visibility_timeout_secs = 2");
    killed_worker_mid_job(&cli);
}

#[test]
fn a_job_of_a_killed_worker_is_completed_by_the_next_worker_on_nats() {
    if !service_available("nats", NATS_ADDR) {
        return;
    }
    let cli = Cli::new(Backend::Sqlite).unwrap();
    use_nats(&cli, 2);
    killed_worker_mid_job(&cli);
    drop_streams(&cli);
}

fn sigterm_lets_the_running_job_finish(cli: &Cli) {
    let tenant = cli.create("Acme", &["acme.test"]);
    cli.ok(&["queue", "dispatch", "recount-airports", "--tenant", "acme.test", "--payload", "{\"pause_ms\": 2000}"]);
    let worker = Worker::start(cli);
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&queue_status(cli), "running") == 0 {
        assert!(Instant::now() < deadline, "the job was never taken");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stopped mid-job: it exits 0 once the job is done, and the job is not left behind.
    assert_eq!(worker.stop(), 0);
    assert_eq!(cached_count(cli, &tenant), Some(0), "the running job did not finish");
    let status = queue_status(cli);
    assert_eq!((total(&status, "pending"), total(&status, "running"), total(&status, "failed")), (0, 0, 0), "{status}");
}

#[test]
fn sigterm_lets_the_running_job_finish_on_the_database_engine() {
    sigterm_lets_the_running_job_finish(&Cli::sqlite());
}

#[test]
fn sigterm_lets_the_running_job_finish_on_nats() {
    if !service_available("nats", NATS_ADDR) {
        return;
    }
    let cli = Cli::sqlite();
    use_nats(&cli, 30);
    sigterm_lets_the_running_job_finish(&cli);
    drop_streams(&cli);
}
