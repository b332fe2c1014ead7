//! The metrics core records, through the monitor plugin's Prometheus recorder, in this process:
//! counters move when migrations run, and the number of series stays the same from 10 tenants to
//! 500. (One recorder per process: these checks share this test binary.)

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::Arc;

use futures::StreamExt;
use tenancy_core::migrate::fleet::{FleetOptions, Operation};
use tenancy_core::migrate::{SeaOrmMigrator, TenantMigrator};
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, TenantName};
use tenancy_monitor::MonitorConfig;
use tenancy_monitor::exporter;
use tenancy_tests::prometheus::{self, Sample};
use tenancy_tests::{Backend, TestEnv};

async fn create_tenants(tenancy: &Tenancy, names: std::ops::Range<usize>, migrate: bool) {
    futures::stream::iter(names)
        .map(|n| async move {
            let mut request = TenantRequest::new(TenantName::parse(&format!("tenant {n}")).unwrap());
            request.migrate = migrate;
            tenancy.create_tenant(&request, &()).await.unwrap();
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
}

fn counter(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    prometheus::value(samples, name, labels).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_the_work_and_series_stay_bounded_from_10_to_500_tenants() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let config = MonitorConfig { tenant_series: 10, ..MonitorConfig::default() };
    let handle = exporter::recorder(&config).unwrap();
    let app: Arc<dyn TenantMigrator> = Arc::new(SeaOrmMigrator::<migration::Migrator>::default());
    let tenancy = Tenancy::builder(env.config()).tenant_migrator(app).open().await.unwrap();
    create_tenants(&tenancy, 0..10, false).await;
    let Some(before) = prometheus::parse(&exporter::render(&handle)) else { return };

    let tenants = tenancy.registry().list(None).await.unwrap();
    let options = FleetOptions { concurrency: 4, fail_fast: false, down_during: false, verify: false };
    let reports = tenancy.run_fleet(tenants, &Operation::Migrate, options, Arc::new(())).await;
    let applied: usize = reports.iter().map(|r| r.migrations.len()).sum();
    assert!(applied >= 10, "every tenant got its migrations");

    exporter::sample(&tenancy, &config).await;
    let ten = prometheus::parse(&exporter::render(&handle)).unwrap();
    let moved = counter(&ten, "tenancy_migrations_applied_total", &[("direction", "up")])
        - counter(&before, "tenancy_migrations_applied_total", &[("direction", "up")]);
    assert_eq!(moved, applied as f64, "one count per migration applied");
    let timed =
        counter(&ten, "tenancy_migration_duration_seconds_count", &[]) - counter(&before, "tenancy_migration_duration_seconds_count", &[]);
    assert_eq!(timed, applied as f64, "one duration per migration");
    assert!(counter(&ten, "tenancy_pool_opens_total", &[]) >= 10.0, "each tenant's pool was opened");
    assert!(counter(&ten, "tenancy_provisioning_step_duration_seconds_count", &[("outcome", "succeeded")]) >= 10.0);
    assert_eq!(prometheus::value(&ten, "tenancy_tenants", &[("status", "active")]), Some(10.0));

    create_tenants(&tenancy, 10..500, true).await;
    exporter::sample(&tenancy, &config).await;
    let five_hundred = prometheus::parse(&exporter::render(&handle)).unwrap();
    assert_eq!(prometheus::value(&five_hundred, "tenancy_tenants", &[("status", "active")]), Some(500.0));
    let tenant_series = |samples: &[Sample]| samples.iter().filter(|s| s.labels.contains_key("tenant")).count();
    assert_eq!(tenant_series(&ten), 11, "10 tenants and `other`");
    assert_eq!(tenant_series(&five_hundred), 11, "still 10 tenants and `other`");
    assert_eq!(prometheus::value(&five_hundred, "tenancy_tenant_series_folded", &[]), Some(490.0));
    let other = prometheus::value(&five_hundred, "tenancy_tenant_database_bytes", &[("tenant", "other")]).unwrap();
    assert!(other > 0.0, "the folded tenants' bytes are summed, not dropped");
    // Every other series has a label from a small fixed set; a new label value (an eviction's
    // reason, say) may appear, a series per tenant may not.
    assert!(
        five_hundred.len() <= ten.len() + 4,
        "{} series with 10 tenants, {} with 500: something is labelled per tenant",
        ten.len(),
        five_hundred.len()
    );
    tenancy.close().await;
}
