//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask ci`: formatting check, clippy with warnings denied, then the whole test suite;
//! - `cargo xtask test [--backend sqlite,postgres,postgres-schema,mysql,redis,nats,browser,s3] [-- FILTER]`:
//!   the plugin libraries, then the test suite (what `ci` runs last, whole), or only the tests of
//!   those backends (SQLite always runs) and whose names contain FILTER;
//! - `cargo xtask plugins [--release]`: builds the plugin libraries the tests load (`cargo test`
//!   compiles a `cdylib` only as a test harness, never as a library another test can load);
//! - `cargo xtask bench provision [--tenants N] [--backend a,b]`: release-mode benchmarks;
//! - `cargo xtask bench migrate [--sqlite-tenants N] [--postgres-tenants N] [--backend …] [--peer-concurrency 4,8,16] [--roles shared,per_tenant]`;
//! - `cargo xtask bench cache [--operations N]`;
//! - `cargo xtask bench startup [--plugins N] [--runs N]`;
//! - `cargo xtask bench backup [--rows N] [--small-tenants N] [--runs R]` (installs `zstd`);
//! - `cargo xtask bench web [--tenants N] [--seconds S] [--connections C] [--runs R]` (installs `wrk`);
//! - `cargo xtask bench monitor [--sqlite-tenants N] [--postgres-tenants N] [--runs R]`;
//! - `cargo xtask bench queue [--tenants N] [--jobs N] [--concurrency C] [--runs R]`;
//! - `cargo xtask bench scale [--sqlite-tenants N] [--postgres-tenants N] [--backend …] [--move-mib M]`;
//! - `cargo xtask release [--version X.Y.Z | --bump major|minor|patch] [--dry-run]`: see `release.rs`.

#![allow(clippy::print_stderr)] // xtask talks to the developer directly

mod release;

use std::path::PathBuf;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

fn main() -> anyhow::Result<()> {
    let sh = Shell::new()?;
    // The folder cargo ran us from, not the one we were compiled in: two clones sharing one
    // target folder (the release tests) run whichever build of xtask is there.
    #[allow(clippy::disallowed_methods)] // cargo's own variable, not tenancy configuration
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    sh.change_dir(manifest_dir);
    sh.change_dir("..");
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "ci" => ci(&sh),
        "test" => test_selected(&sh, &rest),
        "plugins" => build_plugins(&sh, rest.iter().any(|arg| arg == "--release")),
        "bench" => bench(&sh, &rest),
        "release" => release::release(&sh, &rest),
        other => {
            eprintln!(
                "usage: cargo xtask <ci | test [--backend a,b] [-- FILTER] | plugins [--release] | bench <provision | migrate | scale | cache | startup | web | backup | monitor | queue> [options] | release [--version X.Y.Z | --bump major|minor|patch] [--dry-run]>"
            );
            if other.is_empty() { Ok(()) } else { bail!("unknown task `{other}`") }
        }
    }
}

fn step(name: &str) {
    eprintln!("\n==> {name}");
}

fn ci(sh: &Shell) -> anyhow::Result<()> {
    step("cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check").run().context("formatting differs: run `cargo fmt --all`")?;
    step("cargo clippy");
    cmd!(sh, "cargo clippy --workspace --all-targets --locked -- -D warnings").run().context("clippy found problems")?;
    test(sh)
}

/// The plugin libraries in the workspace: the example and the broken fixtures.
const PLUGIN_PACKAGES: &[&str] =
    &["tenancy-hello", "fixture-wrong-abi", "fixture-missing-symbol", "fixture-panics", "fixture-fails", "fixture-impostor"];

fn build_plugins(sh: &Shell, release: bool) -> anyhow::Result<()> {
    step("plugin libraries");
    let packages = PLUGIN_PACKAGES.iter().flat_map(|package| ["-p", package]);
    let profile = release.then_some("--release");
    cmd!(sh, "cargo build --locked {profile...} {packages...}").run().context("building the plugin libraries failed")
}

fn test(sh: &Shell) -> anyhow::Result<()> {
    build_plugins(sh, false)?;
    step("cargo test");
    cmd!(sh, "cargo test --workspace --locked").run().context("tests failed")
}

/// The backends `--backend` may name (as the test support spells them).
const BACKENDS: &[&str] = &["sqlite", "postgres", "postgres-schema", "mysql", "redis", "nats", "browser", "s3"];

/// `cargo xtask test [--backend a,b] [-- FILTER]`.
fn test_selected(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    let (options, filter) = match args.iter().position(|arg| arg == "--") {
        Some(split) => (&args[..split], &args[split + 1..]),
        None => (args, &[][..]),
    };
    let mut backends = None;
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let value = match option.strip_prefix("--backend=") {
            Some(value) => value.to_owned(),
            None if option == "--backend" => options.next().context("--backend needs a list, e.g. --backend postgres,redis")?.clone(),
            None => bail!("unknown option `{option}`; usage: cargo xtask test [--backend {}] [-- FILTER]", BACKENDS.join(",")),
        };
        for name in value.split(',').map(str::trim) {
            if !BACKENDS.contains(&name) {
                bail!("unknown backend `{name}`; choose from {}", BACKENDS.join(", "));
            }
        }
        backends = Some(value);
    }
    if backends.is_none() && filter.is_empty() {
        return test(sh);
    }
    build_plugins(sh, false)?;
    step("cargo test (selected)");
    let _selection = backends.map(|list| sh.push_env("TENANCY_TEST_BACKENDS", list));
    cmd!(sh, "cargo test --workspace --locked -- {filter...}").run().context("tests failed")
}

