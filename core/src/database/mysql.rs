//! The MySQL and MariaDB dialect: a database per tenant.

use sea_orm::ConnectOptions;

use super::manager::PoolSettings;
use super::server::{Dialect, ServerManager};
use super::{DatabaseName, Driver, ServerUrl};

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

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName) -> ConnectOptions {
        settings.tenant_options(server.connection_url_for(database.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
