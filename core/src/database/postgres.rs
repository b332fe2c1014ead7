//! PostgreSQL dialects: a database per tenant ([`PostgresDatabase`]) or a schema per tenant in the
//! one database the server URL names ([`PostgresSchema`]).

use sea_orm::ConnectOptions;

use super::manager::PoolSettings;
use super::server::{Dialect, ServerManager};
use super::{ConnectionTarget, DatabaseName, Driver, Login, ServerUrl};

/// A database per tenant on one PostgreSQL server.
pub type PostgresDatabaseManager = ServerManager<PostgresDatabase>;
/// A schema per tenant in one PostgreSQL database.
pub type PostgresSchemaManager = ServerManager<PostgresSchema>;

/// PostgreSQL's SQLSTATEs for "database already exists" and "schema already exists".
const DUPLICATE_DATABASE: &str = "42P04";
const DUPLICATE_SCHEMA: &str = "42P06";
/// SQLSTATE `invalid_catalog_name`: no database of that name.
const UNDEFINED_DATABASE: &str = "3D000";
/// SQLSTATE `invalid_schema_name`: no schema of that name.
const UNDEFINED_SCHEMA: &str = "3F000";

/// See [`PostgresDatabaseManager`].
#[derive(Debug)]
pub struct PostgresDatabase;

impl Dialect for PostgresDatabase {
    const DRIVER: Driver = Driver::Postgres;
    const EXISTS_SQL: &'static str = "SELECT 1 FROM pg_database WHERE datname = $1";
    const TEMPLATES: bool = true;
    const NAMES_SQL: Option<&'static str> = Some("SELECT datname::text FROM pg_database");
    const BYTES_SQL: &'static str =
        "SELECT COALESCE(SUM(pg_database_size(oid)), 0)::bigint FROM pg_database WHERE datname = ANY(string_to_array($1, ','))";
    const BUSY_SQL: &'static str = "SELECT count(*)::bigint FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'";

    fn rename_sql(from: &DatabaseName, to: &DatabaseName) -> Option<String> {
        Some(format!("ALTER DATABASE {} RENAME TO {}", from.pg_quoted(), to.pg_quoted()))
    }

    fn is_missing(message: &str) -> bool {
        message.contains(UNDEFINED_DATABASE) || message.contains("does not exist")
    }

    fn create_sql(database: &DatabaseName) -> String {
        format!("CREATE DATABASE {}", database.pg_quoted())
    }

    fn drop_sql(database: &DatabaseName) -> String {
        // FORCE ends sessions still connected (a pool of another process), which would otherwise block the drop.
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.pg_quoted())
    }

    fn is_already_exists(message: &str) -> bool {
        message.contains(DUPLICATE_DATABASE) || message.contains("already exists")
    }

    fn location(server: &ServerUrl, database: &DatabaseName) -> String {
        format!("postgres://{}/{database}", server.host_port())
    }

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName, login: Option<&Login>) -> ConnectOptions {
        let url = server.connection_url_as(Some(database.as_str()), login);
        resetting_sessions(settings.tenant_options(url))
    }

    const ROLE_EXISTS_SQL: &'static str = ROLE_EXISTS;
    const MAY_CREATE_ROLES_SQL: &'static str = MAY_CREATE_ROLES;
    const ADOPT_IN_DATABASE: bool = true;

    fn role_sessions_sql(role: &DatabaseName) -> String {
        role_sessions(role)
    }

    fn end_session_sql(id: u64) -> String {
        end_session(id)
    }

    fn secure_sql(database: &DatabaseName, login: &Login) -> Vec<String> {
        let mut statements = make_role(login);
        statements.extend(give_database(database, &login.role));
        statements
    }

    fn adopt_sql(_database: &DatabaseName, role: &DatabaseName) -> Option<String> {
        Some(adopt("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'", role))
    }

    fn drop_role_sql(role: &DatabaseName) -> Vec<String> {
        drop_role(role)
    }

    fn template_owner_sql(owner: &DatabaseName) -> Option<String> {
        let quoted = owner.pg_quoted();
        Some(format!(
            "DO $tenancy$ BEGIN CREATE ROLE {quoted} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $tenancy$; \
             {}",
            join_unless_superuser(owner)
        ))
    }

    fn membership_sql(owner: &DatabaseName, role: &DatabaseName) -> Option<String> {
        // A member has its owner's rights (INHERIT, the default) over the copy's tables, so its
        // migrations may alter them; it can connect to its own database only, so a template's
        // objects in other tenants' copies stay out of its reach. No ADMIN OPTION: it cannot
        // pass the membership on.
        Some(format!("GRANT {} TO {}", owner.pg_quoted(), role.pg_quoted()))
    }

    fn pooled_owner_sql(database: &DatabaseName, role: &DatabaseName) -> Option<Vec<String>> {
        let mut statements = Self::template_owner_sql(role).into_iter().collect::<Vec<_>>();
        statements.extend(give_database(database, role));
        Some(statements)
    }

    fn take_pooled_sql(pooled: &DatabaseName, database: &DatabaseName, login: &Login) -> Option<Vec<String>> {
        let (pooled, role) = (pooled.pg_quoted(), login.role.pg_quoted());
        // The role already holds the database and all in it, and the server's user is its
        // member: a rename (which keeps both) and its login are all there is left to do.
        Some(vec![
            format!("ALTER DATABASE {pooled} RENAME TO {}", database.pg_quoted()),
            format!("ALTER ROLE {pooled} RENAME TO {role}"),
            format!("ALTER ROLE {role} WITH {}", login_options(login)),
        ])
    }
}