fn bench(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    let Some((which, rest)) = args.split_first() else { bail!("usage: cargo xtask bench <provision | migrate> [options]") };
    match which.as_str() {
        "provision" => {
            step("release build and run of tenancy-bench provision");
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- provision {rest...}").run().context("the benchmark failed")
        }
        "migrate" => {
            step("release build of tenancy, then tenancy-bench migrate");
            cmd!(sh, "cargo build --release --locked -p tenancy-sample --bin tenancy-sample").run().context("building tenancy failed")?;
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- migrate {rest...}").run().context("the benchmark failed")
        }
        "startup" => {
            step("release builds of tenancy and the plugin libraries, then tenancy-bench startup");
            cmd!(sh, "cargo build --release --locked -p tenancy-sample --bin tenancy-sample").run().context("building tenancy failed")?;
            build_plugins(sh, true)?;
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- startup {rest...}").run().context("the benchmark failed")
        }
        "cache" => {
            step("release build and run of tenancy-bench cache");
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- cache {rest...}").run().context("the benchmark failed")
        }
        "web" => {
            step("wrk (from Debian, if missing), release builds of tenancy and tenancy-bench, then tenancy-bench web");
            install_debian_package(sh, "wrk", "wrk")?;
            cmd!(sh, "cargo build --release --locked -p tenancy-sample --bin tenancy-sample").run().context("building tenancy failed")?;
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- web {rest...}").run().context("the benchmark failed")
        }
        "monitor" => {
            step("release builds of tenancy and tenancy-bench, then tenancy-bench monitor");
            cmd!(sh, "cargo build --release --locked -p tenancy-sample --bin tenancy-sample").run().context("building tenancy failed")?;
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- monitor {rest...}").run().context("the benchmark failed")
        }
        "scale" => {
            step("the extra PostgreSQL clusters (.ci/services), a release build of the stock tenancy binary, then tenancy-bench scale");
            cmd!(sh, "bash .ci/services").run().context("starting the services failed")?;
            cmd!(sh, "cargo build --release --locked -p tenancy --bin tenancy").run().context("building tenancy failed")?;
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- scale {rest...}").run().context("the benchmark failed")
        }
        "queue" => {
            step("release build of tenancy-bench, then tenancy-bench queue");
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- queue {rest...}").run().context("the benchmark failed")
        }
        "backup" => {
            step("zstd (from Debian, if missing), release builds of tenancy and tenancy-bench, then tenancy-bench backup");
            install_debian_package(sh, "zstd", "zstd")?;
            cmd!(sh, "cargo build --release --locked -p tenancy-sample").run().context("building tenancy failed")?;
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- backup {rest...}").run().context("the benchmark failed")
        }
        other => bail!("unknown benchmark `{other}`; available: provision, migrate, scale, cache, startup, web, backup, monitor, queue"),
    }
}

/// A Debian package a benchmark needs (`wrk`, `zstd`), installed when `program` is missing (as
/// root, or through sudo).
fn install_debian_package(sh: &Shell, program: &str, package: &str) -> anyhow::Result<()> {
    let probe = format!("command -v {program}");
    if cmd!(sh, "sh -c {probe}").quiet().ignore_stdout().run().is_ok() {
        return Ok(());
    }
    let install = format!("apt-get install -y --no-install-recommends {package}");
    let as_root = cmd!(sh, "id -u").read()?.trim() == "0";
    let result = if as_root { cmd!(sh, "sh -c {install}").run() } else { cmd!(sh, "sudo sh -c {install}").run() };
    result.with_context(|| format!("installing {package} with apt-get failed"))
}

/// Habits `rustfmt` and clippy cannot check. Runs with the tests (`cargo test --workspace`).
#[cfg(test)]
mod tidy {
    #![allow(clippy::unwrap_used)] // a panic is how a test reports failure

    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                rust_files(&path, found);
            } else if name.ends_with(".rs") {
                found.push(path);
            }
        }
    }

    fn workspace_files() -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        files.into_iter().map(|path| (path.strip_prefix(&root).unwrap().to_path_buf(), std::fs::read_to_string(&path).unwrap())).collect()
    }

    #[test]
    fn every_file_says_what_it_is_for() {
        let missing: Vec<String> = workspace_files()
            .into_iter()
            .filter(|(_, text)| !text.starts_with("//!"))
            .map(|(path, _)| path.display().to_string())
            .collect();
        assert!(missing.is_empty(), "these files do not start with a `//!` comment saying what they own:\n  {}", missing.join("\n  "));
    }

    #[test]
    fn no_should_panic_tests() {
        let marker = concat!("#[should", "_panic");
        let found: Vec<String> =
            workspace_files().into_iter().filter(|(_, text)| text.contains(marker)).map(|(path, _)| path.display().to_string()).collect();
        assert!(found.is_empty(), "tests should assert on the error they expect, not on a panic:\n  {}", found.join("\n  "));
    }

    #[test]
    fn only_the_output_module_prints_in_the_cli() {
        let found: Vec<String> = workspace_files()
            .into_iter()
            .filter(|(path, text)| {
                path.starts_with("cli/src")
                    && !path.ends_with("output.rs")
                    && ["println!", "eprintln!", "print!(", "io::stdout()", "io::stderr()", ".print()"]
                        .iter()
                        .any(|writes| text.contains(writes))
            })
            .map(|(path, _)| path.display().to_string())
            .collect();
        assert!(found.is_empty(), "print through `Output` (cli/src/output.rs) instead:\n  {}", found.join("\n  "));
    }
}
