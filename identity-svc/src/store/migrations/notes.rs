//! Notes (follow-up records) on customers, written by reps and operators: one row per note, kept
//! on the profile it was written on (a merge lists it under the survivor through
//! `profiles.merged_into`, an un-merge gives it back by leaving it where it is), soft-deleted.

use platform::db::schema::{dt_null, index, str_col, ts_col};
use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
pub enum Notes {
    Table,
    /// UUIDv7.
    Id,
    TenantId,
    ProfileId,
    /// The service credential's actor who wrote it (`rep:<corp>:<userid>`, `user:<id>`).
    Author,
    /// `call`, `visit`, `wechat`, `meeting`, `email`, `other`.
    NoteType,
    Text,
    NextFollowUpAt,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

/// Creates `notes`, with the index a profile's notes are listed by (newest first).
pub struct CreateNotes;

impl MigrationName for CreateNotes {
    fn name(&self) -> &str {
        "m20261210_000001_create_notes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateNotes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Notes::Table)
                .if_not_exists()
                .col(str_col(Notes::Id, 36).primary_key())
                .col(str_col(Notes::TenantId, 64))
                .col(str_col(Notes::ProfileId, 36))
                .col(str_col(Notes::Author, 64))
                .col(str_col(Notes::NoteType, 16))
                .col(ColumnDef::new(Notes::Text).text().not_null())
                // A time the writer names, possibly far ahead: DATETIME, no 2038 limit.
                .col(dt_null(Notes::NextFollowUpAt))
                .col(ts_col(Notes::CreatedAt))
                .col(ts_col(Notes::UpdatedAt))
                .col(
                    ColumnDef::new(Notes::DeletedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_notes_profile_time",
            Notes::Table,
            vec![
                Notes::ProfileId.into_iden(),
                Notes::CreatedAt.into_iden(),
                Notes::Id.into_iden(),
            ],
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Notes::Table).if_exists().to_owned())
            .await
    }
}
