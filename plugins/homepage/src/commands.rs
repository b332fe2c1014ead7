//! `tenancy homepage create|enable|disable|show|list`.

use async_trait::async_trait;
use clap::{FromArgMatches, Subcommand};
use serde_json::json;
use tenancy_core::command::{AppContext, Command, Console, ExitStatus, UsageError};
use tenancy_core::{Config, Domain, Tenancy, Tenant};

use crate::config::HomepageConfig;
use crate::views::{BUILT_IN_TEMPLATE, CreateOptions, Decision, PAGE_FILE, PageError, ViewRoot, page_domain};

/// `tenancy homepage`.
pub struct HomepageCommand;

#[derive(Debug, Subcommand)]
enum Action {
    /// Make a tenant's homepage from `homepage.template` (an existing page is kept unless --force)
    Create {
        /// The tenant: id, id prefix (8+ characters), domain or name
        #[arg(long)]
        tenant: String,
        /// The domain whose page to make [default: the tenant's primary domain]
        #[arg(long)]
        domain: Option<String>,
        /// Replace an existing page, or take over a folder left by another tenant
        #[arg(long)]
        force: bool,
    },
    /// Serve the tenant's homepage
    Enable {
        /// The tenant: id, id prefix (8+ characters), domain or name
        #[arg(long)]
        tenant: String,
    },
    /// Redirect the tenant's `/` to `homepage.fallback_redirect`
    Disable {
        /// The tenant: id, id prefix (8+ characters), domain or name
        #[arg(long)]
        tenant: String,
    },
    /// Which page each of a tenant's domains gets, and why
    Show {
        /// The tenant: id, id prefix (8+ characters), domain or name
        #[arg(long)]
        tenant: String,
    },
    /// Every tenant's homepage
    #[command(visible_alias = "ls")]
    List,
}

#[async_trait]
impl Command for HomepageCommand {
    fn definition(&self) -> clap::Command {
        Action::augment_subcommands(
            clap::Command::new("homepage").about("Manage tenants' homepages (homepage plugin)").subcommand_required(true),
        )
    }

    async fn run(&self, app: &dyn AppContext, args: &clap::ArgMatches) -> anyhow::Result<ExitStatus> {
        let action = Action::from_arg_matches(args)?;
        let homepage = HomepageConfig::load(app.config())?;
        let tenancy = app.open_tenancy().await?;
        let result = run(action, &homepage, &tenancy, app.console()).await;
        tenancy.close().await;
        result
    }
}

async fn run(action: Action, homepage: &HomepageConfig, tenancy: &Tenancy, out: &dyn Console) -> anyhow::Result<ExitStatus> {
    let root = ViewRoot::new(homepage.view_root(tenancy.config()));
    match action {
        Action::Create { tenant, domain, force } => {
            let tenant = tenancy.registry().resolve(&tenant).await?;
            let domain = chosen_domain(&tenant, domain.as_deref())?;
            let template = template_text(homepage, tenancy.config())?;
            let options = CreateOptions { force, create_root: homepage.auto_create_directory };
            let created = root.create_page(&tenant.id, &domain, &template, options).map_err(|err| match err {
                PageError::OtherOwner { .. } | PageError::ReservedName(_) => {
                    anyhow::Error::new(UsageError::new(err.to_string(), "choose another domain, or take the folder over with --force"))
                }
                other => anyhow::Error::new(other).context(format!("cannot create the homepage of tenant {tenant}")),
            })?;
            // Also announces the change, so running servers render the page anew.
            let tenant = tenancy.registry().set_homepage_enabled(&tenant.id, true).await?;
            if created.kept {
                out.status("Kept", &format!("the existing `{}` (--force replaces it)", created.page.display()));
            } else {
                out.status("Created", &format!("homepage `{}` for tenant {tenant}", created.page.display()));
            }
            emit(
                out,
                json!({"event": "homepage_created", "tenant": tenant.id, "domain": domain, "page": created.page, "kept": created.kept, "enabled": true}),
            );
        }
        Action::Enable { tenant } => set_enabled(tenancy, &root, &tenant, true, out).await?,
        Action::Disable { tenant } => set_enabled(tenancy, &root, &tenant, false, out).await?,
        Action::Show { tenant } => {
            let tenant = tenancy.registry().resolve(&tenant).await?;
            show(&root, homepage, &tenant, out);
        }
        Action::List => {
            for tenant in tenancy.registry().list(None).await? {
                let decision = root.decide(&tenant, tenant.primary_domain());
                let summary = summary(homepage, &decision);
                if out.is_json() {
                    out.json(&json!({"tenant": tenant.id, "name": tenant.name, "homepage_enabled": tenant.homepage_enabled,
                        "primary_domain": tenant.primary_domain(), "decision": decision}));
                } else {
                    let enabled = if tenant.homepage_enabled { "enabled" } else { "disabled" };
                    out.data(&format!("{:<36}  {:<24}  {enabled:<8}  {summary}", tenant.id.to_string(), tenant.name.as_str()));
                }
            }
        }
    }
    Ok(ExitStatus::Success)
}

