//! Reads behind the internal API: a lead with its exact scores now, its ledger page by page
//! (each entry with its worth now), its stage history with time in stage, its trigger firings
//! and SLAs, and the leaderboard of a dimension (exact at the instant of the request).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use proto::scoring::Owner;
use sea_orm::sea_query::{Alias, Cond, Expr, Order, Query, SelectStatement};
use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;

use super::browse::{score_key, Filter};
use super::leads::{self, Lead};
use super::migrations::{
    LeadSla as A, LeadStageHistory as H, Leads as L, ProfileScores as P, ScoreEras,
    ScoreLedger as E, ScoreRules as R, TriggerFirings as F,
};
use super::{one, rows, scores, Scorer};
use crate::domain::compiled::{Compiled, Model};
use crate::domain::decay::Fold;

/// A lead's row.
pub async fn lead(
    db: &DatabaseConnection,
    tenant: &str,
    profile: &str,
) -> Result<Option<Lead>, DbErr> {
    let q = Query::select()
        .columns(leads::COLS)
        .from(L::Table)
        .and_where(Expr::col(L::TenantId).eq(tenant))
        .and_where(Expr::col(L::ProfileId).eq(profile))
        .to_owned();
    one(db, &q).await?.as_ref().map(leads::from_row).transpose()
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
    let open_sla = Query::select()
        .column(A::DueAt)
        .from(A::Table)
        .and_where(Expr::col(A::TenantId).eq(tenant))
        .and_where(Expr::col(A::ProfileId).eq(profile))
        .and_where(Expr::col(A::Status).eq(leads::SLA_OPEN))
        .order_by(A::HistoryId, Order::Desc)
        .limit(1)
        .to_owned();
    let sla_due_at: Option<DateTime<Utc>> = match one(db, &open_sla).await? {
        Some(r) => r.try_get("", "due_at")?,
        None => None,
    };
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
    let got = rows(db, &s).await?;
    let mut items = Vec::with_capacity(got.len());
    let mut rule_ids = Vec::new();
    for r in got.iter().take(q.limit as usize) {
        let model_id: String = r.try_get("", "model_id")?;
        let kind: String = r.try_get("", "kind")?;
        let delta: f64 = r.try_get("", "delta")?;
        let earned: DateTime<Utc> = r.try_get("", "earned_at")?;
        let void_key: i64 = r.try_get("", "void_key")?;
        let m = defs.model_by_id(&model_id).map(|i| &defs.models[i]);
        let value_now = match (m, kind.as_str(), void_key) {
            (_, _, v) if v != 0 => 0.0,
            (Some(m), super::ledger::EVENT, _) => {
                delta * m.decay.factor((now - earned).num_seconds())
            }
            _ => delta,
        };
        let rule_id: String = r.try_get("", "rule_id")?;
        if !rule_id.is_empty() {
            rule_ids.push(rule_id.clone());
        }
        items.push(EntryView {
            id: r.try_get("", "id")?,
            model: m.map(|m| m.key.clone()),
            model_id,
            kind,
            rule_id,
            rule: None,
            source: r.try_get("", "source_key")?,
            event_kind: r.try_get("", "event_kind")?,
            points: r.try_get("", "points")?,
            delta,
            capped: r.try_get("", "capped")?,
            earned_at: earned,
            expires_at: r.try_get("", "expires_at")?,
            value_now,
            merged_from: r.try_get("", "merged_from")?,
            cause_id: r.try_get("", "cause_id")?,
            note: r.try_get("", "note")?,
            created_at: r.try_get("", "created_at")?,
            voided_at: r.try_get("", "voided_at")?,
            voided_by: r.try_get("", "voided_by")?,
        });
    }
    rule_ids.sort();
    rule_ids.dedup();
    let names = rule_names(db, tenant, &rule_ids).await?;
    for i in &mut items {
        i.rule = names.get(&i.rule_id).cloned();
    }
    let next_cursor = (got.len() as u64 > q.limit)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    Ok(LedgerPage { items, next_cursor })
}

