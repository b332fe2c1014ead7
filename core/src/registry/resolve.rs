//! Resolving what a user typed to name a tenant: a full id, an id prefix of 8 or more characters, a
//! domain, or the exact name. Every reading of the input is tried; more than one match is an error
//! that lists the candidates, never a guess.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::tenants;
use super::{Registry, RegistryError, parse_id};
use crate::{Domain, Tenant, TenantId};

/// The shortest id prefix accepted: shorter ones match too many tenants to be useful.
pub const MIN_ID_PREFIX: usize = 8;
/// How many candidates an ambiguity error lists.
const MAX_CANDIDATES: u64 = 10;

/// Why a tenant reference did not resolve to exactly one tenant.
#[derive(Debug, thiserror::Error)]
pub enum TenantRefError {
    /// Nothing was typed.
    #[error("no tenant given: name a tenant by id, id prefix (8+ characters), domain or name")]
    Empty,
    /// No tenant matches.
    #[error("unknown tenant `{input}`: no tenant has this id, id prefix, domain or name")]
    Unknown {
        /// What was typed.
        input: String,
    },
    /// Several tenants match.
    #[error("tenant `{input}` is ambiguous; it matches:\n{}", candidates.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    Ambiguous {
        /// What was typed.
        input: String,
        /// The matching tenants, as `name (id)`.
        candidates: Vec<String>,
    },
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl TenantRefError {
    /// Whether the user typed something wrong (exit 2) rather than the registry failing (exit 1).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Registry(_))
    }
}

impl Registry {
    /// Finds the one tenant `input` names.
    ///
    /// # Errors
    /// [`TenantRefError::Unknown`] or [`TenantRefError::Ambiguous`] (with the candidates).
    pub async fn resolve(&self, input: &str) -> Result<Tenant, TenantRefError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(TenantRefError::Empty);
        }
        if let Ok(id) = TenantId::parse(input) {
            return self.get(&id).await?.ok_or_else(|| TenantRefError::Unknown { input: input.to_owned() });
        }
        let mut ids: Vec<TenantId> = Vec::new();
        let mut add = |id: TenantId| {
            if !ids.contains(&id) {
                ids.push(id);
            }
        };
        let lower = input.to_ascii_lowercase();
        if lower.len() >= MIN_ID_PREFIX && lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // Only hex digits and hyphens reach the LIKE pattern, so it holds no wildcard.
            let rows = tenants::Entity::find()
                .filter(tenants::Column::Id.starts_with(&lower))
                .order_by_asc(tenants::Column::Id)
                .limit(MAX_CANDIDATES)
                .all(self.connection())
                .await
                .map_err(RegistryError::query(format!("look up id prefix `{lower}`")))?;
            for row in rows {
                add(parse_id(&row.id)?);
            }
        }
        if let Ok(domain) = Domain::parse(input)
            && let Some(tenant) = self.find_by_domain(&domain).await?
        {
            add(tenant.id);
        }
        let named = tenants::Entity::find()
            .filter(tenants::Column::Name.eq(input))
            .order_by_asc(tenants::Column::Id)
            .limit(MAX_CANDIDATES)
            .all(self.connection())
            .await
            .map_err(RegistryError::query(format!("look up tenant name `{input}`")))?;
        for row in named {
            add(parse_id(&row.id)?);
        }
        match ids.as_slice() {
            [] => Err(TenantRefError::Unknown { input: input.to_owned() }),
            [id] => Ok(self.require(id).await?),
            many => {
                let mut candidates = Vec::new();
                for id in many {
                    candidates.push(match self.get(id).await? {
                        Some(tenant) => tenant.to_string(),
                        None => id.to_string(),
                    });
                }
                Err(TenantRefError::Ambiguous { input: input.to_owned(), candidates })
            }
        }
    }
}