/// See [`PostgresSchemaManager`].
#[derive(Debug)]
pub struct PostgresSchema;

impl Dialect for PostgresSchema {
    const DRIVER: Driver = Driver::Postgres;
    const EXISTS_SQL: &'static str = "SELECT 1 FROM pg_namespace WHERE nspname = $1";
    const NAMES_SQL: Option<&'static str> = Some("SELECT nspname::text FROM pg_namespace");
    const BYTES_SQL: &'static str = "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = ANY(string_to_array($1, ','))";
    // Sessions share the database, and a session's search_path is not visible: a session is busy
    // in the schema while it holds a lock on one of its relations (from its first statement on a
    // table to the end of its transaction).
    const BUSY_SQL: &'static str = "SELECT count(DISTINCT l.pid)::bigint FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND l.pid <> pg_backend_pid() AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

    fn rename_sql(from: &DatabaseName, to: &DatabaseName) -> Option<String> {
        Some(format!("ALTER SCHEMA {} RENAME TO {}", from.pg_quoted(), to.pg_quoted()))
    }

    fn is_missing(message: &str) -> bool {
        message.contains(UNDEFINED_SCHEMA) || message.contains("does not exist")
    }

    fn create_sql(database: &DatabaseName) -> String {
        format!("CREATE SCHEMA {}", database.pg_quoted())
    }

    fn drop_sql(database: &DatabaseName) -> String {
        format!("DROP SCHEMA IF EXISTS {} CASCADE", database.pg_quoted())
    }

    fn is_already_exists(message: &str) -> bool {
        message.contains(DUPLICATE_SCHEMA) || message.contains("already exists")
    }

