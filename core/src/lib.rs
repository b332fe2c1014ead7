//! `tenancy-core`: database-per-tenant multi-tenancy for Rust applications.
//!
//! It keeps a central [`Registry`] of tenants and their domains, gives every tenant its own database
//! through a [`database::DatabaseManager`] (SQLite file, PostgreSQL database or schema, MySQL/MariaDB
//! database), pools tenant connections under one budget ([`ConnectionCache`]), runs code in a
//! tenant's context ([`Tenancy::run`]), and creates and deletes tenants atomically ([`provisioning`]).
//!
//! This crate never prints and never reads argv: it reports through small traits
//! ([`provisioning::ProvisionReporter`]) and returns typed errors. The `tenancy` binary (the
//! `tenancy-cli` crate) draws progress and turns errors into messages and exit codes.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tenancy_core::{Config, Domain, Tenancy, TenantName};
//! use tenancy_core::provisioning::TenantRequest;
//!
//! let config = Config::load(&std::env::current_dir()?, None)?;
//! let tenancy = Tenancy::builder(config).open().await?;
//! let mut request = TenantRequest::new(TenantName::parse("Acme")?);
//! request.domains.push(Domain::parse("acme.example.com")?);
//! let tenant = tenancy.create_tenant(&request, &()).await?;
//! tenancy.run(&tenant, |ctx| async move {
//!     // `ctx.db()` is Acme's own database here.
//! }).await?;
//! # Ok(()) }
//! ```

pub mod bucket;
pub mod cache;
pub mod command;
pub mod config;
pub mod connections;
mod context;
pub mod credentials;
pub mod database;
mod domain;
pub mod each;
pub mod files;
pub mod maintenance;
pub mod metrics;
pub mod migrate;
pub mod moves;
pub mod placement;
pub mod pool;
pub mod provisioning;
#[cfg(feature = "queue")]
pub mod queue;
pub mod registry;
pub mod secret;
pub mod seeder;
pub mod sessions;
pub mod sql_files;
pub mod template;
mod tenancy;
mod tenant;
pub mod unwind;
#[cfg(feature = "web")]
pub mod web;

pub use config::{Config, ConfigError};
pub use connections::ConnectionCache;
pub use context::{
    Bootstrapper, BoxError, ContextBuilder, ContextError, NoTenantContext, TenantContext, current_context, current_tenant, spawn_in_tenant,
};
pub use database::Driver;
pub use domain::{Domain, DomainError};
pub use registry::{Registry, RegistryError, TenantRefError};
pub use seeder::Seeder;
pub use tenancy::{OpenError, Tenancy, TenancyBuilder};
pub use tenant::{MAX_NAME_LEN, Tenant, TenantDomain, TenantId, TenantName, TenantNameError, TenantStatus, UnknownStatus};
