//! Configuration: `tenancy.toml`, `TENANCY_*` environment overrides, and defaults that need no file.
//!
//! [`Config::load`] finds the file (the `TENANCY_CONFIG` variable, or `tenancy.toml` in the current
//! directory or one of its parents), layers `TENANCY_SECTION__KEY` variables over it, and checks every
//! value before anything else runs. Errors name the file or variable, the key and what is wrong.
//! This module only reads; `tenancy init` writes [`Config::TEMPLATE`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod queue;
mod servers;
mod web;

pub use queue::{MAX_QUEUE_NAME, QueueConfig, QueueEngineKind, SuspendedJobs, check_queue_name};
pub use servers::{MAX_SERVER_NAME, Placement, ServerConfig, check_server_name};
pub use web::{CentralHost, Identify, IpRange, WebConfig};

use crate::database::{DatabaseNaming, Driver, Isolation, NamingError, Roles, ServerUrl, ServerUrlError};
pub use crate::secret::SecretUrl;

/// The file name looked for in the current directory and its parents.
pub const FILE_NAME: &str = "tenancy.toml";
/// The variable that names a configuration file explicitly.
pub const CONFIG_ENV: &str = "TENANCY_CONFIG";
/// The prefix of override variables: `TENANCY_TENANT_DATABASE__PREFIX` sets `tenant_database.prefix`.
pub const ENV_PREFIX: &str = "TENANCY_";

/// The whole configuration, checked.
///
/// Plugins own sections of their own (`[homepage]`): the binary names them when loading
/// ([`Config::load_with_sections`]) and each plugin reads its own with [`Config::section`]. Any
/// other top-level key is an error, as an unknown key inside a section is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The central registry.
    pub central: CentralConfig,
    /// Tenant databases: driver, naming, servers, pools.
    pub tenant_database: TenantDatabaseConfig,
    /// Where cache entries live.
    pub cache: CacheConfig,
    /// Where sessions live.
    pub session: SessionConfig,
    /// The Redis server, for the Redis cache store.
    pub redis: RedisConfig,
    /// Where plugin libraries are found, and which are turned off.
    pub plugins: PluginsConfig,
    /// How HTTP requests find their tenant.
    pub web: WebConfig,
    /// Where tenant-aware jobs are kept.
    pub queue: QueueConfig,
    /// Where each tenant's files live.
    pub files: FilesConfig,
    /// Where relative paths are resolved: the configuration file's folder, or the current directory.
    #[serde(skip)]
    pub root: PathBuf,
    /// The file that was read, if any.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// What was read, kept so plugins' sections are read with the same origins in errors.
    #[serde(skip)]
    sources: Option<Sources>,
}

/// The layers a [`Config`] was read from. Its `Debug` shows nothing: the raw values hold passwords.
#[derive(Clone)]
struct Sources(Arc<Figment>);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources(…)")
    }
}

/// `[central]`: where the registry of tenants and domains lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CentralConfig {
    /// A `sqlite://`, `postgres://` or `mysql://` URL. Relative SQLite paths are resolved against
    /// the folder of `tenancy.toml`.
    pub url: SecretUrl,
}

impl Default for CentralConfig {
    fn default() -> Self {
        Self { url: "sqlite://storage/central.sqlite".into() }
    }
}

/// `[tenant_database]`: how tenant databases are named, where they live and how they are pooled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantDatabaseConfig {
    /// `sqlite`, `postgres` or `mysql` (`mariadb` is accepted as a synonym).
    pub driver: Driver,
    /// On PostgreSQL: a `database` per tenant, or a `schema` per tenant in the server's database.
    pub isolation: Isolation,
    /// Put before the tenant id in database names.
    pub prefix: String,
    /// Put after the tenant id in database names.
    pub suffix: String,
    /// SQLite: the folder that holds one file per tenant.
    pub sqlite_path: PathBuf,
    /// The main server (a key of `servers`): it holds the template and the pool of ready
    /// databases, and wins a tie in placement.
    pub server: String,
    /// Server name → URL (or table with `url`, `weight`, `connection_budget`), for PostgreSQL
    /// and MySQL. The URL's database is the one used for administration (database per tenant) or
    /// the one holding the schemas (schema per tenant).
    pub servers: BTreeMap<String, ServerConfig>,
    /// Which active server a new tenant goes on: `least_tenants`, `least_bytes` or `weighted`.
    pub placement: Placement,
    /// The most connections one tenant's pool opens.
    pub pool_size: u32,
    /// The most tenant pools kept open at once; the least recently used is closed first.
    pub max_open_pools: u32,
    /// The most connections all tenant pools together may hold.
    pub connection_budget: u32,
    /// Seconds after which an unused tenant pool is closed.
    pub idle_timeout_secs: u64,
    /// Seconds to wait for a database server to accept a connection.
    pub connect_timeout_secs: u64,
    /// PostgreSQL: the `application_name` of tenant connections, to find them in `pg_stat_activity`.
    pub application_name: String,
    /// How a new tenant's database gets its schema: `migrations` (run each one) or `template`
    /// (a copy of a migrated template, rebuilt when the migrations change).
    pub provision: Provision,
    /// Who tenant connections log in as on a server: `shared` (the configured user) or
    /// `per_tenant` (a role of each tenant's own, which reaches its database only). A file
    /// without the key keeps `shared`, as it was before roles; `tenancy init` writes
    /// `per_tenant`. SQLite has no roles and ignores it.
    pub roles: Roles,
    /// With `per_tenant` roles: the file holding the key tenant passwords are derived from
    /// (`TENANCY_ROLE_KEY` takes its place when set).
    pub role_key_file: PathBuf,
}

