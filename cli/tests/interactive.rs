//! On a terminal, `tenant create` asks for what is missing and `tenant delete` asks before dropping
//! anything. Driven through a pseudo-terminal, as a person would type.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::Cli;
use rexpect::session::PtySession;

fn spawn(cli: &Cli, args: &str) -> PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tenancy"));
    command.current_dir(cli.dir()).args(args.split_whitespace()).env("NO_COLOR", "1").env("TERM", "xterm");
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