async fn set_enabled(tenancy: &Tenancy, root: &ViewRoot, tenant: &str, enabled: bool, out: &dyn Console) -> anyhow::Result<()> {
    let tenant = tenancy.registry().resolve(tenant).await?;
    let tenant = tenancy.registry().set_homepage_enabled(&tenant.id, enabled).await?;
    out.status(if enabled { "Enabled" } else { "Disabled" }, &format!("the homepage of tenant {tenant}"));
    if enabled && let Decision::Redirect { reason } = root.decide(&tenant, tenant.primary_domain()) {
        out.warn(&format!("tenant {tenant} has no page to serve yet ({reason}): `tenancy homepage create --tenant {}`", tenant.id));
    }
    emit(out, json!({"event": if enabled { "homepage_enabled" } else { "homepage_disabled" }, "tenant": tenant.id}));
    Ok(())
}

fn show(root: &ViewRoot, homepage: &HomepageConfig, tenant: &Tenant, out: &dyn Console) {
    let mut domains: Vec<Option<&Domain>> = tenant.domains.iter().map(|d| Some(&d.domain)).collect();
    if domains.is_empty() {
        domains.push(None); // identified by path or header only
    }
    let decisions: Vec<_> = domains.iter().map(|domain| (*domain, root.decide(tenant, page_domain(tenant, *domain)))).collect();
    if out.is_json() {
        let rows: Vec<_> = decisions.iter().map(|(domain, decision)| json!({"domain": domain, "decision": decision})).collect();
        out.json(&json!({"tenant": tenant.id, "homepage_enabled": tenant.homepage_enabled,
            "fallback_redirect": homepage.fallback_redirect, "domains": rows}));
        return;
    }
    out.data(&format!("tenant {tenant}: homepage {}", if tenant.homepage_enabled { "enabled" } else { "disabled" }));
    for (domain, decision) in &decisions {
        let domain = domain.map_or_else(|| "(no domain)".to_owned(), ToString::to_string);
        out.data(&format!("  {domain}: {}", summary(homepage, decision)));
    }
}

/// One line about a decision: which file, or where to, and why.
fn summary(homepage: &HomepageConfig, decision: &Decision) -> String {
    let shown = |folder: &std::path::Path| folder.join(PAGE_FILE).display().to_string();
    match decision {
        Decision::Own { folder } => format!("its own page `{}`", shown(folder)),
        Decision::Default { folder, reason } => format!("the default page `{}` ({reason})", shown(folder)),
        Decision::Redirect { reason } => format!("redirect to `{}` ({reason})", homepage.fallback_redirect),
    }
}

/// A JSON event, with `--json` only.
fn emit(out: &dyn Console, event: serde_json::Value) {
    if out.is_json() {
        out.json(&event);
    }
}

/// The domain `--domain` names, which must be one of the tenant's, or its primary domain.
fn chosen_domain(tenant: &Tenant, given: Option<&str>) -> anyhow::Result<Domain> {
    let owned: Vec<&str> = tenant.domains.iter().map(|d| d.domain.as_str()).collect();
    match given {
        Some(input) => {
            let domain = Domain::parse(input)?;
            if owned.contains(&domain.as_str()) {
                Ok(domain)
            } else {
                let hint = if owned.is_empty() { "it has no domain yet".to_owned() } else { format!("its domains: {}", owned.join(", ")) };
                Err(UsageError::new(format!("tenant {tenant} does not have the domain `{domain}`"), hint).into())
            }
        }
        None => tenant.primary_domain().cloned().ok_or_else(|| {
            UsageError::new(
                format!("tenant {tenant} has no domain, and a homepage is made for one"),
                format!("tenancy tenant domain add {} DOMAIN", tenant.id),
            )
            .into()
        }),
    }
}

/// The text new pages are made from: `homepage.template`, or the built-in page.
pub(crate) fn template_text(homepage: &HomepageConfig, config: &Config) -> anyhow::Result<String> {
    match homepage.template_file(config) {
        None => Ok(BUILT_IN_TEMPLATE.to_owned()),
        Some(path) => {
            std::fs::read_to_string(&path).map_err(|err| anyhow::anyhow!("cannot read `homepage.template` `{}`: {err}", path.display()))
        }
    }
}
