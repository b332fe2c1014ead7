//! `tenancy db …` end to end through the real binary, on every backend: migrate, status, rollback,
//! reset, refresh, fresh and seed; failure isolation and resuming; `--pretend`; tenant selection.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::{Cli, applied_pending};
use tenancy_tests::Backend;

/// Core's four migrations plus the sample application's eleven.
const ALL: usize = 15;
/// Applied before the sample's fifth, `create_users`: core's four and the sample's first four.
const BEFORE_USERS: usize = 8;

#[test]
fn every_db_command_on_every_backend() {
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        let name = backend.name();
        cli.ok(&["init"]);
        let a = cli.create("Alpha", &["alpha.test"]);
        let b = cli.create("Beta", &["beta.test"]);
        for id in [&a, &b] {
            assert_eq!(applied_pending(&cli.status(id)), (ALL, 0), "{name}: create applies every migration");
        }

        cli.ok(&["db", "rollback", "--all", "--step", "2"]);
        assert_eq!(applied_pending(&cli.status(&a)), (ALL - 2, 2), "{name}");
        let migrate = cli.run(&["db", "migrate", "--all", "--json"]);
        assert_eq!(migrate.code, 0, "{name}: {}", migrate.stderr);
        let applied_events: Vec<serde_json::Value> =
            migrate.stdout.lines().filter(|l| l.contains("\"migration_applied\"")).map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(applied_events.len(), 4, "{name}: two migrations for each of two tenants");
        for event in &applied_events {
            assert!(event["elapsed_ms"].as_f64().unwrap() > 0.0, "{name}: {event}");
            assert!(event["allocated_bytes"].as_u64().unwrap() > 0, "{name}: the binary measures memory: {event}");
        }
        let stats = &cli.status(&a)["stats"];
        assert_eq!(stats["tables"], 11, "{name}: 7 application tables, cache, sessions and 2 tracking tables: {stats}");
        assert!(stats["size_bytes"].as_u64().unwrap() > 0, "{name}: {stats}");
        let summary: serde_json::Value = serde_json::from_str(migrate.stdout.lines().last().unwrap()).unwrap();
        assert_eq!(
            (summary["event"].as_str(), summary["succeeded"].as_u64(), summary["migrations"].as_u64()),
            (Some("summary"), Some(2), Some(4))
        );

        let nothing = cli.run(&["db", "migrate", "--all"]);
        assert!(nothing.stderr.contains("nothing to do"), "{name}: {}", nothing.stderr);

        // Recorded up to date, a tenant's database is not read again: one changed behind tenancy's
        // back goes unnoticed by a plain run and is caught by `--verify`.
        cli.execute(&a, "DROP TABLE api_tokens");
        cli.execute(&a, "DELETE FROM seaql_migrations WHERE version = 'm20260101_000010_create_api_tokens'");
        assert_eq!(applied_pending(&cli.status(&a)), (ALL - 1, 1), "{name}: `db status` always reads the database");
        let plain = cli.run(&["db", "migrate", "--all", "--json"]);
        assert!(!plain.stdout.contains("migration_applied"), "{name}: {}", plain.stdout);
        // `db status --summary` trusts the record as `db migrate` does; with `--verify` it reads.
        let totals = |args: &[&str]| -> serde_json::Value { serde_json::from_str(cli.ok(args).trim()).unwrap() };
        let trusted = totals(&["db", "status", "--all", "--summary", "--json"]);
        assert_eq!((trusted["up_to_date"].as_u64(), trusted["up_to_date_by_record"].as_u64()), (Some(2), Some(2)), "{name}: {trusted}");
        let read = totals(&["db", "status", "--all", "--summary", "--verify", "--json"]);
        assert_eq!(
            (read["up_to_date"].as_u64(), read["with_pending"].as_u64(), read["pending"].as_u64(), read["up_to_date_by_record"].as_u64()),
            (Some(1), Some(1), Some(1), Some(0)),
            "{name}: {read}"
        );
        assert!(
            cli.ok(&["db", "status", "--all", "--summary"]).starts_with("2 tenants: 2 up to date (2 by the registry's record"),
            "{name}"
        );
        assert_eq!(cli.run(&["db", "status", "--all", "--verify"]).code, 2, "--verify goes with --summary");
        let verified = cli.run(&["db", "migrate", "--all", "--verify", "--json"]);
        assert_eq!(verified.stdout.matches("\"migration_applied\"").count(), 1, "{name}: {}{}", verified.stdout, verified.stderr);
        assert_eq!(applied_pending(&cli.status(&a)), (ALL, 0), "{name}");

        cli.ok(&["db", "seed", "--all", "--class", "CountriesTableSeeder,AirlinesTableSeeder"]);
        assert_eq!(cli.scalar(&a, "SELECT COUNT(*) FROM countries"), Some(249), "{name}");
        cli.ok(&["db", "seed", "--tenant", &a, "--class", "CountriesTableSeeder,AirlinesTableSeeder"]);
        assert_eq!(cli.scalar(&a, "SELECT COUNT(*) FROM airlines"), Some(58), "{name}: seeding twice leaves the same data");

        cli.ok(&["db", "reset", "--all", "--force"]);
        assert_eq!(applied_pending(&cli.status(&b)), (0, ALL), "{name}");
        assert_eq!(cli.scalar(&b, "SELECT COUNT(*) FROM countries"), None, "{name}: reset dropped the tables");

        cli.ok(&["db", "refresh", "--all", "--force"]);
        assert_eq!(applied_pending(&cli.status(&b)), (ALL, 0), "{name}");

        cli.ok(&["db", "seed", "--all", "--class", "CountriesTableSeeder"]);
        cli.ok(&["db", "fresh", "--tenant", &b, "--force"]);
        assert_eq!(applied_pending(&cli.status(&b)), (ALL, 0), "{name}");
        assert_eq!(cli.scalar(&b, "SELECT COUNT(*) FROM countries"), Some(0), "{name}: fresh starts from an empty database");
        assert_eq!(cli.scalar(&a, "SELECT COUNT(*) FROM countries"), Some(249), "{name}: the other tenant is untouched");
    }
}