/// How `tenant create` makes a tenant's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provision {
    /// Every migration runs in the new database (in one transaction where the engine allows).
    #[default]
    Migrations,
    /// The database is a copy of a template migrated once per migration set: a file copy on
    /// SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL (database isolation).
    Template,
    /// A database migrated ahead of time by `tenancy tenant pool --fill N` is renamed to the
    /// tenant's (PostgreSQL, database or schema isolation); with the pool empty, as `template`
    /// where the engine has templates (databases), else as `migrations` (schemas).
    Pool,
}

impl Default for TenantDatabaseConfig {
    fn default() -> Self {
        Self {
            driver: Driver::Sqlite,
            isolation: Isolation::Database,
            prefix: "tenant_".into(),
            suffix: String::new(),
            sqlite_path: PathBuf::from("storage/tenants"),
            server: "default".into(),
            servers: BTreeMap::new(),
            placement: Placement::LeastTenants,
            pool_size: 5,
            max_open_pools: 64,
            connection_budget: 64,
            idle_timeout_secs: 300,
            connect_timeout_secs: 10,
            application_name: "tenancy".into(),
            provision: Provision::Migrations,
            roles: Roles::Shared,
            role_key_file: PathBuf::from("storage/role.key"),
        }
    }
}

/// `[cache]`: where each tenant's cache entries live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `database` (a table in each tenant's own database), `redis` (keys under each tenant's
    /// prefix) or `memory` (in this process, bounded).
    pub store: CacheStoreKind,
    /// `memory`: the most entries kept, all tenants together.
    pub memory_capacity: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { store: CacheStoreKind::Database, memory_capacity: 100_000 }
    }
}

/// The cache stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStoreKind {
    /// The tenant's own database.
    Database,
    /// Redis, under the tenant's key prefix.
    Redis,
    /// This process's memory.
    Memory,
}

/// `[session]`: where each tenant's sessions live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// `database` (the tenant's own `tenancy_sessions` table) or `redis` (under the tenant's prefix).
    pub store: SessionStoreKind,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { store: SessionStoreKind::Database }
    }
}

/// The session stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    /// The tenant's own database.
    Database,
    /// Redis, under the tenant's key prefix.
    Redis,
}

/// `[files]`: where each tenant's files live (`ctx.files()`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// The folder of every tenant's files: a tenant's are in `{root}/{tenant_id}/files`. Relative
    /// to the configuration file's folder.
    pub root: PathBuf,
    /// Keep tenants' files in this S3-compatible bucket instead, a tenant's under
    /// `{prefix}/{tenant_id}/files/` (needs a build with the `s3` feature, as the `tenancy` binary is).
    pub s3: Option<crate::bucket::S3Config>,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self { root: PathBuf::from("storage/tenants"), s3: None }
    }
}

/// `[redis]`: the server and how tenants' keys are told apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://HOST:PORT[/DB]`.
    pub url: SecretUrl,
    /// Every key of a tenant starts with this, `{tenant_id}` replaced by its id.
    pub prefix: String,
    /// Every key of the central cache starts with this.
    pub central_prefix: String,
    /// Give each tenant a Redis database (index) of its own as well, assigned and remembered in the
    /// registry. Off by default: prefixes isolate without limiting how many tenants there can be.
    pub per_tenant_database: bool,
    /// The first index handed to a tenant (the ones below stay for the central cache and others).
    pub database_offset: u32,
    /// How many databases the server has (its `databases` setting).
    pub databases: u32,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "tenant_{tenant_id}_".into(),
            central_prefix: "central_".into(),
            per_tenant_database: false,
            database_offset: 1,
            databases: 16,
        }
    }
}

/// Under a scope's prefix, cache entries live below this…
pub const CACHE_NAMESPACE: &str = "cache:";
/// …and sessions below this, so clearing one never touches the other.
pub const SESSION_NAMESPACE: &str = "session:";

impl RedisConfig {
    /// The key prefix of `tenant`: every key of the tenant, cache and sessions, is below it.
    pub fn prefix_for(&self, tenant: &crate::TenantId) -> String {
        self.prefix.replace("{tenant_id}", &tenant.to_string())
    }

    /// Where `tenant`'s cache entries live.
    pub fn cache_prefix_for(&self, tenant: &crate::TenantId) -> String {
        format!("{}{CACHE_NAMESPACE}", self.prefix_for(tenant))
    }

    /// Where `tenant`'s sessions live.
    pub fn session_prefix_for(&self, tenant: &crate::TenantId) -> String {
        format!("{}{SESSION_NAMESPACE}", self.prefix_for(tenant))
    }

    /// Where the central cache's entries live.
    pub fn central_cache_prefix(&self) -> String {
        format!("{}{CACHE_NAMESPACE}", self.central_prefix)
    }

