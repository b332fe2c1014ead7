//! A pool of ready databases (`tenant_database.provision = "pool"`): databases migrated ahead of
//! time by `tenancy tenant pool --fill N`, so a signup only registers the tenant and renames one.
//!
//! The pool is the server itself: a ready database is named after the migration set it was
//! migrated with ([`DatabaseNaming::pool_name`]), so there is nothing to keep in step with it, and
//! one of another set is never handed out. Taking one is a single `ALTER … RENAME`, which two
//! processes cannot both win: the loser tries the next. One process fills at a time (under a lock);
//! a database is made under a `fill_` name and renamed into the pool only once migrated, so a fill
//! that dies half-way leaves nothing a signup would take, and the next fill drops what it left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Tenancy;
use crate::database::{DatabaseError, DatabaseManager, DatabaseName, Login, Pooled, Taken};
use crate::migrate::runner::MigrationFailure;

/// Why the pool could not be read, filled or drained.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The server refused, or cannot keep a pool.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// A migration failed while a pool database was made; it was dropped.
    #[error("making a pool database failed at migration `{}`: {}", .0.migration, .0.error)]
    Migration(MigrationFailure),
}

/// A database a signup took from the pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FromPool {
    /// How many migrations it carries: the whole current set.
    pub(crate) migrations: usize,
    /// Whether it came given to the tenant's role already; if not, and the tenant has one, what
    /// it holds is still the server user's (see [`Taken::Renamed`]).
    pub(crate) secured: bool,
}

/// What the pool holds on the default server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolStatus {
    /// The fingerprint its databases are named with ([`crate::Tenancy::pool_fingerprint`]).
    pub fingerprint: String,
    /// Ready databases of the current migration set: what signups take.
    pub ready: usize,
    /// Ready databases of another migration set, or filled before `roles` was switched: never
    /// taken; the next fill drops them.
    pub stale: usize,
    /// Databases being made, or left by a fill that died.
    pub filling: usize,
}

/// What [`Tenancy::fill_pool`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolFill {
    /// Ready databases made.
    pub made: usize,
    /// Stale or half-made databases dropped.
    pub dropped: usize,
    /// Ready databases now.
    pub ready: usize,
}

impl Tenancy {
    /// What the pool holds.
    ///
    /// # Errors
    /// [`PoolError`] when the server cannot be read or keeps no pool.
    pub async fn pool_status(&self) -> Result<PoolStatus, PoolError> {
        let fingerprint = self.pool_fingerprint().await?;
        let pooled = self.pooled(self.default_manager()).await?;
        let ready_of = |current: bool| pooled.iter().filter(|p| !p.filling && (p.fingerprint == fingerprint) == current).count();
        Ok(PoolStatus { ready: ready_of(true), stale: ready_of(false), filling: pooled.iter().filter(|p| p.filling).count(), fingerprint })
    }

    /// Makes ready databases until there are `target`, first dropping those of other migration
    /// sets and those a dead fill left. `made` is told each new one and how long it took.
    ///
    /// # Errors
    /// [`PoolError`]; the databases made before the failure stay in the pool.
    pub async fn fill_pool(&self, target: usize, made: &(dyn Fn(&DatabaseName, Duration) + Send + Sync)) -> Result<PoolFill, PoolError> {
        let manager = self.default_manager();
        let lock = manager.lock_named(&self.config().naming().pool_lock_name()).await?;
        let filled = self.fill_locked(manager, target, made).await;
        lock.release().await;
        filled
    }

