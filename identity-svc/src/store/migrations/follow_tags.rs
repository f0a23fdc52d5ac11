//! The corp tags a rep has on a customer, as WeCom reports them (`externalcontact/get`).

use sea_orm_migration::prelude::*;

use super::profile_state::WecomFollows;

#[derive(DeriveIden)]
enum FollowTags {
    /// JSON array of corp tag ids; NULL while not known.
    CorpTags,
}

/// Adds `wecom_follows.corp_tags`.
pub struct FollowCorpTags;

impl MigrationName for FollowCorpTags {
    fn name(&self) -> &str {
        "m20261204_000001_follow_corp_tags"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for FollowCorpTags {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WecomFollows::Table)
                .add_column(ColumnDef::new(FollowTags::CorpTags).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WecomFollows::Table)
                .drop_column(FollowTags::CorpTags)
                .to_owned(),
        )
        .await
    }
}
