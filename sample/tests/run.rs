//! `tenancy run -- PROGRAM` end to end on every backend: each run gets its own tenant's
//! environment (and on PostgreSQL a `DATABASE_URL` that reaches its database or schema), one
//! failing run fails the command and is named, the concurrency limit holds, and a password in the
//! configuration never reaches a printed line.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::Cli;
use tenancy_tests::Backend;

/// A shell script for `sh -c`, so the test needs no program of its own.
fn sh(script: &str) -> Vec<String> {
    vec!["--".into(), "sh".into(), "-c".into(), script.into()]
}

fn run_with(cli: &Cli, before: &[&str], script: &str) -> common::Run {
    let mut args: Vec<String> = ["run"].iter().chain(before).map(|s| s.to_string()).collect();
    args.extend(sh(script));
    cli.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `KEY=value` lines of a file written by `env`.
fn environment(file: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(file).unwrap().lines().filter_map(|line| line.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

#[test]
fn each_run_gets_its_own_tenants_environment_and_a_failure_fails_the_command() {
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        let name = backend.name();
        // A password PostgreSQL ignores here (trust authentication) but a careless line would print.
        // (MariaDB's root has none and would refuse one.)
        let toml = std::fs::read_to_string(cli.dir().join("tenancy.toml")).unwrap();
        let toml = toml.replace("postgres://postgres@", "postgres://postgres:pw-s3cret@");
        std::fs::write(cli.dir().join("tenancy.toml"), toml).unwrap();
        cli.ok(&["init"]);
        let ids: Vec<String> = ["Acme", "Beta", "Gamma"].iter().map(|n| cli.create(n, &[])).collect();
        let out = tempfile::tempdir().unwrap();

        let script = format!("env > '{}'/$TENANCY_TENANT_ID.env && echo \"hello from $TENANCY_TENANT_NAME\"", out.path().display());
        let run = run_with(&cli, &["--all"], &script);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        for (id, tenant) in ids.iter().zip(["Acme", "Beta", "Gamma"]) {
            assert!(run.stdout.contains(&format!("[{tenant}] hello from {tenant}")), "{name}: {}", run.stdout);
            let env = environment(&out.path().join(format!("{id}.env")));
            assert_eq!(env["TENANCY_TENANT_ID"], *id, "{name}");
            assert_eq!(env["TENANCY_TENANT_NAME"], tenant, "{name}");
            assert_eq!(Path::new(&env["TENANCY_CONFIG"]), cli.dir().join("tenancy.toml"), "{name}");
            let url = &env["DATABASE_URL"];
            let database = cli.tenants().into_iter().find(|t| t["id"] == id.as_str()).unwrap()["database"].as_str().unwrap().to_owned();
            assert!(url.contains(&database), "{name}: {url} is not {tenant}'s database");
            if matches!(backend, Backend::Postgres | Backend::PostgresSchema) {
                // Tenant code: it logs in as the tenant's own role, with its password, never the server's user.
                assert!(url.starts_with(&format!("postgres://{database}:")), "{name}: the child does not log in as its role");
                assert!(!url.contains("pw-s3cret"), "{name}: the child got the server user's password");
            }
        }
        assert!(run.stderr.contains("3 tenants") && run.stderr.contains("3 succeeded, 0 failed"), "{name}: {}", run.stderr);

        // The URL reaches the tenant's own database or schema, as a program's driver would use it.
        if matches!(backend, Backend::Postgres | Backend::PostgresSchema) {
            let run = run_with(&cli, &["--tenant", &ids[1]], "psql \"$DATABASE_URL\" -Atc 'SELECT current_database(), current_schema()'");
            assert_eq!(run.code, 0, "{name}: {}", run.stderr);
            let beta = cli.tenants().into_iter().find(|t| t["id"] == ids[1].as_str()).unwrap();
            let database = beta["database"].as_str().unwrap();
            assert!(run.stdout.contains(database), "{name}: {}", run.stdout);
        }

        // One run fails: the command exits 1 and names it; the others still ran.
        let run = run_with(&cli, &["--all", "--json"], "echo \"out $TENANCY_TENANT_NAME\"; [ \"$TENANCY_TENANT_NAME\" != Beta ] || exit 7");
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        let events: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let finished: Vec<_> = events.iter().filter(|e| e["event"] == "tenant_finished").collect();
        assert_eq!(finished.len(), 3, "{name}");
        let beta = finished.iter().find(|e| e["name"] == "Beta").unwrap();
        assert_eq!(beta["exit_code"], 7, "{name}");
        let summary = events.last().unwrap();
        assert_eq!((summary["failed"].as_u64(), summary["succeeded"].as_u64()), (Some(1), Some(2)), "{name}: {summary}");
        assert_eq!(summary["failures"][0]["name"], "Beta");
        assert_eq!(events.iter().filter(|e| e["event"] == "output").count(), 3, "{name}: one line of output each");

        let printed = format!("{}{}", run.stdout, run.stderr) + &run_with(&cli, &["--all"], "exit 3").stderr;
        assert!(!printed.contains("pw-s3cret"), "{name}: a password was printed: {printed}");
    }
}

#[test]
fn runs_stay_within_the_concurrency_limit_and_group_keeps_each_tenants_output_together() {
    let cli = Cli::sqlite();
    for n in ["A", "B", "C", "D", "E"] {
        cli.create(n, &[]);
    }
    let log = tempfile::NamedTempFile::new().unwrap();
    // Each run logs its start and end (nanoseconds); the most runs alive at once must be 2.
    let script =
        format!("echo \"start $(date +%s%N)\" >> '{log}'; sleep 0.3; echo \"end $(date +%s%N)\" >> '{log}'", log = log.path().display());
    let run = run_with(&cli, &["--all", "--concurrency", "2"], &script);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut events: Vec<(u128, i32)> = std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .map(|line| {
            let (kind, at) = line.split_once(' ').unwrap();
            (at.parse().unwrap(), if kind == "start" { 1 } else { -1 })
        })
        .collect();
    events.sort_by_key(|(at, delta)| (*at, *delta)); // an end before a start at the same instant
    let (mut alive, mut most) = (0, 0);
    for (_, delta) in events {
        alive += delta;
        most = most.max(alive);
    }
    assert_eq!(most, 2, "at most 2 at once, and 2 did run together");

    let run = run_with(&cli, &["--all", "--group", "--concurrency", "5"], "echo first; sleep 0.2; echo \"second $TENANCY_TENANT_NAME\"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{}", run.stdout);
    for pair in lines.chunks(2) {
        assert_eq!(pair[0], "first", "each tenant's lines together, unprefixed: {}", run.stdout);
        assert!(pair[1].starts_with("second "), "{}", run.stdout);
    }
}

#[test]
fn bad_usage_changes_nothing_and_exits_2() {
    let cli = Cli::sqlite();
    cli.create("Acme", &[]);
    for (args, says) in [
        (vec!["run", "--all", "--", "no-such-program-here"], "cannot find the program `no-such-program-here`"),
        (vec!["run", "--all", "--", "./missing.sh"], "cannot find the program"),
        (vec!["run", "--all"], "<PROGRAM>"),
        (vec!["run", "--tenant", "nobody", "--", "true"], "unknown tenant `nobody`"),
        (vec!["run", "--", "true"], "--all"),
    ] {
        let run = cli.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}