#[test]
fn a_failing_tenant_fails_alone_is_recorded_and_resumes() {
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        let Some(cli) = Cli::new(backend) else { continue };
        let name = backend.name();
        cli.ok(&["init"]);
        // One and Three are new databases; Two had its first migrations applied by an earlier run.
        let ids: Vec<String> =
            ["One", "Two", "Three"].iter().map(|n| cli.ok(&["tenant", "create", "--name", n, "--no-migrate"]).trim().to_owned()).collect();
        cli.ok(&["db", "migrate", "--tenant", &ids[1]]);
        cli.ok(&["db", "rollback", "--tenant", &ids[1], "--step", &(ALL - BEFORE_USERS).to_string()]);
        // Tenant Two now has a `users` table of its own, so the migration creating it must fail there.
        cli.execute(&ids[1], "CREATE TABLE users (legacy INTEGER)");

        let run = cli.run(&["db", "migrate", "--all", "--concurrency", "3"]);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        assert!(run.stderr.contains("1 failed"), "{name}: {}", run.stderr);
        assert!(run.stderr.contains("m20260101_000005_create_users"), "{name}: the summary names the migration: {}", run.stderr);
        for id in [&ids[0], &ids[2]] {
            assert_eq!(applied_pending(&cli.status(id)), (ALL, 0), "{name}: the other tenants carried on");
        }
        let two = cli.status(&ids[1]);
        assert_eq!(applied_pending(&two), (BEFORE_USERS, ALL - BEFORE_USERS), "{name}: Two stopped at the failing migration");
        assert_eq!(two["last_failure"]["migration"], "app/m20260101_000005_create_users", "{name}");
        assert!(!two["last_failure"]["error"].as_str().unwrap().is_empty());
        let human = cli.run(&["db", "status", "--tenant", &ids[1]]);
        assert!(human.stdout.contains("❌") && human.stdout.contains("create_users"), "{name}: {}", human.stdout);
        assert_eq!(human.code, 1, "a recorded failure makes status exit 1");
        assert_eq!(cli.scalar(&ids[1], "SELECT COUNT(legacy) FROM users"), Some(0), "{name}: the failing migration changed nothing");

        cli.execute(&ids[1], "DROP TABLE users");
        let resumed = cli.run(&["db", "migrate", "--all", "--json"]);
        assert_eq!(resumed.code, 0, "{name}: {}", resumed.stderr);
        assert_eq!(
            resumed.stdout.lines().filter(|l| l.contains("\"migration_applied\"")).count(),
            ALL - BEFORE_USERS,
            "{name}: only Two's remaining migrations ran"
        );
        let two = cli.status(&ids[1]);
        assert_eq!(applied_pending(&two), (ALL, 0));
        assert!(two["last_failure"].is_null(), "{name}: a successful run clears the failure");
    }
}

