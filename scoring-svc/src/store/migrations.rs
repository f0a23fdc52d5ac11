//! The scoring tables. Definitions: `score_models`, `score_rules`, `stage_machines`,
//! `score_triggers`, and `scoring_tenants` (a version per tenant, bumped with every definition
//! change, so every instance recompiles). Per profile: `leads` (stage, owner, activity; its row
//! is the profile's lock), `score_ledger` (append-only entries), `profile_scores` (the folds),
//! `lead_stage_history`, `lead_sla`, `trigger_state` and `trigger_firings`, `lead_events` (when
//! each event happened, for replays), `tag_clock` (the latest tag change seen). `scoring_jobs`
//! holds recompute jobs. The facts projection comes from the `facts` crate.

use platform::db::schema::{dt, dt_null, id_col, index, opt_str, str_col, ts_col};
use sea_orm_migration::prelude::*;

#[derive(DeriveIden, Clone, Copy)]
pub enum ScoreModels {
    Table,
    Id,
    TenantId,
    Key,
    Name,
    Description,
    Decay,
    Status,
    Epoch,
    CreatedBy,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ScoreRules {
    Table,
    Id,
    TenantId,
    ModelId,
    Name,
    Kind,
    Spec,
    Points,
    Enabled,
    Status,
    CreatedBy,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum StageMachines {
    Table,
    TenantId,
    Spec,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ScoreTriggers {
    Table,
    Id,
    TenantId,
    Name,
    Spec,
    Enabled,
    Status,
    CreatedBy,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ScoringTenants {
    Table,
    TenantId,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Leads {
    Table,
    TenantId,
    ProfileId,
    Stage,
    StageEnteredAt,
    HistoryId,
    Status,
    MergedInto,
    OwnerCorpId,
    OwnerUserId,
    OwnerExternalUserid,
    LastActivityAt,
    NextCheckAt,
    CreatedAt,
    UpdatedAt,
    /// Added by [`LeadMergeMark`].
    MergeHistoryId,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum LeadStageHistory {
    Table,
    Id,
    TenantId,
    ProfileId,
    FromStage,
    ToStage,
    ActorKind,
    Actor,
    Reason,
    EnteredAt,
    LeftAt,
    CauseId,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum LeadSla {
    Table,
    HistoryId,
    TenantId,
    ProfileId,
    Stage,
    EnteredAt,
    DueAt,
    Status,
    SettledAt,
    SettledBy,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ScoreLedger {
    Table,
    Id,
    TenantId,
    ProfileId,
    ModelId,
    RuleId,
    Kind,
    SourceKey,
    VoidKey,
    EventKind,
    Points,
    Delta,
    Capped,
    EarnedAt,
    ExpiresAt,
    MergedFrom,
    CauseId,
    Note,
    CreatedAt,
    VoidedAt,
    VoidedBy,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ProfileScores {
    Table,
    TenantId,
    ProfileId,
    ModelId,
    Held,
    Decaying,
    FoldedAt,
    ValidUntil,
    Norm,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum TriggerState {
    Table,
    TenantId,
    TriggerId,
    ProfileId,
    Above,
    Seq,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum TriggerFirings {
    Table,
    Id,
    TenantId,
    TriggerId,
    ProfileId,
    Seq,
    Kind,
    Value,
    Stage,
    FiredAt,
    CauseId,
    Result,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum LeadEvents {
    Table,
    TenantId,
    EventId,
    EarnedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum TagClock {
    Table,
    TenantId,
    ProfileId,
    TagId,
    ChangedAt,
    Present,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ScoringJobs {
    Table,
    Id,
    TenantId,
    Kind,
    ModelId,
    Status,
    Total,
    Done,
    Cursor,
    FireTriggers,
    LeaseUntil,
    Error,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

/// Creates every scoring table.
pub struct CreateScoringTables;

impl MigrationName for CreateScoringTables {
    fn name(&self) -> &str {
        "m20260601_000001_create_scoring_tables"
    }
}

/// Width of profile ids in scoring's own tables.
pub const PROFILE: u32 = 64;
const TENANT: u32 = 64;
const ID: u32 = 36;
const ACTOR: u32 = 128;

fn boolean<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).boolean().not_null().to_owned()
}

fn double<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).double().not_null().to_owned()
}

fn big<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

fn text<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).text().not_null().to_owned()
}

fn cols<T: IntoIden + Copy>(cs: &[T]) -> Vec<DynIden> {
    cs.iter().map(|c| c.into_iden()).collect()
}

#[async_trait::async_trait]
impl MigrationTrait for CreateScoringTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ScoreModels as M;
        m.create_table(
            Table::create()
                .table(M::Table)
                .if_not_exists()
                .col(str_col(M::Id, ID).primary_key())
                .col(str_col(M::TenantId, TENANT))
                .col(str_col(M::Key, 64))
                .col(str_col(M::Name, 255))
                .col(text(M::Description))
                .col(text(M::Decay))
                .col(str_col(M::Status, 16))
                .col(dt(M::Epoch))
                .col(str_col(M::CreatedBy, ACTOR))
                .col(str_col(M::UpdatedBy, ACTOR))
                .col(ts_col(M::CreatedAt))
                .col(ts_col(M::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_score_models_key",
            M::Table,
            cols(&[M::TenantId, M::Key]),
            true,
        )
        .await?;

        use ScoreRules as R;
        m.create_table(
            Table::create()
                .table(R::Table)
                .if_not_exists()
                .col(str_col(R::Id, ID).primary_key())
                .col(str_col(R::TenantId, TENANT))
                .col(str_col(R::ModelId, ID))
                .col(str_col(R::Name, 255))
                .col(str_col(R::Kind, 16))
                .col(text(R::Spec))
                .col(double(R::Points))
                .col(boolean(R::Enabled))
                .col(str_col(R::Status, 16))
                .col(str_col(R::CreatedBy, ACTOR))
                .col(str_col(R::UpdatedBy, ACTOR))
                .col(ts_col(R::CreatedAt))
                .col(ts_col(R::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_score_rules_tenant",
            R::Table,
            cols(&[R::TenantId, R::ModelId]),
            false,
        )
        .await?;

        use StageMachines as S;
        m.create_table(
            Table::create()
                .table(S::Table)
                .if_not_exists()
                .col(str_col(S::TenantId, TENANT).primary_key())
                .col(text(S::Spec))
                .col(str_col(S::UpdatedBy, ACTOR))
                .col(ts_col(S::UpdatedAt))
                .to_owned(),
        )
        .await?;

        use ScoreTriggers as G;
        m.create_table(
            Table::create()
                .table(G::Table)
                .if_not_exists()
                .col(str_col(G::Id, ID).primary_key())
                .col(str_col(G::TenantId, TENANT))
                .col(str_col(G::Name, 255))
                .col(text(G::Spec))
                .col(boolean(G::Enabled))
                .col(str_col(G::Status, 16))
                .col(str_col(G::CreatedBy, ACTOR))
                .col(str_col(G::UpdatedBy, ACTOR))
                .col(ts_col(G::CreatedAt))
                .col(ts_col(G::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_score_triggers_tenant",
            G::Table,
            cols(&[G::TenantId]),
            false,
        )
        .await?;

        use ScoringTenants as V;
        m.create_table(
            Table::create()
                .table(V::Table)
                .if_not_exists()
                .col(str_col(V::TenantId, TENANT).primary_key())
                .col(big(V::Version))
                .col(ts_col(V::UpdatedAt))
                .to_owned(),
        )
        .await?;

        use Leads as L;
        m.create_table(
            Table::create()
                .table(L::Table)
                .if_not_exists()
                .col(str_col(L::TenantId, TENANT))
                .col(str_col(L::ProfileId, PROFILE))
                .col(str_col(L::Stage, 64))
                .col(dt(L::StageEnteredAt))
                .col(big(L::HistoryId))
                .col(str_col(L::Status, 16))
                .col(opt_str(L::MergedInto, PROFILE))
                .col(opt_str(L::OwnerCorpId, 64))
                .col(opt_str(L::OwnerUserId, ACTOR))
                .col(opt_str(L::OwnerExternalUserid, ACTOR))
                .col(dt_null(L::LastActivityAt))
                .col(dt_null(L::NextCheckAt))
                .col(ts_col(L::CreatedAt))
                .col(ts_col(L::UpdatedAt))
                .primary_key(Index::create().col(L::TenantId).col(L::ProfileId))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_leads_stage",
            L::Table,
            cols(&[L::TenantId, L::Stage]),
            false,
        )
        .await?;
        index(
            m,
            "ix_leads_owner",
            L::Table,
            cols(&[L::TenantId, L::OwnerUserId]),
            false,
        )
        .await?;
        index(m, "ix_leads_due", L::Table, cols(&[L::NextCheckAt]), false).await?;

        use LeadStageHistory as H;
        m.create_table(
            Table::create()
                .table(H::Table)
                .if_not_exists()
                .col(id_col(H::Id))
                .col(str_col(H::TenantId, TENANT))
                .col(str_col(H::ProfileId, PROFILE))
                .col(opt_str(H::FromStage, 64))
                .col(str_col(H::ToStage, 64))
                .col(str_col(H::ActorKind, 16))
                .col(str_col(H::Actor, 255))
                .col(str_col(H::Reason, 1000))
                .col(dt(H::EnteredAt))
                .col(dt_null(H::LeftAt))
                .col(opt_str(H::CauseId, 64))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_stage_history_profile",
            H::Table,
            cols(&[H::TenantId, H::ProfileId, H::Id]),
            false,
        )
        .await?;

        use LeadSla as A;
        m.create_table(
            Table::create()
                .table(A::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(A::HistoryId)
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .col(str_col(A::TenantId, TENANT))
                .col(str_col(A::ProfileId, PROFILE))
                .col(str_col(A::Stage, 64))
                .col(dt(A::EnteredAt))
                .col(dt(A::DueAt))
                .col(str_col(A::Status, 16))
                .col(dt_null(A::SettledAt))
                .col(opt_str(A::SettledBy, 255))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_lead_sla_due",
            A::Table,
            cols(&[A::Status, A::DueAt]),
            false,
        )
        .await?;
        index(
            m,
            "ix_lead_sla_profile",
            A::Table,
            cols(&[A::TenantId, A::ProfileId, A::Status]),
            false,
        )
        .await?;

        use ScoreLedger as E;
        m.create_table(
            Table::create()
                .table(E::Table)
                .if_not_exists()
                .col(id_col(E::Id))
                .col(str_col(E::TenantId, TENANT))
                .col(str_col(E::ProfileId, PROFILE))
                .col(str_col(E::ModelId, ID))
                .col(str_col(E::RuleId, ID))
                .col(str_col(E::Kind, 16))
                .col(str_col(E::SourceKey, 64))
                .col(big(E::VoidKey))
                .col(opt_str(E::EventKind, 128))
                .col(double(E::Points))
                .col(double(E::Delta))
                .col(opt_str(E::Capped, 16))
                .col(dt(E::EarnedAt))
                .col(dt_null(E::ExpiresAt))
                .col(opt_str(E::MergedFrom, PROFILE))
                .col(opt_str(E::CauseId, 64))
                .col(opt_str(E::Note, 512))
                .col(ts_col(E::CreatedAt))
                .col(dt_null(E::VoidedAt))
                .col(opt_str(E::VoidedBy, 64))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_score_ledger_source",
            E::Table,
            cols(&[
                E::TenantId,
                E::ProfileId,
                E::RuleId,
                E::SourceKey,
                E::VoidKey,
            ]),
            true,
        )
        .await?;
        index(
            m,
            "ix_score_ledger_profile",
            E::Table,
            cols(&[E::TenantId, E::ProfileId, E::ModelId, E::Id]),
            false,
        )
        .await?;

        use ProfileScores as P;
        m.create_table(
            Table::create()
                .table(P::Table)
                .if_not_exists()
                .col(str_col(P::TenantId, TENANT))
                .col(str_col(P::ProfileId, PROFILE))
                .col(str_col(P::ModelId, ID))
                .col(double(P::Held))
                .col(double(P::Decaying))
                .col(dt(P::FoldedAt))
                .col(dt_null(P::ValidUntil))
                .col(double(P::Norm))
                .col(ts_col(P::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(P::TenantId)
                        .col(P::ProfileId)
                        .col(P::ModelId),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_profile_scores_model",
            P::Table,
            cols(&[P::TenantId, P::ModelId]),
            false,
        )
        .await?;

        use TriggerState as T;
        m.create_table(
            Table::create()
                .table(T::Table)
                .if_not_exists()
                .col(str_col(T::TenantId, TENANT))
                .col(str_col(T::TriggerId, ID))
                .col(str_col(T::ProfileId, PROFILE))
                .col(boolean(T::Above))
                .col(big(T::Seq))
                .col(ts_col(T::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(T::TenantId)
                        .col(T::ProfileId)
                        .col(T::TriggerId),
                )
                .to_owned(),
        )
        .await?;

        use TriggerFirings as F;
        m.create_table(
            Table::create()
                .table(F::Table)
                .if_not_exists()
                .col(id_col(F::Id))
                .col(str_col(F::TenantId, TENANT))
                .col(str_col(F::TriggerId, ID))
                .col(str_col(F::ProfileId, PROFILE))
                .col(big(F::Seq))
                .col(str_col(F::Kind, 16))
                .col(ColumnDef::new(F::Value).double().null())
                .col(opt_str(F::Stage, 64))
                .col(dt(F::FiredAt))
                .col(opt_str(F::CauseId, 64))
                .col(text(F::Result))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_trigger_firings",
            F::Table,
            cols(&[F::TenantId, F::TriggerId, F::ProfileId, F::Seq]),
            true,
        )
        .await?;
        index(
            m,
            "ix_trigger_firings_profile",
            F::Table,
            cols(&[F::TenantId, F::ProfileId, F::Id]),
            false,
        )
        .await?;

        use LeadEvents as W;
        m.create_table(
            Table::create()
                .table(W::Table)
                .if_not_exists()
                .col(str_col(W::TenantId, TENANT))
                .col(str_col(W::EventId, 64))
                .col(dt(W::EarnedAt))
                .primary_key(Index::create().col(W::TenantId).col(W::EventId))
                .to_owned(),
        )
        .await?;

        use TagClock as C;
        m.create_table(
            Table::create()
                .table(C::Table)
                .if_not_exists()
                .col(str_col(C::TenantId, TENANT))
                .col(str_col(C::ProfileId, PROFILE))
                .col(str_col(C::TagId, 64))
                .col(dt(C::ChangedAt))
                .col(boolean(C::Present))
                .primary_key(
                    Index::create()
                        .col(C::TenantId)
                        .col(C::ProfileId)
                        .col(C::TagId),
                )
                .to_owned(),
        )
        .await?;

        use ScoringJobs as J;
        m.create_table(
            Table::create()
                .table(J::Table)
                .if_not_exists()
                .col(str_col(J::Id, ID).primary_key())
                .col(str_col(J::TenantId, TENANT))
                .col(str_col(J::Kind, 16))
                .col(opt_str(J::ModelId, ID))
                .col(str_col(J::Status, 16))
                .col(big(J::Total))
                .col(big(J::Done))
                .col(opt_str(J::Cursor, PROFILE))
                .col(boolean(J::FireTriggers))
                .col(dt_null(J::LeaseUntil))
                .col(ColumnDef::new(J::Error).text().null())
                .col(str_col(J::CreatedBy, ACTOR))
                .col(ts_col(J::CreatedAt))
                .col(ts_col(J::UpdatedAt))
                .col(dt_null(J::FinishedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_scoring_jobs_status",
            J::Table,
            cols(&[J::Status]),
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ScoringJobs::Table.into_iden(),
            TagClock::Table.into_iden(),
            LeadEvents::Table.into_iden(),
            TriggerFirings::Table.into_iden(),
            TriggerState::Table.into_iden(),
            ProfileScores::Table.into_iden(),
            ScoreLedger::Table.into_iden(),
            LeadSla::Table.into_iden(),
            LeadStageHistory::Table.into_iden(),
            Leads::Table.into_iden(),
            ScoringTenants::Table.into_iden(),
            ScoreTriggers::Table.into_iden(),
            StageMachines::Table.into_iden(),
            ScoreRules::Table.into_iden(),
            ScoreModels::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Drops the facts projection's value indexes. They serve the `rules` crate's SQL compiler
/// (tagging-svc's bulk previews over every profile); scoring reads its projection one profile at
/// a time (`facts::load_profile`, merges, splits), which the primary keys and the `*_profile`
/// indexes serve, so keeping them would only multiply the index writes of every event.
pub struct DropUnreadFactsIndexes;

/// The value indexes of the facts tables (names as `rules::schema::indexes` creates them);
/// those the facts schema no longer has are skipped.
const UNREAD_FACTS_INDEXES: [&str; 11] = [
    "ix_facts_property_s",
    "ix_facts_property_n",
    "ix_facts_property_fold",
    "ix_facts_relation_ref",
    "ix_facts_daily_cnt",
    "ix_facts_rolling_7",
    "ix_facts_rolling_30",
    "ix_facts_rolling_90",
    "ix_facts_rolling_total",
    "ix_facts_event_kind",
    "ix_facts_event_prop_s",
];

/// The facts schema's indexes with their names and tables.
fn facts_indexes() -> Vec<(String, String, IndexCreateStatement)> {
    rules::schema::indexes()
        .into_iter()
        .map(|i| {
            // `CREATE INDEX "name" ON "table" (…)`
            let sql = i.to_string(SqliteQueryBuilder);
            let mut quoted = sql.split('"').skip(1).step_by(2);
            let name = quoted.next().unwrap_or_default().to_string();
            let table = quoted.next().unwrap_or_default().to_string();
            (name, table, i)
        })
        .collect()
}

impl MigrationName for DropUnreadFactsIndexes {
    fn name(&self) -> &str {
        "m20260601_000002_drop_unread_facts_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DropUnreadFactsIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in facts_indexes() {
            if UNREAD_FACTS_INDEXES.contains(&name.as_str()) {
                m.drop_index(
                    Index::drop()
                        .name(&name)
                        .table(Alias::new(table))
                        .to_owned(),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _, i) in facts_indexes() {
            if UNREAD_FACTS_INDEXES.contains(&name.as_str()) {
                m.create_index(i).await?;
            }
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ScoreEras {
    /// The era of `norm` (see `decay::ERA_HALF_LIVES`).
    NormEra,
}

/// Adds `profile_scores.norm_era`: leaderboard keys relative to the start of their era, so they
/// never overflow however long a model runs. Rows written before it are of era 0 (keys relative
/// to the model's start, as they were).
pub struct ScoreKeyEras;

impl MigrationName for ScoreKeyEras {
    fn name(&self) -> &str {
        "m20261204_000001_score_key_eras"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ScoreKeyEras {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProfileScores::Table)
                .add_column(big(ScoreEras::NormEra))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProfileScores::Table)
                .drop_column(ScoreEras::NormEra)
                .to_owned(),
        )
        .await
    }
}

/// Adds `leads.merge_history_id`: on a lead merged into another, the survivor's stage-history
/// entry current when the merge was applied, so undoing the merge can take the survivor back to
/// the stage it had then (0: not merged, or merged before this was recorded).
pub struct LeadMergeMark;

impl MigrationName for LeadMergeMark {
    fn name(&self) -> &str {
        "m20261206_000001_lead_merge_mark"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for LeadMergeMark {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .add_column(big(Leads::MergeHistoryId))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .drop_column(Leads::MergeHistoryId)
                .to_owned(),
        )
        .await
    }
}

/// The indexes of the customer browse (`store::browse`): active leads of a tenant by last
/// activity, by creation, and by stage then last activity, each ending in the profile id so a
/// page's keyset reads the index in order and stops after the page.
pub struct LeadBrowseIndexes;

/// (name, columns) of each browse index.
const BROWSE_INDEXES: [(&str, &[Leads]); 3] = [
    (
        "ix_leads_browse_active",
        &[
            Leads::TenantId,
            Leads::Status,
            Leads::LastActivityAt,
            Leads::ProfileId,
        ],
    ),
    (
        "ix_leads_browse_created",
        &[
            Leads::TenantId,
            Leads::Status,
            Leads::CreatedAt,
            Leads::ProfileId,
        ],
    ),
    (
        "ix_leads_browse_stage",
        &[
            Leads::TenantId,
            Leads::Status,
            Leads::Stage,
            Leads::LastActivityAt,
            Leads::ProfileId,
        ],
    ),
];

impl MigrationName for LeadBrowseIndexes {
    fn name(&self) -> &str {
        "m20261207_000001_lead_browse_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for LeadBrowseIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, on) in BROWSE_INDEXES {
            index(m, name, Leads::Table, cols(on), false).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in BROWSE_INDEXES {
            m.drop_index(Index::drop().name(name).table(Leads::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The indexes of the leaderboard's threshold reads (`queries::leaderboard`): a model's folds of
/// one era by `norm` descending then profile id, by `held` descending then profile id, and by
/// when they stop being valid (the folds a read must rebuild).
pub struct ScoreBoardIndexes;

impl MigrationName for ScoreBoardIndexes {
    fn name(&self) -> &str {
        "m20261207_000002_score_board_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ScoreBoardIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ProfileScores as P;
        let mut by_norm = Index::create();
        by_norm
            .name("ix_profile_scores_norm")
            .table(P::Table)
            .if_not_exists()
            .col(P::TenantId)
            .col(P::ModelId)
            .col(ScoreEras::NormEra)
            .col((P::Norm, IndexOrder::Desc))
            .col(P::ProfileId);
        m.create_index(by_norm.to_owned()).await?;
        let mut by_held = Index::create();
        by_held
            .name("ix_profile_scores_held")
            .table(P::Table)
            .if_not_exists()
            .col(P::TenantId)
            .col(P::ModelId)
            .col((P::Held, IndexOrder::Desc))
            .col(P::ProfileId);
        m.create_index(by_held.to_owned()).await?;
        index(
            m,
            "ix_profile_scores_valid",
            P::Table,
            cols(&[P::TenantId, P::ModelId, P::ValidUntil]),
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "ix_profile_scores_norm",
            "ix_profile_scores_held",
            "ix_profile_scores_valid",
        ] {
            m.drop_index(
                Index::drop()
                    .name(name)
                    .table(ProfileScores::Table)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
