//! Plugins end to end: the hello library on every backend, every broken fixture, conflicts,
//! `plugins.disabled`, external `tenancy-foo` programs, a built-in plugin in an application's own
//! binary, `plugin list` and `doctor`. The libraries are built by `cargo xtask plugins` (which
//! `cargo xtask test` and `ci` run first).

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::path::{Path, PathBuf};

use common::Cli;
use tenancy_tests::Backend;

/// `target/debug`, where cargo put the binary and the plugin libraries.
fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tenancy-sample")).parent().expect("the binary is in a folder").to_path_buf()
}

/// The library the workspace package `package` builds.
fn library(package: &str) -> PathBuf {
    let file = format!("{}{}{}", std::env::consts::DLL_PREFIX, package.replace('-', "_"), std::env::consts::DLL_SUFFIX);
    let path = build_dir().join(file);
    assert!(path.exists(), "{} is missing: build the plugin libraries first with `cargo xtask plugins`", path.display());
    path
}

/// The checked-in text file named like a library.
fn not_a_library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/fixtures/not-a-library/libnot_a_library.so")
}

/// Copies libraries into the `plugins/` folder beside the test's `tenancy.toml`.
fn install(cli: &Cli, libraries: &[PathBuf]) {
    let folder = cli.dir().join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    for library in libraries {
        let name = library.file_stem().unwrap().to_string_lossy().into_owned();
        std::fs::copy(library, folder.join(format!("{name}.{}", std::env::consts::DLL_EXTENSION))).unwrap();
    }
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect()
}

#[test]
fn hello_counts_a_tenants_tables_through_its_own_connection_on_every_backend() {
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        install(&cli, &[library("tenancy-hello")]);
        cli.ok(&["init"]);
        cli.create("Acme", &["acme.localhost"]);
        cli.create("Globex", &["globex.localhost"]);
        cli.execute("globex.localhost", "CREATE TABLE only_globex (id INTEGER)");
        let acme_tables = cli.status("acme.localhost")["stats"]["tables"].as_i64().unwrap();

        let greeting = cli.ok(&["hello"]);
        assert!(greeting.starts_with("Hello from the hello plugin"), "{backend:?}: {greeting}");

        // Each tenant sees its own tables only: Globex's extra table is not Acme's.
        let acme = cli.ok(&["hello", "--tenant", "acme.localhost"]);
        assert_eq!(acme.trim(), format!("Acme: {acme_tables} tables"), "{backend:?}");
        let all = json_lines(&cli.ok(&["hello", "--all", "--json"]));
        let counts: Vec<(String, i64)> =
            all.iter().map(|line| (line["name"].as_str().unwrap().to_owned(), line["tables"].as_i64().unwrap())).collect();
        assert!(counts.contains(&("Acme".into(), acme_tables)), "{backend:?}: {counts:?}");
        assert!(counts.contains(&("Globex".into(), acme_tables + 1)), "{backend:?}: {counts:?}");

        // An unknown tenant is the host's usage error, before the plugin runs.
        let unknown = cli.run(&["hello", "--tenant", "nobody.localhost"]);
        assert_eq!(unknown.code, 2, "{backend:?}: {}", unknown.stderr);
        assert!(unknown.stderr.contains("unknown tenant `nobody.localhost`"), "{}", unknown.stderr);
        assert!(unknown.stdout.is_empty());
    }
}

