//! Where a tenant's data lives, in the terms the dump programs and a dedicated connection need:
//! a server login (PostgreSQL, MySQL) or a file (SQLite). Built from the database manager's
//! [`ConnectionTarget`], so backups reach exactly what the application reaches.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tenancy_core::database::ConnectionTarget;
use tenancy_core::{Driver, Tenancy, Tenant};

use crate::manifest::DumpFormat;

/// How long to wait for a server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A login on a database server. Its `Debug` hides the password.
#[derive(Clone)]
pub struct ServerLogin {
    url: url::Url,
}

impl std::fmt::Debug for ServerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.host(), self.port(), self.database())
    }
}

impl ServerLogin {
    fn host(&self) -> String {
        self.url.host_str().unwrap_or("localhost").trim_matches(['[', ']']).to_owned()
    }

    fn port(&self) -> u16 {
        self.url.port().unwrap_or(if self.url.scheme().starts_with("postgres") { 5432 } else { 3306 })
    }

    fn user(&self) -> String {
        decode(self.url.username())
    }

    fn password(&self) -> Option<String> {
        self.url.password().map(decode)
    }

    /// The database logged into.
    pub fn database(&self) -> String {
        decode(self.url.path().trim_start_matches('/'))
    }

    /// The same login on another database of the server.
    pub fn on(&self, database: &str) -> Self {
        let mut url = self.url.clone();
        url.set_path(&format!("/{database}"));
        Self { url }
    }

    /// Sets the libpq environment of `command`: server, user, database and password, so none is
    /// on its command line (where `ps` shows it to every user of the machine).
    pub fn set_pg_env(&self, command: &mut Command) {
        command
            .env("PGHOST", self.host())
            .env("PGPORT", self.port().to_string())
            .env("PGUSER", self.user())
            .env("PGDATABASE", self.database())
            .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT.as_secs().to_string())
            .env("PGAPPNAME", "tenancy-backup")
            .env_remove("PGSERVICE")
            .env_remove("PGPASSFILE");
        match self.password() {
            Some(password) => command.env("PGPASSWORD", password),
            None => command.env_remove("PGPASSWORD"),
        };
    }

    /// A MySQL option file (mode 0600, removed when dropped) with the login: passed as the first
    /// option, `--defaults-extra-file=…`, it keeps the password off the command line.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn mysql_defaults(&self) -> std::io::Result<tempfile::NamedTempFile> {
        let mut file = tempfile::Builder::new().prefix("tenancy-backup-").suffix(".cnf").tempfile()?;
        let quoted = |value: &str| format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
        writeln!(file, "[client]")?;
        writeln!(file, "host={}", quoted(&self.host()))?;
        writeln!(file, "port={}", self.port())?;
        writeln!(file, "user={}", quoted(&self.user()))?;
        if let Some(password) = self.password() {
            writeln!(file, "password={}", quoted(&password))?;
        }
        file.flush()?;
        Ok(file)
    }

    /// Runs one statement on a connection of its own (creating or dropping a scratch database).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses it.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let db = self.connect().await?;
        let executed = db.execute_unprepared(sql).await;
        db.close().await?;
        executed?;
        Ok(())
    }

    /// One connection to the login's database.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn connect(&self) -> Result<DatabaseConnection, sea_orm::DbErr> {
        connect_one(self.url.as_str()).await
    }
}

/// A URL part as the server sees it: `p%40ss` is `p@ss`.
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// A single connection (never a pool: statements that set up a session or a snapshot must all
/// go to the same one).
async fn connect_one(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).min_connections(0).connect_timeout(CONNECT_TIMEOUT).acquire_timeout(CONNECT_TIMEOUT).sqlx_logging(false);
    Database::connect(options).await
}

/// A tenant's data.
#[derive(Debug, Clone)]
pub enum Source {
    /// A PostgreSQL database, or a schema of the shared one.
    Postgres {
        /// The login on the tenant's database (or the shared one).
        login: ServerLogin,
        /// The tenant's schema under schema isolation.
        schema: Option<String>,
    },
    /// A MySQL or MariaDB database.
    MySql {
        /// The login on the tenant's database.
        login: ServerLogin,
    },
    /// A SQLite file.
    Sqlite {
        /// The file.
        path: PathBuf,
    },
}