    /// The database index `url` selects (0 when it names none).
    fn url_database(&self) -> Option<u32> {
        let url = url::Url::parse(self.url.expose()).ok()?;
        let path = url.path().trim_start_matches('/');
        if path.is_empty() { Some(0) } else { path.parse().ok() }
    }
}

/// An example key that is under both the fixed prefix `fixed` and some tenant's prefix made from
/// `pattern`, if there is one. Two prefixes share keys exactly when one begins the other; a
/// tenant's prefix is `pattern` with each `{tenant_id}` replaced by a hyphenated lower-case UUID.
fn shared_key(fixed: &str, pattern: &str) -> Option<String> {
    const SAMPLE_ID: &str = "0195f3a2-7c4d-7e8f-9a0b-1c2d3e4f5a6b";
    let mut slots: Vec<(char, bool)> = Vec::new(); // (sample character, whether any id character fits)
    for (index, literal) in pattern.split("{tenant_id}").enumerate() {
        if index > 0 {
            slots.extend(SAMPLE_ID.chars().map(|c| (c, c != '-')));
        }
        slots.extend(literal.chars().map(|c| (c, false)));
    }
    let fits = |c: char, (sample, any_id): (char, bool)| if any_id { c.is_ascii_digit() || ('a'..='f').contains(&c) } else { c == sample };
    if !fixed.chars().zip(slots.iter()).all(|(c, slot)| fits(c, *slot)) {
        return None;
    }
    let tenant_prefix: String = fixed.chars().chain(slots.iter().skip(fixed.chars().count()).map(|(c, _)| *c)).collect();
    Some(format!("{}{CACHE_NAMESPACE}key", if fixed.len() >= tenant_prefix.len() { fixed } else { &tenant_prefix }))
}

