//! [`TestCluster`]: a PostgreSQL cluster of one test's own, which the test may stop and start
//! again (a server going down), on a free loopback port, in a temporary folder.
//!
//! Made with the installed PostgreSQL's `initdb` and `pg_ctl` (run as `postgres` when the tests
//! run as root: PostgreSQL refuses root). Where they are missing the test is skipped with a line,
//! or fails under `CI`.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::on_ci;

/// A running PostgreSQL cluster, stopped and removed on drop.
pub struct TestCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl TestCluster {
    /// Makes and starts a cluster, or `None` (after saying so) where PostgreSQL's programs are
    /// missing. Panics under `CI` then, or when they fail.
    pub fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            assert!(!on_ci(), "CI is set but PostgreSQL's initdb is not installed: the server-down tests cannot run");
            // Written straight to stderr: the test harness captures `eprintln!`, and this must be seen.
            let _ = writeln!(std::io::stderr(), "SKIPPED server-down tests: no initdb");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary folder");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("the data folder");
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres"]).arg(dir.path()), "chown the cluster's folder");
        }
        let initdb = as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args(["-U", "postgres", "-A", "trust", "--no-sync"]).output();
        let initdb = initdb.expect("run initdb");
        assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        let port = free_port();
        let cluster = Self { dir, bin, port };
        cluster.start_again();
        Some(cluster)
    }

    /// A URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server at once, as a crash or a pulled cable would (`pg_ctl stop -m immediate`).
    pub fn stop(&self) {
        let stopped = as_postgres(&self.bin.join("pg_ctl")).arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "stop"]).output();
        let stopped = stopped.expect("run pg_ctl stop");
        assert!(stopped.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&stopped.stderr));
    }

    /// Starts the server (again), and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let started = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output();
        let started = started.expect("run pg_ctl start");
        assert!(
            started.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Already stopped by the test, or not: either way nothing of it may outlive the test.
        let _ = as_postgres(&self.bin.join("pg_ctl")).arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "stop"]).output();
    }
}

/// The newest installed PostgreSQL's programs (Debian keeps them out of PATH).
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort_by_key(|bin| bin.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    found.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `program`, run as `postgres` when this is root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) {
    let status = command.status().unwrap_or_else(|err| panic!("{what}: {err}"));
    assert!(status.success(), "{what}: {status}");
}

/// A port free now on 127.0.0.1 (the cluster takes it a moment later; nothing else here binds
/// ports at random in that window but other such clusters, which get their own).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|address| address.port()).expect("a free port")
}
