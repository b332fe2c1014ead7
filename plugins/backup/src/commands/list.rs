//! `tenancy backup list`: published backups, oldest first; a manifest that cannot be read is
//! reported, not skipped in silence.

use clap::Args;
use serde_json::json;
use tenancy_core::command::ExitStatus;
use tenancy_core::command::format::{format_bytes, plural};

use super::Context;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this tenant's backups (id, domain or name; the id of a deleted tenant works too); repeat for more
    #[arg(long = "tenant", short = 't', value_name = "TENANT")]
    tenants: Vec<String>,
}

pub async fn run(args: ListArgs, cx: &Context<'_>) -> anyhow::Result<ExitStatus> {
    let out = cx.out();
    let tenants = if args.tenants.is_empty() { cx.store.tenants().await? } else { cx.tenant_ids(&args.tenants).await? };
    let mut listed = 0usize;
    let mut broken = 0usize;
    if !out.is_json() {
        out.data(&format!("{:<30}  {:<24}  {:<20}  {:>10}  {:>10}  {}", "BACKUP", "TENANT", "CREATED (UTC)", "STORED", "DUMP", "SOURCE"));
    }
    for tenant in tenants {
        for id in cx.store.ids(&tenant).await? {
            match cx.store.open(&tenant, &id).await {
                Ok(found) => {
                    listed += 1;
                    let m = &found.manifest;
                    if out.is_json() {
                        out.json(&json!({"backup": m.id, "tenant": m.tenant.id, "name": m.tenant.name, "created_at": m.created_at,
                            "stored_bytes": m.stored_total(), "dump_bytes": m.dump_bytes, "driver": m.source.driver, "isolation": m.source.isolation,
                            "migrations": m.migrations.len(), "tables": m.tables.len(), "data": found.data.to_string(), "checksum": m.checksum.hex,
                            "files": m.files.as_ref().map(|files| json!({"files": files.files, "bytes": files.bytes, "stored_bytes": files.stored_bytes,
                                "data": found.files.as_ref().map(ToString::to_string)}))}));
                    } else {
                        out.data(&format!(
                            "{:<30}  {:<24}  {:<20}  {:>10}  {:>10}  {} {}",
                            m.id.as_str(),
                            m.tenant.name,
                            m.created_at.format("%Y-%m-%d %H:%M:%S"),
                            format_bytes(m.stored_total()),
                            format_bytes(m.dump_bytes),
                            m.source.driver,
                            m.source.isolation
                        ));
                    }
                }
                Err(err) => {
                    broken += 1;
                    if out.is_json() {
                        out.json(&json!({"backup": id, "tenant": tenant, "error": err.to_string()}));
                    } else {
                        out.warn(&err.to_string());
                    }
                }
            }
        }
    }
    let unreadable = if broken > 0 { format!(", {broken} unreadable") } else { String::new() };
    out.status("Listed", &format!("{}{unreadable} in {}", plural(listed, "backup"), cx.store.describe()));
    Ok(ExitStatus::Success)
}
