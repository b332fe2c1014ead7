//! Where each tenant move stands (`tenancy tenant move`), so a move interrupted at any step is
//! resumed (or undone) by the next run, and the switch of a tenant's server is one transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, QueryResult, TransactionTrait};

use super::{Registry, RegistryError, changes};
use crate::TenantId;
use crate::moves::{MoveRecord, MoveStep};

/// The table of moves.
pub(crate) const TABLE: &str = "tenancy_tenant_moves";

const COLUMNS: [&str; 8] =
    ["tenant_id", "from_server", "to_server", "step", "down_by_move", "started_at", "updated_at", "keep_source_until"];

fn col(name: &str) -> Alias {
    Alias::new(name)
}

impl Registry {
    /// Every move under way or finished with its source kept.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn moves(&self) -> Result<Vec<MoveRecord>, RegistryError> {
        let select = Query::select().columns(COLUMNS.map(col)).from(col(TABLE)).to_owned();
        let rows = self.connection().query_all(&select).await.map_err(RegistryError::query("read tenant moves"))?;
        rows.iter().map(move_record).collect()
    }

    /// The move of `tenant`, if one is under way or kept.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn move_of(&self, tenant: &TenantId) -> Result<Option<MoveRecord>, RegistryError> {
        let select = Query::select()
            .columns(COLUMNS.map(col))
            .from(col(TABLE))
            .and_where(Expr::col(col("tenant_id")).eq(tenant.to_string()))
            .to_owned();
        let row =
            self.connection().query_one(&select).await.map_err(RegistryError::query(format!("read the move of tenant `{tenant}`")))?;
        row.as_ref().map(move_record).transpose()
    }

    /// Records that `tenant` starts moving from `from` to `to`, its old database to be kept until
    /// `keep_source_until` (`None`: until `tenant move --cleanup`). Fails if it is moving already
    /// (the primary key): two `tenant move` runs cannot both start one.
    ///
    /// # Errors
    /// When the registry cannot be written, or a move of the tenant is recorded already.
    pub async fn start_move(
        &self,
        tenant: &TenantId,
        from: &str,
        to: &str,
        keep_source_until: Option<DateTime<Utc>>,
    ) -> Result<MoveRecord, RegistryError> {
        let now = Utc::now();
        let insert = Query::insert()
            .into_table(col(TABLE))
            .columns(COLUMNS.map(col))
            .values_panic([
                tenant.to_string().into(),
                from.into(),
                to.into(),
                MoveStep::Started.as_str().into(),
                false.into(),
                now.into(),
                now.into(),
                keep_source_until.into(),
            ])
            .to_owned();
        self.connection().execute(&insert).await.map_err(RegistryError::query(format!("record the move of tenant `{tenant}`")))?;
        Ok(MoveRecord {
            tenant: *tenant,
            from: from.into(),
            to: to.into(),
            step: MoveStep::Started,
            down_by_move: false,
            started_at: now,
            keep_source_until,
        })
    }

    /// Records that the move of `tenant` reached `step` (and whether the move took it down).
    ///
    /// # Errors
    /// When the registry cannot be written.
    pub async fn set_move_step(&self, tenant: &TenantId, step: MoveStep, down_by_move: bool) -> Result<(), RegistryError> {
        let update = Query::update()
            .table(col(TABLE))
            .value(col("step"), step.as_str())
            .value(col("down_by_move"), down_by_move)
            .value(col("updated_at"), Utc::now())
            .and_where(Expr::col(col("tenant_id")).eq(tenant.to_string()))
            .to_owned();
        self.connection().execute(&update).await.map(drop).map_err(RegistryError::query(format!("record the move of tenant `{tenant}`")))
    }

    /// Points `tenant` at the server `to`, in one transaction with its move's step, and tells every
    /// process (their resolvers and pools follow the registry's change counter). Only from `from`:
    /// a tenant whose server is no longer `from` is left as it is.
    ///
    /// # Errors
    /// When the registry cannot be written; [`RegistryError::NotFound`] when the tenant is not on
    /// `from` (any more).
    pub async fn switch_server(&self, tenant: &TenantId, from: &str, to: &str) -> Result<(), RegistryError> {
        let action = || format!("switch tenant `{tenant}` to server `{to}`");
        let txn = self.connection().begin().await.map_err(RegistryError::query(action()))?;
        let switch = Query::update()
            .table(col("tenants"))
            .value(col("server"), to)
            .value(col("updated_at"), Utc::now())
            .and_where(Expr::col(col("id")).eq(tenant.to_string()))
            .and_where(Expr::col(col("server")).eq(from))
            .to_owned();
        if txn.execute(&switch).await.map_err(RegistryError::query(action()))?.rows_affected() == 0 {
            return Err(RegistryError::NotFound(*tenant));
        }
        let step = Query::update()
            .table(col(TABLE))
            .value(col("step"), MoveStep::Switched.as_str())
            .value(col("updated_at"), Utc::now())
            .and_where(Expr::col(col("tenant_id")).eq(tenant.to_string()))
            .to_owned();
        txn.execute(&step).await.map_err(RegistryError::query(action()))?;
        changes::record_change(&txn).await?;
        txn.commit().await.map_err(RegistryError::query(action()))?;
        self.changes.committed();
        Ok(())
    }

    /// Forgets the move of `tenant`.
    ///
    /// # Errors
    /// When the registry cannot be written.
    pub async fn delete_move(&self, tenant: &TenantId) -> Result<(), RegistryError> {
        let delete = Query::delete().from_table(col(TABLE)).and_where(Expr::col(col("tenant_id")).eq(tenant.to_string())).to_owned();
        self.connection().execute(&delete).await.map(drop).map_err(RegistryError::query(format!("forget the move of tenant `{tenant}`")))
    }
}

fn move_record(row: &QueryResult) -> Result<MoveRecord, RegistryError> {
    let read = || RegistryError::query("read tenant moves");
    let tenant: String = row.try_get("", "tenant_id").map_err(read())?;
    let step: String = row.try_get("", "step").map_err(read())?;
    let started_at: DateTime<Utc> = row.try_get("", "started_at").map_err(read())?;
    Ok(MoveRecord {
        step: step.parse().map_err(|problem| RegistryError::Corrupt { id: tenant.clone(), problem })?,
        tenant: super::parse_id(&tenant)?,
        from: row.try_get("", "from_server").map_err(read())?,
        to: row.try_get("", "to_server").map_err(read())?,
        down_by_move: row.try_get("", "down_by_move").map_err(read())?,
        started_at,
        keep_source_until: row.try_get("", "keep_source_until").map_err(read())?,
    })
}
