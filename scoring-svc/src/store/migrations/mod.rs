//! The scoring tables. Definitions: `score_models`, `score_rules`, `stage_machines`,
//! `score_triggers`, and `scoring_tenants` (a version per tenant, bumped with every definition
//! change, so every instance recompiles). Per profile: `leads` (stage, owner, activity; its row
//! is the profile's lock), `score_ledger` (append-only entries), `profile_scores` (the folds),
//! `lead_stage_history`, `lead_sla`, `trigger_state` and `trigger_firings`, `lead_events` (when
//! each event happened, for replays), `tag_clock` (the latest tag change seen). `scoring_jobs`
//! holds recompute jobs. The facts projection comes from the `facts` crate. The table and column
//! names are here; each migration is a file of its own, in the order `super::Migrator` runs them.

use platform::db::schema::{
    big, boolean, cols, double, dt, dt_null, id_col, index, opt_str, str_col, text, ts_col,
};
use sea_orm_migration::prelude::*;

mod board_indexes;
mod browse_indexes;
mod create;
mod lead_merge_mark;
mod score_eras;
mod unread_facts_indexes;

pub use board_indexes::ScoreBoardIndexes;
pub use browse_indexes::LeadBrowseIndexes;
pub use create::CreateScoringTables;
pub use lead_merge_mark::LeadMergeMark;
pub use score_eras::ScoreKeyEras;
pub use unread_facts_indexes::DropUnreadFactsIndexes;

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

#[derive(DeriveIden, Clone, Copy)]
pub enum ScoreEras {
    /// The era of `norm` (see `decay::ERA_HALF_LIVES`).
    NormEra,
}

/// Width of profile ids in scoring's own tables.
pub const PROFILE: u32 = 64;
const TENANT: u32 = 64;
const ID: u32 = 36;
const ACTOR: u32 = 128;