    async fn fill_locked(
        &self,
        manager: &Arc<dyn DatabaseManager>,
        target: usize,
        made: &(dyn Fn(&DatabaseName, Duration) + Send + Sync),
    ) -> Result<PoolFill, PoolError> {
        let fingerprint = self.pool_fingerprint().await?;
        let mut fill = PoolFill { made: 0, dropped: 0, ready: 0 };
        for pooled in self.pooled(manager).await? {
            // Under the lock no other fill runs: a `fill_` database is a dead one's.
            if pooled.filling || pooled.fingerprint != fingerprint {
                self.drop_pooled(manager, &pooled.name).await?;
                fill.dropped += 1;
            } else {
                fill.ready += 1;
            }
        }
        let naming = self.config().naming();
        while fill.ready < target {
            let clock = Instant::now();
            let (filling, ready) = (naming.pool_name(&fingerprint, true), naming.pool_name(&fingerprint, false));
            if let Err(failure) = self.create_migrated(manager, &filling).await? {
                return Err(PoolError::Migration(failure));
            }
            // Where tenants have roles, it and all it holds go to a role of its own, named as it
            // will be in the pool: the tenant that takes it gets that role renamed (`take_pooled`).
            if self.tenant_roles()?.is_some() {
                manager.own_pooled(&filling, &ready).await?;
            }
            manager.rename_database(&filling, &ready).await?;
            fill.made += 1;
            fill.ready += 1;
            made(&ready, clock.elapsed());
        }
        Ok(fill)
    }

    /// Drops every database of the pool; returns how many.
    ///
    /// # Errors
    /// [`PoolError`]; what was dropped before the failure is gone.
    pub async fn drain_pool(&self) -> Result<usize, PoolError> {
        let manager = self.default_manager();
        let lock = manager.lock_named(&self.config().naming().pool_lock_name()).await?;
        let drained = async {
            let pooled = self.pooled(manager).await?;
            for database in &pooled {
                self.drop_pooled(manager, &database.name).await?;
            }
            Ok(pooled.len())
        }
        .await;
        lock.release().await;
        drained
    }

    /// Drops a database of the pool and the role holding what is in it, if it has one.
    async fn drop_pooled(&self, manager: &Arc<dyn DatabaseManager>, name: &DatabaseName) -> Result<(), PoolError> {
        manager.drop_database(name).await?;
        Ok(manager.drop_role(name).await?)
    }

    /// Renames a ready database of the current migration set to `database`, given to `login`'s
    /// role in the same transaction where it can be ([`DatabaseManager::take_pooled`]); `None`
    /// when the pool has none left.
    ///
    /// # Errors
    /// [`PoolError`] when the server cannot be read or refuses the rename; the database stays
    /// in the pool.
    pub(crate) async fn take_from_pool(&self, database: &DatabaseName, login: Option<&Login>) -> Result<Option<FromPool>, PoolError> {
        let manager = self.default_manager();
        let fingerprint = self.pool_fingerprint().await?;
        let mut ready: Vec<Pooled> =
            self.pooled(manager).await?.into_iter().filter(|p| !p.filling && p.fingerprint == fingerprint).collect();
        // Signups at the same moment start at different places, so they seldom race for one.
        let start = usize::try_from(uuid::Uuid::new_v4().as_u128() % ready.len().max(1) as u128).unwrap_or(0);
        ready.rotate_left(start);
        for pooled in ready {
            let secured = match manager.take_pooled(&pooled.name, database, login).await? {
                Taken::ByAnother => continue,
                Taken::Renamed => false,
                Taken::Secured => true,
            };
            return Ok(Some(FromPool { migrations: self.migrations().migration_count(), secured }));
        }
        Ok(None)
    }

    /// What the pool's ready databases are named with: the current migration set's fingerprint,
    /// told apart by whether tenants have roles of their own. A database filled the one way is
    /// of no use the other way (what is in it has the wrong owner, or a role no tenant gets), so
    /// after a switch the pool's databases are stale: never taken, dropped by the next fill.
    ///
    /// # Errors
    /// [`PoolError::Database`] when tenants have roles and the role key cannot be read.
    pub async fn pool_fingerprint(&self) -> Result<String, PoolError> {
        let migrations = self.migration_fingerprint().await;
        Ok(match self.tenant_roles()? {
            None => migrations.to_owned(),
            Some(_) => blake3::hash(format!("{migrations} roles per tenant").as_bytes()).to_hex()[..16].to_owned(),
        })
    }

    /// The pool's databases on `manager`'s server, of any migration set.
    async fn pooled(&self, manager: &Arc<dyn DatabaseManager>) -> Result<Vec<Pooled>, PoolError> {
        let naming = self.config().naming();
        Ok(manager.database_names().await?.iter().filter_map(|name| naming.pooled(name)).collect())
    }
}