/// `[plugins]`: plugin libraries loaded at run time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Folders (every library directly inside is loaded) or library files; relative paths are
    /// resolved against the folder of `tenancy.toml`. Searched after `TENANCY_PLUGIN_PATH` and
    /// before the `plugins/` folder beside `tenancy.toml`.
    pub paths: Vec<PathBuf>,
    /// Plugins not to load, by name (`hello`) or by file name without extension (`libtenancy_hello`).
    pub disabled: Vec<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `TENANCY_CONFIG` names a file that cannot be read.
    #[error("cannot read configuration file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A value has the wrong type, a key is unknown, or the TOML does not parse.
    #[error("invalid configuration in {origin}: {message}")]
    Invalid {
        /// The file or variable the bad value came from, and its key.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The SQL migrations or seeders beside the configuration cannot be used.
    #[error(transparent)]
    SqlFiles(#[from] crate::sql_files::SqlFilesError),
}

impl Config {
    /// The commented file `tenancy init` writes; it parses to the defaults.
    pub const TEMPLATE: &'static str = include_str!("tenancy.toml.template");

    /// Finds and reads the configuration as seen from `cwd`, with environment overrides: the file
    /// `file` if given, else the one `TENANCY_CONFIG` names, else `tenancy.toml` in `cwd` or a parent.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or variable, the key and the problem.
    pub fn load(cwd: &Path, file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_sections(cwd, file, &[])
    }

    /// [`Config::load`], accepting the top-level sections `plugin_sections` besides tenancy's own.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or variable, the key and the problem.
    pub fn load_with_sections(cwd: &Path, file: Option<&Path>, plugin_sections: &[&str]) -> Result<Self, ConfigError> {
        let file = file.map(|f| cwd.join(f)).or_else(explicit_file).or_else(|| discover(cwd));
        if let Some(path) = &file
            && let Err(source) = std::fs::metadata(path)
        {
            return Err(ConfigError::Read { path: path.clone(), source });
        }
        let root = match &file {
            Some(path) => path.parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.to_path_buf()),
            None => cwd.to_path_buf(),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &file {
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only `SECTION__KEY` variables are settings; `TENANCY_CONFIG` and friends are not.
        figment = figment.merge(Env::prefixed(ENV_PREFIX).filter(|key| key.as_str().contains("__")).split("__"));

        refuse_unknown_sections(&figment, plugin_sections)?;
        let mut config: Config = figment.extract().map_err(|err| describe_figment_error(&figment, err))?;
        config.root = root;
        config.file = file;
        config.validate().map_err(|(key, message)| ConfigError::Invalid { origin: origin_of(&figment, &key), message })?;
        config.sources = Some(Sources(Arc::new(figment)));
        Ok(config)
    }

    /// A plugin's section, `[name]`: its defaults when the section is absent (or the configuration
    /// was built in code).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the file or variable and the key, when a value has the
    /// wrong type or the section has a key `T` does not know (give `T`
    /// `#[serde(deny_unknown_fields)]`).
    pub fn section<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        let Some(Sources(figment)) = &self.sources else { return Ok(T::default()) };
        if figment.find_value(name).is_err() {
            return Ok(T::default());
        }
        figment.focus(name).extract().map_err(|mut err| {
            // Errors inside the focused section name keys from it: put the section back in front.
            err.path.insert(0, name.to_owned());
            describe_figment_error(figment, err)
        })
    }

    /// Where `key` (dotted) was set, for errors about a plugin's section: the file and key, or the
    /// environment variable.
    pub fn origin_of(&self, key: &str) -> String {
        match &self.sources {
            Some(Sources(figment)) => origin_of(figment, key),
            None => format!("key `{key}`"),
        }
    }

    /// The configuration with every default and no file, rooted at `root`.
    pub fn defaults_at(root: &Path) -> Self {
        Self { root: root.to_path_buf(), ..Self::default() }
    }

    /// Checks a configuration built or changed in code (its fields are public) as [`Config::load`]
    /// checks a file: [`crate::TenancyBuilder::open`] calls it, so nothing below trusts an unchecked value.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validate().map_err(|(key, message)| ConfigError::Invalid { origin: format!("key `{key}`"), message })
    }

    /// Checks what serde cannot: patterns, ranges and references between keys.
    /// Returns the dotted key and the problem.
    fn validate(&self) -> Result<(), (String, String)> {
        let db = &self.tenant_database;
        let key = |k: &str| format!("tenant_database.{k}");
        DatabaseNaming::new(&db.prefix, &db.suffix).map_err(|err| match err {
            NamingError::Prefix { .. } => (key("prefix"), err.to_string()),
            NamingError::Suffix { .. } => (key("suffix"), err.to_string()),
            // Blame the part that is there: a long prefix with no suffix is the prefix's fault.
            NamingError::TooLong { ref suffix, .. } if suffix.is_empty() => (key("prefix"), err.to_string()),
            NamingError::TooLong { .. } => (key("suffix"), err.to_string()),
        })?;
        for (name, value) in
            [("pool_size", db.pool_size), ("max_open_pools", db.max_open_pools), ("connection_budget", db.connection_budget)]
        {
            if value == 0 {
                return Err((key(name), format!("`{name}` must be at least 1")));
            }
        }
        if db.connection_budget < db.pool_size {
            return Err((
                key("connection_budget"),
                format!(
                    "the budget ({}) is smaller than one tenant's pool_size ({}); raise the budget or lower pool_size",
                    db.connection_budget, db.pool_size
                ),
            ));
        }
        if db.isolation == Isolation::Schema && db.driver != Driver::Postgres {
            return Err((key("isolation"), format!("`schema` isolation needs the postgres driver, not `{}`", db.driver)));
        }
        if db.provision == Provision::Template && (db.driver == Driver::MySql || db.isolation == Isolation::Schema) {
            return Err((
                key("provision"),
                "`template` needs sqlite, or postgres with `database` isolation: MySQL has no database templates and PostgreSQL none for schemas; use `migrations`".into(),
            ));
        }
        if let Some(s3) = &self.files.s3 {
            s3.check().map_err(|bad| (format!("files.s3.{}", bad.key), bad.message))?;
            if !cfg!(feature = "s3") {
                return Err(("files.s3".into(), "this build of tenancy has no S3 support (the `s3` feature of tenancy-core)".into()));
            }
        }
        if db.provision == Provision::Pool && db.driver != Driver::Postgres {
            return Err((
                key("provision"),
                format!(
                    "`pool` needs the postgres driver: {} cannot rename a database ({})",
                    db.driver,
                    if db.driver == Driver::Sqlite { "a file copy of a template, `template`, is as fast" } else { "use `migrations`" }
                ),
            ));
        }
        if db.driver == Driver::Sqlite && !db.servers.is_empty() {
            return Err((
                key("servers"),
                "the sqlite driver keeps tenant databases in `sqlite_path`; `servers` is for the postgres and mysql drivers: remove it, or set `driver`".into(),
            ));
        }
        if db.driver != Driver::Sqlite && !db.servers.contains_key(&db.server) {
            return Err((
                key("server"),
                format!(
                    "no server named `{}` in `tenant_database.servers`; the {} driver needs one, e.g. `{} = \"{}\"`",
                    db.server,
                    db.driver,
                    db.server,
                    db.driver.example_url()
                ),
            ));
        }
        for (name, server) in &db.servers {
            let key = |k: &str| format!("tenant_database.servers.{name}{k}");
            check_server_name(name).map_err(|message| (key(""), message))?;
            let parsed = ServerUrl::parse(server.url.expose()).map_err(|err| (key(""), err.to_string()))?;
            if db.driver != Driver::Sqlite && parsed.driver() != db.driver {
                return Err((key(""), format!("a {} URL cannot serve the {} driver", parsed.driver(), db.driver)));
            }
            if server.weight == 0 {
                return Err((key(".weight"), "`weight` must be at least 1 (`tenancy server drain` stops new tenants)".into()));
            }
            match server.connection_budget {
                Some(budget) if budget < db.pool_size => {
                    return Err((
                        key(".connection_budget"),
                        format!(
                            "the budget ({budget}) is smaller than one tenant's pool_size ({}); raise it or lower pool_size",
                            db.pool_size
                        ),
                    ));
                }
                None if db.servers.values().any(|other| other.connection_budget.is_some()) => {
                    return Err((
                        key(".connection_budget"),
                        "other servers have a `connection_budget`: give every server one (the budget of all is their sum), or none".into(),
                    ));
                }
                _ => {}
            }
        }
        self.central_location().map_err(|err| ("central.url".to_owned(), err.to_string()))?;
        self.web.validate()?;
        self.queue.validate()?;
        let redis = &self.redis;
        if !redis.prefix.contains("{tenant_id}") {
            return Err(("redis.prefix".into(), format!("`{}` has no `{{tenant_id}}`: every tenant would share one prefix", redis.prefix)));
        }
        if redis.central_prefix.is_empty() || redis.central_prefix.contains("{tenant_id}") {
            return Err(("redis.central_prefix".into(), "the central prefix must be a fixed, non-empty string".into()));
        }
        if let Some(example) = shared_key(&redis.central_prefix, &redis.prefix) {
            return Err((
                "redis.central_prefix".into(),
                format!(
                    "`{}` and the tenant prefix `{}` can name the same keys (`{example}` is under both), so clearing one would delete the other's: pick a central prefix that neither begins a tenant prefix nor begins with one",
                    redis.central_prefix, redis.prefix
                ),
            ));
        }
        if redis.per_tenant_database && redis.database_offset >= redis.databases {
            return Err((
                "redis.database_offset".into(),
                format!("offset {} leaves none of the {} databases for tenants", redis.database_offset, redis.databases),
            ));
        }
        if redis.per_tenant_database {
            let tenants = redis.database_offset..redis.databases;
            match redis.url_database() {
                Some(index) if tenants.contains(&index) => {
                    return Err((
                        "redis.url".into(),
                        format!(
                            "database {index} is one of those handed to tenants ({} to {}); the central cache and sessions need one below `database_offset`",
                            tenants.start,
                            tenants.end - 1
                        ),
                    ));
                }
                Some(_) => {}
                None => return Err(("redis.url".into(), format!("`{}` is not a `redis://HOST:PORT[/DB]` URL", redis.url))),
            }
        }
        if self.cache.store == CacheStoreKind::Memory && self.cache.memory_capacity == 0 {
            return Err(("cache.memory_capacity".into(), "`memory_capacity` must be at least 1".into()));
        }
        Ok(())
    }

    /// Where the central registry lives, with relative SQLite paths resolved.
    ///
    /// # Errors
    /// When `central.url` is not a supported database URL.
    pub fn central_location(&self) -> Result<CentralLocation, ServerUrlError> {
        match sqlite_path(self.central.url.expose()) {
            Some(path) => Ok(CentralLocation::Sqlite(self.resolve(Path::new(path)))),
            None => ServerUrl::parse(self.central.url.expose()).map(CentralLocation::Server),
        }
    }

    /// The names of the servers tenant databases live on: those of `tenant_database.servers`, or
    /// `tenant_database.server` alone when none is listed (SQLite).
    pub fn server_names(&self) -> Vec<String> {
        let db = &self.tenant_database;
        if db.servers.is_empty() { vec![db.server.clone()] } else { db.servers.keys().cloned().collect() }
    }

    /// The budget of all tenant pools together, and each server's own budget where servers set
    /// one (the total is then their sum, and `tenant_database.connection_budget` is not used).
    pub fn connection_budgets(&self) -> (u32, BTreeMap<String, u32>) {
        let db = &self.tenant_database;
        let own: BTreeMap<String, u32> =
            db.servers.iter().filter_map(|(name, server)| Some((name.clone(), server.connection_budget?))).collect();
        if own.is_empty() { (db.connection_budget, own) } else { (own.values().sum(), own) }
    }

    /// The folders and files of `plugins.paths`, resolved.
    pub fn plugin_paths(&self) -> Vec<PathBuf> {
        self.plugins.paths.iter().map(|path| self.resolve(path)).collect()
    }

    /// `plugins/` beside `tenancy.toml` (or in the current folder when there is no file), searched
    /// after `plugins.paths`.
    pub fn default_plugin_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// The folder of tenant SQLite files, resolved.
    pub fn sqlite_dir(&self) -> PathBuf {
        self.resolve(&self.tenant_database.sqlite_path)
    }

    /// `tenant_database.role_key_file`, resolved.
    pub fn role_key_path(&self) -> PathBuf {
        self.resolve(&self.tenant_database.role_key_file)
    }

    /// Whether tenants log in as roles of their own.
    pub fn per_tenant_roles(&self) -> bool {
        self.tenant_database.roles == Roles::PerTenant && self.tenant_database.driver != Driver::Sqlite
    }

    /// The database naming rule, already validated by [`Config::load`].
    pub fn naming(&self) -> DatabaseNaming {
        DatabaseNaming::new(&self.tenant_database.prefix, &self.tenant_database.suffix)
            .expect("validated when the configuration was loaded")
    }

    /// How long an unused tenant pool stays open.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.tenant_database.idle_timeout_secs)
    }

    /// How long to wait for a server to accept a connection.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.tenant_database.connect_timeout_secs.max(1))
    }

    /// `path` as given if absolute, else relative to [`Config::root`] (the file's folder).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.root.join(path) }
    }
}

