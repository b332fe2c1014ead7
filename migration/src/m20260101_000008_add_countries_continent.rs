//! Countries get their continent code (AF, AN, AS, EU, NA, OC, SA).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("countries").add_column(char_len_null("continent", 2)).to_owned()).await?;
        manager.create_index(Index::create().name("countries_continent_idx").table("countries").col("continent").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("countries_continent_idx").table("countries").to_owned()).await?;
        manager.alter_table(Table::alter().table("countries").drop_column("continent").to_owned()).await
    }
}
