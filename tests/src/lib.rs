//! Test support shared by the library's integration tests (`tests/tests/`) and the binary's
//! end-to-end tests (`sample/tests/`): a [`TestEnv`] per test on one [`Backend`], with uniquely named
//! databases that are dropped when it goes out of scope.
//!
//! PostgreSQL and MariaDB are expected on 127.0.0.1:5432 (user `postgres`, trust) and
//! 127.0.0.1:3306 (`root`, no password). When one is missing, its tests are skipped with a line on
//! stderr; when `CI` is set, a missing server fails the test instead.
//!
//! `TENANCY_TEST_BACKENDS` (a comma list, set by `cargo xtask test --backend …`) runs only the
//! tests of those backends (`postgres`, `postgres-schema`, `mysql`, `redis`, `browser`, `s3`); the others
//! are skipped with a line, even under `CI`. SQLite always runs: it needs no server, and most
//! end-to-end tests use it.

pub mod bucket;
pub mod cluster;
pub mod http;
pub mod migrators;
pub mod prometheus;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tenancy_core::{Config, TenantId};

/// The configuration sections of the plugins linked into the sample binary.
pub const SAMPLE_PLUGIN_SECTIONS: &[&str] = &["homepage", "backup", "monitor"];

/// PostgreSQL's address on test machines.
pub const POSTGRES_ADDR: &str = "127.0.0.1:5432";
/// MariaDB's address on test machines.
pub const MYSQL_ADDR: &str = "127.0.0.1:3306";
/// Redis's address on test machines.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";
/// The S3-compatible server's (moto's, started by `.ci/services`) address on test machines.
pub const S3_ADDR: &str = "127.0.0.1:5055";
/// The two extra PostgreSQL clusters `.ci/services` starts, for tests over several servers.
pub const EXTRA_POSTGRES_ADDRS: [&str; 2] = ["127.0.0.1:5433", "127.0.0.1:5434"];
/// The second MariaDB server `.ci/services` starts, for moves between MariaDB servers.
pub const EXTRA_MYSQL_ADDR: &str = "127.0.0.1:3307";
/// The server names [`TestEnv::add_postgres_servers`] configures: the main one, then the extra clusters.
pub const SERVER_NAMES: [&str; 3] = ["default", "second", "third"];

/// Whether a server answers on `address`. Off CI a missing server is reported and its tests are
/// skipped; with `CI` set it fails the test.
pub fn service_available(name: &str, address: &str) -> bool {
    if !selected(name) {
        return false;
    }
    let socket = address.parse().expect("a socket address");
    if TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_ok() {
        return true;
    }
    assert!(!on_ci(), "CI is set but no {name} server answers on {address}: the {name} tests cannot run");
    // Written straight to stderr: the test harness captures `eprintln!`, and this must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {name} tests: no server on {address}");
    false
}

/// The variable `cargo xtask test --backend` sets.
pub const BACKENDS_ENV: &str = "TENANCY_TEST_BACKENDS";

/// Whether the tests of `name` (a backend or service) are to run: all are unless
/// [`BACKENDS_ENV`] lists others; SQLite always. Says so on stderr when they are not.
pub fn selected(name: &str) -> bool {
    #[allow(clippy::disallowed_methods)] // test support reads its own selection, not tenancy configuration
    let list = std::env::var(BACKENDS_ENV).ok();
    let chosen = is_selected(list.as_deref(), name);
    if !chosen {
        let _ = writeln!(std::io::stderr(), "SKIPPED {name} tests: not in {BACKENDS_ENV}");
    }
    chosen
}

fn is_selected(list: Option<&str>, name: &str) -> bool {
    let Some(list) = list.filter(|list| !list.trim().is_empty()) else { return true };
    let listed: Vec<&str> = list.split(',').map(str::trim).collect();
    name == "sqlite" || listed.contains(&name) || (name == "postgres-schema" && listed.contains(&"postgres"))
}

/// Whether this runs on CI: `CI` set to anything but empty, `0` or `false`.
pub fn on_ci() -> bool {
    #[allow(clippy::disallowed_methods)] // test support reads the CI convention, not tenancy configuration
    let value = std::env::var_os("CI");
    means_ci(value.as_deref())
}

