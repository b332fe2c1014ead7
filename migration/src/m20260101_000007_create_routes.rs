//! `routes`: an airline flying from one airport to another.

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
                    .table("routes")
                    .col(pk_auto("id"))
                    .col(integer("airline_id"))
                    .col(integer("source_airport_id"))
                    .col(integer("destination_airport_id"))
                    .col(small_integer("stops").default(0))
                    .foreign_key(ForeignKey::create().name("routes_airline_fk").from("routes", "airline_id").to("airlines", "id"))
                    .foreign_key(ForeignKey::create().name("routes_source_fk").from("routes", "source_airport_id").to("airports", "id"))
                    .foreign_key(
                        ForeignKey::create().name("routes_destination_fk").from("routes", "destination_airport_id").to("airports", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("routes_airline_idx").table("routes").col("airline_id").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("routes").to_owned()).await
    }
}
