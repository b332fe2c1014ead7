//! The state of each database server (`tenancy server drain|activate|read-only`), kept in the
//! registry so every process sees it, and the tenants each server holds.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, Func, OnConflict, Query};

use super::{Registry, RegistryError, changes};
use crate::placement::ServerState;

/// The table of server states.
pub(crate) const TABLE: &str = "tenancy_servers";

impl Registry {
    /// The state of every server an operator changed; a server not listed is active.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn server_states(&self) -> Result<BTreeMap<String, ServerState>, RegistryError> {
        let read = || RegistryError::query("read the servers' states");
        let select = Query::select().columns([Alias::new("name"), Alias::new("state")]).from(Alias::new(TABLE)).to_owned();
        let rows = self.connection().query_all(&select).await.map_err(read())?;
        let mut states = BTreeMap::new();
        for row in rows {
            let name: String = row.try_get("", "name").map_err(read())?;
            let state: String = row.try_get("", "state").map_err(read())?;
            // A state this version does not know (written by a newer one) keeps new tenants away.
            states.insert(name, state.parse().unwrap_or(ServerState::Draining));
        }
        Ok(states)
    }

    /// The state of the server `name`.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn server_state(&self, name: &str) -> Result<ServerState, RegistryError> {
        Ok(self.server_states().await?.remove(name).unwrap_or_default())
    }

    /// Sets the state of the server `name`. Every process serving tenants sees it at its next
    /// registry poll.
    ///
    /// # Errors
    /// When the registry cannot be written.
    pub async fn set_server_state(&self, name: &str, state: ServerState) -> Result<(), RegistryError> {
        let action = || format!("set the state of server `{name}`");
        let upsert = Query::insert()
            .into_table(Alias::new(TABLE))
            .columns([Alias::new("name"), Alias::new("state"), Alias::new("changed_at")])
            .values_panic([name.into(), state.as_str().into(), Utc::now().into()])
            .on_conflict(OnConflict::column(Alias::new("name")).update_columns([Alias::new("state"), Alias::new("changed_at")]).to_owned())
            .to_owned();
        let txn = sea_orm::TransactionTrait::begin(self.connection()).await.map_err(RegistryError::query(action()))?;
        txn.execute(&upsert).await.map_err(RegistryError::query(action()))?;
        changes::record_change(&txn).await?;
        txn.commit().await.map_err(RegistryError::query(action()))?;
        self.changes.committed();
        Ok(())
    }

    /// How many tenants each server holds (every status), by server name.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn tenants_per_server(&self) -> Result<BTreeMap<String, u64>, RegistryError> {
        let read = || RegistryError::query("count the tenants of each server");
        let count = Query::select()
            .column(Alias::new("server"))
            .expr_as(Func::count(Expr::col(Alias::new("id"))), Alias::new("tenants"))
            .from(Alias::new("tenants"))
            .group_by_col(Alias::new("server"))
            .to_owned();
        let rows = self.connection().query_all(&count).await.map_err(read())?;
        rows.iter()
            .map(|row| {
                let server: String = row.try_get("", "server").map_err(read())?;
                let tenants: i64 = row.try_get("", "tenants").map_err(read())?;
                Ok((server, u64::try_from(tenants).unwrap_or_default()))
            })
            .collect()
    }
}