#[test]
fn plugin_commands_join_help_and_completions_and_parse_their_own_arguments() {
    let cli = Cli::sqlite();
    install(&cli, &[library("tenancy-hello")]);
    let help = cli.ok(&["--help"]);
    assert!(help.contains("hello") && help.contains("[plugin: hello]"), "{help}");
    let completions = cli.ok(&["completions", "bash"]);
    assert!(completions.contains("hello"), "the bash script does not complete `hello`");

    // The host's global flags are the host's wherever they stand, so the plugin never sees them.
    assert!(cli.ok(&["hello", "--config", "tenancy.toml", "--no-color"]).contains("Hello from the hello plugin"));
    let quiet = cli.run(&["hello", "-q", "--bogus"]);
    assert!(quiet.stderr.contains("'--bogus'") && !quiet.stderr.contains("'-q'"), "{}", quiet.stderr);

    let own_help = cli.ok(&["hello", "--help"]);
    assert!(own_help.contains("Usage: tenancy hello"), "{own_help}");
    let bad = cli.run(&["hello", "--bogus"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("unexpected argument '--bogus'") && !bad.stderr.contains("error: error"), "{}", bad.stderr);

    let unknown = cli.run(&["goodbye"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("unrecognized subcommand 'goodbye'"), "{}", unknown.stderr);
}

#[test]
fn libraries_that_are_not_plugins_are_reported_by_file_and_everything_else_works() {
    let broken = [
        (library("fixture-wrong-abi"), "built for plugin ABI version 999"),
        (library("fixture-missing-symbol"), "has no `tenancy_plugin_declaration` symbol"),
        (not_a_library(), "is not a loadable plugin library"),
    ];
    for (path, problem) in &broken {
        let cli = Cli::sqlite();
        install(&cli, &[path.clone(), library("tenancy-hello")]);
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();

        // Core commands and the good plugin keep working; each run warns, naming the file.
        let list = cli.run(&["tenant", "list"]);
        assert_eq!(list.code, 0, "{file_name}: {}", list.stderr);
        assert!(list.stderr.contains(&file_name) && list.stderr.contains(problem), "{file_name}: {}", list.stderr);
        assert!(cli.ok(&["hello"]).contains("Hello from the hello plugin"));

        let plugins = json_lines(&cli.ok(&["plugin", "list", "--json"]));
        let entry =
            plugins.iter().find(|p| p["path"].as_str().is_some_and(|p| p.ends_with(&file_name))).expect("the broken plugin is listed");
        assert!(entry["error"].as_str().unwrap().contains(problem), "{entry}");
        assert_eq!(entry["kind"], "dynamic");

        let doctor = cli.run(&["doctor"]);
        assert_eq!(doctor.code, 1, "doctor passes with {file_name}:\n{}", doctor.stdout);
        assert!(doctor.stdout.lines().any(|line| line.starts_with("FAIL") && line.contains(&file_name)), "{}", doctor.stdout);
    }
}

#[test]
fn a_panicking_plugin_is_an_error_naming_it_and_the_host_lives() {
    let cli = Cli::sqlite();
    install(&cli, &[library("fixture-panics")]);
    let run = cli.run(&["panic-now"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("plugin `panics`") && run.stderr.contains("libfixture_panics"), "{}", run.stderr);
    assert!(run.stderr.contains("panicked") && run.stderr.contains("the fixture panicked on purpose"), "{}", run.stderr);
    // The panic is reported once, as ours: no raw panic message or backtrace hint.
    assert!(!run.stderr.contains("thread '") && !run.stderr.contains("RUST_BACKTRACE"), "{}", run.stderr);
    cli.ok(&["tenant", "list"]);
}

#[test]
fn a_plugin_error_exits_1_and_a_plugin_usage_error_exits_2() {
    let cli = Cli::sqlite();
    install(&cli, &[library("fixture-fails")]);
    let failed = cli.run(&["fail-now"]);
    assert_eq!(failed.code, 1);
    assert!(failed.stderr.contains("plugin `fails`") && failed.stderr.contains("the fixture failed on purpose"), "{}", failed.stderr);
    let usage = cli.run(&["fail-now", "--usage"]);
    assert_eq!(usage.code, 2);
    assert!(usage.stderr.contains("`fail-now` takes no `--usage`"), "{}", usage.stderr);
}

#[test]
fn claims_on_taken_commands_keep_the_first_claimant_and_warn_naming_both() {
    let cli = Cli::sqlite();
    install(&cli, &[library("tenancy-hello"), library("fixture-impostor")]);
    // Libraries load in file-name order: libfixture_impostor before libtenancy_hello.
    for _ in 0..2 {
        let hello = cli.run(&["hello"]);
        assert_eq!(hello.code, 0);
        assert_eq!(hello.stdout.trim(), "impostor ran `hello`");
        let warning = hello.stderr.lines().find(|line| line.contains("claims the command `hello`")).expect("a warning about `hello`");
        assert!(warning.contains("libtenancy_hello") && warning.contains("libfixture_impostor"), "{warning}");
    }
    // The core command always wins over a plugin's claim.
    let list = cli.run(&["tenant", "list"]);
    assert_eq!(list.code, 0);
    assert!(!list.stdout.contains("impostor ran"));
    assert!(list.stderr.contains("claims the command `tenant`, which the core command `tenant` provides first"), "{}", list.stderr);
    assert_eq!(cli.ok(&["impostor"]).trim(), "impostor ran `impostor`");
}

#[test]
fn disabled_plugins_are_not_loaded_by_name_or_file() {
    for disabled in ["hello", "libtenancy_hello"] {
        let cli = Cli::sqlite();
        install(&cli, &[library("tenancy-hello")]);
        let config = std::fs::read_to_string(cli.dir().join("tenancy.toml")).unwrap();
        std::fs::write(cli.dir().join("tenancy.toml"), format!("{config}\n[plugins]\ndisabled = [\"{disabled}\"]\n")).unwrap();
        assert_eq!(cli.run(&["hello"]).code, 2, "`{disabled}` did not disable hello");
        let plugins = json_lines(&cli.ok(&["plugin", "list", "--json"]));
        let dynamic: Vec<_> = plugins.iter().filter(|plugin| plugin["kind"] == "dynamic").collect();
        assert_eq!(dynamic.len(), 1);
        assert_eq!(dynamic[0]["disabled"], true);
    }
}

#[test]
fn plugin_paths_come_from_the_environment_and_the_configuration() {
    let cli = Cli::sqlite();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(library("tenancy-hello"), elsewhere.path().join("libtenancy_hello.so")).unwrap();
    let from_env = cli.command().args(["hello"]).env("TENANCY_PLUGIN_PATH", elsewhere.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&from_env.stdout).contains("Hello from the hello plugin"));

    let config = std::fs::read_to_string(cli.dir().join("tenancy.toml")).unwrap();
    let file = elsewhere.path().join("libtenancy_hello.so");
    std::fs::write(cli.dir().join("tenancy.toml"), format!("{config}\n[plugins]\npaths = [{:?}]\n", file.display().to_string())).unwrap();
    assert!(cli.ok(&["hello"]).contains("Hello from the hello plugin"));

    // A path that does not exist is named in a warning; nothing else changes.
    let missing = cli.command().args(["tenant", "list"]).env("TENANCY_PLUGIN_PATH", "/nonexistent/plugins").output().unwrap();
    assert_eq!(missing.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("TENANCY_PLUGIN_PATH names `/nonexistent/plugins`, which does not exist"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn external_programs_on_path_become_commands_with_their_exit_code() {
    use std::os::unix::fs::PermissionsExt;

    let cli = Cli::sqlite();
    let bin = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let path = bin.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("tenancy-foo", "echo \"args: $*\"; echo \"registry: $TENANCY_REGISTRY_URL\"; echo \"bin: $TENANCY_BIN\"; exit 7");
    script("tenancy-tenant", "echo hijacked; exit 9");
    #[allow(clippy::disallowed_methods)] // the test's own PATH, not tenancy configuration
    let path =
        std::env::join_paths(std::iter::once(bin.path().to_path_buf()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())))
            .unwrap();

    let run = cli.command().args(["foo", "a", "--b", "--json"]).env("PATH", &path).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(7));
    assert!(stdout.contains("args: a --b --json"), "{stdout}");
    assert!(stdout.contains("registry: sqlite://") && stdout.contains("central.sqlite"), "{stdout}");
    assert!(stdout.contains(&format!("bin: {}", env!("CARGO_BIN_EXE_tenancy-sample"))), "{stdout}");

    let help = cli.command().arg("--help").env("PATH", &path).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("foo"));
    // A core command is never replaced by a program on PATH.
    let list = cli.command().args(["tenant", "list"]).env("PATH", &path).output().unwrap();
    assert_eq!(list.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&list.stdout).contains("hijacked"));

    let plugins = cli.command().args(["plugin", "list", "--json"]).env("PATH", &path).output().unwrap();
    let plugins = json_lines(&String::from_utf8_lossy(&plugins.stdout));
    let foo = plugins.iter().find(|p| p["name"] == "foo").expect("foo is listed");
    assert_eq!(foo["kind"], "external");
    let tenant = plugins.iter().find(|p| p["name"] == "tenant").expect("tenancy-tenant is listed");
    assert!(tenant["shadowed"][0].as_str().unwrap().contains("core command"), "{tenant}");
}

#[test]
fn an_applications_own_binary_links_a_plugin_with_commands_migrations_and_a_provisioning_step() {
    let binary = build_dir().join("examples").join(format!("my_app{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.exists(), "{} is missing: `cargo test` builds the examples", binary.display());
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        let my_app = |args: &[&str]| {
            let run = cli.program(&binary).args(args).output().unwrap();
            assert_eq!(run.status.code(), Some(0), "{backend:?} my_app {args:?}: {}", String::from_utf8_lossy(&run.stderr));
            String::from_utf8_lossy(&run.stdout).into_owned()
        };
        assert!(my_app(&["--help"]).contains("notes"));
        my_app(&["init"]);
        my_app(&["tenant", "create", "--name", "Acme", "--domain", "acme.localhost"]);
        // The provisioning step wrote a note, through the plugin's own table and migrator.
        assert_eq!(my_app(&["notes", "--tenant", "acme.localhost", "--add", "second"]), "Welcome, Acme!\nsecond\n", "{backend:?}");
        let status = my_app(&["db", "status", "--tenant", "acme.localhost", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        let last = status["status"]["migrations"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["migration"], serde_json::json!({"migrator": "notes", "name": "m20260101_000001_create_notes"}), "{backend:?}");
        assert!(!last["applied_at"].is_null(), "{backend:?}: {last}");
        assert!(my_app(&["plugin", "list"]).contains("built-in"));
        // Rolled back last-in first-out: the plugin's migration goes before the application's.
        my_app(&["db", "rollback", "--tenant", "acme.localhost", "--step", "1"]);
        assert_eq!(cli.scalar("acme.localhost", "SELECT COUNT(*) FROM notes"), None, "{backend:?}: notes survived the rollback");
    }
}

#[test]
fn doctor_checks_each_part_and_fails_only_on_failures() {
    let cli = Cli::sqlite();
    install(&cli, &[library("tenancy-hello")]);
    cli.create("Acme", &["acme.localhost"]);
    let healthy = cli.run(&["doctor"]);
    assert_eq!(healthy.code, 0, "{}", healthy.stdout);
    for check in ["configuration", "registry", "server `default`", "redis", "migrations", "plugin `hello`"] {
        assert!(healthy.stdout.contains(check), "no `{check}` line:\n{}", healthy.stdout);
    }

    // Pending migrations are a warning, not a failure.
    cli.ok(&["tenant", "create", "--name", "Late", "--no-migrate"]);
    let pending = json_lines(&cli.ok(&["doctor", "--json"]));
    let migrations = pending.iter().find(|c| c["check"] == "migrations").unwrap();
    assert_eq!(migrations["status"], "warn", "{migrations}");
    assert!(migrations["detail"].as_str().unwrap().contains("Late"), "{migrations}");

    // A server that does not answer fails the run, naming it.
    std::fs::write(
        cli.dir().join("tenancy.toml"),
        "[tenant_database]\ndriver = \"postgres\"\n[tenant_database.servers]\ndefault = \"postgres://postgres@127.0.0.1:9/postgres\"\n",
    )
    .unwrap();
    let broken = cli.run(&["doctor"]);
    assert_eq!(broken.code, 1, "{}", broken.stdout);
    assert!(
        broken.stdout.lines().any(|l| l.starts_with("FAIL") && l.contains("server `default`") && l.contains("127.0.0.1:9")),
        "{}",
        broken.stdout
    );

    // A registry that does not answer fails, and the tenant servers are still checked on their own.
    std::fs::write(cli.dir().join("tenancy.toml"), "[central]\nurl = \"postgres://postgres@127.0.0.1:9/registry\"\n").unwrap();
    let no_registry = cli.run(&["doctor"]);
    assert_eq!(no_registry.code, 1, "{}", no_registry.stdout);
    assert!(
        no_registry.stdout.lines().any(|l| l.starts_with("FAIL") && l.contains("registry") && l.contains("127.0.0.1:9")),
        "{}",
        no_registry.stdout
    );
    assert!(no_registry.stdout.lines().any(|l| l.starts_with("ok") && l.contains("server `default`")), "{}", no_registry.stdout);

    // So does a configuration that cannot be read; the plugin checks still run.
    std::fs::write(cli.dir().join("tenancy.toml"), "[central\n").unwrap();
    let unreadable = cli.run(&["doctor"]);
    assert_eq!(unreadable.code, 1);
    assert!(unreadable.stdout.lines().any(|l| l.starts_with("FAIL") && l.contains("configuration")), "{}", unreadable.stdout);
}

#[test]
fn the_readme_shows_the_example_binary_as_it_is() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../examples/my_app.rs");
    assert!(
        readme.contains(example),
        "README.md's \"Your own binary\" section differs from sample/examples/my_app.rs: copy the file in again"
    );
}

#[test]
fn an_unreadable_configuration_is_named_when_a_plugin_command_is_not_found() {
    let cli = Cli::sqlite();
    install(&cli, &[library("tenancy-hello")]);
    std::fs::write(cli.dir().join("tenancy.toml"), "[central\n").unwrap();
    let run = cli.run(&["hello"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot be read") && run.stderr.contains("tenancy.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("unrecognized subcommand 'hello'"), "{}", run.stderr);
    // Commands needing no configuration still work.
    assert!(cli.ok(&["completions", "bash"]).contains("tenancy"));
}

#[test]
fn plugin_list_and_doctor_read_well() {
    let cli = Cli::sqlite();
    install(&cli, &[library("tenancy-hello"), library("fixture-impostor"), library("fixture-wrong-abi")]);
    cli.create("Acme", &["acme.localhost"]);
    insta::assert_snapshot!("plugin_list", cli.run(&["plugin", "list"]).snapshot(&cli.env));
    insta::assert_snapshot!("doctor", cli.run(&["doctor"]).snapshot(&cli.env));
}
