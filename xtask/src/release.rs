//! `cargo xtask release [--version X.Y.Z | --bump major|minor|patch] [--dry-run]`.
//!
//! A release is one workspace version, set everywhere at once (`[workspace.package]` and the
//! versions on the path dependencies that crates.io needs), the changelog's `Unreleased` section
//! moved under it with the date, the full CI run, the release binary and plugin libraries packed
//! into `dist/` with their checksums, every publishable crate packaged as `cargo publish` would
//! upload it, and a commit and a `vX.Y.Z` tag, made last. If any step fails, the files it edited
//! are put back and `dist/` is removed: a failed release leaves the tree as it found it.
//!
//! `--dry-run` edits copies in a temporary folder, prints their diff and the plan, and changes
//! nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::step;

/// The files a release edits (and puts back if it fails).
const EDITED: &[&str] = &["Cargo.toml", "Cargo.lock", "CHANGELOG.md"];

/// The binary and plugin library shipped in the archive.
const BINARY: &str = "tenancy";
const PLUGIN_LIBRARY: &str = "libtenancy_hello.so";

/// `X.Y.Z`; pre-releases are not supported (say so rather than misorder them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u64, u64, u64);

impl std::str::FromStr for Version {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = text.split('.').collect();
        let number = |part: &str| -> anyhow::Result<u64> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || (part.len() > 1 && part.starts_with('0')) {
                bail!("`{text}` is not a version X.Y.Z (numbers only, no leading zeros; pre-releases are not supported)");
            }
            Ok(part.parse()?)
        };
        match parts.as_slice() {
            [major, minor, patch] => Ok(Self(number(major)?, number(minor)?, number(patch)?)),
            _ => bail!("`{text}` is not a version X.Y.Z"),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    fn bump(self, part: &str) -> anyhow::Result<Self> {
        Ok(match part {
            "major" => Self(self.0 + 1, 0, 0),
            "minor" => Self(self.0, self.1 + 1, 0),
            "patch" => Self(self.0, self.1, self.2 + 1),
            other => bail!("--bump takes major, minor or patch, not `{other}`"),
        })
    }
}

/// What was asked for.
struct Request {
    version: Option<Version>,
    bump: Option<String>,
    dry_run: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Request> {
    let mut request = Request { version: None, bump: None, dry_run: false };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dry-run" => request.dry_run = true,
            "--version" => request.version = Some(args.next().context("--version needs X.Y.Z")?.parse()?),
            "--bump" => request.bump = Some(args.next().context("--bump needs major, minor or patch")?.clone()),
            other => bail!("unknown option `{other}`; usage: cargo xtask release [--version X.Y.Z | --bump major|minor|patch] [--dry-run]"),
        }
    }
    if request.version.is_some() == request.bump.is_some() {
        bail!("give exactly one of --version X.Y.Z and --bump major|minor|patch");
    }
    Ok(request)
}

