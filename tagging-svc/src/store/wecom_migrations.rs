//! Tables and indexes of the WeCom corp-tag sync added after the first tagging schema: the
//! mirror's sync requests (`corp_tag_syncs`) and the write-back queue's indexes for claiming a
//! contact's items and for the per-tenant status.

use platform::db::schema::{dt_null, index, str_col, ts_col};
use sea_orm_migration::prelude::*;

use super::migrations::TagSyncQueue;

#[derive(DeriveIden)]
pub enum CorpTagSyncs {
    Table,
    TenantId,
    CorpId,
    Requested,
    Synced,
    ClaimedUntil,
    RetryAt,
    LastSyncedAt,
    LastError,
    UpdatedAt,
}

/// Creates `corp_tag_syncs` and the queue's contact and tenant indexes.
pub struct CreateWecomSyncTables;

impl MigrationName for CreateWecomSyncTables {
    fn name(&self) -> &str {
        "m20260520_000001_create_wecom_sync_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateWecomSyncTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(CorpTagSyncs::Table)
                .if_not_exists()
                .col(str_col(CorpTagSyncs::TenantId, 64))
                .col(str_col(CorpTagSyncs::CorpId, 64))
                .col(
                    ColumnDef::new(CorpTagSyncs::Requested)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(CorpTagSyncs::Synced)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(dt_null(CorpTagSyncs::ClaimedUntil))
                .col(dt_null(CorpTagSyncs::RetryAt))
                .col(
                    ColumnDef::new(CorpTagSyncs::LastSyncedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(CorpTagSyncs::LastError).text().null())
                .col(ts_col(CorpTagSyncs::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(CorpTagSyncs::TenantId)
                        .col(CorpTagSyncs::CorpId),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_tag_sync_contact",
            TagSyncQueue::Table,
            vec![
                TagSyncQueue::CorpId.into_iden(),
                TagSyncQueue::ExternalUserid.into_iden(),
                TagSyncQueue::Status.into_iden(),
            ],
            false,
        )
        .await?;
        index(
            m,
            "ix_tag_sync_tenant",
            TagSyncQueue::Table,
            vec![
                TagSyncQueue::TenantId.into_iden(),
                TagSyncQueue::Status.into_iden(),
                TagSyncQueue::UpdatedAt.into_iden(),
            ],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in ["ix_tag_sync_tenant", "ix_tag_sync_contact"] {
            m.drop_index(
                Index::drop()
                    .name(name)
                    .table(TagSyncQueue::Table)
                    .to_owned(),
            )
            .await?;
        }
        m.drop_table(
            Table::drop()
                .table(CorpTagSyncs::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
pub enum WecomMarks {
    Table,
    TenantId,
    CorpId,
    UserId,
    ExternalUserid,
    WecomTagId,
    MarkedAt,
}

/// Creates `wecom_marks`: the corp tags this service has put on a rep's external contact with
/// `mark_tag` and not taken off, so that reading them back from WeCom is not taken for the
/// rep's own tagging.
pub struct CreateWecomMarks;

impl MigrationName for CreateWecomMarks {
    fn name(&self) -> &str {
        "m20261204_000001_create_wecom_marks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateWecomMarks {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WecomMarks::Table)
                .if_not_exists()
                .col(str_col(WecomMarks::TenantId, 64))
                .col(str_col(WecomMarks::CorpId, 64))
                .col(str_col(WecomMarks::UserId, 64))
                .col(str_col(WecomMarks::ExternalUserid, 64))
                .col(str_col(WecomMarks::WecomTagId, 64))
                .col(ts_col(WecomMarks::MarkedAt))
                .primary_key(
                    Index::create()
                        .col(WecomMarks::TenantId)
                        .col(WecomMarks::CorpId)
                        .col(WecomMarks::ExternalUserid)
                        .col(WecomMarks::UserId)
                        .col(WecomMarks::WecomTagId),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(WecomMarks::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
