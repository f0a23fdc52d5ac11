//! The source registry: a tree of sources per tenant (`source_nodes`, `parent_id` null for a
//! root) and the entry keys bound to its nodes (`source_bindings`, one node per key).

use platform::db::schema::{index, str_col, ts_col};
use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
pub enum SourceNodes {
    Table,
    /// UUIDv7.
    Id,
    TenantId,
    ParentId,
    Name,
    /// 1 for a root.
    Depth,
    CreatedBy,
    CreatedAt,
    ArchivedAt,
}

#[derive(DeriveIden)]
pub enum SourceBindings {
    Table,
    TenantId,
    /// `oa_scene`, `wecom_state`, `utm_campaign`.
    Kind,
    Value,
    NodeId,
    CreatedBy,
    CreatedAt,
}

/// Creates `source_nodes` and `source_bindings`.
pub struct CreateSourceRegistry;

impl MigrationName for CreateSourceRegistry {
    fn name(&self) -> &str {
        "m20261218_000001_create_source_registry"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSourceRegistry {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SourceNodes::Table)
                .if_not_exists()
                .col(str_col(SourceNodes::Id, 36).primary_key())
                .col(str_col(SourceNodes::TenantId, 64))
                .col(ColumnDef::new(SourceNodes::ParentId).string_len(36).null())
                .col(str_col(SourceNodes::Name, 256))
                .col(
                    ColumnDef::new(SourceNodes::Depth)
                        .small_integer()
                        .not_null(),
                )
                .col(str_col(SourceNodes::CreatedBy, 64))
                .col(ts_col(SourceNodes::CreatedAt))
                .col(
                    ColumnDef::new(SourceNodes::ArchivedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_source_nodes_tenant",
            SourceNodes::Table,
            vec![
                SourceNodes::TenantId.into_iden(),
                SourceNodes::ParentId.into_iden(),
            ],
            false,
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SourceBindings::Table)
                .if_not_exists()
                .col(str_col(SourceBindings::TenantId, 64))
                .col(str_col(SourceBindings::Kind, 16))
                .col(str_col(SourceBindings::Value, 512))
                .col(str_col(SourceBindings::NodeId, 36))
                .col(str_col(SourceBindings::CreatedBy, 64))
                .col(ts_col(SourceBindings::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(SourceBindings::TenantId)
                        .col(SourceBindings::Kind)
                        .col(SourceBindings::Value),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            SourceBindings::Table.into_iden(),
            SourceNodes::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
