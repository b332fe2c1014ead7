//! Twenty `tenancy tenant create` processes at once on PostgreSQL leave twenty consistent tenants.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::Cli;
use tenancy_tests::Backend;

#[test]
fn twenty_concurrent_creates_on_postgres() {
    let Some(cli) = Cli::new(Backend::Postgres) else { return };
    // No `init`: the first processes race to create and migrate the registry themselves.
    tokio::runtime::Runtime::new().unwrap().block_on(cli.env.create_central_database());
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut command = cli.tenancy_process();
            command.args(["tenant", "create", "--name", &format!("Tenant {i}"), "--domain", &format!("t{i}.test")]);
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let tenants = cli.tenants();
    assert_eq!(tenants.len(), 20);
    assert!(tenants.iter().all(|t| t["status"] == "active"));
    let mut databases = tokio::runtime::Runtime::new().unwrap().block_on(cli.env.tenant_databases());
    databases.sort();
    let mut expected: Vec<String> = tenants.iter().map(|t| t["database"].as_str().unwrap().to_owned()).collect();
    expected.sort();
    assert_eq!(databases, expected, "one database per tenant, and no other");
}