#[test]
fn a_new_database_that_fails_keeps_none_of_its_migrations_where_ddl_is_transactional() {
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::PostgresSchema, Backend::MySql] {
        let Some(cli) = Cli::new(backend) else { continue };
        let name = backend.name();
        cli.ok(&["init"]);
        let id = cli.ok(&["tenant", "create", "--name", "Legacy", "--no-migrate"]).trim().to_owned();
        cli.execute(&id, "CREATE TABLE users (legacy INTEGER)");
        let run = cli.run(&["db", "migrate", "--tenant", &id]);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        let kept = if backend == Backend::MySql { BEFORE_USERS } else { 0 };
        assert_eq!(applied_pending(&cli.status(&id)), (kept, ALL - kept), "{name}: all or nothing, except on MySQL");
        cli.execute(&id, "DROP TABLE users");
        cli.ok(&["db", "migrate", "--tenant", &id]);
        assert_eq!(applied_pending(&cli.status(&id)), (ALL, 0), "{name}: a rerun finishes the job");
    }
}

#[test]
fn fail_fast_starts_no_tenant_after_a_failure() {
    let cli = Cli::sqlite();
    let first = cli.ok(&["tenant", "create", "--name", "First", "--no-migrate"]).trim().to_owned();
    cli.ok(&["tenant", "create", "--name", "Second", "--no-migrate"]);
    cli.ok(&["tenant", "create", "--name", "Third", "--no-migrate"]);
    cli.execute(&first, "CREATE TABLE accounts (legacy INTEGER)");
    let run = cli.run(&["db", "migrate", "--all", "--concurrency", "1", "--fail-fast", "--json"]);
    assert_eq!(run.code, 1);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!((summary["failed"].as_u64(), summary["skipped"].as_u64(), summary["succeeded"].as_u64()), (Some(1), Some(2), Some(0)));
}

