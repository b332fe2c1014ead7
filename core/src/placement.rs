//! Which database server a new tenant goes on: the configured servers, their state in the
//! registry (`tenancy server drain|activate|read-only`), and the `placement` policy.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::config::Placement;
use crate::database::{DatabaseError, DatabaseName};
use crate::registry::RegistryError;
use crate::tenancy::Tenancy;

/// What a server is open to, as an operator set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Serves its tenants and takes new ones.
    #[default]
    Active,
    /// Serves its tenants; takes no new ones (it is being emptied, or kept as it is).
    Draining,
    /// Serves its tenants; takes no new ones, and tenancy changes no schema on it: `db migrate`,
    /// rollbacks and seeders report its tenants as not done (a replica promoted, an upgrade under
    /// way).
    ReadOnly,
}

impl ServerState {
    /// Every state.
    pub const ALL: [ServerState; 3] = [Self::Active, Self::Draining, Self::ReadOnly];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Draining => "draining",
            Self::ReadOnly => "read_only",
        }
    }

    /// Whether new tenants may be put on it.
    pub fn takes_new_tenants(self) -> bool {
        self == Self::Active
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServerState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| format!("unknown server state `{s}`"))
    }
}

/// Why no server could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// `--server` named a server that is not configured.
    #[error("no server named `{name}` in `tenant_database.servers` (configured: {known})")]
    UnknownServer {
        /// The name given.
        name: String,
        /// The configured ones, comma-separated.
        known: String,
    },
    /// `--server` named a server that takes no new tenants.
    #[error("server `{name}` is {state} and takes no new tenants (`tenancy server activate {name}` opens it again)")]
    NotAccepting {
        /// The server.
        name: String,
        /// Its state.
        state: ServerState,
    },
    /// Every server is draining or read-only.
    #[error("no server takes new tenants: {states} (`tenancy server activate NAME` opens one)")]
    NoActiveServer {
        /// Each server and its state.
        states: String,
    },
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A server could not be measured (`placement = "least_bytes"`).
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

impl PlacementError {
    /// A mistake in the command (a server that does not exist), not a failure of the operation.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::UnknownServer { .. })
    }
}

/// One server as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerLoad {
    /// Its name in `tenant_database.servers`.
    pub name: String,
    /// Its configured weight.
    pub weight: u32,
    /// Its state in the registry.
    pub state: ServerState,
    /// Tenants on it, every status.
    pub tenants: u64,
    /// Bytes its tenants' databases take, where measured.
    pub bytes: Option<u64>,
}

/// The active server `policy` prefers among `servers`; a tie goes to `main`, then to the first
/// by name, so the choice is the same in every process that sees the same figures.
///
/// # Errors
/// [`PlacementError::NoActiveServer`] when no server is active.
pub fn choose<'a>(policy: Placement, servers: &'a [ServerLoad], main: &str) -> Result<&'a ServerLoad, PlacementError> {
    let open = servers.iter().filter(|server| server.state.takes_new_tenants());
    // Compared as fractions (tenants / weight) without division: a/w1 < b/w2 ⇔ a·w2 < b·w1.
    let better = |a: &ServerLoad, b: &ServerLoad| -> std::cmp::Ordering {
        let load = match policy {
            Placement::LeastTenants => a.tenants.cmp(&b.tenants),
            Placement::LeastBytes => a.bytes.unwrap_or(0).cmp(&b.bytes.unwrap_or(0)),
            Placement::Weighted => {
                (u128::from(a.tenants) * u128::from(b.weight.max(1))).cmp(&(u128::from(b.tenants) * u128::from(a.weight.max(1))))
            }
        };
        load.then_with(|| (a.name != main).cmp(&(b.name != main))).then_with(|| a.name.cmp(&b.name))
    };
    open.min_by(|a, b| better(a, b)).ok_or_else(|| PlacementError::NoActiveServer {
        states: servers.iter().map(|server| format!("{} is {}", server.name, server.state)).collect::<Vec<_>>().join(", "),
    })
}

impl Tenancy {
    /// Every configured server with its state and tenants (and bytes, when `measure_bytes`), by
    /// name. On SQLite, the one folder, as the server `tenant_database.server`.
    ///
    /// # Errors
    /// When the registry cannot be read, or a server measured.
    pub async fn server_loads(&self, measure_bytes: bool) -> Result<Vec<ServerLoad>, PlacementError> {
        let config = self.config();
        let mut states = self.registry().server_states().await?;
        let tenants = self.registry().tenants_per_server().await?;
        let mut loads = Vec::new();
        for name in config.server_names() {
            let bytes = if measure_bytes { Some(self.bytes_on(&name).await?) } else { None };
            loads.push(ServerLoad {
                weight: config.tenant_database.servers.get(&name).map_or(1, |server| server.weight),
                state: states.remove(&name).unwrap_or_default(),
                tenants: tenants.get(&name).copied().unwrap_or(0),
                bytes,
                name,
            });
        }
        Ok(loads)
    }

