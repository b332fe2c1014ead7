//! Bad input gets a clear message naming the input and exit code 2, and changes nothing. A server
//! that cannot be reached is exit code 1, with host and port but no password.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::Cli;

/// Runs `args` and checks exit code 2 and that no tenant and no tenant database appeared.
fn refused(cli: &Cli, args: &[&str]) -> String {
    let before = cli.tenants().len();
    let run = cli.run(args);
    assert_eq!(run.code, 2, "tenancy {args:?} should be a usage error:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"), "{}", run.stderr);
    assert_eq!(cli.tenants().len(), before, "tenancy {args:?} changed the registry");
    let databases = tokio::runtime::Runtime::new().unwrap().block_on(cli.env.count_tenant_databases());
    assert_eq!(databases, before, "tenancy {args:?} left a database file");
    run.snapshot(&cli.env)
}

#[test]
fn malformed_domains_are_refused() {
    let cli = Cli::sqlite();
    let too_long = format!("{}.com", "a.".repeat(126));
    let mut messages = Vec::new();
    for domain in ["../../etc", "a..b", "-x.com", "has space.com", &too_long, "", "under_score.com", "10.0.0.1"] {
        messages.push(refused(&cli, &["tenant", "create", "--name", "X", "--domain", domain]));
    }
    insta::assert_snapshot!("malformed_domains", messages.join("\n"));
    // Upper case is normalised, not refused.
    cli.create("Upper", &["UPPER.Example.COM"]);
    assert_eq!(cli.tenants()[0]["domains"][0]["domain"], "upper.example.com");
}

#[test]
fn a_domain_taken_by_another_tenant_is_refused() {
    let cli = Cli::sqlite();
    cli.create("Acme", &["acme.test"]);
    insta::assert_snapshot!("domain_taken", refused(&cli, &["tenant", "create", "--name", "Other", "--domain", "ACME.test"]));
    let other = cli.create("Other", &[]);
    refused(&cli, &["tenant", "domain", "add", &other, "acme.test"]);
    refused(&cli, &["tenant", "create", "--name", "Twice", "--domain", "t.test", "--domain", "T.test"]);
    refused(&cli, &["tenant", "domain", "remove", &other, "acme.test"]);
    refused(&cli, &["tenant", "domain", "add", &other, "bad..domain"]);
}

#[test]
fn unknown_and_ambiguous_tenants_are_refused() {
    let cli = Cli::sqlite();
    insta::assert_snapshot!("unknown_tenant", refused(&cli, &["tenant", "show", "nobody"]));
    let first = cli.create("Twin", &[]);
    cli.create("Twin", &[]);
    insta::assert_snapshot!("ambiguous_name", refused(&cli, &["tenant", "show", "Twin"]));
    let prefix = &first[..8];
    let run = refused(&cli, &["tenant", "delete", prefix, "--force"]);
    assert!(run.contains("is ambiguous"), "{run}");
    for command in ["activate", "deactivate", "suspend"] {
        refused(&cli, &["tenant", command, "nobody"]);
    }
    refused(&cli, &["tenant", "delete", "nobody", "--force"]);
}

#[test]
fn bad_names_are_refused() {
    let cli = Cli::sqlite();
    let long = "x".repeat(256);
    insta::assert_snapshot!("empty_name", refused(&cli, &["tenant", "create", "--name", "  "]));
    let run = refused(&cli, &["tenant", "create", "--name", &long]);
    assert!(run.contains("256 characters long"), "{run}");
    cli.create(&"x".repeat(255), &[]);
}

#[test]
fn missing_answers_off_a_terminal_are_usage_errors() {
    let cli = Cli::sqlite();
    insta::assert_snapshot!("create_needs_a_name", refused(&cli, &["tenant", "create"]));
    let id = cli.create("Acme", &[]);
    let run = cli.run(&["tenant", "delete", &id]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("without --force"), "{}", run.stderr);
    assert_eq!(cli.tenants().len(), 1, "nothing was deleted");
}

#[test]
fn invalid_prefixes_and_suffixes_are_refused() {
    let cli = Cli::sqlite();
    for (key, value) in [("PREFIX", "Bad-"), ("PREFIX", "1x"), ("PREFIX", "a\"b"), ("SUFFIX", "x;drop"), ("PREFIX", &"p".repeat(40))] {
        let run =
            cli.command().env(format!("TENANCY_TENANT_DATABASE__{key}"), value).args(["tenant", "create", "--name", "X"]).output().unwrap();
        assert_eq!(run.status.code(), Some(2), "{key}={value}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(&format!("TENANCY_TENANT_DATABASE__{key}")), "{stderr}");
    }
    std::fs::write(cli.dir().join("tenancy.toml"), "[tenant_database]\nprefix = \"tenant-\"\n").unwrap();
    let run = cli.run(&["tenant", "create", "--name", "X"]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!("bad_prefix_in_file", run.snapshot(&cli.env));
    assert!(!cli.dir().join("storage").exists(), "a broken config creates nothing");
}

#[test]
fn malformed_config_files_are_refused() {
    let cli = Cli::sqlite();
    let cases = [
        ("syntax", "[tenant_database\nprefix = 1\n"),
        ("wrong_type", "[tenant_database]\npool_size = \"many\"\n"),
        ("unknown_key", "[tenant_database]\npool_sise = 3\n"),
        ("unknown_driver", "[tenant_database]\ndriver = \"oracle\"\n"),
        ("budget_below_pool", "[tenant_database]\npool_size = 10\nconnection_budget = 5\n"),
        ("missing_server", "[tenant_database]\ndriver = \"postgres\"\n"),
    ];
    let mut messages = Vec::new();
    for (name, content) in cases {
        std::fs::write(cli.dir().join("tenancy.toml"), content).unwrap();
        let run = cli.run(&["tenant", "list"]);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        messages.push(format!("## {name}\n{}", run.snapshot(&cli.env)));
    }
    insta::assert_snapshot!("malformed_config", messages.join("\n"));
    assert!(!cli.dir().join("storage").exists(), "a broken config creates nothing");
}

#[test]
fn an_unreachable_server_is_a_failure_that_hides_the_password() {
    let cli = Cli::sqlite();
    let run = cli
        .command()
        .env("TENANCY_TENANT_DATABASE__DRIVER", "postgres")
        .env("TENANCY_TENANT_DATABASE__SERVERS__DEFAULT", "postgres://admin:hunter2@127.0.0.1:9/postgres")
        .args(["tenant", "create", "--name", "X"])
        .output()
        .unwrap();
    let run = common::Run::from(run);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("127.0.0.1:9"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"));
    insta::assert_snapshot!("unreachable_server", run.snapshot(&cli.env));
    assert!(cli.tenants().is_empty(), "the registry row was undone");

    let registry =
        cli.command().env("TENANCY_CENTRAL__URL", "mysql://root:hunter2@127.0.0.1:9/central").args(["tenant", "list"]).output().unwrap();
    let registry = common::Run::from(registry);
    assert_eq!(registry.code, 1);
    assert!(registry.stderr.contains("127.0.0.1:9") && !registry.stderr.contains("hunter2"), "{}", registry.stderr);
}

#[test]
fn init_sql_is_refused_by_a_binary_whose_migrations_are_rust() {
    let cli = Cli::sqlite();
    let run = cli.run(&["init", "--sql"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("written in Rust") && run.stderr.contains("stock `tenancy` binary"), "{}", run.stderr);
    assert!(!cli.dir().join("migrations").exists() && !cli.dir().join("seeders").exists(), "nothing was written");
}
