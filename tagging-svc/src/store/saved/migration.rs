//! The saved-segment tables: `saved_segments` (a named condition of a tenant, its refresh mode,
//! its last size and when it is due again), `saved_segment_sizes` (its size history, one row
//! per refresh), `saved_segment_breakdowns` (its analytics as of its last scheduled refresh) and
//! `saved_segment_members` (a real-time segment's members, kept by the rule engine).

use platform::db::schema::{big, dt_null, id_col, index, opt_str, str_col, text, ts_col};
use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
pub enum SavedSegments {
    Table,
    Id,
    TenantId,
    Name,
    /// The name while the segment is active, NULL once archived: unique per tenant, so an
    /// archived segment's name can be used again.
    LiveName,
    Description,
    Owner,
    Condition,
    RefreshMode,
    IntervalMinutes,
    Status,
    Size,
    RefreshedAt,
    DueAt,
    ClaimedUntil,
    LastError,
    Version,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
    ArchivedAt,
}

#[derive(DeriveIden)]
pub enum SavedSegmentSizes {
    Table,
    Id,
    TenantId,
    SegmentId,
    At,
    Count,
    Cause,
    Actor,
    SegmentVersion,
    TookMs,
}

/// Creates `saved_segments` and `saved_segment_sizes`.
pub struct CreateSavedSegments;

impl MigrationName for CreateSavedSegments {
    fn name(&self) -> &str {
        "m20261207_000001_create_saved_segments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSavedSegments {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use SavedSegments as S;
        m.create_table(
            Table::create()
                .table(S::Table)
                .if_not_exists()
                .col(str_col(S::Id, 36).primary_key())
                .col(str_col(S::TenantId, 64))
                .col(str_col(S::Name, 128))
                .col(opt_str(S::LiveName, 128))
                .col(str_col(S::Description, 1000))
                .col(str_col(S::Owner, 64))
                .col(text(S::Condition))
                .col(str_col(S::RefreshMode, 16))
                .col(big(S::IntervalMinutes))
                .col(str_col(S::Status, 16))
                .col(ColumnDef::new(S::Size).big_integer().null())
                .col(
                    ColumnDef::new(S::RefreshedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(dt_null(S::DueAt))
                .col(dt_null(S::ClaimedUntil))
                .col(ColumnDef::new(S::LastError).text().null())
                .col(big(S::Version))
                .col(str_col(S::UpdatedBy, 64))
                .col(ts_col(S::CreatedAt))
                .col(ts_col(S::UpdatedAt))
                .col(
                    ColumnDef::new(S::ArchivedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_saved_segments_name",
            S::Table,
            vec![S::TenantId.into_iden(), S::LiveName.into_iden()],
            true,
        )
        .await?;
        index(
            m,
            "ix_saved_segments_tenant",
            S::Table,
            vec![
                S::TenantId.into_iden(),
                S::Status.into_iden(),
                S::Id.into_iden(),
            ],
            false,
        )
        .await?;
        index(
            m,
            "ix_saved_segments_due",
            S::Table,
            vec![S::DueAt.into_iden()],
            false,
        )
        .await?;

        use SavedSegmentSizes as Z;
        m.create_table(
            Table::create()
                .table(Z::Table)
                .if_not_exists()
                .col(id_col(Z::Id))
                .col(str_col(Z::TenantId, 64))
                .col(str_col(Z::SegmentId, 36))
                .col(ts_col(Z::At))
                .col(big(Z::Count))
                .col(str_col(Z::Cause, 16))
                .col(opt_str(Z::Actor, 64))
                .col(big(Z::SegmentVersion))
                .col(big(Z::TookMs))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_saved_segment_sizes",
            Z::Table,
            vec![
                Z::TenantId.into_iden(),
                Z::SegmentId.into_iden(),
                Z::Id.into_iden(),
            ],
            false,
        )
        .await?;
        // History past its retention is pruned by age.
        index(
            m,
            "ix_saved_segment_sizes_at",
            Z::Table,
            vec![Z::At.into_iden()],
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            SavedSegmentSizes::Table.into_iden(),
            SavedSegments::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub enum SavedSegmentBreakdowns {
    Table,
    SegmentId,
    TenantId,
    SegmentVersion,
    At,
    Total,
    Dimensions,
    Answers,
    TookMs,
}

/// Creates `saved_segment_breakdowns`: a saved segment's analytics breakdowns as of its last
/// scheduled refresh (one row per segment, replaced by each).
pub struct CreateSegmentBreakdowns;

impl MigrationName for CreateSegmentBreakdowns {
    fn name(&self) -> &str {
        "m20261216_000001_create_saved_segment_breakdowns"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSegmentBreakdowns {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use SavedSegmentBreakdowns as B;
        // Answers of a few hundred buckets each outgrow MySQL's 64 KiB TEXT.
        let long = |c: B| {
            ColumnDef::new(c)
                .custom(Alias::new("LONGTEXT"))
                .not_null()
                .to_owned()
        };
        m.create_table(
            Table::create()
                .table(B::Table)
                .if_not_exists()
                .col(str_col(B::SegmentId, 36).primary_key())
                .col(str_col(B::TenantId, 64))
                .col(big(B::SegmentVersion))
                .col(ts_col(B::At))
                .col(big(B::Total))
                .col(text(B::Dimensions))
                .col(long(B::Answers))
                .col(big(B::TookMs))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(SavedSegmentBreakdowns::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
pub enum SavedSegmentMembers {
    Table,
    TenantId,
    SegmentId,
    ProfileId,
    /// When the profile entered the segment.
    Since,
}

#[derive(DeriveIden)]
enum SavedSegmentsMembers {
    /// `saved_segments.members_version`: the definition's version whose members
    /// `saved_segment_members` holds in full (NULL while they are being built, and for a segment
    /// that is not real-time).
    MembersVersion,
}

/// Creates `saved_segment_members` (a real-time segment's members: one row per member, kept by
/// the rule engine as profiles change and filled by the segment's build job) and adds
/// `saved_segments.members_version`.
pub struct CreateSegmentMembers;

impl MigrationName for CreateSegmentMembers {
    fn name(&self) -> &str {
        "m20261217_000000_create_saved_segment_members"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSegmentMembers {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use SavedSegmentMembers as M;
        m.create_table(
            Table::create()
                .table(M::Table)
                .if_not_exists()
                .col(str_col(M::TenantId, 64))
                .col(str_col(M::SegmentId, 36))
                .col(str_col(M::ProfileId, 36))
                .col(ts_col(M::Since))
                .primary_key(
                    Index::create()
                        .col(M::TenantId)
                        .col(M::SegmentId)
                        .col(M::ProfileId),
                )
                .to_owned(),
        )
        .await?;
        // A profile's segments (settling, merges).
        index(
            m,
            "ix_saved_segment_members_profile",
            M::Table,
            vec![M::TenantId.into_iden(), M::ProfileId.into_iden()],
            false,
        )
        .await?;
        let (table, col) = (SavedSegments::Table, SavedSegmentsMembers::MembersVersion);
        if !m.has_column(table.to_string(), col.to_string()).await? {
            m.alter_table(
                Table::alter()
                    .table(table)
                    .add_column(ColumnDef::new(col).big_integer().null())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(SavedSegmentMembers::Table)
                .if_exists()
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SavedSegments::Table)
                .drop_column(SavedSegmentsMembers::MembersVersion)
                .to_owned(),
        )
        .await
    }
}
