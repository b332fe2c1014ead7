//! `tenancy tenant …` end to end through the real binary: SQLite always, PostgreSQL (database and
//! schema per tenant) and MariaDB when their servers run.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::Cli;
use tenancy_tests::Backend;

#[test]
fn a_tenant_lives_and_dies_on_every_backend() {
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        let rt = tokio::runtime::Runtime::new().unwrap();
        cli.ok(&["init"]);
        let id = cli.create("Acme", &["Acme.Test", "www.acme.test"]);
        assert_eq!(id.len(), 36, "stdout is the new id: {id}");
        assert_eq!(rt.block_on(cli.env.count_tenant_databases()), 1, "{}", backend.name());

        let shown: serde_json::Value = serde_json::from_str(&cli.ok(&["tenant", "show", "acme.test", "--json"])).unwrap();
        assert_eq!(shown["id"], id.as_str());
        assert_eq!(shown["status"], "active");
        assert_eq!(shown["domains"][0]["domain"], "acme.test", "domains are lower-cased");
        assert_eq!(shown["domains"][0]["primary"], true);

        cli.ok(&["tenant", "suspend", &id[..8]]);
        assert_eq!(cli.tenants()[0]["status"], "suspended");
        cli.ok(&["tenant", "deactivate", "Acme"]);
        cli.ok(&["tenant", "activate", "www.acme.test"]);
        assert_eq!(cli.tenants()[0]["status"], "active");

        cli.ok(&["tenant", "domain", "add", &id, "acme.example", "--primary"]);
        cli.ok(&["tenant", "domain", "remove", &id, "www.acme.test"]);
        let tenant = &cli.tenants()[0];
        let domains: Vec<&str> = tenant["domains"].as_array().unwrap().iter().map(|d| d["domain"].as_str().unwrap()).collect();
        assert_eq!(domains, ["acme.example", "acme.test"], "{}", backend.name());

        cli.ok(&["tenant", "delete", &id, "--force"]);
        assert!(cli.tenants().is_empty());
        assert_eq!(rt.block_on(cli.env.count_tenant_databases()), 0, "{}: the database is dropped", backend.name());
    }
}

#[test]
fn create_reports_every_step_with_its_time() {
    let cli = Cli::sqlite();
    let run = cli.run(&["tenant", "create", "--name", "Acme", "--domain", "acme.test", "--seed"]);
    insta::assert_snapshot!("create_steps", run.snapshot(&cli.env));
}

#[test]
fn create_without_migrations_and_with_a_status() {
    let cli = Cli::sqlite();
    cli.ok(&["tenant", "create", "--domain", "bare.test", "--no-migrate", "--status", "inactive"]);
    let tenant = &cli.tenants()[0];
    assert_eq!(tenant["name"], "bare.test", "the name defaults to the first domain");
    assert_eq!(tenant["status"], "inactive");
    let run = cli.run(&["tenant", "create", "--name", "X", "--status", "creating"]);
    assert_eq!(run.code, 2, "`creating` is not a status one can ask for");
}

#[test]
fn list_and_show_for_people_and_for_programs() {
    let cli = Cli::sqlite();
    let empty = cli.run(&["tenant", "list"]);
    insta::assert_snapshot!("list_empty", empty.snapshot(&cli.env));
    cli.create("Acme", &["acme.test", "www.acme.test"]);
    cli.create("Globex", &[]);
    insta::assert_snapshot!("list_table", cli.run(&["tenant", "list"]).snapshot(&cli.env));
    insta::assert_snapshot!("show", cli.run(&["tenant", "show", "acme.test"]).snapshot(&cli.env));
    let json = cli.run(&["tenant", "list", "--json", "--status", "active"]);
    assert_eq!(json.stdout.lines().count(), 2);
    assert!(json.stderr.is_empty(), "--json keeps stderr quiet: {}", json.stderr);
    assert!(cli.ok(&["tenant", "list", "--status", "suspended"]).is_empty());
}