    /// The server a new tenant goes on: `requested` if given (configured and active), else the
    /// one `tenant_database.placement` chooses among the active servers.
    ///
    /// # Errors
    /// [`PlacementError`]: an unknown or closed server asked for, none active, or the registry
    /// unreadable.
    pub async fn place_new_tenant(&self, requested: Option<&str>) -> Result<String, PlacementError> {
        let config = self.config();
        let names = config.server_names();
        if let Some(name) = requested {
            if !names.iter().any(|known| known == name) {
                return Err(PlacementError::UnknownServer { name: name.to_owned(), known: names.join(", ") });
            }
            let state = self.registry().server_state(name).await?;
            return if state.takes_new_tenants() {
                Ok(name.to_owned())
            } else {
                Err(PlacementError::NotAccepting { name: name.to_owned(), state })
            };
        }
        // One server: nothing to choose, and no tenant to count.
        if let [only] = names.as_slice() {
            let state = self.registry().server_state(only).await?;
            return if state.takes_new_tenants() {
                Ok(only.clone())
            } else {
                Err(PlacementError::NoActiveServer { states: format!("{only} is {state}") })
            };
        }
        let policy = config.tenant_database.placement;
        let loads = self.server_loads(policy == Placement::LeastBytes).await?;
        Ok(choose(policy, &loads, &config.tenant_database.server)?.name.clone())
    }

    /// Bytes the tenants recorded on `server` take there.
    async fn bytes_on(&self, server: &str) -> Result<u64, PlacementError> {
        let manager = self.managers().get(server).ok_or_else(|| DatabaseError::UnknownServer(server.to_owned()))?;
        let databases: Vec<DatabaseName> =
            self.registry().list(None).await?.into_iter().filter(|tenant| tenant.server == server).map(|tenant| tenant.database).collect();
        Ok(manager.bytes_of(&databases).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, weight: u32, state: ServerState, tenants: u64, bytes: u64) -> ServerLoad {
        ServerLoad { name: name.into(), weight, state, tenants, bytes: Some(bytes) }
    }

    #[test]
    fn least_tenants_picks_the_emptiest_active_server() {
        let servers = [
            server("a", 1, ServerState::Active, 5, 0),
            server("b", 1, ServerState::Active, 3, 900),
            server("c", 1, ServerState::Draining, 0, 0),
            server("d", 1, ServerState::ReadOnly, 0, 0),
        ];
        assert_eq!(choose(Placement::LeastTenants, &servers, "a").unwrap().name, "b");
    }

    #[test]
    fn least_bytes_looks_at_bytes_not_tenants() {
        let servers = [server("a", 1, ServerState::Active, 5, 100), server("b", 1, ServerState::Active, 3, 900)];
        assert_eq!(choose(Placement::LeastBytes, &servers, "b").unwrap().name, "a");
    }

    #[test]
    fn weighted_gives_a_heavier_server_its_share() {
        // 4 tenants on weight 2 is 2 per unit; 3 on weight 1 is 3: the heavier one is emptier.
        let servers = [server("big", 2, ServerState::Active, 4, 0), server("small", 1, ServerState::Active, 3, 0)];
        assert_eq!(choose(Placement::Weighted, &servers, "small").unwrap().name, "big");
        // Filling from empty: over 30 placements the weights' 2:1 holds exactly.
        let mut servers = [server("big", 2, ServerState::Active, 0, 0), server("small", 1, ServerState::Active, 0, 0)];
        for _ in 0..30 {
            let chosen = choose(Placement::Weighted, &servers, "small").unwrap().name.clone();
            servers.iter_mut().find(|s| s.name == chosen).unwrap().tenants += 1;
        }
        assert_eq!((servers[0].tenants, servers[1].tenants), (20, 10));
    }

    #[test]
    fn a_tie_goes_to_the_main_server_then_by_name() {
        let servers = [server("a", 1, ServerState::Active, 1, 0), server("b", 1, ServerState::Active, 1, 0)];
        assert_eq!(choose(Placement::LeastTenants, &servers, "b").unwrap().name, "b");
        assert_eq!(choose(Placement::LeastTenants, &servers, "zzz").unwrap().name, "a");
    }

    #[test]
    fn no_active_server_is_an_error_naming_each_state() {
        let servers = [server("a", 1, ServerState::Draining, 0, 0), server("b", 1, ServerState::ReadOnly, 0, 0)];
        let err = choose(Placement::LeastTenants, &servers, "a").unwrap_err().to_string();
        assert!(err.contains("a is draining") && err.contains("b is read_only"), "{err}");
    }

    #[test]
    fn states_read_back_as_written() {
        for state in ServerState::ALL {
            assert_eq!(state.as_str().parse::<ServerState>(), Ok(state));
        }
        assert!("paused".parse::<ServerState>().is_err());
    }
}
