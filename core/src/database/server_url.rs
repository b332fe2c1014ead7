//! [`ServerUrl`]: a database server's URL that never shows its password.

use std::fmt;

use url::Url;

use super::Driver;

/// The URL of a PostgreSQL or MySQL server. `Display` and `Debug` show scheme, host, port and
/// database only; the credentials leave this type only through [`ServerUrl::connection_url`].
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    url: Url,
    driver: Driver,
}

/// A server URL that cannot be used. The message never repeats the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    /// Not a URL at all.
    #[error("`{shown}` is not a URL ({reason}); expected e.g. `{}`", Driver::Postgres.example_url())]
    Malformed {
        /// The input with anything after `://` hidden, since it may hold a password.
        shown: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A scheme other than postgres, postgresql, mysql or mariadb.
    #[error("unsupported database URL scheme `{0}`: expected `sqlite`, `postgres` or `mysql`")]
    Scheme(String),
    /// No host.
    #[error("the URL `{0}` has no host")]
    NoHost(String),
}

impl ServerUrl {
    /// Parses a `postgres://` or `mysql://` URL.
    ///
    /// # Errors
    /// [`ServerUrlError`], which never contains the password.
    pub fn parse(input: &str) -> Result<Self, ServerUrlError> {
        let url = Url::parse(input).map_err(|err| ServerUrlError::Malformed {
            shown: match input.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://…"),
                None => "…".to_owned(),
            },
            reason: err.to_string(),
        })?;
        let driver = match url.scheme() {
            "postgres" | "postgresql" => Driver::Postgres,
            "mysql" | "mariadb" => Driver::MySql,
            other => return Err(ServerUrlError::Scheme(other.to_owned())),
        };
        if let Some(password) = url.password() {
            crate::secret::remember(password);
        }
        let server = Self { url, driver };
        if server.url.host_str().is_none_or(str::is_empty) {
            return Err(ServerUrlError::NoHost(server.to_string()));
        }
        Ok(server)
    }

    /// Which engine the server runs.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    fn is_loopback(&self) -> bool {
        match self.url.host() {
            // Hosts of non-special schemes like `postgres://` are opaque strings, IP addresses included.
            Some(url::Host::Domain(domain)) => {
                domain == "localhost" || domain.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
    }

    /// `host:port`, for messages.
    pub fn host_port(&self) -> String {
        let port = self.url.port().unwrap_or(match self.driver {
            Driver::MySql => 3306,
            _ => 5432,
        });
        format!("{}:{port}", self.url.host_str().unwrap_or_default())
    }

    /// The database named in the URL (`postgres` on PostgreSQL when none is named).
    pub fn database(&self) -> &str {
        match self.url.path().trim_start_matches('/') {
            "" if self.driver == Driver::Postgres => "postgres",
            db => db,
        }
    }

    /// The full URL, password included, to hand to the driver. Never print it.
    ///
    /// On a loopback PostgreSQL server with no `sslmode` in the URL, TLS is switched off: it protects
    /// nothing there, and negotiating it costs ~90 ms per connection here (rustls loads the system's
    /// root certificates each time). Any `sslmode` given in the URL is kept as it is.
    pub fn connection_url(&self) -> String {
        let mut url = self.url.clone();
        if self.driver == Driver::Postgres && self.is_loopback() && !url.query_pairs().any(|(key, _)| key == "sslmode") {
            url.query_pairs_mut().append_pair("sslmode", "disable");
        }
        if self.driver == Driver::MySql {
            // sqlx knows only the `mysql` scheme.
            let rest = url.as_str().split_once("://").map(|(_, rest)| rest.to_owned()).unwrap_or_default();
            url = Url::parse(&format!("mysql://{rest}")).expect("only the scheme changed");
        }
        url.to_string()
    }

    /// The full URL with the database replaced by `database`. Never print it.
    pub fn connection_url_for(&self, database: &str) -> String {
        let mut url = Url::parse(&self.connection_url()).expect("connection_url is a valid URL");
        url.set_path(&format!("/{database}"));
        url.to_string()
    }

    /// [`ServerUrl::connection_url_for`] `database` (or, with none, [`ServerUrl::connection_url`]),
    /// logging in as `login` (a tenant's role) instead of the URL's user where one is given. Never
    /// print it.
    pub fn connection_url_as(&self, database: Option<&str>, login: Option<&super::Login>) -> String {
        let url = database.map_or_else(|| self.connection_url(), |database| self.connection_url_for(database));
        let Some(login) = login else { return url };
        let mut url = Url::parse(&url).expect("connection_url is a valid URL");
        // A role name is a checked identifier and a password 64 hex digits: neither needs escaping.
        url.set_username(login.role.as_str()).and_then(|()| url.set_password(Some(login.password()))).expect("a server URL has a host");
        url.to_string()
    }

    /// Opens and closes a TCP connection to the server: a refused or unreachable server is reported
    /// at once with the operating system's reason, where a pool would retry until its timeout.
    ///
    /// # Errors
    /// The connection error, or `TimedOut` after `timeout`.
    pub async fn probe(&self, timeout: std::time::Duration) -> std::io::Result<()> {
        let address = self.host_port();
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
            Ok(stream) => stream.map(drop),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {}s", timeout.as_secs()))),
        }
    }

    /// Removes the password from `text`, as it stands in the URL (percent-encoded) and decoded, in
    /// case a driver quotes either back in an error.
    pub fn scrub(&self, text: &str) -> String {
        let Some(password) = self.url.password().filter(|p| !p.is_empty()) else { return text.to_owned() };
        let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy();
        text.replace(password, "***").replace(decoded.as_ref(), "***")
    }
}

