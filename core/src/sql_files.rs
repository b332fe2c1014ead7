//! Migrations and seeders written as SQL files, for applications with no Rust of their own.
//!
//! ```text
//! migrations/0001_create_accounts.up.sql        applied in number order
//! migrations/0001_create_accounts.down.sql      every migration has one
//! migrations/0002_add_index.postgres.up.sql     an engine's own variant, chosen over the plain file
//! seeders/plans.sql                             a seeder named `plans` (`plans.mysql.sql` …)
//! ```
//!
//! Engines are `postgres`, `mysql` and `sqlite`. Files are read and checked once, when the tool
//! starts: a name that does not fit, a number used twice or a missing down file is refused before
//! anything runs. A migration file runs through the same engine as Rust migrations (tracking,
//! progress, `--pretend`, rollback; one transaction per migration on PostgreSQL and SQLite, so a
//! failing statement leaves nothing of it). A seeder file runs in one transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, TransactionTrait};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};

use crate::migrate::TenantMigrator;
use crate::{BoxError, Seeder, TenantContext};

/// The folders, beside `tenancy.toml`.
pub const MIGRATIONS_FOLDER: &str = "migrations";
/// See [`MIGRATIONS_FOLDER`].
pub const SEEDERS_FOLDER: &str = "seeders";
/// The seeder `--seed` runs when it names none: `seeders/default.sql`, else the first by name.
pub const DEFAULT_SEEDER: &str = "default";

/// A folder of SQL files that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SqlFilesError {
    /// The folder or a file cannot be read.
    #[error("cannot read `{path}`")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `.sql` file whose name does not fit the pattern.
    #[error("`{path}` is not named as a {kind} file: {why}")]
    BadName {
        /// The file.
        path: PathBuf,
        /// `migration` or `seeder`.
        kind: &'static str,
        /// What is wrong, and the pattern.
        why: String,
    },
    /// Two migrations with one number.
    #[error("migrations `{first}` and `{second}` have the same number; each needs its own")]
    SameNumber {
        /// One.
        first: String,
        /// The other.
        second: String,
    },
    /// A migration with no down file.
    #[error(
        "migration `{migration}` ({migration}.up.sql) has no down file: add `{expected}` (one that raises an error, if it cannot be undone)"
    )]
    MissingDown {
        /// The migration.
        migration: String,
        /// The file to add.
        expected: String,
    },
    /// A down file with no up file.
    #[error("migration `{migration}` has a down file but no up file: add `{expected}`")]
    MissingUp {
        /// The migration.
        migration: String,
        /// The file to add.
        expected: String,
    },
}

impl SqlFilesError {
    /// Whether the files are the user's to fix (all of these but an unreadable folder are).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

/// The SQL of one direction: a plain file, and variants for some engines.
#[derive(Debug, Clone, Default)]
struct Scripts {
    any: Option<String>,
    by_engine: BTreeMap<&'static str, String>,
}

impl Scripts {
    fn is_empty(&self) -> bool {
        self.any.is_none() && self.by_engine.is_empty()
    }

    fn for_backend(&self, backend: DbBackend) -> Option<&str> {
        self.by_engine.get(engine_of(backend)).or(self.any.as_ref()).map(String::as_str)
    }
}

fn engine_of(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "postgres",
        DbBackend::MySql => "mysql",
        _ => "sqlite",
    }
}

const ENGINES: [&str; 3] = ["postgres", "mysql", "sqlite"];

/// `NNNN_name`, `NAME`: lower-case letters, digits and `_`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `(stem, engine)` of `stem[.engine]`.
fn split_engine(stem: &str) -> (&str, Option<&'static str>) {
    match stem.rsplit_once('.') {
        Some((rest, engine)) => match ENGINES.iter().find(|known| **known == engine) {
            Some(known) => (rest, Some(*known)),
            None => (stem, None),
        },
        None => (stem, None),
    }
}

/// The `.sql` files of `folder`, by name; none when it does not exist.
fn sql_files(folder: &Path) -> Result<Vec<(String, PathBuf)>, SqlFilesError> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SqlFilesError::Io { path: folder.to_path_buf(), source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SqlFilesError::Io { path: folder.to_path_buf(), source })?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).filter(|n| n.ends_with(".sql")) else { continue };
        files.push((name.to_owned(), path));
    }
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<String, SqlFilesError> {
    std::fs::read_to_string(path).map_err(|source| SqlFilesError::Io { path: path.to_path_buf(), source })
}

/// One migration's files.
#[derive(Debug, Clone)]
struct SqlMigration {
    name: String,
    up: Scripts,
    down: Scripts,
}

/// The migrations of a `migrations/` folder, as the application's [`TenantMigrator`] (`app`,
/// tracked in `seaql_migrations` as Rust migrations are).
#[derive(Debug, Clone, Default)]
pub struct SqlMigrator {
    migrations: Vec<SqlMigration>,
}