impl CentralLocation {
    /// A URL another program can connect with, credentials included: never print it.
    pub fn connection_url(&self) -> String {
        match self {
            Self::Sqlite(path) => crate::database::sqlite_url(path),
            Self::Server(url) => url.connection_url(),
        }
    }
}

/// Where the central registry lives.
#[derive(Debug, Clone)]
pub enum CentralLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A database on a PostgreSQL or MySQL server.
    Server(ServerUrl),
}

/// The path of a `sqlite:` URL, without query string.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// The role key given by the environment ([`crate::database::ROLE_KEY_ENV`]), if any: a secret,
/// so not a setting of the file (nor printed with it).
#[allow(clippy::disallowed_methods)] // this module is where configuration is read
pub fn role_key_from_env() -> Option<String> {
    std::env::var_os(crate::database::ROLE_KEY_ENV).filter(|v| !v.is_empty()).map(|v| v.to_string_lossy().into_owned())
}

#[allow(clippy::disallowed_methods)] // this module is where configuration is read
fn explicit_file() -> Option<PathBuf> {
    std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn discover(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors().map(|dir| dir.join(FILE_NAME)).find(|path| path.is_file())
}

/// Says where a key's value came from: "`tenancy.toml` at key `x.y`" or "environment variable `TENANCY_X__Y`".
/// The top-level keys tenancy itself reads.
const OWN_SECTIONS: &[&str] = &["central", "tenant_database", "cache", "session", "redis", "plugins", "web", "queue", "files"];

/// Top-level keys are tenancy's sections and the plugins': anything else is a typo to report, as
/// serde reports an unknown key inside a section.
fn refuse_unknown_sections(figment: &Figment, plugin_sections: &[&str]) -> Result<(), ConfigError> {
    let Ok(top) = figment.extract::<BTreeMap<String, figment::value::Value>>() else {
        return Ok(()); // not a table at all: extracting the Config reports it better
    };
    let unknown = top.keys().find(|key| !OWN_SECTIONS.contains(&key.as_str()) && !plugin_sections.contains(&key.as_str()));
    match unknown {
        None => Ok(()),
        Some(key) => {
            let expected: Vec<String> = OWN_SECTIONS.iter().chain(plugin_sections).map(|s| format!("`{s}`")).collect();
            Err(ConfigError::Invalid {
                origin: origin_of(figment, key),
                message: format!("unknown section `{key}`, expected one of {}", expected.join(", ")),
            })
        }
    }
}

fn origin_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(meta) => describe_origin(meta, &key.split('.').collect::<Vec<_>>()),
        None => format!("key `{key}`"),
    }
}