impl Source {
    /// Where `tenant`'s data is.
    ///
    /// # Errors
    /// When its server is not configured, or the manager's URL cannot be read.
    pub fn of(tenancy: &Tenancy, tenant: &Tenant) -> anyhow::Result<Self> {
        let manager = tenancy.manager_of(tenant)?;
        // Backups are the operator's work: the server's user reads and restores every object.
        let target = manager.connection_target(&tenant.database, None);
        Self::from_target(manager.driver(), &target)
    }

    fn from_target(driver: Driver, target: &ConnectionTarget) -> anyhow::Result<Self> {
        let url = url::Url::parse(&target.url).map_err(|err| anyhow::anyhow!("the tenant's database URL cannot be read: {err}"))?;
        Ok(match driver {
            Driver::Postgres => Self::Postgres { login: ServerLogin { url }, schema: target.schema.clone() },
            Driver::MySql => Self::MySql { login: ServerLogin { url } },
            Driver::Sqlite => {
                let path = target.url.trim_start_matches("sqlite://").split('?').next().unwrap_or_default();
                Self::Sqlite { path: PathBuf::from(decode(path)) }
            }
        })
    }

    /// How its dump is written.
    pub fn format(&self) -> DumpFormat {
        match self {
            Self::Postgres { .. } => DumpFormat::PgCustom,
            Self::MySql { .. } => DumpFormat::MysqlSql,
            Self::Sqlite { .. } => DumpFormat::SqliteFile,
        }
    }

    /// `postgres`, `mysql`, `sqlite`.
    pub fn driver(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::MySql { .. } => "mysql",
            Self::Sqlite { .. } => "sqlite",
        }
    }

    /// `database`, `schema` or `file`.
    pub fn isolation(&self) -> &'static str {
        match self {
            Self::Postgres { schema: Some(_), .. } => "schema",
            Self::Postgres { .. } | Self::MySql { .. } => "database",
            Self::Sqlite { .. } => "file",
        }
    }

    /// The database, schema or file name the data is in.
    pub fn container(&self) -> String {
        match self {
            Self::Postgres { schema: Some(schema), .. } => schema.clone(),
            Self::Postgres { login, .. } | Self::MySql { login } => login.database(),
            Self::Sqlite { path } => path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default(),
        }
    }

    /// One connection to the tenant's data, with the schema on the search path.
    ///
    /// # Errors
    /// When it cannot be reached.
    pub async fn connect(&self) -> Result<DatabaseConnection, sea_orm::DbErr> {
        match self {
            Self::Postgres { login, schema } => {
                let db = login.connect().await?;
                if let Some(schema) = schema {
                    db.execute_unprepared(&format!("SET search_path TO {}", crate::sql::quote_ident(schema))).await?;
                }
                Ok(db)
            }
            Self::MySql { login } => login.connect().await,
            Self::Sqlite { path } => {
                let url = url::Url::from_file_path(path)
                    .map_err(|()| sea_orm::DbErr::Custom(format!("`{}` is not an absolute path", path.display())))?;
                let db = connect_one(&format!("sqlite://{}?mode=rw", url.path())).await?;
                db.execute_unprepared("PRAGMA busy_timeout = 10000").await?;
                Ok(db)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn login() -> ServerLogin {
        ServerLogin { url: url::Url::parse("mysql://app%40ops:p%40ss%22word@db.internal:3307/tenant_x").unwrap() }
    }

    #[test]
    fn the_password_goes_to_a_private_file_or_the_environment_never_the_command_line() {
        let defaults = login().mysql_defaults().unwrap();
        let mode = std::fs::metadata(defaults.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(defaults.path()).unwrap();
        assert!(text.contains(r#"password="p@ss\"word""#) && text.contains(r#"user="app@ops""#) && text.contains("port=3307"), "{text}");

        let mut command = Command::new("pg_dump");
        login().set_pg_env(&mut command);
        assert!(command.get_args().next().is_none(), "the login went on the command line");
        let env: Vec<(String, String)> =
            command.get_envs().filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), v?.to_string_lossy().into_owned()))).collect();
        assert!(env.contains(&("PGPASSWORD".into(), "p@ss\"word".into())), "{env:?}");
        assert!(env.contains(&("PGDATABASE".into(), "tenant_x".into())));
        assert_eq!(format!("{:?}", login()), "db.internal:3307/tenant_x", "Debug shows no credentials");
    }
}
