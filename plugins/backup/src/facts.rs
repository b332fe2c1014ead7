//! The backup plugin's figures for reports on tenants (`monitor stats`): how many backups each
//! tenant has, the newest, and whether it was verified.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::json;
use tenancy_core::command::format::format_bytes;
use tenancy_core::command::{Fact, TenantFacts};
use tenancy_core::{Tenancy, Tenant, TenantId};

use crate::config::BackupConfig;
use crate::store::{LocalStore, S3Store, Store};

/// `backups`: count, newest, verified.
pub struct BackupFacts;

#[async_trait]
impl TenantFacts for BackupFacts {
    fn name(&self) -> &str {
        "backups"
    }

    async fn collect(&self, tenancy: &Tenancy, tenants: &[Tenant]) -> anyhow::Result<HashMap<TenantId, Fact>> {
        let config = BackupConfig::load(tenancy.config())?;
        let bucket = config.s3.as_ref().map(S3Store::new).transpose()?;
        let store = Store::new(LocalStore::new(config.root(tenancy.config())), bucket);
        let mut facts = HashMap::new();
        for tenant in tenants {
            let ids = store.ids(&tenant.id).await?;
            let Some(newest) = ids.last() else {
                facts.insert(tenant.id, Fact { text: "none".into(), value: json!({"count": 0}) });
                continue;
            };
            let manifest = match store.open(&tenant.id, newest).await {
                Ok(found) => found.manifest,
                Err(err) => {
                    facts.insert(
                        tenant.id,
                        Fact {
                            text: format!("{}, newest unreadable", ids.len()),
                            value: json!({"count": ids.len(), "error": err.to_string()}),
                        },
                    );
                    continue;
                }
            };
            let verification = store.verification(&tenant.id, newest).await;
            let text = format!(
                "{}, newest {} ({}){}",
                ids.len(),
                manifest.created_at.format("%Y-%m-%d %H:%M"),
                format_bytes(manifest.stored_total()),
                if verification.is_some() { ", verified" } else { ", not verified" }
            );
            let value = json!({
                "count": ids.len(),
                "newest": {"id": newest.as_str(), "created_at": manifest.created_at, "stored_bytes": manifest.stored_total(),
                    "verified_at": verification.as_ref().map(|v| v.verified_at),
                    "restore_tested": verification.as_ref().is_some_and(|v| v.restore_test)},
            });
            facts.insert(tenant.id, Fact { text, value });
        }
        Ok(facts)
    }
}
