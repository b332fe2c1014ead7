//! `cargo xtask release` in a fresh clone of this repository: a dry run shows the diff and the
//! plan and changes nothing; a dirty tree, a version that is not greater and bad options are
//! refused before anything is touched.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::path::Path;
use std::process::{Command, Output};

/// A clone of the committed state of this repository in a temporary folder.
fn clone() -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cloned = Command::new("git").args(["clone", "--quiet"]).arg(&root).arg(folder.path()).status().unwrap();
    assert!(cloned.success());
    folder
}

/// `cargo xtask release ARGS` in `dir`, built into this workspace's target folder (only xtask
/// itself is compiled again).
fn release(dir: &Path, args: &[&str]) -> Output {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    Command::new(env!("CARGO")).args(["xtask", "release"]).args(args).current_dir(dir).env("CARGO_TARGET_DIR", target).output().unwrap()
}

fn git_status(dir: &Path) -> String {
    String::from_utf8(Command::new("git").args(["status", "--porcelain"]).current_dir(dir).output().unwrap().stdout).unwrap()
}

fn workspace_version(dir: &Path) -> String {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let document: toml_edit::DocumentMut = manifest.parse().unwrap();
    document["workspace"]["package"]["version"].as_str().unwrap().to_owned()
}

fn bump(version: &str, part: usize) -> String {
    let mut numbers: Vec<u64> = version.split('.').map(|n| n.parse().unwrap()).collect();
    numbers[part] += 1;
    for later in &mut numbers[part + 1..] {
        *later = 0;
    }
    numbers.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

#[test]
fn a_dry_run_shows_the_diff_and_the_plan_and_changes_nothing() {
    let clone = clone();
    let dir = clone.path();
    let current = workspace_version(dir);
    let next = bump(&current, 1);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let changelog = std::fs::read_to_string(dir.join("CHANGELOG.md")).unwrap();

    let run = release(dir, &["--bump", "minor", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("Dry run of release {current} → {next}")), "{stderr}");
    assert!(stderr.contains(&format!("+version = \"{next}\"")), "the workspace version: {stderr}");
    assert!(stderr.contains(&format!("version = \"={next}\"")), "the path dependencies' versions: {stderr}");
    assert!(stderr.contains(&format!("+## [{next}] - ")), "the changelog's new heading: {stderr}");
    let order: Vec<&str> = stderr
        .lines()
        .find_map(|l| l.split_once("cargo package --no-verify, in this order: "))
        .map(|(_, list)| list.split(", ").collect())
        .unwrap_or_else(|| panic!("no package order in {stderr}"));
    let position = |name: &str| order.iter().position(|p| *p == name).unwrap_or_else(|| panic!("{name} is not in {order:?}"));
    assert!(position("tenancy-core") < position("tenancy-cli"), "core before the CLI that needs it: {order:?}");
    assert!(position("tenancy-core") < position("tenancy-monitor"), "{order:?}");
    for private in ["tenancy-sample", "xtask", "tenancy-tests", "tenancy-bench", "fixture-panics"] {
        assert!(!order.contains(&private), "{private} is not published: {order:?}");
    }

    assert_eq!(git_status(dir), "", "nothing in the clone changed");
    assert_eq!(std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(), manifest);
    assert_eq!(std::fs::read_to_string(dir.join("CHANGELOG.md")).unwrap(), changelog);
    assert!(!dir.join("dist").exists());
    let tags = Command::new("git").args(["tag", "--list"]).current_dir(dir).output().unwrap().stdout;
    assert!(tags.is_empty(), "no tag");
}

#[test]
fn bad_requests_are_refused_before_anything_is_touched() {
    let clone = clone();
    let dir = clone.path();
    let current = workspace_version(dir);
    for (args, expected) in [
        (vec!["--version", current.as_str(), "--dry-run"], "is not greater than the current version"),
        (vec!["--version", "0.0.0", "--dry-run"], "is not greater than the current version"),
        (vec!["--version", "1.2", "--dry-run"], "is not a version X.Y.Z"),
        (vec!["--bump", "huge", "--dry-run"], "--bump takes major, minor or patch"),
        (vec!["--dry-run"], "give exactly one of --version X.Y.Z and --bump"),
        (vec!["--bump", "minor", "--version", "9.9.9"], "give exactly one of"),
        (vec!["--bump", "minor", "--publish"], "unknown option `--publish`"),
    ] {
        let run = release(dir, &args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(git_status(dir), "", "{args:?} changed nothing");
    }

    std::fs::write(dir.join("stray.txt"), "uncommitted").unwrap();
    let run = release(dir, &["--bump", "patch"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("uncommitted changes") && stderr.contains("stray.txt"), "{stderr}");
    assert_eq!(workspace_version(dir), current, "the version is as it was");
}
