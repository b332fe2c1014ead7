//! `tenancy tenant secure` and `tenancy tenant rotate-credentials` from the command line: bad
//! input is refused with exit 2 and changes nothing; an installation made before roles switches
//! over with `secure --all`, which `doctor` asks for; a missing role key stops `tenant create`
//! before anything is made.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::Cli;
use tenancy_core::Tenant;
use tenancy_tests::{Backend, tenant_roles};

fn said(run: &common::Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

#[test]
fn secure_and_rotate_refuse_bad_input_and_change_nothing() {
    let cli = Cli::sqlite();
    cli.ok(&["init"]);
    let id = cli.create("Acme", &["acme.test"]);
    for (args, expected) in [
        (vec!["tenant", "secure"], "--all"),
        (vec!["tenant", "secure", "no-such-tenant"], "sqlite has no database roles"),
        (vec!["tenant", "secure", &id], "sqlite has no database roles"),
        (vec!["tenant", "rotate-credentials", "--all"], "sqlite has no database roles"),
        (vec!["tenant", "secure", &id, "--all"], "cannot be used with"),
    ] {
        let run = cli.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", said(&run));
        assert!(said(&run).contains(expected), "{args:?} said: {}", said(&run));
        assert!(!said(&run).contains("panicked"), "{args:?}");
    }
    assert_eq!(cli.tenants().len(), 1);
    assert_eq!(cli.scalar(&id, "SELECT COUNT(*) FROM accounts"), Some(0), "the tenant still works");
}

#[test]
fn an_installation_made_before_roles_switches_with_secure_all_and_rotates() {
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(cli) = Cli::new(backend) else { continue };
        cli.env.use_shared_roles();
        cli.ok(&["init"]);
        let (a, b) = (cli.create("Alpha", &["alpha.test"]), cli.create("Beta", &["beta.test"]));
        let admin = match backend {
            Backend::MySql => format!("mysql://root@{}/mysql", tenancy_tests::MYSQL_ADDR),
            _ => format!("postgres://postgres@{}/postgres", tenancy_tests::POSTGRES_ADDR),
        };
        let roles = || tokio::runtime::Runtime::new().unwrap().block_on(tenant_roles(backend, &admin, &cli.env.prefix));
        assert!(roles().is_empty(), "{}", backend.name());
        let doctor = cli.run(&["doctor"]);
        assert!(said(&doctor).contains("`tenancy tenant secure --all`"), "{}: doctor said {}", backend.name(), said(&doctor));

        let unknown = cli.run(&["tenant", "secure", &a, "no-such-tenant"]);
        assert_eq!(unknown.code, 2, "{}: {}", backend.name(), said(&unknown));
        assert!(said(&unknown).contains("no-such-tenant") && roles().is_empty(), "{}: {}", backend.name(), said(&unknown));

        // Roles first, while tenants still log in as the server's user; twice, as a rerun would.
        for _ in 0..2 {
            let run = cli.run(&["tenant", "secure", "--all"]);
            assert_eq!(run.code, 0, "{}: {}", backend.name(), said(&run));
            assert_eq!(said(&run).matches("owns its database").count(), 2, "{}: {}", backend.name(), said(&run));
        }
        assert_eq!(roles().len(), 2, "{}", backend.name());
        let path = cli.dir().join("tenancy.toml");
        let toml = std::fs::read_to_string(&path).unwrap().replace("roles = \"shared\"", "roles = \"per_tenant\"");
        std::fs::write(&path, toml).unwrap();
        let doctor = cli.run(&["doctor"]);
        assert!(said(&doctor).contains("a role per tenant"), "{}: doctor said {}", backend.name(), said(&doctor));
        cli.execute(&a, "INSERT INTO accounts (name, email) VALUES ('Ada', 'ada@alpha.test')");
        assert_eq!(cli.scalar(&a, "SELECT COUNT(*) FROM accounts"), Some(1), "{}", backend.name());
        cli.ok(&["db", "migrate", "--all"]);

        let run = cli.run(&["tenant", "rotate-credentials", &b, "--json"]);
        assert_eq!(run.code, 0, "{}: {}", backend.name(), said(&run));
        let event: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(event["event"], "tenant_credentials_rotated", "{}", backend.name());
        // Neither the old password nor the new one is printed.
        let passwords = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let tenancy = tenancy_core::Tenancy::builder(cli.env.config()).open().await.unwrap();
            let now = tenancy.registry().resolve(&b).await.unwrap();
            let before = Tenant { credentials_generation: now.credentials_generation - 1, ..now.clone() };
            let password = |tenant: &Tenant| tenancy.login_of(tenant).unwrap().expect("a role").password().to_owned();
            [password(&before), password(&now)]
        });
        for password in passwords {
            assert!(!said(&run).contains(&password), "{}: a password was printed", backend.name());
        }
        assert_eq!(cli.scalar(&b, "SELECT COUNT(*) FROM accounts"), Some(0), "{}: the rotated tenant works", backend.name());

        cli.ok(&["tenant", "delete", &b, "--force"]);
        assert_eq!(roles().len(), 1, "{}: the deleted tenant's role is left", backend.name());
    }
}

#[test]
fn without_its_role_key_a_server_creates_no_tenant() {
    let Some(cli) = Cli::new(Backend::Postgres) else { return };
    cli.ok(&["init"]);
    std::fs::remove_file(cli.env.role_key_file()).unwrap();
    let run = cli.run(&["tenant", "create", "--name", "Acme", "--domain", "acme.test"]);
    assert_eq!(run.code, 2, "{}", said(&run));
    assert!(said(&run).contains("needs a role key"), "{}", said(&run));
    assert!(cli.tenants().is_empty());
    assert_eq!(tokio::runtime::Runtime::new().unwrap().block_on(cli.env.count_tenant_databases()), 0);
}
