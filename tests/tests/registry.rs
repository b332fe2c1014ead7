//! The registry: naming a tenant by id, id prefix, domain or name; ambiguity; domains that stay
//! unique even when two writers race for one.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::Arc;

use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Domain, RegistryError, Tenancy, TenantName, TenantRefError};
use tenancy_tests::{Backend, TestEnv};

async fn open(env: &TestEnv) -> Tenancy {
    env.create_central_database().await;
    Tenancy::builder(env.config()).open().await.unwrap()
}

fn request(name: &str, domains: &[&str]) -> TenantRequest {
    let mut request = TenantRequest::new(TenantName::parse(name).unwrap());
    request.domains = domains.iter().map(|d| Domain::parse(d).unwrap()).collect();
    request.migrate = false;
    request
}

#[tokio::test]
async fn tenants_are_found_by_id_prefix_domain_and_name() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open(&env).await;
        let acme = tenancy.create_tenant(&request("Acme Inc", &["acme.test", "www.acme.test"]), &()).await.unwrap();
        let registry = tenancy.registry();
        let id = acme.id.to_string();
        for input in [id.as_str(), &id[..13], "ACME.test", "www.acme.test", "Acme Inc", &acme.id.simple()] {
            assert_eq!(registry.resolve(input).await.map(|t| t.id).ok(), Some(acme.id), "{}: `{input}`", backend.name());
        }
        assert!(matches!(registry.resolve("acme").await, Err(TenantRefError::Unknown { .. })));
        assert!(matches!(registry.resolve("  ").await, Err(TenantRefError::Empty)));
        // Seven characters are too few to count as an id prefix.
        assert!(matches!(registry.resolve(&id[..7]).await, Err(TenantRefError::Unknown { .. })));
        tenancy.close().await;
    }
}

#[tokio::test]
async fn ambiguous_references_list_the_candidates() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = open(&env).await;
    let one = tenancy.create_tenant(&request("Twin", &[]), &()).await.unwrap();
    let two = tenancy.create_tenant(&request("Twin", &[]), &()).await.unwrap();
    match tenancy.registry().resolve("Twin").await {
        Err(TenantRefError::Ambiguous { candidates, .. }) => assert_eq!(candidates, vec![one.to_string(), two.to_string()]),
        other => panic!("expected ambiguity, got {other:?}"),
    }
    // Two ids that share their first 8 digits, made so rather than hoped for.
    for last in ["000000000001", "000000000002"] {
        let id = tenancy_core::TenantId::parse(&format!("0195f3a2-7c4d-7e8f-9a0b-{last}")).unwrap();
        let new = tenancy_core::registry::NewTenant {
            id,
            name: tenancy_core::TenantName::parse("Prefixed").unwrap(),
            status: tenancy_core::TenantStatus::Active,
            database: tenancy.config().naming().name_for(&id),
            server: "default".into(),
            domains: Vec::new(),
            homepage_enabled: false,
            data: serde_json::json!({}),
        };
        tenancy.registry().insert(&new).await.unwrap();
    }
    assert!(matches!(tenancy.registry().resolve("0195f3a2").await, Err(TenantRefError::Ambiguous { .. })));
    assert!(matches!(tenancy.registry().resolve("0195f3a2-7c4d-7e8f-9a0b-00000000000").await, Err(TenantRefError::Ambiguous { .. })));
    assert!(tenancy.registry().resolve("0195f3a2-7c4d-7e8f-9a0b-000000000002").await.is_ok());
}

#[tokio::test]
async fn domains_stay_unique_and_primary() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open(&env).await;
        let registry = tenancy.registry();
        let a = tenancy.create_tenant(&request("A", &["a.test"]), &()).await.unwrap();
        let b = tenancy.create_tenant(&request("B", &[]), &()).await.unwrap();
        let taken = registry.add_domain(&b, &Domain::parse("a.test").unwrap(), false).await.unwrap_err();
        assert!(matches!(&taken, RegistryError::DomainTaken { owner, .. } if owner.contains("A (")), "{taken}");

        let b = registry.add_domain(&b, &Domain::parse("b.test").unwrap(), false).await.unwrap();
        assert_eq!(b.primary_domain().unwrap().as_str(), "b.test", "the first domain becomes primary");
        let b = registry.add_domain(&b, &Domain::parse("b2.test").unwrap(), true).await.unwrap();
        assert_eq!(b.primary_domain().unwrap().as_str(), "b2.test");
        assert_eq!(b.domains.iter().filter(|d| d.primary).count(), 1);
        let b = registry.remove_domain(&b, &Domain::parse("b2.test").unwrap()).await.unwrap();
        assert_eq!(b.primary_domain().unwrap().as_str(), "b.test", "the remaining domain is promoted");
        assert!(matches!(registry.remove_domain(&b, &Domain::parse("a.test").unwrap()).await, Err(RegistryError::DomainNotFound { .. })));
        assert_eq!(registry.require(&a.id).await.unwrap().domains.len(), 1);
        tenancy.close().await;
    }
}

#[tokio::test]
async fn two_tenants_racing_for_one_domain_get_it_once() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = Arc::new(open(&env).await);
        let attempts: Vec<_> = (0..6)
            .map(|i| {
                let tenancy = tenancy.clone();
                tokio::spawn(async move { tenancy.create_tenant(&request(&format!("Racer {i}"), &["race.test"]), &()).await })
            })
            .collect();
        let mut won = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(_) => won += 1,
                Err(err) => assert!(
                    err.source.downcast_ref::<RegistryError>().is_some_and(RegistryError::is_bad_input),
                    "{}: {err}: {}",
                    backend.name(),
                    err.source
                ),
            }
        }
        assert_eq!(won, 1, "{}", backend.name());
        assert_eq!(tenancy.registry().list(None).await.unwrap().len(), 1);
        assert_eq!(env.count_tenant_databases().await, 1, "{}: losers leave no database", backend.name());
    }
}