#[test]
fn pretend_prints_the_sql_and_changes_nothing() {
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        cli.ok(&["init"]);
        let id = cli.ok(&["tenant", "create", "--name", "Bare", "--no-migrate"]).trim().to_owned();
        let run = cli.run(&["db", "migrate", "--tenant", &id, "--pretend"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        for table in ["tenancy_cache", "accounts", "countries", "api_tokens"] {
            assert!(
                run.stdout.contains("CREATE TABLE") && run.stdout.contains(table),
                "{}: no CREATE TABLE for {table}:\n{}",
                backend.name(),
                run.stdout
            );
        }
        assert_eq!(applied_pending(&cli.status(&id)), (0, ALL), "{}", backend.name());
        assert_eq!(cli.status(&id)["stats"]["tables"], 0, "{}: not even a tracking table was created", backend.name());
    }
}

#[test]
fn selecting_tenants() {
    let cli = Cli::sqlite();
    let active = cli.create("Active", &[]);
    let sleepy = cli.create("Sleepy", &[]);
    cli.ok(&["tenant", "deactivate", &sleepy]);
    cli.ok(&["db", "rollback", "--all", "--step", "1"]);
    assert_eq!(applied_pending(&cli.status(&active)).1, 1, "--all means active tenants");
    assert_eq!(applied_pending(&cli.status(&sleepy)).1, 0, "an inactive tenant is left alone by default");
    cli.ok(&["db", "rollback", "--all", "--status", "inactive"]);
    assert_eq!(applied_pending(&cli.status(&sleepy)).1, 1);

    let neither = cli.run(&["db", "migrate"]);
    assert_eq!(neither.code, 2);
    assert!(neither.stderr.contains("--tenant") && neither.stderr.contains("--all"), "{}", neither.stderr);
    assert_eq!(applied_pending(&cli.status(&active)).1, 1, "nothing ran");
    assert_eq!(cli.run(&["db", "migrate", "--tenant", "nobody"]).code, 2);
    assert_eq!(cli.run(&["db", "migrate", "--tenant", &active, "--all"]).code, 2, "--tenant and --all conflict");
    assert_eq!(cli.run(&["db", "migrate", "--all", "--concurrency", "0"]).code, 2);
}

#[test]
fn destructive_commands_need_force_off_a_terminal() {
    let cli = Cli::sqlite();
    let id = cli.create("Precious", &[]);
    cli.ok(&["db", "seed", "--tenant", &id, "--class", "CountriesTableSeeder"]);
    for command in ["reset", "refresh", "fresh"] {
        let run = cli.run(&["db", command, "--all"]);
        assert_eq!(run.code, 2, "{command}");
        assert!(run.stderr.contains("--force"), "{command}: {}", run.stderr);
    }
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM countries"), Some(249), "nothing was lost");
}

#[test]
fn seeding_without_a_class_runs_the_default_and_says_so() {
    let cli = Cli::sqlite();
    let id = cli.create("Seedy", &["seedy.test"]);
    let run = cli.run(&["db", "seed", "--tenant", &id]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("DatabaseSeeder (the default"), "{}", run.stderr);
    for seeder in ["CountriesTableSeeder", "AirlinesTableSeeder", "AirportsTableSeeder", "AccountsTableSeeder", "TenantDatabaseSeeder"] {
        assert!(run.stderr.contains("✅ Seedy") && run.stderr.contains(seeder), "{seeder} has its own line: {}", run.stderr);
    }
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM airports"), Some(50_049));
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM users WHERE email = 'owner@seedy.test'"), Some(1));
    let unknown = cli.run(&["db", "seed", "--tenant", &id, "--class", "CountriesTableSeeder,Nope"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("unknown seeder `Nope`") && unknown.stderr.contains("AirportsTableSeeder"), "{}", unknown.stderr);
    let lone = cli.create("Lone", &[]);
    let airlines = cli.run(&["db", "seed", "--tenant", &lone, "--class", "AirlinesTableSeeder"]);
    assert_eq!(airlines.code, 1);
    assert!(airlines.stderr.contains("run CountriesTableSeeder first"), "a seeder that cannot run says why: {}", airlines.stderr);
}

#[test]
fn a_migration_reported_as_applied_survives_a_killed_process() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let cli = Cli::sqlite();
    // The kill must land while the process is still migrating: a run that finished before it could
    // prove nothing, so such an attempt is made again with a new tenant.
    let mut killed = None;
    for attempt in 0..5 {
        // An existing database (not a new one, migrated in one transaction): core's tables are
        // there, the application's migrations are each committed as they are reported.
        let id = cli.create(&format!("Durable {attempt}"), &[]);
        cli.ok(&["db", "rollback", "--tenant", &id, "--step", &(ALL - 4).to_string()]);
        let mut child = cli
            .tenancy_process()
            .args(["db", "migrate", "--tenant", &id, "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut reported = None;
        let mut running_at_kill = false;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line.contains("\"migration_applied\"") {
                let event: serde_json::Value = serde_json::from_str(&line).unwrap();
                reported = Some(event["migration"].as_str().unwrap().to_owned());
                running_at_kill = child.try_wait().unwrap().is_none();
                child.kill().unwrap(); // SIGKILL: no destructor, no checkpoint
                break;
            }
        }
        let status = child.wait().unwrap();
        if running_at_kill && status.signal() == Some(9) {
            killed = Some((id, reported));
            break;
        }
    }
    let (id, reported) = killed.expect("in five attempts the migration never was still running when killed");
    let reported = reported.expect("a migration was reported before the kill");
    let status = cli.status(&id);
    let state = status["status"]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| format!("{}/{}", m["migration"]["migrator"].as_str().unwrap(), m["migration"]["name"].as_str().unwrap()) == reported)
        .cloned()
        .unwrap();
    assert!(!state["applied_at"].is_null(), "{reported} was reported as applied but is not: {status}");
    let resumed = cli.run(&["db", "migrate", "--tenant", &id]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(applied_pending(&cli.status(&id)), (ALL, 0), "a rerun finishes the job");
}

#[test]
fn a_run_says_how_many_tenants_it_works_on_at_once_and_why() {
    let cli = Cli::sqlite();
    cli.create("One", &[]);
    cli.create("Two", &[]);
    let help = cli.run(&["db", "migrate", "--help"]);
    let help_text = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help_text.contains("[default: 12 (connection_budget 64 / pool_size 5)]"), "{}", help.stdout);

    let run = cli.run(&["db", "migrate", "--all"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("Migrating 2 tenants, 12 at once (the default: connection_budget 64 / pool_size 5)"),
        "the first line says the concurrency and where it comes from: {}",
        run.stderr
    );
    assert!(run.stderr.contains("2 tenants in") && run.stderr.contains("2 succeeded (2 had nothing to do)"), "{}", run.stderr);
    assert_eq!(run.stderr.matches("nothing to do").count(), 3, "piped, each tenant keeps its line: {}", run.stderr);

    let chosen = cli.run(&["db", "rollback", "--all", "--concurrency", "3"]);
    assert!(chosen.stderr.contains("Rolling back 2 tenants, 3 at once\n"), "{}", chosen.stderr);

    let json = cli.run(&["db", "migrate", "--all", "--json"]);
    let first: serde_json::Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["event"].as_str(), first["tenants"].as_u64(), first["concurrency"].as_u64()),
        (Some("fleet_started"), Some(2), Some(12))
    );
}