pub fn release(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    let request = parse(args)?;
    let dirty = cmd!(sh, "git status --porcelain").read()?;
    if !dirty.trim().is_empty() {
        bail!("the working tree has uncommitted changes; commit or stash them first:\n{dirty}");
    }
    let manifest = sh.read_file("Cargo.toml")?;
    let current: Version = workspace_version(&manifest)?.parse()?;
    let next = match (&request.version, &request.bump) {
        (Some(version), _) => *version,
        (None, Some(part)) => current.bump(part)?,
        (None, None) => unreachable!("parse requires one"),
    };
    if next <= current {
        bail!("{next} is not greater than the current version {current}");
    }
    let tag = format!("v{next}");
    if !cmd!(sh, "git tag --list {tag}").read()?.trim().is_empty() {
        bail!("tag {tag} exists already");
    }
    let changelog = sh.read_file("CHANGELOG.md")?;
    let date = cmd!(sh, "date -u +%Y-%m-%d").read()?;
    let new_manifest = set_versions(&manifest, next)?;
    let new_changelog = move_unreleased(&changelog, next, date.trim())?;
    let target = host_target(sh)?;
    let archive = format!("tenancy-{next}-{target}");
    let crates = publish_order(sh)?;

    if request.dry_run {
        return dry_run(
            sh,
            &[("Cargo.toml", &manifest, &new_manifest), ("CHANGELOG.md", &changelog, &new_changelog)],
            current,
            next,
            &archive,
            &crates,
        );
    }
    step(&format!("release {current} → {next}"));
    let result = (|| {
        sh.write_file("Cargo.toml", &new_manifest)?;
        sh.write_file("CHANGELOG.md", &new_changelog)?;
        cmd!(sh, "cargo update --workspace --offline").run().context("updating Cargo.lock to the new version failed")?;
        crate::ci(sh)?;
        step("release builds of tenancy and the plugin libraries");
        cmd!(sh, "cargo build --release --locked -p tenancy --bin tenancy").run().context("building tenancy failed")?;
        crate::build_plugins(sh, true)?;
        pack(sh, &archive)?;
        package_crates(sh, &crates, next)?;
        step(&format!("commit and tag {tag}"));
        let (message, annotation) = (format!("Release {next}"), format!("tenancy {next}"));
        cmd!(sh, "git commit --quiet -m {message} -- {EDITED...}").run()?;
        cmd!(sh, "git tag -a {tag} -m {annotation}").run()?;
        anyhow::Ok(())
    })();
    if let Err(err) = result {
        // Nothing half-made: the edited files go back, and dist/ goes.
        let _ = cmd!(sh, "git checkout -- {EDITED...}").quiet().run();
        let _ = sh.remove_path("dist");
        return Err(err.context(format!("release {next} failed; the edited files were put back and dist/ removed")));
    }
    eprintln!(
        "\nReleased {next}: tag {tag}, dist/{archive}.tar.gz and dist/SHA256SUMS. Push with `git push --follow-tags`; publish with `cargo publish -p …` in the order above."
    );
    Ok(())
}

/// `[workspace.package] version`.
fn workspace_version(manifest: &str) -> anyhow::Result<String> {
    let document: toml_edit::DocumentMut = manifest.parse().context("Cargo.toml cannot be read")?;
    document["workspace"]["package"]["version"].as_str().map(str::to_owned).context("Cargo.toml has no [workspace.package] version")
}

/// The manifest with `next` as the workspace version and on every path dependency of
/// `[workspace.dependencies]` (crates.io needs a version beside a path).
fn set_versions(manifest: &str, next: Version) -> anyhow::Result<String> {
    let mut document: toml_edit::DocumentMut = manifest.parse().context("Cargo.toml cannot be read")?;
    let version = document["workspace"]["package"]["version"].as_value_mut().context("Cargo.toml has no [workspace.package] version")?;
    // The new value keeps the old one's spacing and comment.
    let decor = version.decor().clone();
    *version = next.to_string().into();
    *version.decor_mut() = decor;
    if let Some(dependencies) = document["workspace"]["dependencies"].as_table_like_mut() {
        for (_, dependency) in dependencies.iter_mut() {
            if let Some(table) = dependency.as_inline_table_mut()
                && table.contains_key("path")
            {
                table.insert("version", format!("={next}").into());
                table.fmt();
            }
        }
    }
    Ok(document.to_string())
}

/// The changelog with its `## Unreleased` entries under `## [next] - date`, and a fresh, empty
/// `## Unreleased` above them.
fn move_unreleased(changelog: &str, next: Version, date: &str) -> anyhow::Result<String> {
    let heading = "## Unreleased";
    let start = changelog.find(heading).context("CHANGELOG.md has no `## Unreleased` section")?;
    let body_start = start + heading.len();
    let body_end = changelog[body_start..].find("\n## ").map_or(changelog.len(), |i| body_start + i);
    if changelog[body_start..body_end].trim().is_empty() {
        bail!("CHANGELOG.md's Unreleased section is empty: say what this release changes first");
    }
    Ok(format!("{}{heading}\n\n## [{next}] - {date}{}", &changelog[..start], &changelog[body_start..]))
}

