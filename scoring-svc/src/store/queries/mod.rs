//! Reads behind the internal API: a lead with its exact scores now, its ledger page by page
//! (each entry with its worth now), its stage history with time in stage, its trigger firings
//! and SLAs, the leaderboard of a dimension (exact at the instant of the request), and the stage
//! funnel of a period.

use chrono::{DateTime, Utc};
use proto::scoring::Owner;
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{DatabaseConnection, DbErr, FromQueryResult};
use serde::Serialize;

use super::leads::{self, Lead};
use super::migrations::LeadSla as A;
use super::{fetch_one, scores, Scorer};

mod board;
mod funnel;
mod history;
mod ledger;

pub use board::*;
pub use funnel::*;
pub use history::*;
pub use ledger::*;

/// A lead's row.
pub async fn lead(
    db: &DatabaseConnection,
    tenant: &str,
    profile: &str,
) -> Result<Option<Lead>, DbErr> {
    leads::find(db, tenant, profile).await
}

/// One dimension's score.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScoreView {
    pub model_id: String,
    pub model: String,
    pub name: String,
    /// Exact now, decay applied.
    pub score: f64,
    /// The part that does not decay (state rules, adjustments).
    pub held: f64,
    /// The part that does, decayed to now.
    pub decaying: f64,
}

/// A lead with its scores.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeadView {
    pub tenant_id: String,
    pub profile_id: String,
    pub stage: String,
    pub stage_entered_at: DateTime<Utc>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<DateTime<Utc>>,
    pub scores: Vec<ScoreView>,
    /// The stages a person may move the lead to by hand now, as the stage machine says (a
    /// guard may still refuse a move).
    pub allowed_moves: Vec<String>,
    /// When the open SLA of the current stage falls due, if one is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla_due_at: Option<DateTime<Utc>>,
    pub as_of: DateTime<Utc>,
}

/// A lead with its exact scores at the scorer's now.
pub async fn lead_scores(
    scorer: &Scorer,
    tenant: &str,
    profile: &str,
) -> Result<Option<LeadView>, DbErr> {
    let db = &scorer.db;
    let Some(l) = lead(db, tenant, profile).await? else {
        return Ok(None);
    };
    let now = scorer.clock.now();
    let defs = scorer.compiled(tenant).await?;
    let stored = scores::load(db, tenant, profile).await?;
    let mut out = Vec::new();
    for m in &defs.models {
        let (f, _) = scores::current(db, tenant, profile, m, stored.get(&m.id), now).await?;
        out.push(ScoreView {
            model_id: m.id.clone(),
            model: m.key.clone(),
            name: m.name.clone(),
            score: f.value(),
            held: f.held,
            decaying: f.decaying,
        });
    }
    #[derive(FromQueryResult)]
    struct OpenSla {
        due_at: DateTime<Utc>,
    }
    let open_sla = Query::select()
        .column(A::DueAt)
        .from(A::Table)
        .and_where(Expr::col(A::TenantId).eq(tenant))
        .and_where(Expr::col(A::ProfileId).eq(profile))
        .and_where(Expr::col(A::Status).eq(leads::SLA_OPEN))
        .order_by(A::HistoryId, Order::Desc)
        .limit(1)
        .to_owned();
    let sla_due_at = fetch_one::<OpenSla, _>(db, &open_sla)
        .await?
        .map(|r| r.due_at);
    let allowed_moves = if l.active() {
        defs.machine.manual_targets(&l.stage)
    } else {
        Vec::new()
    };
    Ok(Some(LeadView {
        allowed_moves,
        sla_due_at,
        tenant_id: l.tenant,
        profile_id: l.profile,
        stage: l.stage,
        stage_entered_at: l.stage_entered_at,
        status: l.status,
        merged_into: l.merged_into,
        owner: l.owner,
        last_activity_at: l.last_activity_at,
        scores: out,
        as_of: now,
    }))
}