    fn location(server: &ServerUrl, database: &DatabaseName) -> String {
        format!("postgres://{}/{} (schema {database})", server.host_port(), server.database())
    }

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName, login: Option<&Login>) -> ConnectOptions {
        let url = server.connection_url_as(None, login);
        let mut options = settings.tenant_options(url);
        // Only the tenant's schema is on the path, so unqualified names never reach another schema
        // (nor the registry's tables, when it shares the database). Given as a startup option it
        // is the session's default, which `RESET ALL` and `DISCARD ALL` return to; a plain
        // `SET search_path` after connecting would be undone by them, falling back to `public`.
        let schema = database.as_str().to_owned();
        options.map_sqlx_postgres_opts(move |opts| opts.options([("search_path", schema.as_str())]));
        resetting_sessions(options)
    }

    fn connection_target(server: &ServerUrl, database: &DatabaseName, login: Option<&Login>) -> ConnectionTarget {
        let url = server.connection_url_as(None, login);
        ConnectionTarget { url, schema: Some(database.as_str().to_owned()) }
    }

    const ROLE_EXISTS_SQL: &'static str = ROLE_EXISTS;
    const MAY_CREATE_ROLES_SQL: &'static str = MAY_CREATE_ROLES;

    fn role_sessions_sql(role: &DatabaseName) -> String {
        role_sessions(role)
    }

    fn end_session_sql(id: u64) -> String {
        end_session(id)
    }

    fn secure_sql(schema: &DatabaseName, login: &Login) -> Vec<String> {
        let (role, schema) = (login.role.pg_quoted(), schema.pg_quoted());
        let mut statements = make_role(login);
        statements.extend([
            // Pinned for the role, not only given at connect: a program connecting as the role
            // with its own URL starts in its schema too.
            format!("ALTER ROLE {role} SET search_path = {schema}"),
            format!("ALTER SCHEMA {schema} OWNER TO {role}"),
            // A schema made by a user is nobody else's to use; said anyway, for one made otherwise.
            format!("REVOKE ALL ON SCHEMA {schema} FROM PUBLIC"),
            // The shared database may have `CONNECT` revoked from PUBLIC; the role needs it. Only
            // then granted, one signup at a time (the lock lasts the transaction): two grants on
            // one database at once fail with "tuple concurrently updated".
            format!(
                "DO $tenancy$ BEGIN IF NOT has_database_privilege('{role}', current_database(), 'CONNECT') THEN \
                 PERFORM pg_advisory_xact_lock(hashtext('tenancy: database grants')); \
                 EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), '{role}'); END IF; END $tenancy$",
                role = login.role
            ),
        ]);
        statements
    }

    fn adopt_sql(schema: &DatabaseName, role: &DatabaseName) -> Option<String> {
        Some(adopt(&format!("n.nspname = '{schema}'"), role))
    }

    fn drop_role_sql(role: &DatabaseName) -> Vec<String> {
        drop_role(role)
    }
}

/// A row if the role named by the bind parameter exists.
const ROLE_EXISTS: &str = "SELECT 1 FROM pg_roles WHERE rolname = $1";
/// A superuser may do all a role per tenant needs; a user with `CREATEROLE` (and `CREATEDB`, which
/// making databases needs anyway) may too, being made a member of each role it creates.
const MAY_CREATE_ROLES: &str = "SELECT (rolsuper OR rolcreaterole)::int::bigint FROM pg_roles WHERE rolname = current_user";

fn role_sessions(role: &DatabaseName) -> String {
    // Role names are checked identifiers: nothing to escape in the literal.
    format!("SELECT pid::text FROM pg_stat_activity WHERE usename = '{role}' AND pid <> pg_backend_pid()")
}

fn end_session(id: u64) -> String {
    format!("SELECT pg_terminate_backend({id})")
}

/// Makes `login`'s role with what it may do and its password or, where it is there already (a
/// rerun; two processes at once), sets them: one statement either way. `CREATE ROLE` gives no
/// superuser, replication or row-security bypass, and only a superuser could add them; a role of
/// that name made by someone else is not to be feared, as the name holds the tenant's id, new for
/// each tenant.
fn make_role(login: &Login) -> Vec<String> {
    let (role, what) = (login.role.pg_quoted(), login_options(login));
    vec![
        format!(
            "DO $tenancy$ BEGIN CREATE ROLE {role} WITH {what}; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN ALTER ROLE {role} WITH {what}; END $tenancy$"
        ),
        join_unless_superuser(&login.role),
    ]
}

/// What a tenant's role may do, and its password.
fn login_options(login: &Login) -> String {
    // Its SCRAM verifier, not the password: the server never sees that, nor logs it. The
    // verifier is base64 and digits: no quote can be in it.
    format!("LOGIN NOCREATEDB NOCREATEROLE PASSWORD '{}'", super::scram::verifier(login.password()))
}

/// Gives `database` to `role` alone.
fn give_database(database: &DatabaseName, role: &DatabaseName) -> [String; 2] {
    let (database, role) = (database.pg_quoted(), role.pg_quoted());
    [
        format!("ALTER DATABASE {database} OWNER TO {role}"),
        // `CONNECT` (and `TEMP`) are PUBLIC's by default: no other tenant's role may even connect.
        format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC"),
    ]
}

/// Makes the server's user a member of `role` unless it is a superuser: one that is not gives a
/// database to, and changes the objects of, only a role it is a member of.
fn join_unless_superuser(role: &DatabaseName) -> String {
    format!(
        "DO $tenancy$ BEGIN IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN EXECUTE format('GRANT %I TO %I', '{role}', current_user); END IF; END $tenancy$"
    )
}