fn host_target(sh: &Shell) -> anyhow::Result<String> {
    let info = cmd!(sh, "rustc -vV").read()?;
    info.lines().find_map(|line| line.strip_prefix("host: ")).map(str::to_owned).context("rustc -vV names no host")
}

/// The publishable packages of the workspace, each after the workspace packages it depends on.
fn publish_order(sh: &Shell) -> anyhow::Result<Vec<String>> {
    let metadata = cmd!(sh, "cargo metadata --format-version 1 --no-deps --offline").read()?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    let packages = metadata["packages"].as_array().context("cargo metadata lists no packages")?;
    // `publish = false` reads as an empty list of registries.
    let publishable: Vec<&serde_json::Value> = packages.iter().filter(|p| !p["publish"].as_array().is_some_and(Vec::is_empty)).collect();
    let names: Vec<&str> = publishable.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut ordered: Vec<String> = Vec::new();
    while ordered.len() < names.len() {
        let before = ordered.len();
        for package in &publishable {
            let name = package["name"].as_str().unwrap_or_default();
            if ordered.iter().any(|done| done == name) {
                continue;
            }
            let waiting = package["dependencies"].as_array().into_iter().flatten().any(|dependency| {
                let kind_is_normal = dependency["kind"].is_null() || dependency["kind"] == "build";
                let on = dependency["name"].as_str().unwrap_or_default();
                kind_is_normal && names.contains(&on) && !ordered.iter().any(|done| done == on)
            });
            if !waiting {
                ordered.push(name.to_owned());
            }
        }
        if ordered.len() == before {
            bail!("the publishable packages depend on each other in a cycle");
        }
    }
    Ok(ordered)
}

/// `dist/{archive}.tar.gz` and `dist/SHA256SUMS`.
fn pack(sh: &Shell, archive: &str) -> anyhow::Result<()> {
    step(&format!("dist/{archive}.tar.gz"));
    let staging = PathBuf::from("dist").join(archive);
    sh.remove_path(&staging)?;
    sh.create_dir(&staging)?;
    let release = Path::new("target/release");
    for (from, to) in [
        (release.join(BINARY), BINARY.to_owned()),
        (release.join(PLUGIN_LIBRARY), format!("plugins/{PLUGIN_LIBRARY}")),
        ("README.md".into(), "README.md".to_owned()),
        ("CHANGELOG.md".into(), "CHANGELOG.md".to_owned()),
        ("LICENSE-MIT".into(), "LICENSE-MIT".to_owned()),
        ("LICENSE-APACHE".into(), "LICENSE-APACHE".to_owned()),
    ] {
        let to = staging.join(to);
        if let Some(parent) = to.parent() {
            sh.create_dir(parent)?;
        }
        sh.copy_file(&from, &to).with_context(|| format!("cannot copy `{}` into the archive", from.display()))?;
    }
    // The commented configuration `tenancy init` writes, plugins' sections included.
    let scratch = sh.create_temp_dir()?;
    let binary = sh.current_dir().join(release.join(BINARY));
    {
        let _in_scratch = sh.push_dir(scratch.path());
        cmd!(sh, "{binary} init --quiet").run().context("`tenancy init` failed")?;
    }
    sh.copy_file(scratch.path().join("tenancy.toml"), staging.join("tenancy.toml.example"))?;
    let _in_dist = sh.push_dir("dist");
    cmd!(sh, "tar -czf {archive}.tar.gz {archive}").run()?;
    sh.remove_path(archive)?;
    let sums = cmd!(sh, "sha256sum {archive}.tar.gz").read()?;
    sh.write_file("SHA256SUMS", format!("{sums}\n"))?;
    Ok(())
}

/// `cargo package` of every publishable crate, together, so each finds the others at the new
/// version; verification builds each from its packaged sources alone.
fn package_crates(sh: &Shell, crates: &[String], next: Version) -> anyhow::Result<()> {
    step("cargo package");
    let packages = crates.iter().flat_map(|name| ["-p", name.as_str()]);
    cmd!(sh, "cargo package --allow-dirty --no-verify {packages...}").run().context("cargo package failed")?;
    eprintln!("\n`cargo publish` would upload, in this order:");
    for name in crates {
        let file = format!("target/package/{name}-{next}.crate");
        let size = std::fs::metadata(&file).with_context(|| format!("`{file}` was not made"))?.len();
        eprintln!("  {file} ({} KiB)", size.div_ceil(1024));
    }
    Ok(())
}

