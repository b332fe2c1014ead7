//! The stock `tenancy` binary driving a project whose migrations and seeders are SQL files, on
//! every backend: `init --sql`'s examples work as written, a failing statement leaves nothing of
//! its migration (PostgreSQL, SQLite) or seeder, and badly named or incomplete files are refused
//! before anything runs.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::path::Path;
use std::process::Output;

use sea_orm::{ConnectionTrait, Statement};
use tenancy_core::Tenancy;
use tenancy_tests::{Backend, TestEnv};

fn tenancy(env: &TestEnv, args: &[&str]) -> Output {
    assert_cmd::Command::cargo_bin("tenancy").unwrap().args(args).current_dir(env.dir()).env_remove("TENANCY_CONFIG").output().unwrap()
}

/// Runs and expects `code`; returns stdout.
fn expect(env: &TestEnv, args: &[&str], code: i32) -> String {
    let run = tenancy(env, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.status.code(), Some(code), "{args:?} on {}:\n{stdout}\n{stderr}", env.backend.name());
    assert!(!stderr.contains("panicked"), "{stderr}");
    format!("{stdout}{stderr}")
}

fn write(env: &TestEnv, name: &str, text: &str) {
    let path = env.dir().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `SELECT COUNT(*)` of `table` in the tenant's database; `None` when the table does not exist.
fn count(env: &TestEnv, tenant: &str, table: &str) -> Option<i64> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tenancy = Tenancy::builder(env.config()).open().await.unwrap();
        let tenant = tenancy.registry().resolve(tenant).await.unwrap();
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let counted = tenancy
            .run(&tenant, |ctx| async move {
                let db = ctx.db();
                let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.ok()??;
                row.try_get_by_index::<i64>(0).ok()
            })
            .await
            .unwrap();
        tenancy.close().await;
        counted
    })
}

fn project(backend: Backend) -> Option<TestEnv> {
    let env = TestEnv::new(backend)?;
    if backend != Backend::Sqlite {
        tokio::runtime::Runtime::new().unwrap().block_on(env.create_central_database());
    }
    std::fs::write(env.dir().join("tenancy.toml"), env.config_toml()).unwrap();
    Some(env)
}

#[test]
fn a_sql_files_project_migrates_seeds_and_rolls_back_on_every_backend() {
    for backend in Backend::ALL {
        let Some(env) = project(backend) else { continue };
        let out = expect(&env, &["init", "--sql"], 0);
        assert!(out.contains("Keeping") && out.contains("migrations/0001_create_notes.up.sql"), "{out}");
        expect(&env, &["tenant", "create", "--name", "Acme", "--seed"], 0);
        assert_eq!(count(&env, "Acme", "notes"), Some(1), "{backend:?}: the example migration and the default seeder ran");

        let status = expect(&env, &["db", "status", "--tenant", "Acme"], 0);
        assert!(status.contains("app/0001_create_notes") && status.contains("applied"), "{backend:?}: {status}");

        // A migration whose second statement fails: on PostgreSQL and SQLite nothing of it stays.
        write(
            &env,
            "migrations/0002_add_tags.up.sql",
            "CREATE TABLE tags (id INTEGER PRIMARY KEY);\nCREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
        );
        write(&env, "migrations/0002_add_tags.down.sql", "DROP TABLE tags;\n");
        let out = expect(&env, &["db", "migrate", "--all"], 1);
        assert!(out.contains("app/0002_add_tags"), "{backend:?}: the failing migration is named: {out}");
        if backend != Backend::MySql {
            assert_eq!(count(&env, "Acme", "tags"), None, "{backend:?}: its first statement was rolled back too");
        }
        if backend == Backend::MySql {
            // MySQL commits each DDL statement: the table the first statement made stays, and the
            // fixed migration must cope with it, as the README says.
            write(&env, "migrations/0002_add_tags.up.sql", "CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY);\n");
        } else {
            write(&env, "migrations/0002_add_tags.up.sql", "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n");
        }
        let pretended = expect(&env, &["db", "migrate", "--all", "--pretend"], 0);
        assert!(pretended.contains("CREATE TABLE") && pretended.contains("tags"), "{backend:?}: {pretended}");
        assert_eq!(count(&env, "Acme", "tags").unwrap_or(0), 0, "{backend:?}: --pretend ran nothing");
        expect(&env, &["db", "migrate", "--all"], 0);
        assert_eq!(count(&env, "Acme", "tags"), Some(0), "{backend:?}");
        expect(&env, &["db", "rollback", "--all"], 0);
        assert_eq!(count(&env, "Acme", "tags"), None, "{backend:?}: the down file ran");

        // A seeder that fails half-way leaves none of its rows.
        write(&env, "seeders/broken.sql", "INSERT INTO notes (body) VALUES ('one');\nINSERT INTO no_such_table VALUES (1);\n");
        let out = expect(&env, &["db", "seed", "--tenant", "Acme", "--class", "broken"], 1);
        assert!(out.contains("broken"), "{out}");
        assert_eq!(count(&env, "Acme", "notes"), Some(1), "{backend:?}: the seeder's first insert was rolled back");
    }
}

#[test]
fn badly_named_or_incomplete_files_are_refused_before_anything_runs() {
    let Some(env) = project(Backend::Sqlite) else { return };
    for (files, expected) in [
        (vec![("migrations/0001_notes.up.sql", "CREATE TABLE notes (id INTEGER);")], "has no down file"),
        (vec![("migrations/1_notes.up.sql", ""), ("migrations/1_notes.down.sql", "")], "at least four digits"),
        (vec![("migrations/0001_Notes.up.sql", ""), ("migrations/0001_Notes.down.sql", "")], "other than a-z"),
        (vec![("seeders/Plans.sql", "")], "NAME.sql"),
    ] {
        for (name, text) in &files {
            write(&env, name, text);
        }
        let out = expect(&env, &["tenant", "create", "--name", "Acme"], 2);
        let stem = Path::new(files[0].0).file_name().unwrap().to_str().unwrap().split('.').next().unwrap();
        assert!(out.contains(expected) && out.contains(stem), "the file is named: {files:?}: {out}");
        let listed = expect(&env, &["tenant", "list", "--json"], 2);
        assert!(listed.contains(expected), "every command that reads the configuration says so: {listed}");
        for folder in ["migrations", "seeders"] {
            let _ = std::fs::remove_dir_all(env.dir().join(folder));
        }
    }
    assert_eq!(expect(&env, &["tenant", "list", "--json"], 0).trim(), "", "no tenant was created");
}
