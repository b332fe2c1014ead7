//! The MySQL and MariaDB dialect: a database per tenant.

use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::ConnectOptions;

use super::manager::PoolSettings;
use super::server::{Dialect, ServerManager};
use super::{DatabaseName, Driver, Login, ServerUrl};

/// A database per tenant on one MySQL or MariaDB server.
pub type MySqlManager = ServerManager<MySqlDatabase>;

/// See [`MySqlManager`].
#[derive(Debug)]
pub struct MySqlDatabase;

impl Dialect for MySqlDatabase {
    const DRIVER: Driver = Driver::MySql;
    const EXISTS_SQL: &'static str = "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?";
    const BYTES_SQL: &'static str = "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) \
         FROM information_schema.tables WHERE FIND_IN_SET(table_schema, ?)";
    // A session in a transaction shows as `Sleep` between statements: InnoDB's list of open
    // transactions tells those apart from idle pooled connections.
    const BUSY_SQL: &'static str = "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.PROCESSLIST p WHERE p.DB = ? \
         AND p.ID <> CONNECTION_ID() AND (p.COMMAND <> 'Sleep' OR FIND_IN_SET(p.ID, ?))";
    // Not `information_schema.INNODB_TRX`: InnoDB refills it only after 0.1 s without a reader,
    // so while others read it (another move waiting) it can miss a transaction for good. The
    // status is made afresh on each call.
    const ACTIVE_TRANSACTIONS: Option<&'static str> = Some("SHOW ENGINE INNODB STATUS");

    /// The thread ids of the `ACTIVE` transactions in InnoDB's status, comma-separated.
    fn active_transactions(status: &str) -> String {
        let mut active = false;
        let mut threads = Vec::new();
        for line in status.lines() {
            if let Some(transaction) = line.strip_prefix("---TRANSACTION ") {
                active = transaction.contains(", ACTIVE");
            } else if let Some(rest) = line.strip_prefix("MariaDB thread id ").or_else(|| line.strip_prefix("MySQL thread id "))
                && active
            {
                threads.extend(rest.split(',').next().filter(|id| id.bytes().all(|b| b.is_ascii_digit())));
            }
        }
        threads.join(",")
    }

    fn create_sql(database: &DatabaseName) -> String {
        format!("CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", database.mysql_quoted())
    }

    fn drop_sql(database: &DatabaseName) -> String {
        format!("DROP DATABASE IF EXISTS {}", database.mysql_quoted())
    }

    fn is_already_exists(message: &str) -> bool {
        // 1007 is ER_DB_CREATE_EXISTS.
        message.contains("1007") || message.contains("database exists")
    }

    fn location(server: &ServerUrl, database: &DatabaseName) -> String {
        format!("mysql://{}/{database}", server.host_port())
    }

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName, login: Option<&Login>) -> ConnectOptions {
        let url = server.connection_url_as(Some(database.as_str()), login);
        let mut options = settings.tenant_options(url);
        // The state of a connection as opened, which every connection must be in when it goes
        // back to the pool. MySQL has no statement that resets a session (the protocol's reset
        // is not sqlx's to send), so a connection tenant code changed is closed instead.
        let opened = Arc::new(Mutex::new(None::<String>));
        options.map_sqlx_mysql_pool_opts(move |pool| {
            let (on_connect, on_release) = (opened.clone(), opened.clone());
            pool.after_connect(move |connection, _| {
                let opened = on_connect.clone();
                Box::pin(async move {
                    let state = session_state(connection).await.ok();
                    *opened.lock().unwrap_or_else(PoisonError::into_inner) = state;
                    Ok(())
                })
            })
            .after_release(move |connection, _| {
                let opened = on_release.clone();
                Box::pin(async move {
                    // One left inside a transaction differs too (`@@in_transaction`): closing it rolls back.
                    let state = session_state(connection).await?;
                    Ok(opened.lock().unwrap_or_else(PoisonError::into_inner).as_ref() == Some(&state))
                })
            })
        });
        options
    }

    const ROLE_EXISTS_SQL: &'static str = "SELECT 1 FROM mysql.user WHERE User = ? AND Host = '%'";
    // Making users and granting them a database's privileges. CHAR(39) is a quote, as the grantee is written.
    const MAY_CREATE_ROLES_SQL: &'static str = "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.USER_PRIVILEGES \
         WHERE GRANTEE = CONCAT(CHAR(39), SUBSTRING_INDEX(CURRENT_USER(), '@', 1), CHAR(39), '@', CHAR(39), \
         SUBSTRING_INDEX(CURRENT_USER(), '@', -1), CHAR(39)) AND PRIVILEGE_TYPE = 'CREATE USER' AND IS_GRANTABLE = 'YES'";

    fn role_sessions_sql(role: &DatabaseName) -> String {
        // Role names are checked identifiers: nothing to escape in the literal.
        format!("SELECT CAST(ID AS CHAR) FROM information_schema.PROCESSLIST WHERE USER = '{role}' AND ID <> CONNECTION_ID()")
    }

    fn end_session_sql(id: u64) -> String {
        format!("KILL CONNECTION {id}")
    }

    fn secure_sql(database: &DatabaseName, login: &Login) -> Vec<String> {
        let role = user(&login.role);
        // The password's hash, not the password: the server never sees that, nor logs it.
        let identified = format!("IDENTIFIED WITH mysql_native_password AS '{}'", native_password_hash(login.password()));
        // In a grant `_` matches any character; escaped, it is only itself.
        let database = format!("`{}`", database.as_str().replace('_', "\\_"));
        vec![
            format!("CREATE USER IF NOT EXISTS {role} {identified}"),
            format!("ALTER USER {role} {identified}"),
            format!("GRANT ALL PRIVILEGES ON {database}.* TO {role}"),
        ]
    }

    fn drop_role_sql(role: &DatabaseName) -> Vec<String> {
        vec![format!("DROP USER IF EXISTS {}", user(role))]
    }
}