fn dry_run(
    sh: &Shell,
    files: &[(&str, &str, &str)],
    current: Version,
    next: Version,
    archive: &str,
    crates: &[String],
) -> anyhow::Result<()> {
    let scratch = sh.create_temp_dir()?;
    eprintln!("Dry run of release {current} → {next}: nothing outside {} changes.\n", scratch.path().display());
    for (name, before, after) in files {
        let (old, new) = (scratch.path().join(format!("{name}.before")), scratch.path().join(name));
        sh.write_file(&old, before)?;
        sh.write_file(&new, after)?;
        let diff = cmd!(sh, "diff -u --label {name} --label {name} {old} {new}").ignore_status().read()?;
        eprintln!("{diff}\n");
    }
    eprintln!("The plan:");
    for line in [
        "write Cargo.toml and CHANGELOG.md as above; cargo update --workspace (Cargo.lock)".to_owned(),
        "cargo xtask ci (formatting, clippy, every test)".to_owned(),
        "cargo build --release: tenancy and the plugin libraries".to_owned(),
        format!(
            "dist/{archive}.tar.gz (tenancy, plugins/{PLUGIN_LIBRARY}, README.md, CHANGELOG.md, LICENSE-MIT, LICENSE-APACHE, tenancy.toml.example) and dist/SHA256SUMS"
        ),
        format!("cargo package --no-verify, in this order: {}", crates.join(", ")),
        format!("git commit \"Release {next}\" and tag v{next}"),
    ] {
        eprintln!("  - {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_strictly_and_bump() {
        let v: Version = "1.2.3".parse().unwrap_or(Version(0, 0, 0));
        assert_eq!(v, Version(1, 2, 3));
        for bad in ["1.2", "1.2.3.4", "01.2.3", "1.x.3", "1.2.3-rc.1", ""] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
        assert_eq!(v.bump("major").ok(), Some(Version(2, 0, 0)));
        assert_eq!(v.bump("minor").ok(), Some(Version(1, 3, 0)));
        assert_eq!(v.bump("patch").ok(), Some(Version(1, 2, 4)));
        assert!(v.bump("huge").is_err());
        assert!(Version(0, 10, 0) > Version(0, 9, 9), "numbers compare as numbers");
    }

    #[test]
    fn the_unreleased_section_moves_under_the_version() {
        let changelog = "# Changelog\n\n## Unreleased\n\n### Added\n- a thing\n\n## [0.1.0] - 2026-01-01\n- first\n";
        let moved = move_unreleased(changelog, Version(0, 2, 0), "2026-12-02").unwrap_or_default();
        assert_eq!(
            moved,
            "# Changelog\n\n## Unreleased\n\n## [0.2.0] - 2026-12-02\n\n### Added\n- a thing\n\n## [0.1.0] - 2026-01-01\n- first\n"
        );
        assert!(move_unreleased("# Changelog\n\n## Unreleased\n\n## [0.1.0]\n", Version(0, 2, 0), "d").is_err(), "nothing to release");
        assert!(move_unreleased("# Changelog\n", Version(0, 2, 0), "d").is_err());
    }

    #[test]
    fn one_version_is_set_everywhere() {
        let manifest = "[workspace.package]\nversion = \"0.1.0\" # the version\n\n[workspace.dependencies]\ntenancy-core = { path = \"core\" }\nanyhow = \"1\"\n";
        let edited = set_versions(manifest, Version(0, 2, 0)).unwrap_or_default();
        assert_eq!(workspace_version(&edited).ok().as_deref(), Some("0.2.0"));
        assert!(edited.contains("tenancy-core = { path = \"core\", version = \"=0.2.0\" }"), "{edited}");
        assert!(edited.contains("anyhow = \"1\"") && edited.contains("# the version"), "the rest is kept as written: {edited}");
    }
}
