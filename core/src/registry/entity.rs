//! The registry's tables as sea-orm entities. Only `registry` uses them; everything else gets
//! [`crate::Tenant`], which is checked on the way out.

/// `tenants`: one row per tenant.
pub mod tenants {
    use sea_orm::entity::prelude::*;

    /// A row of `tenants`.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        /// The tenant id, hyphenated.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The display name.
        pub name: String,
        /// `creating`, `active`, `inactive` or `suspended`.
        pub status: String,
        /// Whether the homepage is served.
        pub homepage_enabled: bool,
        /// The tenant's database (or schema) name.
        pub database: String,
        /// The configured server the database lives on.
        pub server: String,
        /// Application data.
        pub data: Json,
        /// Maintenance mode, when the tenant is down (`crate::maintenance::Maintenance`).
        pub maintenance: Option<Json>,
        /// The migration set `db migrate` last brought its database up to date with.
        pub migrated_set: Option<String>,
        /// Moves on whenever its schema may move back (a rollback, a restore).
        pub schema_epoch: i64,
        /// Moves on with each rotation of the tenant role's password.
        pub credentials_generation: i64,
        /// Creation time.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
    }

    /// No relations are navigated through sea-orm; domains are loaded by tenant id.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `domains`: host names, each routing to one tenant.
pub mod domains {
    use sea_orm::entity::prelude::*;

    /// A row of `domains`.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "domains")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// The lower-case host name; unique.
        pub domain: String,
        /// The owning tenant.
        pub tenant_id: String,
        /// Whether this is the tenant's primary domain.
        pub is_primary: bool,
        /// When it was added.
        pub created_at: DateTimeUtc,
    }

    /// See `tenants::Relation`.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `tenant_migration_failures`: the last migration failures of each tenant.
pub mod migration_failures {
    use sea_orm::entity::prelude::*;

    /// A row of `tenant_migration_failures`.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenant_migration_failures")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// The tenant.
        pub tenant_id: String,
        /// `migrator/name` of the failing migration.
        pub migration: String,
        /// The database's message.
        pub error: String,
        /// When.
        pub failed_at: DateTimeUtc,
    }

    /// See `tenants::Relation`.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