/// `mysql_native_password`'s stored form of `password`: `*` and the SHA-1 of its SHA-1, in
/// upper-case hex digits (no quote can be in it).
fn native_password_hash(password: &str) -> String {
    use sha1::{Digest, Sha1};
    let twice = Sha1::digest(Sha1::digest(password.as_bytes()));
    std::iter::once("*".to_owned()).chain(twice.iter().map(|byte| format!("{byte:02X}"))).collect()
}

/// A tenant's user: any host, as the server's user may connect from anywhere.
fn user(role: &DatabaseName) -> String {
    format!("'{role}'@'%'")
}

/// What a lease may change on a MySQL session and must not leave behind: an open transaction, the
/// current database, role, SQL mode, time zone, autocommit, key checks, character set, and user
/// variables (their count; MariaDB lists them). One string, compared whole.
async fn session_state(connection: &mut sea_orm::sqlx::MySqlConnection) -> Result<String, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::Row;
    let row = sea_orm::sqlx::query(
        "SELECT CONCAT_WS('|', @@in_transaction, IFNULL(DATABASE(), ''), IFNULL(CURRENT_ROLE(), ''), @@session.sql_mode, @@session.time_zone, \
         @@session.autocommit, @@session.foreign_key_checks, @@session.unique_checks, @@session.sql_safe_updates, \
         @@session.character_set_client, @@session.collation_connection, (SELECT COUNT(*) FROM information_schema.USER_VARIABLES))",
    )
    .fetch_one(connection)
    .await?;
    row.try_get(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_password_hash_is_mysql_s() {
        // `SELECT PASSWORD('pencil')` on MariaDB 10.11.
        assert_eq!(native_password_hash("pencil"), "*7614BE58636C810A9D8970A50B3B2A78450413E4");
    }

    #[test]
    fn open_transactions_are_read_from_innodb_status() {
        let status = "LIST OF TRANSACTIONS FOR EACH SESSION:\n\
            ---TRANSACTION 7128, ACTIVE 1 sec\n\
            1 lock struct(s), heap size 1128, 0 row lock(s), undo log entries 1\n\
            MariaDB thread id 913, OS thread handle 140197463877312, query id 12735 127.0.0.1 root\n\
            ---TRANSACTION 421672, not started\n\
            MariaDB thread id 914, OS thread handle 1, query id 1 127.0.0.1 root\n\
            ---TRANSACTION 7130, ACTIVE 0 sec inserting\n\
            MySQL thread id 77, OS thread handle 2, query id 3 localhost root update\n\
            --------\nFILE I/O\n";
        assert_eq!(MySqlDatabase::active_transactions(status), "913,77");
        assert_eq!(MySqlDatabase::active_transactions(""), "");
    }
}