fn means_ci(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !matches!(v.to_string_lossy().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn backends_are_chosen_by_the_list_and_sqlite_always_runs() {
        use super::is_selected;
        assert!(is_selected(None, "mysql") && is_selected(Some(""), "browser"), "no list: everything");
        assert!(is_selected(Some("postgres"), "postgres") && is_selected(Some("postgres"), "postgres-schema"));
        assert!(is_selected(Some("postgres"), "sqlite"));
        assert!(!is_selected(Some("postgres, redis"), "mysql") && is_selected(Some("postgres, redis"), "redis"));
        assert!(!is_selected(Some("postgres-schema"), "postgres"));
    }

    #[test]
    fn ci_is_any_value_but_empty_zero_or_false() {
        for (value, ci) in [(None, false), (Some(""), false), (Some("0"), false), (Some("false"), false), (Some("FALSE"), false)] {
            assert_eq!(super::means_ci(value.map(std::ffi::OsStr::new)), ci, "{value:?}");
        }
        for value in ["true", "1", "yes"] {
            assert!(super::means_ci(Some(std::ffi::OsStr::new(value))), "{value}");
        }
    }
}

/// A place tenant databases (and the registry) live in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite files in the test's temporary folder.
    Sqlite,
    /// A PostgreSQL database per tenant; the registry on PostgreSQL too.
    Postgres,
    /// A PostgreSQL schema per tenant, in the registry's database.
    PostgresSchema,
    /// A MariaDB database per tenant; the registry on MariaDB too.
    MySql,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 4] = [Self::Sqlite, Self::Postgres, Self::PostgresSchema, Self::MySql];

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::PostgresSchema => "postgres-schema",
            Self::MySql => "mysql",
        }
    }

    fn server(self) -> Option<&'static str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres | Self::PostgresSchema => Some(POSTGRES_ADDR),
            Self::MySql => Some(MYSQL_ADDR),
        }
    }

    /// Whether this backend's server answers. Off CI a missing server is reported and skipped; with
    /// `CI` set it fails the test.
    pub fn available(self) -> bool {
        self.server().is_none_or(|address| service_available(self.name(), address))
    }
}

/// One test's world: a temporary folder with a `tenancy.toml`, a unique prefix, and (on servers) its
/// own registry database. Everything named with the prefix is dropped on drop.
pub struct TestEnv {
    /// The backend.
    pub backend: Backend,
    dir: tempfile::TempDir,
    /// Unique per test: `t` + 10 hex digits + `_`.
    pub prefix: String,
    /// The extra servers this test put tenants on (their admin URLs), cleaned too.
    extra_servers: Vec<String>,
}

impl TestEnv {
    /// A new environment, or `None` (after saying so) if the backend's server is missing.
    pub fn new(backend: Backend) -> Option<Self> {
        if !backend.available() {
            return None;
        }
        let random = TenantId::new().simple();
        let env = Self {
            backend,
            dir: tempfile::tempdir().expect("a temporary folder"),
            prefix: format!("t{}_", &random[random.len() - 10..]),
            extra_servers: Vec::new(),
        };
        std::fs::write(env.dir.path().join("tenancy.toml"), env.config_toml()).expect("write tenancy.toml");
        std::fs::write(env.role_key_file(), tenancy_core::database::RoleKey::generate()).expect("write the role key");
        Some(env)
    }

    /// The role key of this environment's tenant roles.
    pub fn role_key_file(&self) -> PathBuf {
        self.dir().join("role.key")
    }

    /// Switches this environment to tenants sharing the server's user (`roles = "shared"`), as
    /// installations made before roles are; servers use a role per tenant otherwise.
    pub fn use_shared_roles(&self) {
        let path = self.dir().join("tenancy.toml");
        let toml = std::fs::read_to_string(&path).expect("read tenancy.toml");
        std::fs::write(&path, toml.replace("roles = \"per_tenant\"", "roles = \"shared\"")).expect("write tenancy.toml");
    }

    /// The test's folder (the `tenancy.toml` is there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry database's name on a server.
    pub fn central_database(&self) -> String {
        format!("{}central", self.prefix)
    }

