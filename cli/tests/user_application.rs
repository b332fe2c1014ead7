//! A user's own application builds against `tenancy-cli` with its own crate named `migration` (the
//! name `sea-orm-cli` gives it), using the `Cargo.toml` files the README shows, and its binary
//! applies that crate's migrations. `tenancy-cli` must therefore not depend on the sample crates.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn readme() -> String {
    std::fs::read_to_string(workspace().join("README.md")).unwrap()
}

/// The fenced block of the README that starts with the line `# {file}`.
fn readme_block(file: &str) -> String {
    let readme = readme();
    let start = readme.find(&format!("```toml\n# {file}\n")).unwrap_or_else(|| panic!("the README shows no `{file}`"));
    let body = &readme[start + "```toml\n".len()..];
    body[..body.find("```").unwrap()].to_owned()
}

/// The README's `main.rs` for an application's own binary.
fn readme_main() -> String {
    let readme = readme();
    let section = &readme[readme.find("## Using tenancy in your application").unwrap()..];
    let start = section.find("```rust\n").unwrap() + "```rust\n".len();
    section[start..start + section[start..].find("```").unwrap()].to_owned()
}

const MIGRATOR: &str = r#"
pub use sea_orm_migration::prelude::*;

mod m20260101_000001_create_widgets;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20260101_000001_create_widgets::Migration)]
    }
}
"#;

const SEEDERS: &str = r#"
use std::sync::Arc;

use sea_orm::ConnectionTrait;
use tenancy_core::{BoxError, Seeder, TenantContext};

pub struct WidgetsSeeder;

#[async_trait::async_trait]
impl Seeder for WidgetsSeeder {
    fn name(&self) -> &str { "WidgetsSeeder" }
    fn description(&self) -> &str { "one widget" }
    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        ctx.db().execute_unprepared("INSERT INTO widgets (id) VALUES (1)").await?;
        Ok(())
    }
}

pub fn all() -> Vec<Arc<dyn Seeder>> {
    vec![Arc::new(WidgetsSeeder)]
}
"#;

const MIGRATION: &str = r#"
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create().table("widgets").col(ColumnDef::new("id").integer().not_null().primary_key()).to_owned();
        manager.create_table(table).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("widgets").to_owned()).await
    }
}
"#;

#[test]
fn an_application_with_its_own_migration_crate_builds_and_migrates() {
    let app = tempfile::tempdir().unwrap();
    let root = app.path();
    let tenancy = format!("{}/", workspace().display());
    let manifest = readme_block("Cargo.toml").replace("../tenancy/", &tenancy);
    // Not from the README: the workspace's profile, so that the build reuses its compiled
    // dependencies rather than building them all again.
    let manifest =
        format!("{manifest}\n[workspace]\n\n[profile.dev]\ndebug = \"line-tables-only\"\n\n[profile.dev.package.\"*\"]\ndebug = false\n");
    let files = [
        ("Cargo.toml", manifest),
        ("src/main.rs", readme_main()),
        ("migration/Cargo.toml", readme_block("migration/Cargo.toml")),
        ("migration/src/lib.rs", MIGRATOR.to_owned()),
        ("migration/src/m20260101_000001_create_widgets.rs", MIGRATION.to_owned()),
        ("seeders/Cargo.toml", readme_block("seeders/Cargo.toml").replace("../../tenancy/", &tenancy)),
        ("seeders/src/lib.rs", SEEDERS.to_owned()),
    ];
    for (path, text) in files {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        std::fs::write(root.join(path), text).unwrap();
    }
    // The workspace's lock file: the same versions, so nothing needs downloading.
    std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();

    let target = workspace().join("target");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "the application does not build:\n{}", String::from_utf8_lossy(&build.stderr));

    let binary = target.join("debug").join(format!("my-saas{}", std::env::consts::EXE_SUFFIX));
    let run = |args: &[&str]| {
        let mut command = Command::new(&binary);
        command.args(args).current_dir(root);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TENANCY_") {
                command.env_remove(key);
            }
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "my-saas {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // `--seed` runs the application's default seeder, which needs the application's migration.
    run(&["tenant", "create", "--name", "Acme", "--seed"]);
    let status: serde_json::Value = serde_json::from_str(&run(&["db", "status", "--tenant", "Acme", "--json"])).unwrap();
    let applied: Vec<String> = status["status"]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["applied_at"].is_null())
        .map(|m| format!("{}/{}", m["migration"]["migrator"].as_str().unwrap(), m["migration"]["name"].as_str().unwrap()))
        .filter(|name| name.starts_with("app/"))
        .collect();
    assert_eq!(applied, ["app/m20260101_000001_create_widgets"], "only the application's own migration is applied");
}