impl fmt::Display for ServerUrl {
    /// `postgres://host:port/database`, without user or password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}/{}", self.driver, self.host_port(), self.database())
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug_hide_credentials() {
        let url = ServerUrl::parse("postgres://admin:s3cret@db.internal:6543/app").unwrap();
        assert_eq!(url.to_string(), "postgres://db.internal:6543/app");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.connection_url().contains("s3cret"));
        assert_eq!(url.scrub("failed for s3cret"), "failed for ***");
        assert_eq!(url.host_port(), "db.internal:6543");
    }

    #[test]
    fn defaults_and_schemes() {
        let pg = ServerUrl::parse("postgresql://u@h").unwrap();
        assert_eq!((pg.driver(), pg.database(), pg.host_port().as_str()), (Driver::Postgres, "postgres", "h:5432"));
        let maria = ServerUrl::parse("mariadb://root@127.0.0.1/x").unwrap();
        assert_eq!(maria.driver(), Driver::MySql);
        assert!(maria.connection_url().starts_with("mysql://"));
        assert!(maria.connection_url_for("tenant_1").ends_with("/tenant_1"));
    }

    #[test]
    fn tls_is_off_on_loopback_unless_asked_for() {
        let local = ServerUrl::parse("postgres://u@127.0.0.1:5432/app").unwrap();
        assert!(local.connection_url().ends_with("/app?sslmode=disable"));
        assert!(local.connection_url_for("t1").ends_with("/t1?sslmode=disable"));
        let asked = ServerUrl::parse("postgres://u@localhost/app?sslmode=require").unwrap();
        assert!(asked.connection_url().ends_with("sslmode=require"));
        let remote = ServerUrl::parse("postgres://u@db.example.com/app").unwrap();
        assert!(!remote.connection_url().contains("sslmode"));
        assert!(matches!(ServerUrl::parse("redis://h"), Err(ServerUrlError::Scheme(_))));
    }

    #[test]
    fn malformed_urls_do_not_echo_passwords() {
        let err = ServerUrl::parse("postgres://u:pa ss@[bad/x").unwrap_err();
        assert!(!err.to_string().contains("pa ss"), "{err}");
    }
}