async fn rule_names(
    db: &DatabaseConnection,
    tenant: &str,
    ids: &[String],
) -> Result<HashMap<String, String>, DbErr> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let q = Query::select()
            .columns([R::Id, R::Name])
            .from(R::Table)
            .and_where(Expr::col(R::TenantId).eq(tenant))
            .and_where(Expr::col(R::Id).is_in(chunk.iter().cloned()))
            .to_owned();
        for r in rows(db, &q).await? {
            out.insert(r.try_get("", "id")?, r.try_get("", "name")?);
        }
    }
    Ok(out)
}

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
    rows(db, &q)
        .await?
        .iter()
        .map(|r| {
            let entered: DateTime<Utc> = r.try_get("", "entered_at")?;
            let left: Option<DateTime<Utc>> = r.try_get("", "left_at")?;
            Ok(HistoryView {
                id: r.try_get("", "id")?,
                from: r.try_get("", "from_stage")?,
                to: r.try_get("", "to_stage")?,
                actor_kind: r.try_get("", "actor_kind")?,
                actor: r.try_get("", "actor")?,
                reason: r.try_get("", "reason")?,
                entered_at: entered,
                left_at: left,
                time_in_stage_secs: (left.unwrap_or(now) - entered).num_seconds().max(0),
                cause_id: r.try_get("", "cause_id")?,
            })
        })
        .collect()
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
    rows(db, &q)
        .await?
        .iter()
        .map(|r| {
            let result: String = r.try_get("", "result")?;
            Ok(FiringView {
                id: r.try_get("", "id")?,
                trigger_id: r.try_get("", "trigger_id")?,
                seq: r.try_get("", "seq")?,
                kind: r.try_get("", "kind")?,
                value: r.try_get("", "value")?,
                stage: r.try_get("", "stage")?,
                fired_at: r.try_get("", "fired_at")?,
                cause_id: r.try_get("", "cause_id")?,
                result: serde_json::from_str(&result).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}

/// An SLA of a lead.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
    rows(db, &q)
        .await?
        .iter()
        .map(|r| {
            Ok(SlaView {
                history_id: r.try_get("", "history_id")?,
                stage: r.try_get("", "stage")?,
                entered_at: r.try_get("", "entered_at")?,
                due_at: r.try_get("", "due_at")?,
                status: r.try_get("", "status")?,
                settled_at: r.try_get("", "settled_at")?,
                settled_by: r.try_get("", "settled_by")?,
            })
        })
        .collect()
}

/// Filters and page of the leaderboard.
#[derive(Debug, Clone, Default)]
pub struct Board {
    /// Which leads compete.
    pub filter: Filter,
    /// Rows after this [`BoardRow::key`].
    pub after: Option<(i64, String)>,
    pub limit: u64,
}

/// One row of the leaderboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BoardRow {
    pub profile_id: String,
    pub score: f64,
    pub stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Millionths of a point: the leaderboard ranks scores at this resolution, so that the order of
/// two leads does not hang on the last bits of a float.
const RANK_SCALE: f64 = 1e6;

/// A score as the leaderboard ranks it: in millionths of a point.
pub fn rank(score: f64) -> i64 {
    (score * RANK_SCALE).round() as i64
}

impl BoardRow {
    /// The row's place on the board, which is ordered by rank (descending), then profile id:
    /// `(rank of its score, profile id)`.
    pub fn key(&self) -> (i64, String) {
        (rank(self.score), self.profile_id.clone())
    }

    fn after(&self, (r, id): &(i64, String)) -> bool {
        let mine = rank(self.score);
        mine < *r || (mine == *r && self.profile_id.as_str() > id.as_str())
    }
}

/// The top leads of model `model` (index into `defs`) by their exact score now: at most
/// `b.limit`, after `b.after` when given. Each page is exact at its own instant, so a lead whose
/// score crosses the cursor between two requests (a new event, or decay) may show on both pages
/// or on neither.
///
/// A valid fold of the current era scores `held + norm × c` (`c` the era's carry now, the same
/// for every row), which grows with `norm` and with `held`: the page is found by the threshold
/// algorithm over two index-ordered reads, by `norm` (descending, then profile id) and by `held`,
/// in growing batches, until the page's last row scores above what any unread row can (`held`
/// of the last row read by `held` + `c × norm` of the last read by `norm`; on a tie, ids after
/// the `norm` read's last cannot come before it). The rest — folds past a decay boundary (the
/// scheduler rebuilds them as they come due) and folds of another era (around an era's turn,
/// 128 half-lives apart) — are few: read whole and scored exactly; when there are more than
/// [`EXTRA_MAX`], the page is ranked by one ordered scan instead.
pub async fn leaderboard(
    scorer: &Scorer,
    tenant: &str,
    defs: &Compiled,
    model: usize,
    b: &Board,
) -> Result<Vec<BoardRow>, DbErr> {
    let db = &scorer.db;
    let now = scorer.clock.now();
    let m = &defs.models[model];
    let s = Alias::new("s");
    let l = Alias::new("l");
    let base = |q: &mut SelectStatement| {
        q.columns([
            (s.clone(), P::ProfileId),
            (s.clone(), P::Held),
            (s.clone(), P::Decaying),
            (s.clone(), P::FoldedAt),
            (s.clone(), P::ValidUntil),
            (s.clone(), P::Norm),
        ])
        .columns([(l.clone(), L::Stage), (l.clone(), L::OwnerUserId)])
        .from_as(P::Table, s.clone())
        .join_as(
            sea_orm::sea_query::JoinType::InnerJoin,
            L::Table,
            l.clone(),
            Cond::all()
                .add(Expr::col((s.clone(), P::TenantId)).equals((l.clone(), L::TenantId)))
                .add(Expr::col((s.clone(), P::ProfileId)).equals((l.clone(), L::ProfileId))),
        )
        .and_where(Expr::col((s.clone(), P::TenantId)).eq(tenant))
        .and_where(Expr::col((s.clone(), P::ModelId)).eq(m.id.as_str()));
        b.filter.apply(q, tenant, &l, defs, now);
    };
    let era = m.decay.era(m.epoch, now);
    let carry = m.decay.era_carry(m.epoch, era, now);
    let era_col = || Expr::col((s.clone(), ScoreEras::NormEra));
    let valid = || {
        Cond::any()
            .add(Expr::col((s.clone(), P::ValidUntil)).is_null())
            .add(Expr::col((s.clone(), P::ValidUntil)).gt(now))
    };
    let mut found: HashMap<String, BoardRow> = HashMap::new();
    let mut extra = Query::select();
    base(&mut extra);
    extra
        .cond_where(
            Cond::any()
                .add(Expr::col((s.clone(), P::ValidUntil)).lte(now))
                .add(era_col().ne(era)),
        )
        .limit(EXTRA_MAX + 1);
    let extra = rows(db, &extra).await?;
    if extra.len() as u64 > EXTRA_MAX {
        return scan(scorer, tenant, defs, model, b).await;
    }
    for r in &extra {
        board_row(scorer, tenant, m, now, r, &mut found).await?;
    }
    // One index-ordered read: by `col` descending then profile id, after `after`, of the current
    // era only when `era_only`.
    let sorted = |col: P, era_only: bool, after: &Option<(f64, String)>, limit: u64| {
        let mut q = Query::select();
        base(&mut q);
        q.cond_where(valid());
        if era_only {
            q.and_where(era_col().eq(era));
        }
        if let Some((v, id)) = after {
            q.cond_where(
                Cond::any().add(Expr::col((s.clone(), col)).lt(*v)).add(
                    Expr::col((s.clone(), col))
                        .eq(*v)
                        .and(Expr::col((s.clone(), P::ProfileId)).gt(id.as_str())),
                ),
            );
        }
        q.order_by((s.clone(), col), Order::Desc)
            .order_by((s.clone(), P::ProfileId), Order::Asc)
            .limit(limit);
        q
    };
    let mut batch = (b.limit + 1).max(64);
    // (column, its name, current era only, where the read is): by norm in the current era, by
    // what is held among every valid row.
    let mut reads = [
        (P::Norm, "norm", true, None::<(f64, String)>),
        (P::Held, "held", false, None),
    ];
    'reading: loop {
        for (col, name, era_only, after) in reads.iter_mut() {
            let read = rows(db, &sorted(*col, *era_only, after, batch)).await?;
            for r in &read {
                board_row(scorer, tenant, m, now, r, &mut found).await?;
            }
            if let Some(r) = read.last() {
                *after = Some((r.try_get("", name)?, r.try_get("", "profile_id")?));
            }
            if (read.len() as u64) < batch {
                // Every row that could outrank the page has been read (the rest are `extra`).
                break 'reading;
            }
        }
        let (Some((n, norm_id)), Some((h, _))) = (&reads[0].3, &reads[1].3) else {
            break;
        };
        // No unread row scores above this; one scoring it has an id after `norm_id`.
        let threshold = rank(h + carry * n);
        let mut page: Vec<&BoardRow> = found
            .values()
            .filter(|row| b.after.as_ref().is_none_or(|a| row.after(a)))
            .collect();
        if page.len() as u64 >= b.limit {
            page.sort_by(|a, b| board_order(a, b));
            let last = page[b.limit as usize - 1];
            let r = rank(last.score);
            if r > threshold || (r == threshold && last.profile_id.as_str() < norm_id.as_str()) {
                break;
            }
        }
        batch = batch.saturating_mul(2);
    }
    let mut out: Vec<BoardRow> = found
        .into_values()
        .filter(|row| b.after.as_ref().is_none_or(|a| row.after(a)))
        .collect();
    out.sort_by(board_order);
    out.truncate(b.limit as usize);
    Ok(out)
}

/// Folds outside the sorted reads that make the leaderboard fall back to [`scan`].
const EXTRA_MAX: u64 = 10_000;

/// The board's order: score (to a millionth) descending, then profile id.
fn board_order(a: &BoardRow, b: &BoardRow) -> std::cmp::Ordering {
    rank(b.score)
        .cmp(&rank(a.score))
        .then_with(|| a.profile_id.cmp(&b.profile_id))
}

/// Scores the fold of row `r` exactly now (rebuilt from the ledger past a decay boundary) into
/// `found`, unless it is there already.
async fn board_row(
    scorer: &Scorer,
    tenant: &str,
    m: &Model,
    now: DateTime<Utc>,
    r: &sea_orm::QueryResult,
    found: &mut HashMap<String, BoardRow>,
) -> Result<(), DbErr> {
    let profile: String = r.try_get("", "profile_id")?;
    if found.contains_key(&profile) {
        return Ok(());
    }
    let fold = Fold {
        held: r.try_get("", "held")?,
        decaying: r.try_get("", "decaying")?,
        at: r.try_get("", "folded_at")?,
        valid_until: r.try_get("", "valid_until")?,
    };
    let score = match fold.carried(&m.decay, now) {
        Some(f) => f.value(),
        None => scores::rebuild(&scorer.db, tenant, &profile, m, now)
            .await?
            .value(),
    };
    found.insert(
        profile.clone(),
        BoardRow {
            profile_id: profile,
            score,
            stage: r.try_get("", "stage")?,
            owner: r.try_get("", "owner_user_id")?,
        },
    );
    Ok(())
}

/// The leaderboard by one scan ordered in SQL (the fallback of [`leaderboard`]).
///
/// Rows are ordered in SQL by `held + norm × carry of its era at now`, exact for every fold still
/// valid (to float rounding: the SQL bounds of a cursor leave a margin, the rows are then ranked
/// and cut here); folds past a decay boundary (few: the scheduler rebuilds them as they come
/// due) are rebuilt here and merged in.
async fn scan(
    scorer: &Scorer,
    tenant: &str,
    defs: &Compiled,
    model: usize,
    b: &Board,
) -> Result<Vec<BoardRow>, DbErr> {
    let db = &scorer.db;
    let now = scorer.clock.now();
    let m = &defs.models[model];
    let s = Alias::new("s");
    let l = Alias::new("l");
    let base = |q: &mut sea_orm::sea_query::SelectStatement| {
        q.columns([
            (s.clone(), P::ProfileId),
            (s.clone(), P::Held),
            (s.clone(), P::Decaying),
            (s.clone(), P::FoldedAt),
            (s.clone(), P::ValidUntil),
        ])
        .columns([(l.clone(), L::Stage), (l.clone(), L::OwnerUserId)])
        .from_as(P::Table, s.clone())
        .join_as(
            sea_orm::sea_query::JoinType::InnerJoin,
            L::Table,
            l.clone(),
            Cond::all()
                .add(Expr::col((s.clone(), P::TenantId)).equals((l.clone(), L::TenantId)))
                .add(Expr::col((s.clone(), P::ProfileId)).equals((l.clone(), L::ProfileId))),
        )
        .and_where(Expr::col((s.clone(), P::TenantId)).eq(tenant))
        .and_where(Expr::col((s.clone(), P::ModelId)).eq(m.id.as_str()));
        b.filter.apply(q, tenant, &l, defs, now);
    };
    let key = || score_key(&s, m, now);
    let mut stale = Query::select();
    base(&mut stale);
    stale
        .and_where(Expr::col((s.clone(), P::ValidUntil)).lte(now))
        .limit(10_000);
    let stale = rows(db, &stale).await?;
    // The rows after the cursor, read in growing batches until the page is full: the SQL bounds
    // let through a few rows at the cursor's edges that the ranking here then drops.
    let mut want = b.limit;
    loop {
        let mut top = Query::select();
        base(&mut top);
        if let Some((r, id)) = &b.after {
            // Rows ranked at most `r`; of those certainly ranked at least `r`, only ids above.
            let (lo, hi) = (
                (*r as f64 - 0.5) / RANK_SCALE,
                (*r as f64 + 0.5) / RANK_SCALE,
            );
            let margin = 1e-9 * hi.abs().max(lo.abs()).max(1.0);
            top.and_where(Expr::expr(key()).lt(hi + margin)).and_where(
                Expr::expr(key())
                    .lt(lo + margin)
                    .or(Expr::col((s.clone(), P::ProfileId)).gt(id.as_str())),
            );
        }
        top.order_by_expr(key(), Order::Desc)
            .order_by((s.clone(), P::ProfileId), Order::Asc)
            .limit(want);
        let top = rows(db, &top).await?;
        let read = top.len() as u64;
        let mut found: HashMap<String, BoardRow> = HashMap::new();
        for r in top.iter().chain(stale.iter()) {
            let profile: String = r.try_get("", "profile_id")?;
            if found.contains_key(&profile) {
                continue;
            }
            let fold = Fold {
                held: r.try_get("", "held")?,
                decaying: r.try_get("", "decaying")?,
                at: r.try_get("", "folded_at")?,
                valid_until: r.try_get("", "valid_until")?,
            };
            let score = match fold.carried(&m.decay, now) {
                Some(f) => f.value(),
                None => scores::rebuild(db, tenant, &profile, m, now).await?.value(),
            };
            found.insert(
                profile.clone(),
                BoardRow {
                    profile_id: profile,
                    score,
                    stage: r.try_get("", "stage")?,
                    owner: r.try_get("", "owner_user_id")?,
                },
            );
        }
        let mut out: Vec<BoardRow> = found
            .into_values()
            .filter(|row| b.after.as_ref().is_none_or(|a| row.after(a)))
            .collect();
        out.sort_by(|a, b| {
            rank(b.score)
                .cmp(&rank(a.score))
                .then_with(|| a.profile_id.cmp(&b.profile_id))
        });
        if out.len() as u64 >= b.limit || read < want {
            out.truncate(b.limit as usize);
            return Ok(out);
        }
        want = want.saturating_mul(2);
    }
}