#[test]
fn pretend_counts_the_migrations_it_would_run() {
    let cli = Cli::sqlite();
    let id = cli.ok(&["tenant", "create", "--name", "Bare", "--no-migrate"]).trim().to_owned();
    let run = cli.run(&["db", "migrate", "--tenant", &id, "--pretend"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("1 tenant in") && run.stderr.contains(&format!("; {ALL} migrations")), "{}", run.stderr);
}

#[test]
fn log_events_name_their_tenant_and_can_be_json_for_a_collector() {
    let cli = Cli::sqlite();
    let id = cli.create("Acme", &["acme.test"]);
    let run = cli.run(&["-vv", "db", "status", "--tenant", "acme.test"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = run.stderr.lines().find(|l| l.contains("entered the tenant's context")).unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(line.starts_with("debug: ") && line.contains(&format!("tenant.id={id}")), "{line}");

    let run = cli.run(&["-vv", "--log-format", "json", "db", "status", "--tenant", "acme.test"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let events: Vec<serde_json::Value> =
        run.stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}"))).collect();
    let entered = events.iter().find(|e| e["fields"]["message"] == "entered the tenant's context").expect("the event");
    assert_eq!(entered["level"], "DEBUG");
    assert_eq!(entered["spans"][0]["tenant.id"], id.as_str(), "{entered}");
    assert!(!run.stdout.is_empty() && !run.stdout.starts_with('{'), "the command's own output stays as it was: {}", run.stdout);

    let run = cli.run(&["--log-format", "yaml", "tenant", "list"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn down_during_brings_every_tenant_up_again_even_after_a_failing_migration() {
    let cli = Cli::sqlite();
    let ids: Vec<String> =
        ["One", "Two", "Kept"].iter().map(|n| cli.ok(&["tenant", "create", "--name", n, "--no-migrate"]).trim().to_owned()).collect();
    cli.ok(&["db", "migrate", "--tenant", &ids[1]]);
    cli.ok(&["db", "rollback", "--tenant", &ids[1], "--step", &(ALL - BEFORE_USERS).to_string()]);
    cli.execute(&ids[1], "CREATE TABLE users (legacy INTEGER)"); // so Two's next migration fails
    cli.ok(&["tenant", "down", &ids[2], "--message", "Moving house."]);
    // Going down and up again touches a tenant's registry row, which migrating alone never does:
    // how this test sees, from outside, that the flag did its work.
    let updated = |cli: &Cli| -> Vec<String> { cli.tenants().iter().map(|t| t["updated_at"].as_str().unwrap().to_owned()).collect() };
    let before = updated(&cli);

    let run = cli.run(&["db", "migrate", "--all", "--down-during", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!((summary["failed"].as_u64(), summary["succeeded"].as_u64()), (Some(1), Some(2)), "{summary}");
    for tenant in cli.tenants() {
        let expected = if tenant["id"] == ids[2].as_str() { Some("operator") } else { None };
        assert_eq!(tenant["maintenance"]["origin"].as_str(), expected, "{tenant}");
    }
    let after = updated(&cli);
    assert!(after[0] != before[0] && after[1] != before[1], "One and Two went down and came up: {before:?} → {after:?}");
    assert_eq!(after[2], before[2], "the operator's maintenance was left alone");
    assert_eq!(applied_pending(&cli.status(&ids[0])), (ALL, 0));
    assert_eq!(cli.run(&["db", "migrate", "--all", "--pretend", "--down-during"]).code, 2, "--pretend changes nothing to go down for");
}
