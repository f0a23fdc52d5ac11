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
