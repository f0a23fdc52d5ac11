//! The tagging tables: the tag catalogue (groups, tags), who holds which tag from which source
//! (`tag_memberships`), tag rules, the window-exit schedule, jobs (backfill, export), the WeCom
//! corp-tag mirror and its write-back queue. The facts projection comes from the `facts` crate.

use platform::db::schema::{big, boolean, dt, id_col, index, opt_str, str_col, ts_col};
use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
pub enum TagGroups {
    Table,
    Id,
    TenantId,
    Name,
    Selection,
    SyncWecom,
    CorpId,
    WecomGroupId,
    Status,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum Tags {
    Table,
    Id,
    TenantId,
    GroupId,
    Name,
    Description,
    Status,
    WecomTagId,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum TagMemberships {
    Table,
    Id,
    TenantId,
    ProfileId,
    TagId,
    Source,
    Origin,
    Actor,
    MergedFrom,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum TagRules {
    Table,
    Id,
    TenantId,
    TagId,
    Name,
    Condition,
    Mode,
    Enabled,
    Version,
    CreatedBy,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
pub enum RuleSchedule {
    Table,
    TenantId,
    ProfileId,
    RuleId,
    DueAt,
}

#[derive(DeriveIden)]
pub enum TaggingJobs {
    Table,
    Id,
    TenantId,
    Kind,
    RuleId,
    Status,
    Total,
    Done,
    Added,
    Removed,
    Error,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
pub enum CorpTags {
    Table,
    TenantId,
    CorpId,
    WecomId,
    Kind,
    GroupWecomId,
    Name,
    SortOrder,
    Deleted,
    TagId,
    SyncedAt,
}

#[derive(DeriveIden)]
pub enum WecomContacts {
    Table,
    TenantId,
    ProfileId,
    CorpId,
    UserId,
    ExternalUserid,
}

#[derive(DeriveIden)]
pub enum TagSyncQueue {
    Table,
    Id,
    TenantId,
    CorpId,
    UserId,
    ExternalUserid,
    WecomTagId,
    Action,
    Status,
    Attempts,
    NextAt,
    LastError,
    CreatedAt,
    UpdatedAt,
}

/// Creates the catalogue, membership, rule, schedule, job, WeCom mirror and clock tables.
pub struct CreateTaggingTables;

impl MigrationName for CreateTaggingTables {
    fn name(&self) -> &str {
        "m20260501_000001_create_tagging_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTaggingTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TagGroups::Table)
                .if_not_exists()
                .col(str_col(TagGroups::Id, 36).primary_key())
                .col(str_col(TagGroups::TenantId, 64))
                .col(str_col(TagGroups::Name, 64))
                .col(str_col(TagGroups::Selection, 8))
                .col(boolean(TagGroups::SyncWecom))
                .col(opt_str(TagGroups::CorpId, 64))
                .col(opt_str(TagGroups::WecomGroupId, 64))
                .col(str_col(TagGroups::Status, 16))
                .col(str_col(TagGroups::CreatedBy, 64))
                .col(ts_col(TagGroups::CreatedAt))
                .col(ts_col(TagGroups::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_tag_groups_name",
            TagGroups::Table,
            vec![TagGroups::TenantId.into_iden(), TagGroups::Name.into_iden()],
            true,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Tags::Table)
                .if_not_exists()
                .col(str_col(Tags::Id, 36).primary_key())
                .col(str_col(Tags::TenantId, 64))
                .col(str_col(Tags::GroupId, 36))
                .col(str_col(Tags::Name, 64))
                .col(str_col(Tags::Description, 255))
                .col(str_col(Tags::Status, 16))
                .col(opt_str(Tags::WecomTagId, 64))
                .col(str_col(Tags::CreatedBy, 64))
                .col(ts_col(Tags::CreatedAt))
                .col(ts_col(Tags::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_tags_name",
            Tags::Table,
            vec![
                Tags::TenantId.into_iden(),
                Tags::GroupId.into_iden(),
                Tags::Name.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            m,
            "ix_tags_wecom",
            Tags::Table,
            vec![Tags::TenantId.into_iden(), Tags::WecomTagId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TagMemberships::Table)
                .if_not_exists()
                .col(id_col(TagMemberships::Id))
                .col(str_col(TagMemberships::TenantId, 64))
                .col(str_col(TagMemberships::ProfileId, 36))
                .col(str_col(TagMemberships::TagId, 36))
                .col(str_col(TagMemberships::Source, 16))
                .col(str_col(TagMemberships::Origin, 64))
                .col(opt_str(TagMemberships::Actor, 64))
                .col(opt_str(TagMemberships::MergedFrom, 36))
                .col(ts_col(TagMemberships::CreatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_tag_memberships",
            TagMemberships::Table,
            vec![
                TagMemberships::TenantId.into_iden(),
                TagMemberships::ProfileId.into_iden(),
                TagMemberships::TagId.into_iden(),
                TagMemberships::Source.into_iden(),
                TagMemberships::Origin.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            m,
            "ix_tag_memberships_tag",
            TagMemberships::Table,
            vec![
                TagMemberships::TenantId.into_iden(),
                TagMemberships::TagId.into_iden(),
                TagMemberships::Origin.into_iden(),
                TagMemberships::ProfileId.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TagRules::Table)
                .if_not_exists()
                .col(str_col(TagRules::Id, 36).primary_key())
                .col(str_col(TagRules::TenantId, 64))
                .col(str_col(TagRules::TagId, 36))
                .col(str_col(TagRules::Name, 128))
                .col(ColumnDef::new(TagRules::Condition).text().not_null())
                .col(str_col(TagRules::Mode, 16))
                .col(boolean(TagRules::Enabled))
                .col(big(TagRules::Version))
                .col(str_col(TagRules::CreatedBy, 64))
                .col(str_col(TagRules::UpdatedBy, 64))
                .col(ts_col(TagRules::CreatedAt))
                .col(ts_col(TagRules::UpdatedAt))
                .col(
                    ColumnDef::new(TagRules::DeletedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_tag_rules_tenant",
            TagRules::Table,
            vec![TagRules::TenantId.into_iden(), TagRules::TagId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RuleSchedule::Table)
                .if_not_exists()
                .col(str_col(RuleSchedule::TenantId, 64))
                .col(str_col(RuleSchedule::ProfileId, 36))
                .col(str_col(RuleSchedule::RuleId, 36))
                .col(dt(RuleSchedule::DueAt))
                .primary_key(
                    Index::create()
                        .col(RuleSchedule::TenantId)
                        .col(RuleSchedule::ProfileId)
                        .col(RuleSchedule::RuleId),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_rule_schedule_due",
            RuleSchedule::Table,
            vec![RuleSchedule::DueAt.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TaggingJobs::Table)
                .if_not_exists()
                .col(str_col(TaggingJobs::Id, 36).primary_key())
                .col(str_col(TaggingJobs::TenantId, 64))
                .col(str_col(TaggingJobs::Kind, 16))
                .col(opt_str(TaggingJobs::RuleId, 36))
                .col(str_col(TaggingJobs::Status, 16))
                .col(big(TaggingJobs::Total))
                .col(big(TaggingJobs::Done))
                .col(big(TaggingJobs::Added))
                .col(big(TaggingJobs::Removed))
                .col(ColumnDef::new(TaggingJobs::Error).text().null())
                .col(str_col(TaggingJobs::CreatedBy, 64))
                .col(ts_col(TaggingJobs::CreatedAt))
                .col(ts_col(TaggingJobs::UpdatedAt))
                .col(
                    ColumnDef::new(TaggingJobs::FinishedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_tagging_jobs_status",
            TaggingJobs::Table,
            vec![
                TaggingJobs::Status.into_iden(),
                TaggingJobs::CreatedAt.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(CorpTags::Table)
                .if_not_exists()
                .col(str_col(CorpTags::TenantId, 64))
                .col(str_col(CorpTags::CorpId, 64))
                .col(str_col(CorpTags::WecomId, 64))
                .col(str_col(CorpTags::Kind, 8))
                .col(opt_str(CorpTags::GroupWecomId, 64))
                .col(str_col(CorpTags::Name, 64))
                .col(ColumnDef::new(CorpTags::SortOrder).big_integer().not_null())
                .col(boolean(CorpTags::Deleted))
                .col(opt_str(CorpTags::TagId, 36))
                .col(ts_col(CorpTags::SyncedAt))
                .primary_key(
                    Index::create()
                        .col(CorpTags::TenantId)
                        .col(CorpTags::CorpId)
                        .col(CorpTags::WecomId),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WecomContacts::Table)
                .if_not_exists()
                .col(str_col(WecomContacts::TenantId, 64))
                .col(str_col(WecomContacts::ProfileId, 36))
                .col(str_col(WecomContacts::CorpId, 64))
                .col(str_col(WecomContacts::UserId, 64))
                .col(str_col(WecomContacts::ExternalUserid, 64))
                .primary_key(
                    Index::create()
                        .col(WecomContacts::TenantId)
                        .col(WecomContacts::ProfileId)
                        .col(WecomContacts::CorpId)
                        .col(WecomContacts::UserId),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TagSyncQueue::Table)
                .if_not_exists()
                .col(id_col(TagSyncQueue::Id))
                .col(str_col(TagSyncQueue::TenantId, 64))
                .col(str_col(TagSyncQueue::CorpId, 64))
                .col(str_col(TagSyncQueue::UserId, 64))
                .col(str_col(TagSyncQueue::ExternalUserid, 64))
                .col(str_col(TagSyncQueue::WecomTagId, 64))
                .col(str_col(TagSyncQueue::Action, 8))
                .col(str_col(TagSyncQueue::Status, 16))
                .col(ColumnDef::new(TagSyncQueue::Attempts).integer().not_null())
                .col(dt(TagSyncQueue::NextAt))
                .col(ColumnDef::new(TagSyncQueue::LastError).text().null())
                .col(ts_col(TagSyncQueue::CreatedAt))
                .col(ts_col(TagSyncQueue::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_tag_sync_due",
            TagSyncQueue::Table,
            vec![
                TagSyncQueue::Status.into_iden(),
                TagSyncQueue::NextAt.into_iden(),
            ],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            TagSyncQueue::Table.into_iden(),
            WecomContacts::Table.into_iden(),
            CorpTags::Table.into_iden(),
            TaggingJobs::Table.into_iden(),
            RuleSchedule::Table.into_iden(),
            TagRules::Table.into_iden(),
            TagMemberships::Table.into_iden(),
            Tags::Table.into_iden(),
            TagGroups::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