impl SqlMigrator {
    /// Reads and checks every `.sql` file of `folder`; no folder, no migrations.
    ///
    /// # Errors
    /// [`SqlFilesError`] naming the file and what to do.
    pub fn load(folder: &Path) -> Result<Self, SqlFilesError> {
        let pattern = "NNNN_name.up.sql or NNNN_name.down.sql (NNNN digits; name of a-z, 0-9 and _; optionally .postgres, .mysql or .sqlite before .up)";
        let mut by_name: BTreeMap<String, SqlMigration> = BTreeMap::new();
        for (file, path) in sql_files(folder)? {
            let bad =
                |why: &str| SqlFilesError::BadName { path: path.clone(), kind: "migration", why: format!("{why}; expected {pattern}") };
            let stem = file.trim_end_matches(".sql");
            let (stem, up) = match (stem.strip_suffix(".up"), stem.strip_suffix(".down")) {
                (Some(stem), _) => (stem, true),
                (None, Some(stem)) => (stem, false),
                (None, None) => return Err(bad("it ends in neither .up.sql nor .down.sql")),
            };
            let (name, engine) = split_engine(stem);
            let Some((number, label)) = name.split_once('_') else { return Err(bad("no `_` after the number")) };
            if number.len() < 4 || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("it does not start with a number of at least four digits"));
            }
            if !is_plain_name(label) {
                return Err(bad("the name after the number has characters other than a-z, 0-9 and _"));
            }
            let migration = by_name.entry(name.to_owned()).or_insert_with(|| SqlMigration {
                name: name.to_owned(),
                up: Scripts::default(),
                down: Scripts::default(),
            });
            let scripts = if up { &mut migration.up } else { &mut migration.down };
            let sql = read(&path)?;
            match engine {
                Some(engine) => scripts.by_engine.insert(engine, sql),
                None => scripts.any.replace(sql),
            };
        }
        let mut numbers: BTreeMap<u64, String> = BTreeMap::new();
        for migration in by_name.values() {
            let number = migration.name.split('_').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(u64::MAX);
            if let Some(first) = numbers.insert(number, migration.name.clone()) {
                return Err(SqlFilesError::SameNumber { first, second: migration.name.clone() });
            }
            if migration.up.is_empty() {
                return Err(SqlFilesError::MissingUp { migration: migration.name.clone(), expected: format!("{}.up.sql", migration.name) });
            }
            if migration.down.is_empty() {
                return Err(SqlFilesError::MissingDown {
                    migration: migration.name.clone(),
                    expected: folder.join(format!("{}.down.sql", migration.name)).display().to_string(),
                });
            }
        }
        let mut migrations: Vec<SqlMigration> = by_name.into_values().collect();
        migrations.sort_by_key(|m| m.name.split('_').next().and_then(|n| n.parse::<u64>().ok()));
        Ok(Self { migrations })
    }

    /// How many migrations the folder holds.
    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }
}

impl TenantMigrator for SqlMigrator {
    fn name(&self) -> &str {
        "app"
    }

    fn tracking_table(&self) -> String {
        "seaql_migrations".to_owned()
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        self.migrations.iter().map(|m| Box::new(m.clone()) as Box<dyn MigrationTrait>).collect()
    }
}

impl MigrationName for SqlMigration {
    fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait]
impl MigrationTrait for SqlMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.run(manager, &self.up, "up").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.run(manager, &self.down, "down").await
    }
}

impl SqlMigration {
    async fn run(&self, manager: &SchemaManager<'_>, scripts: &Scripts, direction: &str) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let sql = scripts.for_backend(backend).ok_or_else(|| {
            let engine = engine_of(backend);
            DbErr::Migration(format!(
                "migration {} has no {direction} SQL for {engine}: add {0}.{direction}.sql or {0}.{engine}.{direction}.sql",
                self.name
            ))
        })?;
        manager.get_connection().execute_unprepared(sql).await.map(drop)
    }
}

/// A seeder from `seeders/NAME.sql` (with `NAME.postgres.sql` … for an engine of its own).
#[derive(Debug, Clone)]
pub struct SqlSeeder {
    name: String,
    description: String,
    scripts: Scripts,
}

