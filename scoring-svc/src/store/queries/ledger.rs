//! A lead's ledger, page by page, each entry with its worth now.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{DatabaseConnection, DbErr, FromQueryResult};
use serde::Serialize;

use crate::store::migrations::{ScoreLedger as E, ScoreRules as R};
use crate::store::{fetch, Scorer};

/// One ledger entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EntryView {
    pub id: i64,
    pub model_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rule_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The event id for event points; `state:…` / `adjust:…` otherwise.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_kind: Option<String>,
    /// The rule's points when written.
    pub points: f64,
    /// What the entry added (after caps).
    pub delta: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped: Option<String>,
    pub earned_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// What it is worth now (decay applied; 0 once expired or voided).
    pub value_now: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voided_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voided_by: Option<String>,
}

/// A page of entries, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerPage {
    pub items: Vec<EntryView>,
    /// The id the next page starts below (the API's cursor holds it); `None` on the last.
    pub next_cursor: Option<i64>,
}

/// Filter of a ledger page.
#[derive(Debug, Clone, Default)]
pub struct LedgerQuery {
    pub model_id: Option<String>,
    /// Entries with a smaller id than this.
    pub cursor: Option<i64>,
    pub limit: u64,
    pub include_voided: bool,
}

/// A ledger row as [`ledger`] selects it.
#[derive(FromQueryResult)]
struct Row {
    id: i64,
    model_id: String,
    kind: String,
    rule_id: String,
    source_key: String,
    void_key: i64,
    event_kind: Option<String>,
    points: f64,
    delta: f64,
    capped: Option<String>,
    earned_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    merged_from: Option<String>,
    cause_id: Option<String>,
    note: Option<String>,
    created_at: DateTime<Utc>,
    voided_at: Option<DateTime<Utc>>,
    voided_by: Option<String>,
}

/// A page of the profile's ledger.
pub async fn ledger(
    scorer: &Scorer,
    tenant: &str,
    profile: &str,
    q: &LedgerQuery,
) -> Result<LedgerPage, DbErr> {
    let db = &scorer.db;
    let now = scorer.clock.now();
    let defs = scorer.compiled(tenant).await?;
    let mut s = Query::select();
    s.columns([
        E::Id,
        E::ModelId,
        E::Kind,
        E::RuleId,
        E::SourceKey,
        E::VoidKey,
        E::EventKind,
        E::Points,
        E::Delta,
        E::Capped,
        E::EarnedAt,
        E::ExpiresAt,
        E::MergedFrom,
        E::CauseId,
        E::Note,
        E::CreatedAt,
        E::VoidedAt,
        E::VoidedBy,
    ])
    .from(E::Table)
    .and_where(Expr::col(E::TenantId).eq(tenant))
    .and_where(Expr::col(E::ProfileId).eq(profile))
    .order_by(E::Id, Order::Desc)
    .limit(q.limit + 1);
    if let Some(m) = &q.model_id {
        s.and_where(Expr::col(E::ModelId).eq(m.as_str()));
    }
    if let Some(c) = q.cursor {
        s.and_where(Expr::col(E::Id).lt(c));
    }
    if !q.include_voided {
        s.and_where(Expr::col(E::VoidKey).eq(0));
    }
    let got: Vec<Row> = fetch(db, &s).await?;
    let more = got.len() as u64 > q.limit;
    let mut items = Vec::with_capacity(got.len());
    let mut rule_ids = Vec::new();
    for r in got.into_iter().take(q.limit as usize) {
        let m = defs.model_by_id(&r.model_id).map(|i| &defs.models[i]);
        let value_now = match (m, r.kind.as_str(), r.void_key) {
            (_, _, v) if v != 0 => 0.0,
            (Some(m), crate::store::ledger::EVENT, _) => {
                r.delta * m.decay.factor((now - r.earned_at).num_seconds())
            }
            _ => r.delta,
        };
        if !r.rule_id.is_empty() {
            rule_ids.push(r.rule_id.clone());
        }
        items.push(EntryView {
            id: r.id,
            model: m.map(|m| m.key.clone()),
            model_id: r.model_id,
            kind: r.kind,
            rule_id: r.rule_id,
            rule: None,
            source: r.source_key,
            event_kind: r.event_kind,
            points: r.points,
            delta: r.delta,
            capped: r.capped,
            earned_at: r.earned_at,
            expires_at: r.expires_at,
            value_now,
            merged_from: r.merged_from,
            cause_id: r.cause_id,
            note: r.note,
            created_at: r.created_at,
            voided_at: r.voided_at,
            voided_by: r.voided_by,
        });
    }
    rule_ids.sort();
    rule_ids.dedup();
    let names = rule_names(db, tenant, &rule_ids).await?;
    for i in &mut items {
        i.rule = names.get(&i.rule_id).cloned();
    }
    let next_cursor = more.then(|| items.last().map(|i| i.id)).flatten();
    Ok(LedgerPage { items, next_cursor })
}

async fn rule_names(
    db: &DatabaseConnection,
    tenant: &str,
    ids: &[String],
) -> Result<HashMap<String, String>, DbErr> {
    #[derive(FromQueryResult)]
    struct Named {
        id: String,
        name: String,
    }
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let q = Query::select()
            .columns([R::Id, R::Name])
            .from(R::Table)
            .and_where(Expr::col(R::TenantId).eq(tenant))
            .and_where(Expr::col(R::Id).is_in(chunk.iter().cloned()))
            .to_owned();
        for r in fetch::<Named, _>(db, &q).await? {
            out.insert(r.id, r.name);
        }
    }
    Ok(out)
}