/// Gives `role` every schema, relation, routine and type in the schemas `which` (an SQL condition
/// on `n`, the schema) that another user owns, except what an extension owns or what goes with a
/// table (an identity's or serial's sequence, whose owner is the table's).
fn adopt(which: &str, role: &DatabaseName) -> String {
    let not_extension = |catalog: &str, column: &str| {
        format!("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass AND d.objid = {column} AND d.deptype = 'e')")
    };
    format!(
        "DO $tenancy$ DECLARE statement text; BEGIN FOR statement IN \
         SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, '{role}') FROM pg_namespace n \
           WHERE {which} AND n.nspowner <> '{role}'::regrole AND {ns} \
         UNION ALL SELECT format('ALTER %s %s OWNER TO %I', CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' \
             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END, c.oid::regclass, '{role}') \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE {which} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND c.relowner <> '{role}'::regrole \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e')) \
         UNION ALL SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, '{role}') \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {which} AND p.proowner <> '{role}'::regrole AND {proc} \
         UNION ALL SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, '{role}') \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {which} AND t.typtype IN ('e', 'd', 'r') \
             AND t.typowner <> '{role}'::regrole AND {typ} \
         LOOP EXECUTE statement; END LOOP; END $tenancy$",
        ns = not_extension("pg_namespace", "n.oid"),
        proc = not_extension("pg_proc", "p.oid"),
        typ = not_extension("pg_type", "t.oid"),
    )
}

/// Drops `role` and what it holds in the server URL's database (grants, default privileges);
/// its database or schema is gone already.
fn drop_role(role: &DatabaseName) -> Vec<String> {
    let quoted = role.pg_quoted();
    vec![
        // Under the lock `secure_sql` takes: dropping what it granted on the shared database while
        // another grant runs would fail as two grants would.
        format!(
            "DO $tenancy$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
             PERFORM pg_advisory_xact_lock(hashtext('tenancy: database grants')); EXECUTE 'DROP OWNED BY {quoted}'; END IF; END $tenancy$"
        ),
        format!("DROP ROLE IF EXISTS {quoted}"),
    ]
}

/// Whatever tenant code changed on a connection (`SET`, `SET ROLE`, `SET SESSION AUTHORIZATION`,
/// the search path) is undone before the connection goes back to the pool, so the next lease
/// starts from the defaults; one left inside a transaction is closed instead.
fn resetting_sessions(mut options: ConnectOptions) -> ConnectOptions {
    options.map_sqlx_postgres_pool_opts(|pool| pool.after_release(|connection, _| Box::pin(reset_session(connection))));
    options
}

/// Puts a connection back as it was opened: back to the user it logged in as (`RESET ALL` leaves
/// `SET ROLE` and `SET SESSION AUTHORIZATION` alone), then every setting to the session's defaults
/// (the startup `search_path` among them), with no cursor open, no channel listened to and no
/// advisory lock held (one a migration took and, cancelled, never gave back would make the
/// tenant's next migration wait for it): what `DISCARD ALL` does but forget prepared statements. In the same round trip it counts the prepared
/// statements the server still has: fewer than the driver has cached means tenant code ran
/// `DISCARD ALL` (or `DEALLOCATE ALL`), and the cache is cleared so that no statement is executed
/// by a name the server forgot. Keeps the connection (`true`) unless the reset fails or a
/// transaction tenant code began is still open (its start is older than this statement's), which
/// closing the connection rolls back.
async fn reset_session(connection: &mut sea_orm::sqlx::PgConnection) -> Result<bool, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::{Connection, Row};
    let row = sea_orm::sqlx::raw_sql(
        "SET SESSION AUTHORIZATION DEFAULT; RESET ROLE; RESET ALL; CLOSE ALL; UNLISTEN *; \
         SELECT count(*), now() = statement_timestamp(), pg_advisory_unlock_all() IS NULL FROM pg_prepared_statements",
    )
    .fetch_one(&mut *connection)
    .await?;
    if !row.try_get::<bool, _>(1)? {
        return Ok(false);
    }
    let on_server: i64 = row.try_get(0)?;
    if usize::try_from(on_server).unwrap_or(0) < connection.cached_statements_size() {
        connection.clear_cached_statements().await?;
    }
    Ok(true)
}