impl SqlSeeder {
    /// Every seeder of `folder`: `default` first (what `--seed` runs), then the others by name;
    /// no folder, no seeders.
    ///
    /// # Errors
    /// [`SqlFilesError`] naming the file.
    pub fn load_all(folder: &Path) -> Result<Vec<Self>, SqlFilesError> {
        let mut by_name: BTreeMap<String, SqlSeeder> = BTreeMap::new();
        for (file, path) in sql_files(folder)? {
            let (name, engine) = split_engine(file.trim_end_matches(".sql"));
            if !is_plain_name(name) {
                return Err(SqlFilesError::BadName {
                    path,
                    kind: "seeder",
                    why: "expected NAME.sql (NAME of a-z, 0-9 and _; optionally .postgres, .mysql or .sqlite before .sql)".into(),
                });
            }
            let seeder = by_name.entry(name.to_owned()).or_insert_with(|| SqlSeeder {
                name: name.to_owned(),
                description: format!("runs {}", folder.join(format!("{name}.sql")).display()),
                scripts: Scripts::default(),
            });
            let sql = read(&path)?;
            match engine {
                Some(engine) => seeder.scripts.by_engine.insert(engine, sql),
                None => seeder.scripts.any.replace(sql),
            };
        }
        let mut seeders: Vec<Self> = by_name.into_values().collect();
        seeders.sort_by_key(|seeder| seeder.name != DEFAULT_SEEDER);
        Ok(seeders)
    }
}

#[async_trait]
impl Seeder for SqlSeeder {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let backend = ctx.db().get_database_backend();
        let sql = self
            .scripts
            .for_backend(backend)
            .ok_or_else(|| format!("seeder {0} has no SQL for {1}: add {0}.sql or {0}.{1}.sql", self.name, engine_of(backend)))?;
        // One transaction: a failing statement leaves none of the file's rows (MySQL commits DDL
        // as it goes, but a seeder's inserts roll back).
        let txn = ctx.db().begin().await?;
        txn.execute_unprepared(sql).await?;
        txn.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for (name, sql) in files {
            std::fs::write(dir.path().join(name), sql).expect("written");
        }
        dir
    }

    #[test]
    fn migrations_load_in_number_order_with_engine_variants() {
        let dir = folder(&[
            ("0010_second.up.sql", "CREATE INDEX i ON a (x);"),
            ("0010_second.down.sql", "DROP INDEX i;"),
            ("0002_first.up.sql", "CREATE TABLE a (x INT);"),
            ("0002_first.postgres.up.sql", "CREATE TABLE a (x BIGINT);"),
            ("0002_first.down.sql", "DROP TABLE a;"),
            ("README.md", "not SQL: ignored"),
        ]);
        let migrator = SqlMigrator::load(dir.path()).expect("valid");
        let names: Vec<String> = migrator.migrations().iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(names, ["0002_first", "0010_second"], "by number, not by text");
        let first = &migrator.migrations[0];
        assert_eq!(first.up.for_backend(DbBackend::Postgres), Some("CREATE TABLE a (x BIGINT);"));
        assert_eq!(first.up.for_backend(DbBackend::Sqlite), Some("CREATE TABLE a (x INT);"));
        assert!(SqlMigrator::load(&dir.path().join("absent")).expect("no folder is no migrations").is_empty());
    }

    #[test]
    fn bad_folders_are_refused_naming_the_file() {
        for (files, expected) in [
            (vec![("1_x.up.sql", ""), ("1_x.down.sql", "")], "at least four digits"),
            (vec![("0001-x.up.sql", "")], "no `_` after the number"),
            (vec![("0001_X.up.sql", "")], "other than a-z"),
            (vec![("0001_x.sql", "")], "neither .up.sql nor .down.sql"),
            (vec![("0001_x.oracle.up.sql", ""), ("0001_x.down.sql", "")], "other than a-z"),
            (vec![("0001_x.up.sql", "")], "has no down file"),
            (vec![("0001_x.down.sql", "")], "no up file"),
            (vec![("0001_a.up.sql", ""), ("0001_a.down.sql", ""), ("0001_b.up.sql", ""), ("0001_b.down.sql", "")], "same number"),
        ] {
            let dir = folder(&files);
            let err = SqlMigrator::load(dir.path()).expect_err("refused");
            assert!(err.to_string().contains(expected), "{files:?}: {err}");
            assert!(err.is_bad_input());
        }
        let dir = folder(&[("Plans.sql", "")]);
        assert!(SqlSeeder::load_all(dir.path()).expect_err("refused").to_string().contains("NAME.sql"));
    }

    #[test]
    fn seeders_are_named_after_their_files() {
        let dir = folder(&[("plans.sql", "INSERT 1"), ("plans.mysql.sql", "INSERT 2"), ("users.sql", "INSERT 3"), ("default.sql", "")]);
        let seeders = SqlSeeder::load_all(dir.path()).expect("valid");
        let names: Vec<&str> = seeders.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["default", "plans", "users"], "`default` first: it is what --seed runs");
        assert_eq!(seeders[1].scripts.for_backend(DbBackend::MySql), Some("INSERT 2"));
        assert_eq!(seeders[1].scripts.for_backend(DbBackend::Postgres), Some("INSERT 1"));
    }
}
