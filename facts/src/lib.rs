//! The profile-facts projection: the `facts_*` tables the `rules` crate's SQL compiler reads, kept
//! in a service's own database from bus events, and one profile's facts loaded for in-memory
//! evaluation. tagging-svc and scoring-svc each keep one (DESIGN.md §4: services keep projections
//! of the facts they need; no service reads another's tables).
//!
//! Owns: writing the facts tables (profile state from `profile.updated`, behaviour from
//! `profile.resolved`, tags, a lead's scores and stage from `lead.score_changed` /
//! `lead.stage_changed`, merges and un-merges), the rolling behaviour counters and their daily
//! roll, activity by hour and when each profile was first seen (for analytics), reading a
//! profile's facts, the zone each tenant's operators set (`zones`). Must not touch: what a
//! service decides from the facts (tags, scores), the bus (callers consume and pass payloads
//! in), other services' databases.
//!
//! Every write runs in the caller's transaction, so a consumer records its inbox row, its own
//! effects and the facts it read in one commit.

mod event;
mod load;
pub mod metrics;
mod migration;
mod rolling;
mod write;
mod zones;

pub use event::{event_fact, event_kind, local_day, local_hour};
pub use load::{load_profile, LoadOptions};
pub use migration::{
    CreateAnalyticsFacts, CreateFactsTables, CreateScoreFacts, CreateStageFacts, FactsClock,
    FactsRollingDirty, KindCountFacts, ProfileSummaryFacts, TagHolderFacts,
};
pub use rolling::{roll, rolled_to, tenants, RollReport};
pub use write::{
    apply_profile, apply_score, apply_stage, bump_tenant_activity, compact_tag_holders,
    ensure_locked, ensure_locked_many, ensure_profile, ensure_profiles, lock_known, lock_profile,
    merge_first_seen, merge_profiles, prune_events, record_event, record_event_as_of,
    record_event_buckets, record_events, record_first_seen, record_stage_entry, remove_profile,
    set_tag, set_tag_many, split_events, unmerge_first_seen, unset_tag, unset_tag_many,
    ProfileApplied, ProfileEvent, Rolling, Sighting, HOLDER_LOG_BATCH,
};
pub use zones::{
    announce_at_start, announce_kept, record_zone, take_settings, CreateTenantZones, ZoneError,
};

use sea_orm::{ConnectionTrait, DbErr, Statement};

/// Runs one sea-query statement on `conn`'s backend.
pub(crate) async fn exec<C, S>(conn: &C, stmt: &S) -> Result<sea_orm::ExecResult, DbErr>
where
    C: ConnectionTrait,
    S: sea_orm::StatementBuilder,
{
    let b = conn.get_database_backend();
    conn.execute(b.build(stmt)).await
}

/// Runs one sea-query select and returns its rows.
pub(crate) async fn rows<C: ConnectionTrait>(
    conn: &C,
    stmt: &sea_orm::sea_query::SelectStatement,
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    let b = conn.get_database_backend();
    let st: Statement = b.build(stmt);
    conn.query_all(st).await
}

/// A string column of the facts tables (binary on MySQL: read as bytes).
pub(crate) fn text(row: &sea_orm::QueryResult, col: &str) -> Result<String, DbErr> {
    let raw: Vec<u8> = row.try_get("", col)?;
    String::from_utf8(raw).map_err(|e| DbErr::Custom(format!("{col} is not UTF-8: {e}")))
}

/// A nullable string column of the facts tables.
pub(crate) fn opt_text(row: &sea_orm::QueryResult, col: &str) -> Result<Option<String>, DbErr> {
    let raw: Option<Vec<u8>> = row.try_get("", col)?;
    raw.map(|r| String::from_utf8(r).map_err(|e| DbErr::Custom(format!("{col}: {e}"))))
        .transpose()
}
