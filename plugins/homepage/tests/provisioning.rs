//! The `--with-homepage` step inside tenant creation, through an application's own binary (the
//! `App` builder, run in-process): when a later step fails, the page it made is removed with the
//! rest, and a page that was there before is left alone.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::World;
use tenancy_cli::App;
use tenancy_core::BoxError;
use tenancy_core::command::{Command, ExitStatus, Plugin};
use tenancy_core::provisioning::{Provisioning, ProvisioningStep, StepOutcome};
use tenancy_homepage::HomepagePlugin;
use tenancy_tests::Backend;

/// A plugin whose step, placed after the homepage's, fails for tenants named `Doomed`.
struct Saboteur;

struct FailingStep;

#[async_trait]
impl ProvisioningStep for FailingStep {
    fn name(&self) -> &str {
        "sabotage"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        if job.request.name.as_str() == "Doomed" { Err("sabotaged".into()) } else { Ok(StepOutcome::Skipped("spared".into())) }
    }
}

impl Plugin for Saboteur {
    fn name(&self) -> &str {
        "saboteur"
    }

    fn version(&self) -> &str {
        "0.0.0"
    }

    fn commands(&self) -> Vec<Arc<dyn Command>> {
        Vec::new()
    }

    fn provisioning_steps(&self) -> Vec<Arc<dyn ProvisioningStep>> {
        vec![Arc::new(FailingStep)]
    }
}

fn create(world: &World, name: &str, domain: &str) -> ExitStatus {
    let config = world.env.dir().join("tenancy.toml");
    let args = ["tenancy", "--config", config.to_str().unwrap(), "tenant", "create", "--name", name, "--domain", domain, "--with-homepage"];
    App::new().plugin(HomepagePlugin).plugin(Saboteur).run_from(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_homepage_step_removes_the_page_it_made() {
    let world = World::new(Backend::Sqlite, "").await.unwrap();
    let world = Arc::new(world);
    let run = |name: &'static str, domain: &'static str| {
        let world = world.clone();
        tokio::task::spawn_blocking(move || create(&world, name, domain))
    };

    assert_eq!(run("Doomed", "doomed.test").await.unwrap(), ExitStatus::Failure);
    assert!(!world.homepages().join("doomed.test").exists(), "the page folder it made is gone");
    assert!(world.tenancy.registry().list(None).await.unwrap().is_empty(), "and the tenant");

    // A page already there (an operator's) is kept when the creation fails.
    let existing = world.write("doomed.test/home.html", "made by hand");
    assert_eq!(run("Doomed", "doomed.test").await.unwrap(), ExitStatus::Failure);
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "made by hand");
    assert!(!world.homepages().join("doomed.test/.tenant").exists(), "the folder does not claim the tenant that never was");

    // The same binary creates a tenant the saboteur spares, with its page.
    assert_eq!(run("Spared", "spared.test").await.unwrap(), ExitStatus::Success);
    assert!(world.homepages().join("spared.test/home.html").exists());
    let tenants = world.tenancy.registry().list(None).await.unwrap();
    assert_eq!((tenants.len(), tenants[0].homepage_enabled), (1, true));
}
