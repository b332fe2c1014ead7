//! Template provisioning (`tenant_database.provision = "template"`): a new tenant's database is a
//! copy of a template migrated once per migration set, instead of running every migration.
//!
//! The template is named after the set's fingerprint (every migrator's name and tracking table,
//! every migration's name and the SQL it sends on this engine), so a changed or added migration
//! means a new template; the old ones are dropped once the new one is sealed. One process builds
//! (under the engine's lock: a lock file, or a PostgreSQL advisory lock) while the others wait and
//! then copy what it built. A template is built under another name and renamed and marked only
//! when complete ([`DatabaseManager::seal_template`]), so an interrupted build is never copied.
//! A copy carries the template's tracking rows: it is indistinguishable from a migrated database,
//! and later migrations apply to it as to any other.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sea_orm::DbBackend;
use tokio::sync::OnceCell;

use crate::Tenancy;
use crate::database::{DatabaseError, DatabaseManager, DatabaseName, Driver};
use crate::migrate::runner::{self, MigrationFailure};

/// Why a database could not be made from a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Making, sealing or copying the template failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// A migration failed while the template was built; no tenant was affected.
    #[error("building the template failed at migration `{}`: {}", .0.migration, .0.error)]
    Migration(MigrationFailure),
}

/// What a process knows of templates: the migration set's fingerprint, worked out once, and the
/// templates it has seen sealed, by where they are (so a warm copy costs one statement).
#[derive(Default)]
pub(crate) struct Templates {
    fingerprint: OnceCell<String>,
    ready: Mutex<HashSet<String>>,
}

impl Templates {
    fn is_known(&self, manager: &dyn DatabaseManager, template: &DatabaseName) -> bool {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).contains(&manager.location(template))
    }

    fn remember(&self, manager: &dyn DatabaseManager, template: &DatabaseName, ready: bool) {
        let mut known = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        if ready {
            known.insert(manager.location(template));
        } else {
            known.remove(&manager.location(template));
        }
    }
}

impl Tenancy {
    /// 16 hex digits that change whenever the tenant migrations do: BLAKE3 of every migrator's
    /// name and tracking table and every migration's name and SQL on the default server's engine.
    pub async fn migration_fingerprint(&self) -> &str {
        self.templates
            .fingerprint
            .get_or_init(|| async {
                let backend = match self.default_manager().driver() {
                    Driver::Sqlite => DbBackend::Sqlite,
                    Driver::Postgres => DbBackend::Postgres,
                    Driver::MySql => DbBackend::MySql,
                };
                let mut hasher = blake3::Hasher::new();
                for migrator in self.migrations().migrators() {
                    for part in [migrator.name().to_owned(), migrator.tracking_table()] {
                        hasher.update(part.as_bytes()).update(b"\0");
                    }
                    for migration in migrator.migrations() {
                        hasher.update(migration.name().as_bytes()).update(b"\0");
                        // A migration that reads the database cannot be recorded: its name stands alone.
                        for statement in runner::statements_of(migration.as_ref(), backend).await.unwrap_or_default() {
                            hasher.update(statement.as_bytes()).update(b"\0");
                        }
                    }
                    hasher.update(b"\x01");
                }
                hasher.finalize().to_hex()[..16].to_owned()
            })
            .await
    }

    /// Creates `database` on `manager` as a copy of the current template, building the template
    /// first when it is missing; returns how many migrations the copy carries, and the template.
    ///
    /// # Errors
    /// [`TemplateError`]: the database is then not there (a failed copy leaves nothing).
    pub(crate) async fn create_from_template(
        &self,
        manager: &Arc<dyn DatabaseManager>,
        database: &DatabaseName,
    ) -> Result<(usize, DatabaseName), TemplateError> {
        let naming = self.config().naming();
        let template = naming.template_name(self.migration_fingerprint().await, false);
        let known = self.templates.is_known(manager.as_ref(), &template);
        if !known && !manager.template_ready(&template).await? {
            self.build_template(manager, &template).await?;
        }
        let copied = match manager.create_from_template(&template, database).await {
            // Gone since this process saw it: another process's rebuild (a new release) dropped it.
            Err(DatabaseError::Create { .. } | DatabaseError::Io { .. }) if known => {
                self.templates.remember(manager.as_ref(), &template, false);
                if !manager.template_ready(&template).await? {
                    self.build_template(manager, &template).await?;
                }
                manager.create_from_template(&template, database).await
            }
            copied => copied,
        };
        copied?;
        self.templates.remember(manager.as_ref(), &template, true);
        Ok((self.migrations().migration_count(), template))
    }

    /// Creates `database` and applies every migration to it on one connection, closed before this
    /// returns: PostgreSQL cannot rename a database in use, and SQLite folds its log into the file
    /// only when the last connection closes. A failed migration drops it again and is the inner error.
    ///
    /// # Errors
    /// [`DatabaseError`] when it cannot be made or opened.
    pub(crate) async fn create_migrated(
        &self,
        manager: &Arc<dyn DatabaseManager>,
        database: &DatabaseName,
    ) -> Result<Result<(), MigrationFailure>, DatabaseError> {
        manager.create_database(database).await?;
        let pool = manager.open_sized(database, None, 1).await?;
        let migrated = runner::migrate_new_database(&pool, self.migrations(), self.meter(), &()).await;
        let _ = pool.close().await;
        if migrated.is_err() {
            let _ = manager.drop_database(database).await;
        }
        Ok(migrated.map(drop))
    }

    /// Builds and seals `template` unless another process did while this one waited for the lock;
    /// then drops the templates of other migration sets.
    async fn build_template(&self, manager: &Arc<dyn DatabaseManager>, template: &DatabaseName) -> Result<(), TemplateError> {
        let lock = manager.lock_template(template).await?;
        let built = self.build_locked(manager, template).await;
        lock.release().await;
        built
    }

    async fn build_locked(&self, manager: &Arc<dyn DatabaseManager>, template: &DatabaseName) -> Result<(), TemplateError> {
        if manager.template_ready(template).await? {
            return Ok(());
        }
        let naming = self.config().naming();
        let building = naming.template_name(self.migration_fingerprint().await, true);
        // What an interrupted build left, if anything.
        manager.drop_database(&building).await?;
        tracing::info!(template = %building, "building the tenant template");
        match self.create_migrated(manager, &building).await? {
            Ok(()) => {}
            Err(failure) => return Err(TemplateError::Migration(failure)),
        }
        // Where tenants have roles, the template's objects go to a role named after it (see
        // `Adopt::CopyOf`): a copy is then taken over by its tenant's role joining that one.
        if self.tenant_roles()?.is_some() {
            manager.own_template(&building, template).await?;
        }
        manager.seal_template(&building, template).await?;
        for old in manager.template_names(&naming).await? {
            if old != *template
                && let Err(err) = manager.drop_template(&old).await
            {
                tracing::warn!(template = %old, error = %err, "could not drop an old tenant template");
            }
        }
        Ok(())
    }
}
