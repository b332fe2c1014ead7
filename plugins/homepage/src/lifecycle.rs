//! The plugin in a tenant's life: its page made by `tenant create --with-homepage` (and removed
//! again if a later step fails), its folders removed with it, a note when it loses a domain.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use tenancy_core::provisioning::{DeleteOptions, Provisioning, ProvisioningStep, StepOutcome, TenantHook, TenantRequest};
use tenancy_core::{BoxError, Domain, Tenancy, Tenant, TenantId};

use crate::config::HomepageConfig;
use crate::views::{CreateOptions, Created, ViewRoot};
use crate::{KEEP_HOMEPAGE, WITH_HOMEPAGE};

/// The provisioning step: runs only for `--with-homepage`.
#[derive(Default)]
pub struct CreateHomepage {
    /// What each tenant being created got, for undo.
    created: Mutex<HashMap<TenantId, Created>>,
}

#[async_trait]
impl ProvisioningStep for CreateHomepage {
    fn name(&self) -> &str {
        "homepage"
    }

    async fn check(&self, tenancy: &Tenancy, request: &TenantRequest) -> Result<(), BoxError> {
        if !request.flags.contains(WITH_HOMEPAGE) {
            return Ok(());
        }
        if !HomepageConfig::load(tenancy.config())?.enabled {
            return Err(format!("--{WITH_HOMEPAGE} was given, but homepages are turned off (`homepage.enabled = false`)").into());
        }
        match request.domains.first() {
            None => Err(format!("--{WITH_HOMEPAGE} needs a --domain: a homepage is made for the tenant's primary domain").into()),
            Some(domain) if ViewRoot::new(PathBuf::new()).folder_of(domain).is_none() => {
                Err(format!("`{domain}` cannot have a homepage of its own: its folder would be the default page's").into())
            }
            Some(_) => Ok(()),
        }
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        if !job.request.flags.contains(WITH_HOMEPAGE) {
            return Ok(StepOutcome::Skipped(format!("no --{WITH_HOMEPAGE}")));
        }
        let config = HomepageConfig::load(job.tenancy.config())?;
        let tenant = job.tenant()?;
        let domain = tenant.primary_domain().ok_or_else(|| format!("--{WITH_HOMEPAGE} needs the tenant to have a --domain"))?;
        let template = crate::commands::template_text(&config, job.tenancy.config())?;
        let root = ViewRoot::new(config.view_root(job.tenancy.config()));
        let options = CreateOptions { force: false, create_root: config.auto_create_directory };
        let created = root.create_page(&tenant.id, domain, &template, options)?;
        let detail =
            if created.kept { format!("kept the existing `{}`", created.page.display()) } else { format!("`{}`", created.page.display()) };
        self.created.lock().unwrap_or_else(|p| p.into_inner()).insert(tenant.id, created);
        let updated = job.tenancy.registry().set_homepage_enabled(&job.id, true).await?;
        job.set_tenant(updated);
        Ok(StepOutcome::Done(detail))
    }

    async fn undo(&self, job: &Provisioning<'_>) -> Result<(), BoxError> {
        let created = self.created.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.id);
        let Some(created) = created else { return Ok(()) };
        let config = HomepageConfig::load(job.tenancy.config())?;
        Ok(ViewRoot::new(config.view_root(job.tenancy.config())).undo_create(&created)?)
    }
}

/// Removes a deleted tenant's folders; tells about the folder of a removed domain.
pub struct HomepageHook;

#[async_trait]
impl TenantHook for HomepageHook {
    fn name(&self) -> &str {
        "homepage"
    }

    async fn deleting(&self, tenancy: &Tenancy, tenant: &Tenant, options: &DeleteOptions) -> Result<Option<String>, BoxError> {
        if options.flags.contains(KEEP_HOMEPAGE) {
            return Ok(None);
        }
        let config = HomepageConfig::load(tenancy.config())?;
        let removed = ViewRoot::new(config.view_root(tenancy.config())).remove_pages_of(tenant)?;
        if removed.is_empty() {
            return Ok(None);
        }
        let folders: Vec<String> = removed.iter().map(|f| format!("`{}`", f.display())).collect();
        Ok(Some(format!("removed homepage folder{} {}", if folders.len() == 1 { "" } else { "s" }, folders.join(", "))))
    }

    async fn domain_removed(&self, tenancy: &Tenancy, tenant: &Tenant, domain: &Domain) -> Option<String> {
        let config = HomepageConfig::load(tenancy.config()).ok()?;
        let folder = ViewRoot::new(config.view_root(tenancy.config())).folder_of(domain)?;
        if !folder.is_dir() {
            return None;
        }
        let shown = folder.display();
        // Only a folder marked as the tenant's is kept from the domain's next owner.
        Some(if ViewRoot::owner(&folder) == Some(tenant.id) {
            format!(
                "the homepage folder `{shown}` is kept and stays tenant {}'s: whoever gets `{domain}` next is served the default page until `tenancy homepage create --tenant … --domain {domain} --force`; remove the folder when it is no longer wanted",
                tenant.id
            )
        } else {
            format!(
                "the homepage folder `{shown}` is kept; it names no owner, so whoever gets `{domain}` next is served it: remove it, or run `tenancy homepage create` for the next owner"
            )
        })
    }
}
