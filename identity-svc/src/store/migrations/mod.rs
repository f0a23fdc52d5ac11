//! The identity tables. They run on MySQL/MariaDB and SQLite alike (portable column types, no
//! vendor-only SQL); every table holding personal data carries the profile id (DESIGN.md §9).

use platform::db::schema::{id_col, index, str_col, ts_col};
use sea_orm_migration::prelude::*;

mod follow_tags;
mod notes;
mod profile_state;
mod sources;

pub use follow_tags::FollowCorpTags;
pub use notes::CreateNotes;
pub use profile_state::ProfileStateTables;
pub use sources::CreateSourceRegistry;

#[derive(DeriveIden)]
pub enum Profiles {
    Table,
    Id,
    TenantId,
    Status,
    MergedInto,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum Identifiers {
    Table,
    Id,
    TenantId,
    Kind,
    Namespace,
    ValueHash,
    Value,
    ValueSealed,
    ValueMasked,
    ProfileId,
    Provenance,
    FirstSeenEvent,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum IdentityEdges {
    Table,
    Id,
    TenantId,
    FromIdentifierId,
    ToIdentifierId,
    ProfileId,
    Rule,
    EvidenceEventId,
    CreatedAt,
    CreatedBy,
    RetractedAt,
}

#[derive(DeriveIden)]
pub enum Merges {
    Table,
    Id,
    TenantId,
    SurvivorId,
    AbsorbedId,
    Rule,
    EvidenceEventId,
    BeforeSnapshot,
    AfterSnapshot,
    Operator,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum MergeRefusals {
    Table,
    Id,
    TenantId,
    CandidateIds,
    Rule,
    Reason,
    EvidenceEventId,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum Timeline {
    Table,
    Id,
    TenantId,
    ProfileId,
    EventId,
    EventType,
    OccurredAt,
    Summary,
}

/// Creates profiles, identifiers, the edge ledger, merges, refusals and the timeline.
pub struct CreateIdentityTables;

impl MigrationName for CreateIdentityTables {
    fn name(&self) -> &str {
        "m20260201_000001_create_identity_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateIdentityTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Profiles::Table)
                .if_not_exists()
                .col(str_col(Profiles::Id, 36).primary_key())
                .col(str_col(Profiles::TenantId, 64))
                .col(str_col(Profiles::Status, 16))
                .col(ColumnDef::new(Profiles::MergedInto).string_len(36).null())
                .col(ts_col(Profiles::CreatedAt))
                .col(ts_col(Profiles::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_profiles_merged_into",
            Profiles::Table,
            vec![Profiles::MergedInto.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Identifiers::Table)
                .if_not_exists()
                .col(id_col(Identifiers::Id))
                .col(str_col(Identifiers::TenantId, 64))
                .col(str_col(Identifiers::Kind, 32))
                .col(str_col(Identifiers::Namespace, 64))
                .col(str_col(Identifiers::ValueHash, 64))
                .col(ColumnDef::new(Identifiers::Value).string_len(128).null())
                .col(ColumnDef::new(Identifiers::ValueSealed).text().null())
                .col(str_col(Identifiers::ValueMasked, 160))
                .col(str_col(Identifiers::ProfileId, 36))
                .col(str_col(Identifiers::Provenance, 16))
                .col(str_col(Identifiers::FirstSeenEvent, 36))
                .col(ts_col(Identifiers::CreatedAt))
                .col(ts_col(Identifiers::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_identifiers_key",
            Identifiers::Table,
            vec![
                Identifiers::TenantId.into_iden(),
                Identifiers::Kind.into_iden(),
                Identifiers::Namespace.into_iden(),
                Identifiers::ValueHash.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            m,
            "ix_identifiers_profile",
            Identifiers::Table,
            vec![Identifiers::ProfileId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(IdentityEdges::Table)
                .if_not_exists()
                .col(id_col(IdentityEdges::Id))
                .col(str_col(IdentityEdges::TenantId, 64))
                .col(
                    ColumnDef::new(IdentityEdges::FromIdentifierId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(IdentityEdges::ToIdentifierId)
                        .big_integer()
                        .null(),
                )
                .col(str_col(IdentityEdges::ProfileId, 36))
                .col(str_col(IdentityEdges::Rule, 32))
                .col(
                    ColumnDef::new(IdentityEdges::EvidenceEventId)
                        .string_len(36)
                        .null(),
                )
                .col(ts_col(IdentityEdges::CreatedAt))
                .col(str_col(IdentityEdges::CreatedBy, 64))
                .col(
                    ColumnDef::new(IdentityEdges::RetractedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_identity_edges_profile",
            IdentityEdges::Table,
            vec![IdentityEdges::ProfileId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Merges::Table)
                .if_not_exists()
                .col(id_col(Merges::Id))
                .col(str_col(Merges::TenantId, 64))
                .col(str_col(Merges::SurvivorId, 36))
                .col(str_col(Merges::AbsorbedId, 36))
                .col(str_col(Merges::Rule, 32))
                .col(
                    ColumnDef::new(Merges::EvidenceEventId)
                        .string_len(36)
                        .null(),
                )
                .col(ColumnDef::new(Merges::BeforeSnapshot).text().not_null())
                .col(ColumnDef::new(Merges::AfterSnapshot).text().not_null())
                .col(ColumnDef::new(Merges::Operator).string_len(64).null())
                .col(ts_col(Merges::CreatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_merges_survivor",
            Merges::Table,
            vec![Merges::SurvivorId.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ix_merges_absorbed",
            Merges::Table,
            vec![Merges::AbsorbedId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MergeRefusals::Table)
                .if_not_exists()
                .col(id_col(MergeRefusals::Id))
                .col(str_col(MergeRefusals::TenantId, 64))
                .col(
                    ColumnDef::new(MergeRefusals::CandidateIds)
                        .text()
                        .not_null(),
                )
                .col(str_col(MergeRefusals::Rule, 32))
                .col(str_col(MergeRefusals::Reason, 64))
                .col(
                    ColumnDef::new(MergeRefusals::EvidenceEventId)
                        .string_len(36)
                        .null(),
                )
                .col(ts_col(MergeRefusals::CreatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_merge_refusals_tenant",
            MergeRefusals::Table,
            vec![
                MergeRefusals::TenantId.into_iden(),
                MergeRefusals::Id.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Timeline::Table)
                .if_not_exists()
                .col(id_col(Timeline::Id))
                .col(str_col(Timeline::TenantId, 64))
                .col(str_col(Timeline::ProfileId, 36))
                .col(str_col(Timeline::EventId, 36))
                .col(str_col(Timeline::EventType, 255))
                .col(ts_col(Timeline::OccurredAt))
                .col(ColumnDef::new(Timeline::Summary).text().not_null())
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_timeline_profile_event",
            Timeline::Table,
            vec![
                Timeline::ProfileId.into_iden(),
                Timeline::EventId.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            m,
            "ix_timeline_profile_time",
            Timeline::Table,
            vec![
                Timeline::ProfileId.into_iden(),
                Timeline::OccurredAt.into_iden(),
                Timeline::Id.into_iden(),
            ],
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Timeline::Table.into_iden(),
            MergeRefusals::Table.into_iden(),
            Merges::Table.into_iden(),
            IdentityEdges::Table.into_iden(),
            Identifiers::Table.into_iden(),
            Profiles::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub enum Unmerges {
    Table,
    Id,
    TenantId,
    Kind,
    MergeId,
    SurvivorId,
    RestoredId,
    Identifiers,
    AfterSnapshot,
    Operator,
    Reason,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum MergeBlocks {
    Table,
    Id,
    TenantId,
    ProfileA,
    ProfileB,
    UnmergeId,
    CreatedBy,
    CreatedAt,
    LiftedAt,
    LiftedBy,
}

#[derive(DeriveIden)]
enum MergeCols {
    Reason,
    UnmergedAt,
    UnmergeId,
}

#[derive(DeriveIden)]
enum EdgeCols {
    MergeId,
}

#[derive(DeriveIden)]
enum TimelineCols {
    IdentifierIds,
}

/// Reversible merges: the merge that wrote an edge (`identity_edges.merge_id`), the identifiers of
/// each timeline event (`timeline.identifier_ids`, JSON, subject first), why and whether a merge
/// was undone (`merges.reason`, `unmerged_at`, `unmerge_id`), the record of every un-merge and
/// split (`unmerges`) and the profile pairs automatic resolution must not merge again
/// (`merge_blocks`). One column per `ALTER TABLE`, as SQLite requires.
pub struct ReversibleMerges;

impl MigrationName for ReversibleMerges {
    fn name(&self) -> &str {
        "m20260301_000001_reversible_merges"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ReversibleMerges {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let add = |table: DynIden, col: ColumnDef| {
            Table::alter()
                .table(table)
                .add_column(col.to_owned())
                .to_owned()
        };
        for stmt in [
            add(
                IdentityEdges::Table.into_iden(),
                ColumnDef::new(EdgeCols::MergeId)
                    .big_integer()
                    .null()
                    .to_owned(),
            ),
            add(
                Timeline::Table.into_iden(),
                ColumnDef::new(TimelineCols::IdentifierIds)
                    .text()
                    .null()
                    .to_owned(),
            ),
            add(
                Merges::Table.into_iden(),
                ColumnDef::new(MergeCols::Reason).text().null().to_owned(),
            ),
            add(
                Merges::Table.into_iden(),
                ColumnDef::new(MergeCols::UnmergedAt)
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            ),
            add(
                Merges::Table.into_iden(),
                ColumnDef::new(MergeCols::UnmergeId)
                    .big_integer()
                    .null()
                    .to_owned(),
            ),
        ] {
            m.alter_table(stmt).await?;
        }
        index(
            m,
            "ix_identity_edges_merge",
            IdentityEdges::Table,
            vec![EdgeCols::MergeId.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ix_identity_edges_from",
            IdentityEdges::Table,
            vec![IdentityEdges::FromIdentifierId.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ix_identity_edges_to",
            IdentityEdges::Table,
            vec![IdentityEdges::ToIdentifierId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Unmerges::Table)
                .if_not_exists()
                .col(id_col(Unmerges::Id))
                .col(str_col(Unmerges::TenantId, 64))
                .col(str_col(Unmerges::Kind, 16))
                .col(ColumnDef::new(Unmerges::MergeId).big_integer().null())
                .col(str_col(Unmerges::SurvivorId, 36))
                .col(str_col(Unmerges::RestoredId, 36))
                .col(ColumnDef::new(Unmerges::Identifiers).text().not_null())
                .col(ColumnDef::new(Unmerges::AfterSnapshot).text().not_null())
                .col(str_col(Unmerges::Operator, 64))
                .col(ColumnDef::new(Unmerges::Reason).text().not_null())
                .col(ts_col(Unmerges::CreatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_unmerges_survivor",
            Unmerges::Table,
            vec![Unmerges::SurvivorId.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ix_unmerges_restored",
            Unmerges::Table,
            vec![Unmerges::RestoredId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MergeBlocks::Table)
                .if_not_exists()
                .col(id_col(MergeBlocks::Id))
                .col(str_col(MergeBlocks::TenantId, 64))
                .col(str_col(MergeBlocks::ProfileA, 36))
                .col(str_col(MergeBlocks::ProfileB, 36))
                .col(ColumnDef::new(MergeBlocks::UnmergeId).big_integer().null())
                .col(str_col(MergeBlocks::CreatedBy, 64))
                .col(ts_col(MergeBlocks::CreatedAt))
                .col(
                    ColumnDef::new(MergeBlocks::LiftedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(MergeBlocks::LiftedBy).string_len(64).null())
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_merge_blocks_a",
            MergeBlocks::Table,
            vec![MergeBlocks::ProfileA.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ix_merge_blocks_b",
            MergeBlocks::Table,
            vec![MergeBlocks::ProfileB.into_iden()],
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [MergeBlocks::Table.into_iden(), Unmerges::Table.into_iden()] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        for (name, table) in [
            ("ix_identity_edges_merge", IdentityEdges::Table.into_iden()),
            ("ix_identity_edges_from", IdentityEdges::Table.into_iden()),
            ("ix_identity_edges_to", IdentityEdges::Table.into_iden()),
        ] {
            m.drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        let drop =
            |table: DynIden, col: DynIden| Table::alter().table(table).drop_column(col).to_owned();
        for stmt in [
            drop(Merges::Table.into_iden(), MergeCols::UnmergeId.into_iden()),
            drop(Merges::Table.into_iden(), MergeCols::UnmergedAt.into_iden()),
            drop(Merges::Table.into_iden(), MergeCols::Reason.into_iden()),
            drop(
                Timeline::Table.into_iden(),
                TimelineCols::IdentifierIds.into_iden(),
            ),
            drop(
                IdentityEdges::Table.into_iden(),
                EdgeCols::MergeId.into_iden(),
            ),
        ] {
            m.alter_table(stmt).await?;
        }
        Ok(())
    }
}