    fn server_url(&self) -> Option<String> {
        match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(format!("postgres://postgres@{POSTGRES_ADDR}/postgres")),
            Backend::PostgresSchema => Some(format!("postgres://postgres@{POSTGRES_ADDR}/{}", self.central_database())),
            Backend::MySql => Some(format!("mysql://root@{MYSQL_ADDR}/mysql")),
        }
    }

    /// The registry URL.
    pub fn central_url(&self) -> String {
        match self.backend {
            Backend::Sqlite => "sqlite://storage/central.sqlite".into(),
            Backend::Postgres | Backend::PostgresSchema => format!("postgres://postgres@{POSTGRES_ADDR}/{}", self.central_database()),
            Backend::MySql => format!("mysql://root@{MYSQL_ADDR}/{}", self.central_database()),
        }
    }

    /// The `tenancy.toml` this environment uses.
    pub fn config_toml(&self) -> String {
        let (driver, isolation) = match self.backend {
            Backend::Sqlite => ("sqlite", "database"),
            Backend::Postgres => ("postgres", "database"),
            Backend::PostgresSchema => ("postgres", "schema"),
            Backend::MySql => ("mysql", "database"),
        };
        let mut toml = format!(
            "[central]\nurl = \"{}\"\n\n[tenant_database]\ndriver = \"{driver}\"\nisolation = \"{isolation}\"\nprefix = \"{}\"\nconnect_timeout_secs = 5\n",
            self.central_url(),
            self.prefix
        );
        // Servers: every tenant logs in as a role of its own, as a new installation does.
        if self.backend != Backend::Sqlite {
            toml.push_str(&format!("roles = \"per_tenant\"\nrole_key_file = \"{}\"\n", self.role_key_file().display()));
        }
        if let Some(url) = self.server_url() {
            toml.push_str(&format!("\n[tenant_database.servers]\ndefault = \"{url}\"\n"));
        }
        toml
    }

    /// Configures three PostgreSQL servers, [`SERVER_NAMES`]: the main cluster and the two extra
    /// ones, each as a table with its line of `settings` added (`"weight = 2"`, or `""`), and
    /// `placement`; under schema isolation each gets its own copy of the registry's database name
    /// to hold the schemas. `None` (after saying so, or failing under CI) when the extra clusters
    /// are not running, or the backend is not PostgreSQL.
    pub async fn add_postgres_servers(&mut self, settings: [&str; 3], placement: &str) -> Option<()> {
        if !matches!(self.backend, Backend::Postgres | Backend::PostgresSchema) {
            return None;
        }
        if !EXTRA_POSTGRES_ADDRS.iter().all(|address| service_available("postgres-servers", address)) {
            return None;
        }
        let database = if self.backend == Backend::PostgresSchema { self.central_database() } else { "postgres".into() };
        let mut toml = self.config_toml().split("\n[tenant_database.servers]").next().expect("the base configuration").to_owned();
        toml.push_str(&format!("placement = \"{placement}\"\n"));
        for ((name, address), extra) in SERVER_NAMES.iter().zip(std::iter::once(POSTGRES_ADDR).chain(EXTRA_POSTGRES_ADDRS)).zip(settings) {
            toml.push_str(&format!("\n[tenant_database.servers.{name}]\nurl = \"postgres://postgres@{address}/{database}\"\n{extra}\n"));
        }
        for address in EXTRA_POSTGRES_ADDRS {
            let admin = format!("postgres://postgres@{address}/postgres");
            if self.backend == Backend::PostgresSchema {
                admin_execute(&admin, &format!("CREATE DATABASE \"{database}\"")).await;
            }
            self.extra_servers.push(admin);
        }
        std::fs::write(self.dir().join("tenancy.toml"), toml).expect("write tenancy.toml");
        Some(())
    }

    /// Configures two MariaDB servers, `default` (the main one) and `second` (the one
    /// `.ci/services` starts on 3307). `None` (after saying so, or failing under CI) when the
    /// second is not running, or the backend is not MariaDB.
    pub async fn add_mysql_servers(&mut self) -> Option<()> {
        if self.backend != Backend::MySql || !service_available("mysql-servers", EXTRA_MYSQL_ADDR) {
            return None;
        }
        let mut toml = self.config_toml().split("\n[tenant_database.servers]").next().expect("the base configuration").to_owned();
        for (name, address) in SERVER_NAMES.iter().zip([MYSQL_ADDR, EXTRA_MYSQL_ADDR]) {
            toml.push_str(&format!("\n[tenant_database.servers.{name}]\nurl = \"mysql://root@{address}/mysql\"\n"));
        }
        self.extra_servers.push(format!("mysql://root@{EXTRA_MYSQL_ADDR}/mysql"));
        std::fs::write(self.dir().join("tenancy.toml"), toml).expect("write tenancy.toml");
        Some(())
    }

    /// A URL of the database `database` on the server named `name` by [`TestEnv::add_postgres_servers`].
    pub fn postgres_server_url(name: &str, database: &str) -> String {
        let index = SERVER_NAMES.iter().position(|known| *known == name).expect("a server of add_postgres_servers");
        let address = std::iter::once(POSTGRES_ADDR).chain(EXTRA_POSTGRES_ADDRS).nth(index).expect("an address");
        format!("postgres://postgres@{address}/{database}")
    }

    /// The configuration, loaded from the environment's `tenancy.toml` as the sample binary
    /// would (its plugins' sections allowed).
    pub fn config(&self) -> Config {
        Config::load_with_sections(self.dir(), Some(&self.dir().join("tenancy.toml")), SAMPLE_PLUGIN_SECTIONS)
            .expect("the test configuration is valid")
    }

    /// Runs `sql` on the tenants' server as its admin (the shared database under schema isolation).
    pub async fn execute_on_server(&self, sql: &str) {
        admin_execute(&self.server_url().expect("a server backend"), sql).await;
    }

    /// Creates the registry and opens tenancy with the sample application's migrations, as
    /// `tenancy init` and the sample binary would.
    pub async fn open_sample(&self) -> tenancy_core::Tenancy {
        self.create_central_database().await;
        tenancy_core::Tenancy::builder(self.config())
            .tenant_migrator(std::sync::Arc::new(tenancy_core::migrate::SeaOrmMigrator::<migration::Migrator>::default()))
            .open()
            .await
            .expect("open tenancy")
    }

    /// Creates the registry database on a server (what `tenancy init` does).
    pub async fn create_central_database(&self) {
        tenancy_core::Registry::create_database_if_missing(&self.config()).await.expect("create the registry database");
    }

    /// Where SQLite tenant files go.
    pub fn sqlite_dir(&self) -> PathBuf {
        self.dir().join("storage/tenants")
    }

    /// Where a new SQLite tenant database named `database` is: in its bucket of [`Self::sqlite_dir`].
    pub fn sqlite_file(&self, database: &str) -> PathBuf {
        self.sqlite_dir().join(tenancy_core::database::bucket_of(database)).join(format!("{database}.sqlite"))
    }

    /// The number of tenant databases (or schemas, or files) with this environment's prefix.
    pub async fn count_tenant_databases(&self) -> usize {
        self.tenant_databases().await.len()
    }

    /// Names of the tenant databases (or schemas, or files) with this environment's prefix.
    pub async fn tenant_databases(&self) -> Vec<String> {
        let pattern = like_prefix(&self.prefix);
        let central = self.central_database();
        let names = match self.backend {
            Backend::Sqlite => {
                return sqlite_files(&self.sqlite_dir());
            }
            Backend::Postgres => {
                admin_names(&self.postgres_admin(), &format!("SELECT datname FROM pg_database WHERE datname LIKE '{pattern}'")).await
            }
            Backend::PostgresSchema => {
                admin_names(
                    &self.server_url().expect("a server"),
                    &format!("SELECT nspname FROM pg_namespace WHERE nspname LIKE '{pattern}'"),
                )
                .await
            }
            Backend::MySql => {
                admin_names(
                    &self.mysql_admin(),
                    &format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{pattern}'"),
                )
                .await
            }
        };
        names.into_iter().filter(|n| n != &central).collect()
    }

    /// The tenant roles (MariaDB users) with this environment's prefix on the main server.
    pub async fn roles(&self) -> Vec<String> {
        let admin = if self.backend == Backend::MySql { self.mysql_admin() } else { self.postgres_admin() };
        tenant_roles(self.backend, &admin, &self.prefix).await
    }

    fn postgres_admin(&self) -> String {
        format!("postgres://postgres@{POSTGRES_ADDR}/postgres")
    }

    fn mysql_admin(&self) -> String {
        format!("mysql://root@{MYSQL_ADDR}/mysql")
    }

    /// Drops what has the prefix on the main server and on each of `extra_servers` (admin URLs).
    async fn cleanup(backend: Backend, prefix: String, main: String, extra_servers: Vec<String>) {
        let admins: Vec<String> = std::iter::once(main).chain(extra_servers).collect();
        let pattern = like_prefix(&prefix);
        match backend {
            Backend::Sqlite => {}
            Backend::Postgres | Backend::PostgresSchema => {
                for admin in &admins {
                    for name in admin_names(admin, &format!("SELECT datname FROM pg_database WHERE datname LIKE '{pattern}'")).await {
                        // A tenant template (template provisioning) must be unmarked to be dropped.
                        admin_execute(admin, &format!("ALTER DATABASE \"{name}\" WITH IS_TEMPLATE false")).await;
                        admin_execute(admin, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                    }
                }
            }
            Backend::MySql => {
                for admin in &admins {
                    let sql = format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{pattern}'");
                    for name in admin_names(admin, &sql).await {
                        admin_execute(admin, &format!("DROP DATABASE IF EXISTS `{name}`")).await;
                    }
                }
            }
        }
        // Tenant roles, after the databases they owned.
        for admin in &admins {
            for role in tenant_roles(backend, admin, &prefix).await {
                let drop = match backend {
                    Backend::MySql => format!("DROP USER IF EXISTS '{role}'@'%'"),
                    _ => format!("DROP ROLE IF EXISTS \"{role}\""),
                };
                admin_execute(admin, &drop).await;
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.backend == Backend::Sqlite {
            return;
        }
        let main = if self.backend == Backend::MySql { self.mysql_admin() } else { self.postgres_admin() };
        let (backend, prefix, extra) = (self.backend, self.prefix.clone(), self.extra_servers.clone());
        // A thread of its own: drop may run inside a test's runtime, where another cannot start.
        let cleanup = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(Self::cleanup(backend, prefix, main, extra));
        });
        // A failed cleanup leaves databases behind: say so, unless the test is failing anyway.
        if cleanup.join().is_err() && !std::thread::panicking() {
            panic!("dropping the test databases with prefix `{}` failed; they are left on the server", self.prefix);
        }
    }
}

