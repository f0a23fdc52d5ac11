//! A lead's stage history with time in stage, its trigger firings and its SLAs.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{DatabaseConnection, DbErr, FromQueryResult};
use serde::Serialize;

use crate::store::fetch;
use crate::store::migrations::{LeadSla as A, LeadStageHistory as H, TriggerFirings as F};

/// One move of a lead.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryView {
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    pub actor_kind: String,
    pub actor: String,
    pub reason: String,
    pub entered_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_at: Option<DateTime<Utc>>,
    /// Seconds in `to`: until it was left, or until now.
    pub time_in_stage_secs: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_id: Option<String>,
}

/// The moves of a lead, oldest first: at most `limit` with an id above `after`.
pub async fn history(
    db: &DatabaseConnection,
    tenant: &str,
    profile: &str,
    now: DateTime<Utc>,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<HistoryView>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        id: i64,
        from_stage: Option<String>,
        to_stage: String,
        actor_kind: String,
        actor: String,
        reason: String,
        entered_at: DateTime<Utc>,
        left_at: Option<DateTime<Utc>>,
        cause_id: Option<String>,
    }
    let mut q = Query::select()
        .columns([
            H::Id,
            H::FromStage,
            H::ToStage,
            H::ActorKind,
            H::Actor,
            H::Reason,
            H::EnteredAt,
            H::LeftAt,
            H::CauseId,
        ])
        .from(H::Table)
        .and_where(Expr::col(H::TenantId).eq(tenant))
        .and_where(Expr::col(H::ProfileId).eq(profile))
        .order_by(H::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    if let Some(a) = after {
        q.and_where(Expr::col(H::Id).gt(a));
    }
    Ok(fetch::<Row, _>(db, &q)
        .await?
        .into_iter()
        .map(|r| HistoryView {
            id: r.id,
            from: r.from_stage,
            to: r.to_stage,
            actor_kind: r.actor_kind,
            actor: r.actor,
            reason: r.reason,
            entered_at: r.entered_at,
            left_at: r.left_at,
            time_in_stage_secs: (r.left_at.unwrap_or(now) - r.entered_at)
                .num_seconds()
                .max(0),
            cause_id: r.cause_id,
        })
        .collect())
}

/// A trigger firing.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FiringView {
    pub id: i64,
    pub trigger_id: String,
    pub seq: i64,
    /// `up`, `down` or `stage`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub fired_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_id: Option<String>,
    /// What each action did.
    pub result: serde_json::Value,
}

/// The firings of a profile's triggers, oldest first: at most `limit` with an id above `after`.
pub async fn firings(
    db: &DatabaseConnection,
    tenant: &str,
    profile: &str,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<FiringView>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        id: i64,
        trigger_id: String,
        seq: i64,
        kind: String,
        value: Option<f64>,
        stage: Option<String>,
        fired_at: DateTime<Utc>,
        cause_id: Option<String>,
        result: String,
    }
    let mut q = Query::select()
        .columns([
            F::Id,
            F::TriggerId,
            F::Seq,
            F::Kind,
            F::Value,
            F::Stage,
            F::FiredAt,
            F::CauseId,
            F::Result,
        ])
        .from(F::Table)
        .and_where(Expr::col(F::TenantId).eq(tenant))
        .and_where(Expr::col(F::ProfileId).eq(profile))
        .order_by(F::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    if let Some(a) = after {
        q.and_where(Expr::col(F::Id).gt(a));
    }
    Ok(fetch::<Row, _>(db, &q)
        .await?
        .into_iter()
        .map(|r| FiringView {
            id: r.id,
            trigger_id: r.trigger_id,
            seq: r.seq,
            kind: r.kind,
            value: r.value,
            stage: r.stage,
            fired_at: r.fired_at,
            cause_id: r.cause_id,
            result: serde_json::from_str(&r.result).unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

/// An SLA of a lead (its row as [`slas`] selects it).
#[derive(Debug, Clone, Serialize, PartialEq, FromQueryResult)]
pub struct SlaView {
    pub history_id: i64,
    pub stage: String,
    pub entered_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// `open`, `met`, `breached` or `closed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_by: Option<String>,
}

/// The SLAs of a lead, oldest first (by the stage entry they are about): at most `limit` with a
/// history id above `after`.
pub async fn slas(
    db: &DatabaseConnection,
    tenant: &str,
    profile: &str,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<SlaView>, DbErr> {
    let mut q = Query::select()
        .columns([
            A::HistoryId,
            A::Stage,
            A::EnteredAt,
            A::DueAt,
            A::Status,
            A::SettledAt,
            A::SettledBy,
        ])
        .from(A::Table)
        .and_where(Expr::col(A::TenantId).eq(tenant))
        .and_where(Expr::col(A::ProfileId).eq(profile))
        .order_by(A::HistoryId, Order::Asc)
        .limit(limit)
        .to_owned();
    if let Some(a) = after {
        q.and_where(Expr::col(A::HistoryId).gt(a));
    }
    fetch(db, &q).await
}
