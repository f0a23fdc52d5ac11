//! Migrations every service includes in its own migrator: the inbox and outbox tables.

use sea_orm_migration::prelude::*;

/// Columns of `bus_inbox`.
#[derive(DeriveIden)]
pub enum BusInbox {
    Table,
    Consumer,
    MessageId,
    ProcessedAt,
}

/// Columns of `bus_outbox`.
#[derive(DeriveIden)]
pub enum BusOutbox {
    Table,
    Id,
    MessageId,
    RoutingKey,
    Body,
    CreatedAt,
    Attempts,
    LastError,
}

/// Creates `bus_inbox`: one row per (consumer, message id) processed.
pub struct CreateInbox;

impl MigrationName for CreateInbox {
    fn name(&self) -> &str {
        "m20260101_000001_create_bus_inbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateInbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BusInbox::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(BusInbox::Consumer).string_len(64).not_null())
                    .col(
                        ColumnDef::new(BusInbox::MessageId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BusInbox::ProcessedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(BusInbox::Consumer)
                            .col(BusInbox::MessageId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_bus_inbox_processed_at")
                    .table(BusInbox::Table)
                    .col(BusInbox::ProcessedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BusInbox::Table).to_owned())
            .await
    }
}

/// Creates `bus_outbox`: events written in a business transaction, waiting for the relay.
pub struct CreateOutbox;

impl MigrationName for CreateOutbox {
    fn name(&self) -> &str {
        "m20260101_000002_create_bus_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BusOutbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(BusOutbox::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(BusOutbox::MessageId)
                            .string_len(36)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(BusOutbox::RoutingKey)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(BusOutbox::Body).text().not_null())
                    .col(
                        ColumnDef::new(BusOutbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BusOutbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(BusOutbox::LastError).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BusOutbox::Table).to_owned())
            .await
    }
}
