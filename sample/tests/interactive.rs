//! On a terminal, `tenant create` asks for what is missing and `tenant delete` asks before dropping
//! anything. Driven through a pseudo-terminal, as a person would type.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::Cli;
use rexpect::session::PtySession;

fn spawn(cli: &Cli, args: &str) -> PtySession {
    let mut command = cli.tenancy_process();
    command.args(args.split_whitespace()).env("NO_COLOR", "1").env("TERM", "xterm");
    rexpect::session::spawn_command(command, Some(15_000)).unwrap()
}

#[test]
fn create_asks_for_the_name_and_domain() {
    let cli = Cli::sqlite();
    let mut session = spawn(&cli, "tenant create");
    session.exp_string("Tenant name:").unwrap();
    session.send_line("Acme Inc").unwrap();
    session.exp_string("Domain:").unwrap();
    session.send_line("Acme.Test").unwrap();
    session.exp_string("Created tenant Acme Inc").unwrap();
    session.exp_eof().unwrap();
    let tenants = cli.tenants();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["name"], "Acme Inc");
    assert_eq!(tenants[0]["domains"][0]["domain"], "acme.test");
}

#[test]
fn delete_asks_first_and_no_keeps_the_tenant() {
    let cli = Cli::sqlite();
    let id = cli.create("Acme", &[]);
    let mut session = spawn(&cli, &format!("tenant delete {id}"));
    session.exp_string("Delete tenant Acme").unwrap();
    session.send_line("n").unwrap();
    session.exp_string("nothing was deleted").unwrap();
    session.exp_eof().unwrap();
    assert_eq!(cli.tenants().len(), 1);

    let mut session = spawn(&cli, &format!("tenant delete {id}"));
    session.exp_string("Delete tenant Acme").unwrap();
    session.send_line("y").unwrap();
    session.exp_string("Deleted tenant Acme").unwrap();
    session.exp_eof().unwrap();
    assert!(cli.tenants().is_empty());
}

#[test]
fn db_seed_offers_a_numbered_picker_with_the_default_first() {
    let cli = Cli::sqlite();
    let id = cli.create("Acme", &[]);
    let mut session = spawn(&cli, &format!("db seed --tenant {id}"));
    session.exp_string("Which seeder?").unwrap();
    session.exp_string("0. DatabaseSeeder (Default)").unwrap();
    // Typing filters the list; enter takes the highlighted entry.
    session.send("Countries").unwrap();
    session.exp_string("CountriesTableSeeder").unwrap();
    session.send_line("").unwrap();
    session.exp_string("Seeded 1 tenant in").unwrap();
    session.exp_eof().unwrap();
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM countries"), Some(249));
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM airports"), Some(0), "only the chosen seeder ran");
}

#[test]
fn db_migrate_without_a_selection_asks_which_tenants() {
    let cli = Cli::sqlite();
    let first = cli.ok(&["tenant", "create", "--name", "Picked", "--no-migrate"]).trim().to_owned();
    let second = cli.ok(&["tenant", "create", "--name", "Passed over", "--no-migrate"]).trim().to_owned();
    let mut session = spawn(&cli, "db migrate");
    session.exp_string("Tenants:").unwrap();
    session.exp_string("Passed over").unwrap();
    session.send(" ").unwrap(); // select the first (highlighted) tenant
    session.send_line("").unwrap();
    session.exp_string("Migrated 1 tenant in").unwrap();
    session.exp_eof().unwrap();
    assert_eq!(common::applied_pending(&cli.status(&first)).1, 0);
    assert_eq!(common::applied_pending(&cli.status(&second)).0, 0, "the tenant not picked was left alone");
}

#[test]
fn db_reset_asks_before_destroying_anything() {
    let cli = Cli::sqlite();
    let id = cli.create("Precious", &[]);
    let mut session = spawn(&cli, &format!("db reset --tenant {id}"));
    session.exp_string("roll back every migration").unwrap();
    session.send_line("n").unwrap();
    session.exp_string("nothing was changed").unwrap();
    session.exp_eof().unwrap();
    assert_eq!(common::applied_pending(&cli.status(&id)).1, 0, "every migration is still applied");

    let mut session = spawn(&cli, &format!("db reset --tenant {id}"));
    session.exp_string("Continue?").unwrap();
    session.send_line("y").unwrap();
    session.exp_string("Reset 1 tenant in").unwrap();
    session.exp_eof().unwrap();
    assert_eq!(common::applied_pending(&cli.status(&id)).0, 0, "after yes, every migration is rolled back");
}

#[test]
fn on_a_terminal_tenants_with_nothing_to_do_are_counted_not_listed() {
    let cli = Cli::sqlite();
    for name in ["One", "Two", "Three"] {
        cli.create(name, &[]);
    }
    let mut session = spawn(&cli, "db migrate --all");
    let before = session.exp_string("Migrated 3 tenants in").unwrap();
    session.exp_string("3 succeeded (3 had nothing to do)").unwrap();
    session.exp_eof().unwrap();
    assert!(before.contains("Migrating 3 tenants, 12 at once"), "the first line says how many at once: {before}");
    assert!(!before.contains("Up to date"), "no line per tenant with nothing to do: {before}");

    let mut verbose = spawn(&cli, "db migrate --all -v");
    let listed = verbose.exp_string("Migrated 3 tenants in").unwrap();
    verbose.exp_eof().unwrap();
    assert_eq!(listed.matches("Up to date").count(), 3, "-v lists them: {listed}");
}

#[test]
fn backup_restore_asks_first_and_shows_the_run_on_a_terminal() {
    let cli = Cli::sqlite();
    let id = cli.create("Acme", &[]);
    let mut session = spawn(&cli, "backup create --all");
    session.exp_string("Backed up Acme").unwrap();
    session.exp_eof().unwrap();
    let listed = cli.ok(&["backup", "list", "--json"]);
    let backup: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    let backup = backup["backup"].as_str().unwrap().to_owned();
    cli.execute(&id, "CREATE TABLE added_later (id INTEGER PRIMARY KEY)");

    let mut session = spawn(&cli, &format!("backup restore {backup}"));
    session.exp_string("Replace all data of tenant Acme").unwrap();
    session.send_line("n").unwrap();
    session.exp_string("nothing was changed").unwrap();
    session.exp_eof().unwrap();
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM added_later"), Some(0), "a refused restore changed the tenant");

    let mut session = spawn(&cli, &format!("backup restore {backup}"));
    session.exp_string("Replace all data of tenant Acme").unwrap();
    session.send_line("y").unwrap();
    session.exp_string("Restored backup").unwrap();
    session.exp_eof().unwrap();
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM added_later"), None, "the restore kept a table the backup did not have");
}
