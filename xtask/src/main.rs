//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask ci`: formatting check, clippy with warnings denied, then the whole test suite;
//! - `cargo xtask test`: the whole test suite (what `ci` runs last);
//! - `cargo xtask bench provision [--tenants N] [--backend a,b]`: release-mode benchmarks.

#![allow(clippy::print_stderr)] // xtask talks to the developer directly

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

fn main() -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(env!("CARGO_MANIFEST_DIR"));
    sh.change_dir("..");
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "ci" => ci(&sh),
        "test" => test(&sh),
        "bench" => bench(&sh, &rest),
        other => {
            eprintln!("usage: cargo xtask <ci | test | bench provision [--tenants N] [--backend sqlite,postgres,postgres-schema,mysql]>");
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

fn test(sh: &Shell) -> anyhow::Result<()> {
    step("cargo test");
    cmd!(sh, "cargo test --workspace --locked").run().context("tests failed")
}

fn bench(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    let Some((which, rest)) = args.split_first() else { bail!("usage: cargo xtask bench provision [--tenants N] [--backend a,b]") };
    match which.as_str() {
        "provision" => {
            step("release build and run of tenancy-bench provision");
            cmd!(sh, "cargo run --release --locked -p tenancy-bench -- provision {rest...}").run().context("the benchmark failed")
        }
        other => bail!("unknown benchmark `{other}`; available: provision"),
    }
}
