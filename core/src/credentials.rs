//! Tenant roles after creation: making them for tenants that have none yet
//! ([`Tenancy::secure_tenant`]) and changing their passwords ([`Tenancy::rotate_credentials`]).
//! Creation and deletion make and drop them in `provisioning`.

use crate::database::{Adopt, DatabaseError, Login};
use crate::registry::RegistryError;
use crate::{Tenancy, Tenant};

/// Changing a tenant's password failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The role could not be made or changed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// The new generation could not be recorded; the old password was put back.
    #[error("the new password of tenant {tenant} could not be recorded; its old one was put back")]
    Registry {
        /// `name (id)`.
        tenant: String,
        /// Why.
        source: RegistryError,
    },
}

impl Tenancy {
    /// Whether tenants can be given roles here: a server, and the role key readable.
    ///
    /// # Errors
    /// [`DatabaseError::NoRoles`] on SQLite, [`DatabaseError::RoleKey`] without the key.
    pub fn check_roles_possible(&self) -> Result<(), DatabaseError> {
        self.role_key().map(drop)
    }

    /// Makes `tenant`'s role if it is missing, sets its current password, and gives it its
    /// database and everything in it (what a restore, a copy, or migrations run as the server's
    /// user made). Idempotent, so it resumes wherever an earlier run stopped. Works while tenants
    /// still share the server's user too: their roles are then ready before the switch.
    ///
    /// # Errors
    /// [`DatabaseError::NoRoles`] on SQLite; when the role key cannot be read or the server refuses.
    pub async fn secure_tenant(&self, tenant: &Tenant) -> Result<Login, DatabaseError> {
        let login = self.role_key()?.login_for(&tenant.database, tenant.credentials_generation);
        self.manager_of(tenant)?.secure(&tenant.database, &login, Adopt::Everything).await?;
        Ok(login)
    }

    /// Where tenants have roles, gives `tenant`'s role what the server's user made in its database
    /// (a restore, a copy): otherwise the tenant could not use it. Nothing where tenants share the
    /// server's user. `on` names the server, if not the tenant's own (the target of a move).
    ///
    /// # Errors
    /// When the role key cannot be read or the server refuses.
    pub async fn give_to_role(&self, tenant: &Tenant, on: Option<&str>) -> Result<(), DatabaseError> {
        let Some(login) = self.login_of(tenant)? else { return Ok(()) };
        let manager = match on {
            Some(server) => self.manager_on(server)?,
            None => self.manager_of(tenant)?,
        };
        manager.secure(&tenant.database, &login, Adopt::Everything).await
    }

    /// Gives `tenant`'s role a new password (the next credentials generation), then records it:
    /// every process's pools on the old one are replaced when they see the change, and sessions
    /// already open stay as they are. If recording fails, the old password is put back. Returns
    /// the tenant as recorded now.
    ///
    /// # Errors
    /// [`CredentialsError`]; the tenant keeps its old password.
    pub async fn rotate_credentials(&self, tenant: &Tenant) -> Result<Tenant, CredentialsError> {
        let key = self.role_key()?;
        let manager = self.manager_of(tenant)?;
        let next = tenant.credentials_generation + 1;
        manager.secure(&tenant.database, &key.login_for(&tenant.database, next), Adopt::Nothing).await?;
        match self.registry().set_credentials_generation(&tenant.id, next).await {
            // A pool that logs in with the old password is replaced on its next lease with the new record.
            Ok(rotated) => Ok(rotated),
            Err(source) => {
                let old = key.login_for(&tenant.database, tenant.credentials_generation);
                if let Err(err) = manager.secure(&tenant.database, &old, Adopt::Nothing).await {
                    tracing::error!(tenant = %tenant, error = %err, "could not put the old password back; `tenancy tenant secure` sets the recorded one");
                }
                Err(CredentialsError::Registry { tenant: tenant.to_string(), source })
            }
        }
    }
}
