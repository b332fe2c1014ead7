//! The binary on the failure paths: runs that must end, two deploy jobs migrating at once, secrets
//! that must not reach the terminal, configurations that must be refused, commands that cannot do
//! what they are asked and say so, and core's warnings reaching the user.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::time::Duration;

use common::Cli;
use tenancy_tests::Backend;

#[test]
fn a_missing_tenant_database_fails_that_tenant_and_the_run_ends() {
    let cli = Cli::sqlite();
    let ids: Vec<String> =
        (0..4).map(|i| cli.ok(&["tenant", "create", "--name", &format!("T{i}"), "--no-migrate"]).trim().to_owned()).collect();
    let database = cli.tenants().iter().find(|t| t["id"] == ids[1].as_str()).unwrap()["database"].as_str().unwrap().to_owned();
    std::fs::remove_file(cli.env.sqlite_file(&database)).unwrap();
    for command in [&["db", "migrate", "--all", "--concurrency", "3"][..], &["db", "status", "--all", "--concurrency", "3"]] {
        let run = cli
            .command()
            .args(command)
            .env("TENANCY_TENANT_DATABASE__POOL_SIZE", "5")
            .env("TENANCY_TENANT_DATABASE__CONNECTION_BUDGET", "5")
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(
            run.status.code(),
            Some(1),
            "{command:?} ends, failing for the missing database: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

#[test]
fn two_deploy_jobs_migrating_at_once_both_succeed() {
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        cli.ok(&["init"]);
        for i in 0..4 {
            cli.ok(&["tenant", "create", "--name", &format!("T{i}"), "--no-migrate"]);
        }
        let jobs: Vec<_> = (0..2)
            .map(|_| {
                cli.tenancy_process()
                    .args(["db", "migrate", "--all"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for job in jobs {
            let output = job.wait_with_output().unwrap();
            assert!(output.status.success(), "{backend:?}: {}", String::from_utf8_lossy(&output.stderr));
        }
        let status = cli.run(&["db", "status", "--all"]);
        assert_eq!(status.code, 0, "{backend:?}: no spurious failure is recorded: {}{}", status.stdout, status.stderr);
        assert_eq!(cli.run(&["doctor"]).code, 0, "{backend:?}");
    }
}

#[test]
fn passwords_with_url_characters_never_reach_the_terminal() {
    let cli = Cli::sqlite();
    // `p@ss:w/rd?#%` percent-encoded in the URL, on ports where nothing listens.
    let (encoded, decoded) = ("p%40ss%3Aw%2Frd%3F%23%25", "p@ss:w/rd?#%");
    let central = format!("postgres://app:{encoded}@127.0.0.1:9/central");
    let server = format!("postgres://app:{encoded}@127.0.0.1:9/postgres");
    std::fs::write(
        cli.dir().join("tenancy.toml"),
        format!("[central]\nurl = \"{central}\"\n\n[tenant_database]\ndriver = \"postgres\"\n\n[tenant_database.servers]\ndefault = \"{server}\"\n"),
    )
    .unwrap();
    for args in
        [&["tenant", "list"][..], &["tenant", "list", "--json"], &["doctor"], &["doctor", "--json"], &["init"], &["db", "status", "--all"]]
    {
        let run = cli.run(args);
        assert_ne!(run.code, 0, "{args:?}");
        for shown in [&run.stdout, &run.stderr] {
            assert!(
                !shown.contains(encoded) && !shown.contains(decoded) && !shown.contains("p@ss"),
                "{args:?} showed the password:\n{shown}"
            );
        }
    }
}

#[test]
fn a_sqlite_configuration_with_servers_is_refused_before_anything_is_made() {
    let cli = Cli::sqlite();
    std::fs::write(cli.dir().join("tenancy.toml"), "[tenant_database.servers]\neu = \"postgres://postgres@127.0.0.1:5432/postgres\"\n")
        .unwrap();
    let run = cli.run(&["tenant", "create", "--name", "Acme"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("tenant_database.servers") && !run.stderr.contains("internal error"), "{}", run.stderr);
    assert!(!cli.dir().join("storage").exists(), "nothing was created");
}

#[test]
fn the_memory_cache_cannot_be_cleared_from_another_process_and_says_so() {
    let cli = Cli::sqlite();
    let id = cli.create("Acme", &[]);
    for command in ["clear", "stats"] {
        let run = cli.command().args(["cache", command, "--tenant", &id]).env("TENANCY_CACHE__STORE", "memory").output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("each process keeps its own cache") && stderr.contains("cache.store"), "{stderr}");
    }
    let doctor = cli.command().args(["doctor"]).env("TENANCY_CACHE__STORE", "memory").output().unwrap();
    assert!(String::from_utf8_lossy(&doctor.stdout).contains("memory"), "doctor says where the cache lives");
}

#[test]
fn a_usage_hint_names_the_command_that_was_run() {
    let cli = Cli::sqlite();
    cli.create("Acme", &[]);
    for command in [&["cache", "stats"][..], &["cache", "clear"], &["db", "status"], &["db", "seed"], &["db", "rollback"]] {
        let run = cli.run(command);
        assert_eq!(run.code, 2, "{command:?}");
        let typed = format!("tenancy {} --all", command.join(" "));
        assert!(run.stderr.contains(&typed), "{command:?}: the hint should say `{typed}`:\n{}", run.stderr);
    }
}

#[test]
fn expired_entries_and_sessions_are_swept_by_cache_clear_expired() {
    let cli = Cli::sqlite();
    let id = cli.create("Acme", &[]);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    cli.execute(
        &id,
        &format!("INSERT INTO tenancy_cache (key, value, expires_at) VALUES ('old', X'31', {}), ('live', X'31', NULL)", now_ms - 1000),
    );
    cli.execute(
        &id,
        &format!(
            "INSERT INTO tenancy_sessions (id, data, expires_at) VALUES ('gone', X'7B7D', {}), ('here', X'7B7D', {})",
            now_ms / 1000 - 10,
            now_ms / 1000 + 3600
        ),
    );
    let run = cli.run(&["cache", "clear", "--expired", "--tenant", &id]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("1 expired entries, 1 expired sessions"), "{}", run.stderr);
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM tenancy_cache"), Some(1), "the live entry stays");
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM tenancy_sessions"), Some(1), "the live session stays");
}

#[test]
fn core_events_reach_the_terminal_through_the_output() {
    let quiet = Cli::sqlite();
    let run = quiet.run(&["tenant", "list"]);
    assert!(!run.stderr.contains("migrating the tenant registry"), "info is not shown by default:\n{}", run.stderr);
    let verbose = Cli::sqlite();
    let run = verbose.run(&["-v", "tenant", "list"]);
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("info: migrating the tenant registry"), "-v shows what tenancy does:\n{}", run.stderr);
    let logged = Cli::sqlite();
    let run = logged.command().args(["tenant", "list", "--json"]).env("RUST_LOG", "tenancy_core=info").output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.lines().all(|line| serde_json::from_str::<serde_json::Value>(line).is_ok()), "--json stays JSON:\n{stdout}");
}

#[test]
fn the_mariadb_registry_database_is_created_utf8mb4() {
    let Some(cli) = Cli::new(Backend::MySql) else { return };
    cli.ok(&["init"]);
    let charset = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(format!("mysql://root@{}/mysql", tenancy_tests::MYSQL_ADDR)).await.unwrap();
        let sql = format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
            cli.env.central_database()
        );
        let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        let charset: String = row.try_get_by_index(0).unwrap();
        db.close().await.unwrap();
        charset
    });
    assert_eq!(charset, "utf8mb4");
}
