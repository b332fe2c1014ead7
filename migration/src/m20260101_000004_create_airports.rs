//! `airports`, each in a country, with its position.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("airports")
                    .col(pk_auto("id"))
                    .col(string_len_uniq("ident", 16))
                    .col(string_len("name", 128))
                    .col(string_len_null("municipality", 128))
                    .col(string_len_null("iata", 3))
                    .col(integer("country_id"))
                    .col(double("latitude"))
                    .col(double("longitude"))
                    .foreign_key(ForeignKey::create().name("airports_country_fk").from("airports", "country_id").to("countries", "id"))
                    .to_owned(),
            )
            .await?;
        // An explicit index for the foreign key: MySQL would otherwise hand the key a later composite
        // index (see m20260101_000011) and then refuse to drop that one.
        manager.create_index(Index::create().name("airports_country_idx").table("airports").col("country_id").to_owned()).await?;
        manager.create_index(Index::create().name("airports_iata_idx").table("airports").col("iata").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("airports").to_owned()).await
    }
}
