//! [`Cli`]: runs the real `tenancy` binary in a [`TestEnv`]'s folder, and turns what it printed into
//! a snapshot with paths, ids and timings replaced by placeholders.

#![allow(dead_code)] // each test file uses a different part

use std::path::Path;
use std::process::Output;

use tenancy_tests::{Backend, TestEnv};

pub struct Cli {
    pub env: TestEnv,
}

/// What one run printed, and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    pub fn new(backend: Backend) -> Option<Self> {
        TestEnv::new(backend).map(|env| Self { env })
    }

    pub fn sqlite() -> Self {
        Self::new(Backend::Sqlite).expect("SQLite needs no server")
    }

    /// The binary, in the environment's folder, with no `TENANCY_*` variable inherited.
    pub fn command(&self) -> assert_cmd::Command {
        self.program(Path::new(env!("CARGO_BIN_EXE_tenancy-sample")))
    }

    /// Another binary (an application's own `tenancy`), run as [`Cli::command`] runs ours.
    pub fn program(&self, program: &Path) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.process(program))
    }

    /// The binary as a plain process (to spawn, kill or drive through a terminal), in the
    /// environment's folder, with no `TENANCY_*` variable (nor `NO_COLOR`) of the caller's.
    pub fn process(&self, program: &Path) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.current_dir(self.env.dir());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TENANCY_") || key == "NO_COLOR" {
                command.env_remove(key);
            }
        }
        command
    }

    /// [`Cli::process`] of the `tenancy` binary.
    pub fn tenancy_process(&self) -> std::process::Command {
        self.process(Path::new(env!("CARGO_BIN_EXE_tenancy-sample")))
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command().args(args).output().expect("run tenancy"))
    }

    /// Runs and expects exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "tenancy {args:?} failed:\n{}", run.stderr);
        run.stdout
    }

    /// Creates a tenant and returns its id.
    pub fn create(&self, name: &str, domains: &[&str]) -> String {
        let mut args = vec!["tenant", "create", "--name", name];
        for domain in domains {
            args.extend(["--domain", domain]);
        }
        self.ok(&args).trim().to_owned()
    }

    /// `tenant list --json`, parsed.
    pub fn tenants(&self) -> Vec<serde_json::Value> {
        self.ok(&["tenant", "list", "--json"]).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    }

    pub fn dir(&self) -> &Path {
        self.env.dir()
    }

    /// Runs `sql` in the database of the tenant `reference` names, through the library, and returns
    /// the first column of the first row as a number (or `None` if the query failed).
    pub fn scalar(&self, reference: &str, sql: &str) -> Option<i64> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let tenancy = tenancy_core::Tenancy::builder(self.env.config()).open().await.unwrap();
            let tenant = tenancy.registry().resolve(reference).await.unwrap();
            let sql = sql.to_owned();
            let value = tenancy
                .run(&tenant, |ctx| async move {
                    use sea_orm::ConnectionTrait;
                    let db = ctx.db();
                    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.ok()??;
                    row.try_get_by_index::<i64>(0).ok()
                })
                .await
                .unwrap();
            tenancy.close().await;
            value
        })
    }

    /// Executes `sql` in the database of the tenant `reference` names.
    pub fn execute(&self, reference: &str, sql: &str) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let tenancy = tenancy_core::Tenancy::builder(self.env.config()).open().await.unwrap();
            let tenant = tenancy.registry().resolve(reference).await.unwrap();
            let sql = sql.to_owned();
            tenancy
                .run(&tenant, |ctx| async move {
                    use sea_orm::ConnectionTrait;
                    ctx.db().execute_unprepared(&sql).await.unwrap();
                })
                .await
                .unwrap();
            tenancy.close().await;
        });
    }

    /// `db status` of one tenant, parsed.
    pub fn status(&self, reference: &str) -> serde_json::Value {
        let run = self.run(&["db", "status", "--tenant", reference, "--json"]);
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|_| panic!("status of {reference}: {}{}", run.stdout, run.stderr))
    }
}