#[test]
fn init_writes_a_config_once_and_creates_the_registry() {
    let cli = Cli::sqlite();
    std::fs::remove_file(cli.dir().join("tenancy.toml")).unwrap();
    let first = cli.run(&["init"]);
    insta::assert_snapshot!("init", first.snapshot(&cli.env));
    assert!(cli.dir().join("storage/central.sqlite").is_file());
    let written = std::fs::read_to_string(cli.dir().join("tenancy.toml")).unwrap();
    std::fs::write(cli.dir().join("tenancy.toml"), format!("{written}\n# mine\n")).unwrap();
    let again = cli.run(&["init"]);
    assert_eq!(again.code, 0);
    assert!(again.stderr.contains("Keeping"), "{}", again.stderr);
    assert!(std::fs::read_to_string(cli.dir().join("tenancy.toml")).unwrap().ends_with("# mine\n"));
}

#[test]
fn no_config_file_uses_sqlite_under_storage() {
    let cli = Cli::sqlite();
    std::fs::remove_file(cli.dir().join("tenancy.toml")).unwrap();
    let id = cli.create("Zero", &[]);
    let simple = id.replace('-', "");
    assert!(cli.env.sqlite_file(&format!("tenant_{simple}")).is_file());
}

#[test]
fn environment_variables_override_the_file() {
    let cli = Cli::sqlite();
    let id = cli.command().env("TENANCY_TENANT_DATABASE__PREFIX", "envy_").args(["tenant", "create", "--name", "E"]).output().unwrap();
    assert!(id.status.success());
    let id = String::from_utf8(id.stdout).unwrap().trim().replace('-', "");
    assert!(cli.env.sqlite_file(&format!("envy_{id}")).is_file());
}

#[test]
fn delete_keep_database_keeps_the_file() {
    let cli = Cli::sqlite();
    let id = cli.create("Keep", &[]);
    cli.ok(&["tenant", "delete", &id, "--force", "--keep-database"]);
    assert!(cli.tenants().is_empty());
    assert_eq!(tokio::runtime::Runtime::new().unwrap().block_on(cli.env.count_tenant_databases()), 1);
}

#[test]
fn completions_and_help() {
    let cli = Cli::sqlite();
    let bash = cli.ok(&["completions", "bash"]);
    assert!(bash.contains("tenancy__subcmd__tenant__subcmd__create"), "the script covers subcommands");
    let help = cli.ok(&["tenant", "create", "--help"]);
    for flag in ["--name", "--domain", "--status", "--no-migrate", "--json"] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
    assert_eq!(cli.run(&["tenant", "frobnicate"]).code, 2);
}