/// Names of the tenant database files in `folder`: at the flat path and in every bucket (the
/// templates' folder is not a bucket).
fn sqlite_files(folder: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && name != "templates" {
            names.extend(sqlite_files(&entry.path()));
        } else if name.ends_with(".sqlite") {
            names.push(name);
        }
    }
    names
}

/// The tenant roles (MariaDB users) with `prefix` on the server at `admin`.
pub async fn tenant_roles(backend: Backend, admin: &str, prefix: &str) -> Vec<String> {
    let pattern = like_prefix(prefix);
    match backend {
        Backend::Sqlite => Vec::new(),
        Backend::MySql => admin_names(admin, &format!("SELECT CAST(User AS CHAR) FROM mysql.user WHERE User LIKE '{pattern}'")).await,
        Backend::Postgres | Backend::PostgresSchema => {
            admin_names(admin, &format!("SELECT rolname::text FROM pg_roles WHERE rolname LIKE '{pattern}'")).await
        }
    }
}

/// `prefix%` with `_` escaped, for LIKE.
pub fn like_prefix(prefix: &str) -> String {
    format!("{}%", prefix.replace('_', "\\_"))
}

/// The first column of every row `sql` returns on the server at `url`, as text.
pub async fn admin_names(url: &str, sql: &str) -> Vec<String> {
    let db = Database::connect(url).await.expect("connect to the test server");
    let backend: DbBackend = db.get_database_backend();
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.expect("list databases");
    let names = rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("a name")).collect();
    let _ = db.close().await;
    names
}

/// Runs `sql` on the server at `url`; panics if it fails.
pub async fn admin_execute(url: &str, sql: &str) {
    let db = Database::connect(url).await.expect("connect to the test server");
    db.execute_unprepared(sql).await.expect("clean up a test database");
    let _ = db.close().await;
}

/// Indexes in a tenant database, through the tenant's own connection (by table).
pub async fn index_names(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "SELECT tbl_name || '.' || name FROM sqlite_master WHERE type = 'index' ORDER BY 1",
        DbBackend::Postgres => "SELECT tablename || '.' || indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1",
        _ => {
            "SELECT DISTINCT CONCAT(table_name, '.', index_name) FROM information_schema.statistics WHERE table_schema = DATABASE() ORDER BY 1"
        }
    };
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("list indexes");
    rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("an index name")).collect()
}

/// Tables in a tenant database, through the tenant's own connection.
pub async fn table_names(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        DbBackend::Postgres => "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1",
        _ => "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1",
    };
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("list tables");
    rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("a table name")).collect()
}

/// NATS (with JetStream)'s address on test machines.
pub const NATS_ADDR: &str = "127.0.0.1:4222";