/// Applied and pending counts from a parsed `db status` report.
pub fn applied_pending(status: &serde_json::Value) -> (usize, usize) {
    let migrations = status["status"]["migrations"].as_array().unwrap();
    let applied = migrations.iter().filter(|m| !m["applied_at"].is_null()).count();
    (applied, migrations.len() - applied)
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Exit code, stdout and stderr, with the test folder, prefix, ids and timings replaced.
    pub fn snapshot(&self, env: &TestEnv) -> String {
        let text = format!("exit_code: {}\n----- stdout -----\n{}----- stderr -----\n{}", self.code, self.stdout, self.stderr);
        filter(&text.replace(&env.prefix, "[PREFIX]"), env.dir())
    }
}

/// Replaces what changes from run to run (the temporary folder, UUIDs, database names, timings)
/// and from release to release (the workspace's version, which built-in plugins report).
pub fn filter(text: &str, dir: &Path) -> String {
    let mut text = text.replace(&dir.display().to_string(), "[TEMP_DIR]").replace(env!("CARGO_PKG_VERSION"), "[VERSION]");
    if let Ok(canonical) = dir.canonicalize() {
        text = text.replace(&canonical.display().to_string(), "[TEMP_DIR]");
    }
    // A SQLite file's bucket follows from its (random) name.
    for bucket in 0..=255 {
        text = text.replace(&format!("storage/tenants/{bucket:02x}/"), "storage/tenants/[BUCKET]/");
    }
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if let Some(len) = date_at(&chars[i..]) {
            out.push_str("[DATE]");
            i += len;
        } else if let Some(len) = uuid_at(&chars[i..]) {
            out.push_str("[UUID]");
            i += len;
        } else if let Some(len) = hex32_at(&chars[i..]) {
            out.push_str("[ID]");
            i += len;
        } else if let Some(len) = duration_at(&chars[i..]).filter(|_| i == 0 || !chars[i - 1].is_alphanumeric()) {
            out.push_str("[TIME]");
            i += len;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `2026-11-27 01:14` and RFC 3339 times such as `2026-11-27T01:14:59.820635889+00:00`.
fn date_at(s: &[char]) -> Option<usize> {
    let shape = "dddd-dd-dd?dd:dd";
    if s.len() < shape.len() {
        return None;
    }
    for (c, expected) in s.iter().zip(shape.chars()) {
        let fits = match expected {
            'd' => c.is_ascii_digit(),
            '?' => *c == ' ' || *c == 'T',
            other => *c == other,
        };
        if !fits {
            return None;
        }
    }
    let mut end = shape.len();
    while s.get(end).is_some_and(|c| c.is_ascii_digit() || matches!(c, ':' | '.' | '+' | 'Z') || (*c == '-' && end > shape.len())) {
        end += 1;
    }
    Some(end)
}

fn uuid_at(s: &[char]) -> Option<usize> {
    let groups = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (n, len) in groups.iter().enumerate() {
        for _ in 0..*len {
            if !s.get(i)?.is_ascii_hexdigit() {
                return None;
            }
            i += 1;
        }
        if n < 4 {
            if *s.get(i)? != '-' {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

fn hex32_at(s: &[char]) -> Option<usize> {
    (s.len() >= 32 && s[..32].iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())).then_some(32)
}

/// `12ms`, `1.2ms`, `2.41s`.
fn duration_at(s: &[char]) -> Option<usize> {
    let mut i = 0;
    while s.get(i).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
        i += 1;
    }
    if i == 0 || !s[0].is_ascii_digit() {
        return None;
    }
    let rest: String = s[i..].iter().take(3).collect();
    let unit = if rest.starts_with("ms") {
        2
    } else if rest.starts_with('s') {
        1
    } else {
        return None;
    };
    let end = i + unit;
    if s.get(end).is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    Some(end)
}
