//! The `personas` table: a tenant's named persona over a saved segment, with its expected traits
//! and response rate.

use platform::db::schema::{index, str_col, text, ts_col};
use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
pub enum Personas {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    SegmentId,
    Traits,
    ExpectedResponsePpm,
    CreatedBy,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
}

/// Creates `personas`.
pub struct CreatePersonas;

impl MigrationName for CreatePersonas {
    fn name(&self) -> &str {
        "m20261208_000001_create_personas"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePersonas {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use Personas as P;
        m.create_table(
            Table::create()
                .table(P::Table)
                .if_not_exists()
                .col(str_col(P::Id, 36).primary_key())
                .col(str_col(P::TenantId, 64))
                .col(str_col(P::Name, 128))
                .col(str_col(P::Description, 1000))
                .col(str_col(P::SegmentId, 36))
                .col(text(P::Traits))
                .col(ColumnDef::new(P::ExpectedResponsePpm).big_integer().null())
                .col(str_col(P::CreatedBy, 64))
                .col(str_col(P::UpdatedBy, 64))
                .col(ts_col(P::CreatedAt))
                .col(ts_col(P::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_personas_name",
            P::Table,
            vec![P::TenantId.into_iden(), P::Name.into_iden()],
            true,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Personas::Table).to_owned())
            .await
    }
}
