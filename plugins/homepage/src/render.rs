//! Rendering a page: minijinja templates read at run time from one page folder, HTML-escaped
//! whatever their extension, and bounded in the work they may do.

use std::path::{Path, PathBuf};

use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind};
use serde::Serialize;
use tenancy_core::Tenant;

use crate::views::{PAGE_FILE, file_within};

/// The instructions a page may run: a loop over a million items is a mistake to report, not a
/// server thread to lose.
const FUEL: u64 = 5_000_000;

/// What a template sees as `tenant`.
#[derive(Debug, Serialize)]
struct TenantView<'a> {
    id: String,
    name: &'a str,
    status: &'a str,
    domains: Vec<&'a str>,
    primary_domain: Option<&'a str>,
    data: &'a serde_json::Value,
}

/// Renders `folder/home.html` for `tenant` on `host`. Templates it includes or extends are read
/// from the same folder only: one tenant's page cannot pull in another's.
///
/// # Errors
/// minijinja's error (syntax, a missing include, fuel exhausted), which names the file and line.
pub fn render(folder: &Path, tenant: &Tenant, host: &str) -> Result<String, Error> {
    let mut env = Environment::new();
    // Auto-escaping goes by extension (.html only) unless forced: a page is HTML whatever its name.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_fuel(Some(FUEL));
    let folder: PathBuf = folder.to_path_buf();
    env.set_loader(move |name| match file_within(&folder, name) {
        None => Ok(None),
        Some(file) => std::fs::read_to_string(&file)
            .map(Some)
            .map_err(|err| Error::new(ErrorKind::InvalidOperation, format!("cannot read template `{name}`")).with_source(err)),
    });
    let view = TenantView {
        id: tenant.id.to_string(),
        name: tenant.name.as_str(),
        status: tenant.status.as_str(),
        domains: tenant.domains.iter().map(|d| d.domain.as_str()).collect(),
        primary_domain: tenant.primary_domain().map(|d| d.as_str()),
        data: &tenant.data,
    };
    let template = env.get_template(PAGE_FILE)?;
    template.render(minijinja::context! { tenant => Value::from(Serde(&view)), host => host })
}
