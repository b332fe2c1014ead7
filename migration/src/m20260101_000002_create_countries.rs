//! `countries`: the ISO 3166-1 list (seeded by `CountriesTableSeeder`).

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
                    .table("countries")
                    .col(pk_auto("id"))
                    .col(char_len_uniq("code", 2))
                    .col(char_len_uniq("code3", 3))
                    .col(char_len("numeric_code", 3))
                    .col(string_len("name", 128))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("countries").to_owned()).await
    }
}
