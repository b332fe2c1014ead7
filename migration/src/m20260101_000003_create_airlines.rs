//! `airlines`, each registered in a country.

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
                    .table("airlines")
                    .col(pk_auto("id"))
                    .col(string_len("name", 128))
                    .col(string_len_null("iata", 2))
                    .col(string_len_uniq("icao", 3))
                    .col(integer("country_id"))
                    .foreign_key(ForeignKey::create().name("airlines_country_fk").from("airlines", "country_id").to("countries", "id"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("airlines_iata_idx").table("airlines").col("iata").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("airlines").to_owned()).await
    }
}