fn describe_origin(meta: &figment::Metadata, path: &[&str]) -> String {
    let key = path.join(".");
    if let Some(file) = meta.source.as_ref().and_then(|s| s.file_path()) {
        format!("`{}` at key `{key}`", file.display())
    } else if meta.name.contains("environment") {
        let var = format!("{ENV_PREFIX}{}", path.iter().map(|p| p.to_uppercase()).collect::<Vec<_>>().join("__"));
        format!("environment variable `{var}`")
    } else {
        format!("key `{key}`")
    }
}

fn describe_figment_error(figment: &Figment, err: figment::Error) -> ConfigError {
    // Report the first problem; a user fixes them one at a time.
    let first = err.into_iter().next().expect("a figment error holds at least one error");
    let path: Vec<&str> = first.path.iter().map(String::as_str).collect();
    let origin = match &first.metadata {
        Some(meta) if !path.is_empty() => describe_origin(meta, &path),
        Some(meta) => match meta.source.as_ref().and_then(|s| s.file_path()) {
            Some(file) => format!("`{}`", file.display()),
            None => meta.name.to_string(),
        },
        None if !path.is_empty() => origin_of(figment, &path.join(".")),
        None => "the configuration".to_owned(),
    };
    ConfigError::Invalid { origin, message: first.kind.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_the_defaults_but_for_roles() {
        let mut from_template: Config = toml::from_str(Config::TEMPLATE).unwrap();
        // The one difference, on purpose: a new installation gets a role per tenant, while a file
        // without the key (written before roles) keeps tenants on the server's user.
        assert_eq!(from_template.tenant_database.roles, Roles::PerTenant);
        from_template.tenant_database.roles = Roles::Shared;
        let defaults = Config::default();
        assert_eq!(toml::to_string(&from_template).unwrap(), toml::to_string(&defaults).unwrap());
    }

    #[test]
    fn defaults_validate() {
        Config::defaults_at(Path::new("/tmp")).validate().unwrap();
    }

    #[test]
    fn sqlite_urls_resolve_against_the_root() {
        let config = Config::defaults_at(Path::new("/srv/app"));
        match config.central_location().unwrap() {
            CentralLocation::Sqlite(path) => assert_eq!(path, Path::new("/srv/app/storage/central.sqlite")),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(config.sqlite_dir(), Path::new("/srv/app/storage/tenants"));
    }

    #[test]
    fn redis_prefixes_must_keep_tenants_apart() {
        let mut config = Config::defaults_at(Path::new("/tmp"));
        config.redis.prefix = "shared_".into();
        assert_eq!(config.validate().unwrap_err().0, "redis.prefix");
        config.redis.prefix = "app_{tenant_id}_".into();
        config.redis.central_prefix = "app_".into();
        assert_eq!(config.validate().unwrap_err().0, "redis.central_prefix", "every tenant prefix begins with it");
        // `app_central_` begins like the tenant prefix, but no tenant id has an `n`: their keys never meet.
        config.redis.central_prefix = "app_central_".into();
        config.validate().unwrap();
        config.redis.central_prefix = "central_".into();
        config.validate().unwrap();
        // A central prefix the tenant prefix begins with: `cache clear --central` would sweep every tenant.
        config.redis.prefix = "myapp:{tenant_id}:".into();
        config.redis.central_prefix = "myapp".into();
        let (key, message) = config.validate().unwrap_err();
        assert_eq!(key, "redis.central_prefix");
        assert!(message.contains("`myapp:0195f3a2-7c4d-7e8f-9a0b-1c2d3e4f5a6b:cache:key` is under both"), "{message}");
        // A tenant prefix that is nothing but the id reaches a central prefix that looks like one.
        config.redis.prefix = "{tenant_id}".into();
        config.redis.central_prefix = "0195f3a2-".into();
        assert_eq!(config.validate().unwrap_err().0, "redis.central_prefix");
        config.redis.central_prefix = "central:".into();
        config.validate().unwrap();
        // And a central prefix that contains a whole tenant prefix.
        config.redis.prefix = "t:{tenant_id}".into();
        config.redis.central_prefix = "t:0195f3a2-7c4d-7e8f-9a0b-1c2d3e4f5a6b-central".into();
        assert_eq!(config.validate().unwrap_err().0, "redis.central_prefix");
        config.redis.central_prefix = "t-central".into();
        config.validate().unwrap();
        config.redis.prefix = "app_{tenant_id}_".into();
        config.redis.central_prefix = "central_".into();
        config.redis.per_tenant_database = true;
        config.redis.url = "redis://127.0.0.1:6379/3".into();
        assert_eq!(config.validate().unwrap_err().0, "redis.url", "the central database is one of the tenants'");
        config.redis.url = "redis://127.0.0.1:6379/0".into();
        config.validate().unwrap();
        config.redis.database_offset = 16;
        assert_eq!(config.validate().unwrap_err().0, "redis.database_offset");
    }

    #[test]
    fn cross_key_rules_name_the_key() {
        let mut config = Config::defaults_at(Path::new("/tmp"));
        config.tenant_database.driver = Driver::Postgres;
        assert_eq!(config.validate().unwrap_err().0, "tenant_database.server");
        config.tenant_database.servers.insert("default".into(), "mysql://root@127.0.0.1:3306/x".into());
        assert_eq!(config.validate().unwrap_err().0, "tenant_database.servers.default");
        config.tenant_database.driver = Driver::MySql;
        config.tenant_database.isolation = Isolation::Schema;
        assert_eq!(config.validate().unwrap_err().0, "tenant_database.isolation");
        config.tenant_database.isolation = Isolation::Database;
        config.tenant_database.pool_size = 100;
        assert_eq!(config.validate().unwrap_err().0, "tenant_database.connection_budget");
    }

    #[test]
    fn debug_shows_no_password() {
        let mut config = Config::defaults_at(Path::new("/tmp"));
        config.central.url = "postgres://app:s%40cret@db/central".into();
        config.tenant_database.servers.insert("eu".into(), "mysql://app:s%40cret@db/x".into());
        config.redis.url = "redis://:s%40cret@cache:6379".into();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s%40cret") && !shown.contains("s@cret"), "{shown}");
    }

    #[test]
    fn debug_of_a_loaded_file_shows_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, "[central]\nurl = \"postgres://app:s%40cret@db/central\"\n").unwrap();
        let shown = format!("{:?}", Config::load(dir.path(), Some(&file)).unwrap());
        assert!(!shown.contains("s%40cret") && !shown.contains("s@cret"), "{shown}");
    }

    #[test]
    fn plugin_sections_are_read_with_their_origin_and_others_refused() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Greeting {
            words: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, "[greeting]\nwords = \"hello\"\n").unwrap();
        let refused = Config::load(dir.path(), Some(&file)).unwrap_err().to_string();
        assert!(refused.contains("unknown section `greeting`"), "{refused}");
        let config = Config::load_with_sections(dir.path(), Some(&file), &["greeting"]).unwrap();
        assert_eq!(config.section::<Greeting>("greeting").unwrap().words, "hello");
        assert_eq!(config.section::<Greeting>("absent").unwrap().words, "", "an absent section is its defaults");
        std::fs::write(&file, "[greeting]\nwords = 3\n").unwrap();
        let config = Config::load_with_sections(dir.path(), Some(&file), &["greeting"]).unwrap();
        let wrong = config.section::<Greeting>("greeting").unwrap_err().to_string();
        assert!(wrong.contains("at key `greeting.words`"), "{wrong}");
    }

    /// `toml` loaded from a file, or the error's text.
    fn load_toml(toml: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, toml).unwrap();
        Config::load(dir.path(), Some(&file)).map_err(|err| err.to_string())
    }

    const TWO_SERVERS: &str = "[tenant_database]\ndriver = \"postgres\"\n[tenant_database.servers]\n\
        default = \"postgres://postgres@127.0.0.1:5432/postgres\"\n\
        [tenant_database.servers.eu]\nurl = \"postgres://postgres@127.0.0.1:5433/postgres\"\n";

    #[test]
    fn a_server_is_a_url_or_a_table_with_weight_and_budget() {
        let config = load_toml(&format!("{TWO_SERVERS}weight = 3\nconnection_budget = 20\n")).unwrap_err();
        assert!(config.contains("servers.default.connection_budget") && config.contains("every server"), "{config}");
        let config = load_toml(&format!("{TWO_SERVERS}weight = 3\n")).unwrap();
        let eu = &config.tenant_database.servers["eu"];
        assert_eq!((eu.url.expose(), eu.weight, eu.connection_budget), ("postgres://postgres@127.0.0.1:5433/postgres", 3, None));
        assert_eq!(config.tenant_database.servers["default"], ServerConfig::new("postgres://postgres@127.0.0.1:5432/postgres"));
        assert_eq!(config.connection_budgets(), (64, BTreeMap::new()), "no server budget: the shared one");
        // Written back as read: the short form where it says everything.
        let written = toml::to_string(&config).unwrap();
        assert!(written.contains("default = \"postgres://") && written.contains("weight = 3"), "{written}");
    }

    #[test]
    fn server_budgets_add_up_to_the_total() {
        let toml = TWO_SERVERS.replace("default = \"postgres://postgres@127.0.0.1:5432/postgres\"\n", "");
        let toml = format!(
            "{toml}connection_budget = 30\n[tenant_database.servers.default]\nurl = \"postgres://postgres@127.0.0.1:5432/postgres\"\nconnection_budget = 12\n"
        );
        let config = load_toml(&toml).unwrap();
        assert_eq!(config.connection_budgets(), (42, [("default".to_owned(), 12), ("eu".to_owned(), 30)].into()));
        let small = load_toml(&toml.replace("connection_budget = 12", "connection_budget = 2")).unwrap_err();
        assert!(small.contains("servers.default.connection_budget") && small.contains("pool_size"), "{small}");
    }

    #[test]
    fn bad_server_entries_are_refused_by_key() {
        for (toml, key) in [
            (format!("{TWO_SERVERS}weight = 0\n"), "servers.eu.weight"),
            (format!("{TWO_SERVERS}colour = \"red\"\n"), "colour"),
            (format!("{TWO_SERVERS}weight = \"heavy\"\n"), "weight"),
            (TWO_SERVERS.replace("servers.eu]", "servers.\"e u\"]"), "servers.e u"),
            (TWO_SERVERS.replace("url = ", "uri = "), "url"),
            (format!("{TWO_SERVERS}[tenant_database.servers.x]\nweight = 2\n"), "url"),
        ] {
            let err = load_toml(&toml).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
        }
        let placement =
            load_toml(&TWO_SERVERS.replace("driver = \"postgres\"", "driver = \"postgres\"\nplacement = \"random\"")).unwrap_err();
        assert!(placement.contains("placement") && placement.contains("least_tenants"), "{placement}");
    }

    #[test]
    fn sqlite_refuses_servers_it_would_never_use() {
        let mut config = Config::defaults_at(Path::new("/tmp"));
        config.tenant_database.servers.insert("eu".into(), "postgres://postgres@127.0.0.1/x".into());
        assert_eq!(config.validate().unwrap_err().0, "tenant_database.servers");
        assert!(config.check().unwrap_err().to_string().contains("tenant_database.servers"));
    }

    #[test]
    fn a_files_bucket_is_checked_with_the_rest() {
        let mut config = Config::defaults_at(Path::new("/tmp"));
        config.files.s3 = Some(crate::bucket::S3Config::new(""));
        assert_eq!(config.validate().unwrap_err().0, "files.s3.bucket");
        config.files.s3 = Some(crate::bucket::S3Config { endpoint: Some("localhost:9000".into()), ..crate::bucket::S3Config::new("b") });
        assert_eq!(config.validate().unwrap_err().0, "files.s3.endpoint");
        config.files.s3 = Some(crate::bucket::S3Config::new("b"));
        let checked = config.validate();
        if cfg!(feature = "s3") {
            assert!(checked.is_ok(), "{checked:?}");
        } else {
            assert!(checked.unwrap_err().1.contains("no S3 support"));
        }
    }

    #[test]
    fn template_provisioning_is_refused_where_there_are_no_templates() {
        let mut config = Config::defaults_at(Path::new("/tmp"));
        config.tenant_database.provision = Provision::Template;
        assert!(config.validate().is_ok(), "sqlite copies a file");
        config.tenant_database.servers.insert("default".into(), "postgres://postgres@127.0.0.1/x".into());
        config.tenant_database.driver = Driver::Postgres;
        assert!(config.validate().is_ok(), "postgres databases have templates");
        config.tenant_database.isolation = Isolation::Schema;
        assert_eq!(config.validate().unwrap_err().0, "tenant_database.provision");
        config.tenant_database.isolation = Isolation::Database;
        config.tenant_database.driver = Driver::MySql;
        config.tenant_database.servers.insert("default".into(), "mysql://root@127.0.0.1/x".into());
        let (key, message) = config.validate().unwrap_err();
        assert_eq!(key, "tenant_database.provision");
        assert!(message.contains("use `migrations`"), "{message}");
    }
}
