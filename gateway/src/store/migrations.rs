//! Migrations of the gateway's own tables.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum WechatApps {
    Table,
    Id,
    TenantId,
    Kind,
    AppId,
    Name,
    AgentId,
    TokenSealed,
    AesKeySealed,
    SecretSealed,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TenantWriteKeys {
    Table,
    KeyHash,
    TenantId,
    Name,
    CreatedAt,
}

/// Creates the app registry and the write-key table.
pub struct CreateAppRegistry;

impl MigrationName for CreateAppRegistry {
    fn name(&self) -> &str {
        "m20260102_000001_create_app_registry"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAppRegistry {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WechatApps::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(WechatApps::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WechatApps::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WechatApps::Kind).string_len(8).not_null())
                    .col(ColumnDef::new(WechatApps::AppId).string_len(64).not_null())
                    .col(ColumnDef::new(WechatApps::Name).string_len(128).not_null())
                    .col(ColumnDef::new(WechatApps::TokenSealed).text().not_null())
                    .col(ColumnDef::new(WechatApps::AesKeySealed).text().null())
                    .col(ColumnDef::new(WechatApps::SecretSealed).text().null())
                    .col(
                        ColumnDef::new(WechatApps::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WechatApps::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_wechat_apps_kind_app_id")
                    .table(WechatApps::Table)
                    .col(WechatApps::Kind)
                    .col(WechatApps::AppId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TenantWriteKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(TenantWriteKeys::KeyHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenantWriteKeys::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantWriteKeys::Name)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantWriteKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TenantWriteKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WechatApps::Table).to_owned())
            .await
    }
}

/// Makes room for WeCom agent apps in the registry: the `agent_id` column, and a `kind` wide
/// enough for `wecom_agent` (SQLite does not enforce a string's length).
pub struct AddAgentApps;

impl MigrationName for AddAgentApps {
    fn name(&self) -> &str {
        "m20260301_000001_add_agent_apps"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddAgentApps {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::MySql {
            manager
                .alter_table(
                    Table::alter()
                        .table(WechatApps::Table)
                        .modify_column(ColumnDef::new(WechatApps::Kind).string_len(16).not_null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(WechatApps::Table)
                    .add_column(ColumnDef::new(WechatApps::AgentId).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WechatApps::Table)
                    .drop_column(WechatApps::AgentId)
                    .to_owned(),
            )
            .await
    }
}
