//! Telling every process that the registry changed, so caches built from it (the web layer's
//! host → tenant resolver) never serve a tenant, domain or status that is gone.
//!
//! Every write that changes who a host belongs to, or whether a tenant may be served (a tenant
//! created or deleted, a domain added or removed, a status changed), adds one to a counter row
//! in the same transaction. Within this process [`Registry::generation`] grows at once, after the
//! commit; other processes see the counter move the next time they call [`Registry::poll_changes`]
//! (one primary-key read, cheap enough to run every second). One counter works on SQLite,
//! PostgreSQL and MariaDB alike, needs no connection held open for notifications, and cannot lose
//! a change the way a dropped `LISTEN` connection or Redis subscription can.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};

use super::{Registry, RegistryError};

/// The one-row table holding the counter.
pub(crate) const TABLE: &str = "tenancy_registry_version";

/// This process's view of the registry's changes; shared by every clone of a [`Registry`].
#[derive(Debug)]
pub(crate) struct Changes {
    /// Grows on every change seen: made here, or read from the counter.
    generation: AtomicU64,
    /// The counter as last read; `i64::MIN` before the first read.
    seen_version: AtomicI64,
}

impl Default for Changes {
    fn default() -> Self {
        Self { generation: AtomicU64::new(0), seen_version: AtomicI64::new(i64::MIN) }
    }
}

impl Changes {
    /// A change made by this process has been committed.
    pub(crate) fn committed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Adds one to the counter, inside the transaction of the change it announces.
pub(crate) async fn record_change(connection: &impl ConnectionTrait) -> Result<(), RegistryError> {
    let bump = Query::update()
        .table(Alias::new(TABLE))
        .value(Alias::new("version"), Expr::col(Alias::new("version")).add(1))
        .and_where(Expr::col(Alias::new("id")).eq(1))
        .to_owned();
    connection.execute(&bump).await.map(drop).map_err(RegistryError::query("record a registry change"))
}

impl Registry {
    /// A number that grows whenever tenants, their domains or their statuses change: at once for
    /// changes made through this process, and for changes made by other processes once
    /// [`Registry::poll_changes`] has seen them. Anything cached from the registry is stale when
    /// the generation it was read at is no longer the current one.
    pub fn generation(&self) -> u64 {
        self.changes.generation.load(Ordering::Acquire)
    }

    /// Reads the registry's change counter and, if another process changed the registry since the
    /// last read, moves [`Registry::generation`] on. Returns whether it did.
    ///
    /// # Errors
    /// When the registry cannot be read; the generation moves on then too, since changes may be
    /// going unseen.
    pub async fn poll_changes(&self) -> Result<bool, RegistryError> {
        let version = self.read_version().await.inspect_err(|_| self.changes.committed())?;
        let previous = self.changes.seen_version.swap(version, Ordering::AcqRel);
        let changed = previous != i64::MIN && previous != version;
        if changed {
            self.changes.committed();
        }
        Ok(changed)
    }

    async fn read_version(&self) -> Result<i64, RegistryError> {
        let action = "read the registry's change counter";
        let select =
            Query::select().column(Alias::new("version")).from(Alias::new(TABLE)).and_where(Expr::col(Alias::new("id")).eq(1)).to_owned();
        match self.connection().query_one(&select).await.map_err(RegistryError::query(action))? {
            Some(row) => row.try_get("", "version").map_err(RegistryError::query(action)),
            None => Ok(0),
        }
    }
}