#[test]
fn down_and_up_for_maintenance_shown_by_list_show_and_doctor() {
    let cli = Cli::sqlite();
    let id = cli.create("Acme", &["acme.test"]);
    cli.create("Beta", &["beta.test"]);
    let maintenance = |reference: &str| {
        let shown: serde_json::Value = serde_json::from_str(cli.ok(&["tenant", "show", reference, "--json"]).trim()).unwrap();
        shown["maintenance"].clone()
    };

    // Bad input changes nothing, with exit code 2.
    for (args, says) in [
        (vec!["tenant", "down", "acme.test", "--secret", "short"], "invalid bypass secret"),
        (vec!["tenant", "down", "acme.test", "--secret", "../../etc/passwd"], "invalid bypass secret"),
        (vec!["tenant", "down", "acme.test", "--message", "\x1b[31mred"], "control character"),
        (vec!["tenant", "down", "acme.test", "--retry-after", "soon"], "--retry-after"),
        (vec!["tenant", "down", "nobody.test"], "unknown tenant"),
        (vec!["tenant", "up", "nobody.test"], "unknown tenant"),
    ] {
        let run = cli.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    assert!(maintenance(&id).is_null());

    let run =
        cli.run(&["tenant", "down", "acme.test", "--message", "Back at 14:00.", "--retry-after", "120", "--secret", "let-me-in-2026"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("answers 503 (Retry-After: 120 s)"), "{}", run.stderr);
    let down = maintenance(&id);
    assert_eq!((down["message"].as_str(), down["retry_after_secs"].as_u64()), (Some("Back at 14:00."), Some(120)), "{down}");
    assert_eq!((down["origin"].as_str(), down["bypass"].as_bool()), (Some("operator"), Some(true)), "{down}");
    let everything = cli.ok(&["tenant", "list", "--json"]) + &cli.ok(&["tenant", "show", "acme.test"]) + &cli.run(&["doctor"]).stdout;
    assert!(!everything.contains("let-me-in-2026"), "the secret is never shown: {everything}");

    let list = cli.ok(&["tenant", "list"]);
    let line = |name: &str| list.lines().find(|line| line.contains(name)).unwrap().to_owned();
    assert!(line("Acme").contains("active (down)") && !line("Beta").contains("down"), "{list}");
    let show = cli.ok(&["tenant", "show", "acme.test"]);
    assert!(show.contains("down since") && show.contains("Retry-After 120 s, bypass secret set: \"Back at 14:00.\""), "{show}");
    let doctor = cli.run(&["doctor"]);
    assert!(doctor.stdout.lines().any(|l| l.contains("maintenance") && l.contains("1 tenant down: Acme")), "{}", doctor.stdout);

    let again = cli.run(&["tenant", "down", "acme.test"]);
    assert!(again.stderr.contains("Updated"), "taking it down again replaces the settings: {}", again.stderr);
    assert_eq!(maintenance(&id)["bypass"], serde_json::Value::Null);
    assert!(cli.run(&["tenant", "up", "acme.test"]).stderr.contains("served again"));
    assert!(maintenance(&id).is_null());
    assert!(cli.run(&["tenant", "up", "acme.test"]).stderr.contains("Unchanged"));
    assert!(cli.run(&["doctor"]).stdout.contains("no tenant is down"));
}

/// `tenant pool --json`'s status event.
fn pool_status(cli: &Cli) -> serde_json::Value {
    let out = cli.ok(&["tenant", "pool", "--json"]);
    let event: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    event["pool"].clone()
}

fn ready(cli: &Cli) -> u64 {
    pool_status(cli)["ready"].as_u64().unwrap()
}

/// Creates a tenant; returns its id and whether its database came from the pool.
fn create_counting_pool(cli: &Cli, name: &str) -> (String, bool) {
    let run = cli.run(&["tenant", "create", "--name", name]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    (run.stdout.trim().to_owned(), run.stderr.contains("taken from the pool"))
}

#[test]
fn signups_take_ready_databases_from_the_pool_never_the_same_one_twice() {
    for backend in [Backend::Postgres, Backend::PostgresSchema] {
        let Some(cli) = Cli::new(backend) else { continue };
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(cli.env.create_central_database());
        let toml = cli.env.config_toml().replace("connect_timeout_secs = 5\n", "connect_timeout_secs = 5\nprovision = \"pool\"\n");
        std::fs::write(cli.dir().join("tenancy.toml"), toml).unwrap();
        let name = backend.name();

        // An empty pool: a signup is made the usual way.
        let (first, pooled) = create_counting_pool(&cli, "First");
        assert!(!pooled, "{name}");
        assert_eq!(ready(&cli), 0);

        let out = cli.ok(&["tenant", "pool", "--fill", "3", "--json"]);
        let made: Vec<String> = out
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|event| event["event"] == "pool_database_made")
            .map(|event| event["database"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(made.len(), 3, "{name}: {out}");
        assert_eq!(ready(&cli), 3);
        assert!(cli.ok(&["tenant", "pool", "--fill", "3", "--json"]).contains("\"made\":0"), "{name}: a full pool is left as it is");

        let (second, pooled) = create_counting_pool(&cli, "Second");
        assert!(pooled, "{name}: the signup took a ready database");
        assert_eq!(ready(&cli), 2);
        let status = |id: &str| common::applied_pending(&cli.status(id));
        assert_eq!(status(&second), status(&first), "{name}: the pooled tenant is as migrated as the other");
        assert_eq!(status(&second).1, 0);
        cli.execute(&second, "INSERT INTO accounts (name, email) VALUES ('Second', 'second@example.test')");
        assert_eq!(cli.scalar(&first, "SELECT count(*) FROM accounts"), Some(0), "{name}: the tenants' databases are apart");

        // Five signups at once with two ready databases: two take one each, three are made.
        let outcomes: Vec<(String, bool)> = std::thread::scope(|scope| {
            let cli = &cli;
            let handles: Vec<_> = (0..5).map(|i| scope.spawn(move || create_counting_pool(cli, &format!("Rush {i}")))).collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|(_, pooled)| *pooled).count(), 2, "{name}: {outcomes:?}");
        for (id, _) in &outcomes {
            assert_eq!(status(id).1, 0, "{name}: {id} is fully migrated");
        }
        assert_eq!(ready(&cli), 0);
        let databases = rt.block_on(cli.env.tenant_databases());
        assert_eq!(cli.tenants().len(), 7);

        // A database of other migrations, and one a dead fill left, are never taken, and the next fill drops them.
        cli.ok(&["tenant", "pool", "--fill", "1"]);
        let kind = if backend == Backend::Postgres { "DATABASE" } else { "SCHEMA" };
        let prefix = &cli.env.prefix;
        let fresh = databases.len();
        let out = cli.ok(&["tenant", "pool", "--fill", "2", "--json"]);
        let ready_name = out.lines().find(|line| line.contains("pool_database_made")).unwrap();
        let ready_name: serde_json::Value = serde_json::from_str(ready_name).unwrap();
        let stale = format!("{prefix}pool_0000000000000000aaaaaaaaaa");
        rt.block_on(
            cli.env.execute_on_server(&format!("ALTER {kind} \"{}\" RENAME TO \"{stale}\"", ready_name["database"].as_str().unwrap())),
        );
        rt.block_on(cli.env.execute_on_server(&format!("CREATE {kind} \"{prefix}fill_0123456789abcdefbbbbbbbbbb\"")));
        let pool = pool_status(&cli);
        assert_eq!(
            (pool["ready"].as_u64(), pool["stale"].as_u64(), pool["filling"].as_u64()),
            (Some(1), Some(1), Some(1)),
            "{name}: {pool}"
        );
        let out = cli.ok(&["tenant", "pool", "--fill", "2", "--json"]);
        assert!(out.contains("\"dropped\":2") && out.contains("\"made\":1"), "{name}: {out}");
        assert_eq!(pool_status(&cli)["stale"], 0);

        let doctor = cli.run(&["doctor"]);
        assert!(format!("{}{}", doctor.stdout, doctor.stderr).contains("2 ready"), "{name}: {}{}", doctor.stdout, doctor.stderr);
        cli.ok(&["tenant", "pool", "--drain"]);
        assert_eq!(ready(&cli), 0);
        let doctor = cli.run(&["doctor"]);
        assert!(format!("{}{}", doctor.stdout, doctor.stderr).contains("no ready database"), "{name}: {}", doctor.stdout);
        assert_eq!(rt.block_on(cli.env.tenant_databases()).len(), fresh, "{name}: only tenants' databases are left");
    }
}

#[test]
fn the_pool_is_refused_where_it_cannot_work() {
    let cli = Cli::sqlite();
    let run = cli.run(&["tenant", "pool", "--fill", "2"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("provision = \"pool\""), "{}", run.stderr);
    let toml = cli.env.config_toml().replace("connect_timeout_secs = 5\n", "connect_timeout_secs = 5\nprovision = \"pool\"\n");
    std::fs::write(cli.dir().join("tenancy.toml"), toml).unwrap();
    let run = cli.run(&["tenant", "pool"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("tenant_database.provision") && run.stderr.contains("postgres"), "{}", run.stderr);
}
