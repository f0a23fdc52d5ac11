//! Refreshing a saved segment: its condition checked again (a rule it reads may have changed),
//! counted now by the preview's own compiled query over the facts projection, the count kept
//! as the segment's size and appended to its history in one transaction (a scheduled refresh
//! keeps the segment's analytics breakdowns with it: [`super::rollup`]). A real-time segment
//! whose members are kept is reconciled with its condition instead, and its size is the members
//! kept.
//!
//! The scheduler's side: [`claim_due`] takes the active scheduled and real-time segments whose
//! time has come
//! with a conditional UPDATE of their claim (`claimed_until`), so among several replicas one
//! counts each; a process that dies mid-count leaves the claim to run out after [`LEASE`], and
//! the segment is taken again. A segment whose condition no longer validates records why
//! (`last_error`) and is looked at again an interval later. History older than
//! [`HISTORY_DAYS`] is pruned ([`prune_sizes`]).

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::Value;

use super::entities::{segment, size};
use super::{get, kept, kept_members, next_due, rollup, SavedError, SizeView, ACTIVE, MANUAL};
use crate::metrics::{SAVED_SEGMENT_REFRESHES, SAVED_SEGMENT_REFRESH_SECONDS};
use crate::store::rules::{self as tag_rules, RuleError};
use crate::store::segments;
use crate::store::tagger::Tagger;

/// How long a claimed scheduled refresh belongs to the process that claimed it.
pub const LEASE: chrono::Duration = chrono::Duration::minutes(15);
/// Days a refresh stays in a segment's size history (a segment counted every 5 minutes keeps
/// about 115 000 rows).
pub const HISTORY_DAYS: i64 = 400;

/// Why a segment was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// An operator asked (`POST …/refresh`).
    Manual,
    /// Its interval had passed.
    Scheduled,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Manual => "manual",
            Cause::Scheduled => "scheduled",
        }
    }
}

/// A refresh done: the count, when, how long it took, and the segment after it.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub count: u64,
    pub at: DateTime<Utc>,
    pub took_ms: u64,
    pub segment: segment::Model,
}

/// Counts `seg` now, records the size and its history; `actor` is the operator of a manual
/// refresh. An archived segment is 409 `segment_archived`; one whose condition no longer
/// validates is [`SavedError::Stale`] (recorded as its `last_error`).
pub async fn refresh(
    t: &Tagger,
    seg: &segment::Model,
    cause: Cause,
    actor: Option<&str>,
) -> Result<Refreshed, SavedError> {
    let started = std::time::Instant::now();
    let result = counted(t, seg, cause, actor).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(SavedError::Stale(_)) => "invalid",
        Err(SavedError::Conflict { .. }) => "refused",
        Err(_) => "error",
    };
    metrics::counter!(SAVED_SEGMENT_REFRESHES, "cause" => cause.as_str(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(SAVED_SEGMENT_REFRESH_SECONDS, "cause" => cause.as_str())
        .record(started.elapsed().as_secs_f64());
    result
}

async fn counted(
    t: &Tagger,
    seg: &segment::Model,
    cause: Cause,
    actor: Option<&str>,
) -> Result<Refreshed, SavedError> {
    if seg.status != ACTIVE {
        return Err(SavedError::Conflict {
            code: "segment_archived",
            message: format!("the saved segment `{}` is archived", seg.id),
        });
    }
    let tenant = seg.tenant_id.as_str();
    let doc: Value = serde_json::from_str(&seg.condition).unwrap_or(Value::Null);
    let limits = t.engine.rules.limits();
    let cond = match tag_rules::check(&t.db, tenant, None, &doc, limits).await {
        Ok((_, expanded)) => expanded,
        Err(RuleError::Invalid(errors)) => {
            let why = match errors.first() {
                Some(first) => format!("the condition no longer validates: {first}"),
                None => "the condition no longer validates".to_string(),
            };
            failed(t, seg, cause, &why).await?;
            return Err(SavedError::Stale(errors));
        }
        Err(e) => return Err(e.into()),
    };
    let at = t.at(tenant);
    let started = std::time::Instant::now();
    // A real-time segment whose members are kept is reconciled with its condition (members a
    // build added leave their windows here) and its size is the members kept.
    let kept_count = if kept_members(seg) {
        crate::store::backfill::reconcile_segment(t, tenant, &seg.id, seg.version).await?;
        Some(kept::count(&t.db, tenant, &seg.id).await?)
    } else {
        None
    };
    let r = segments::reader(&t.db).await?;
    let (count, took_ms) = match kept_count {
        Some(n) => (n, started.elapsed().as_millis() as u64),
        None => {
            // The preview's own count (no sample): the size is what a preview of it shows now.
            let p = segments::preview(&r, tenant, &cond, &at, 0).await?;
            (p.count, p.took_ms)
        }
    };
    // A scheduled refresh also keeps the segment's breakdowns, of the same snapshot (an
    // operator's refresh answers at once and leaves them to the schedule).
    let breakdowns = match cause {
        Cause::Scheduled => Some(rollup::compute(&r, tenant, &cond, &at).await?),
        Cause::Manual => None,
    };
    r.commit().await?;
    let now = at.now.trunc_subsecs(0);
    let txn = platform::db::begin_write(&t.db).await?;
    size::ActiveModel {
        id: sea_orm::NotSet,
        tenant_id: Set(tenant.to_string()),
        segment_id: Set(seg.id.clone()),
        at: Set(now),
        count: Set(count as i64),
        cause: Set(cause.as_str().to_string()),
        actor: Set(actor.map(|a| a.chars().take(64).collect())),
        segment_version: Set(seg.version),
        took_ms: Set(took_ms as i64),
    }
    .insert(&txn)
    .await?;
    let mut q = segment::Entity::update_many()
        .col_expr(segment::Column::Size, Expr::value(count as i64))
        .col_expr(segment::Column::RefreshedAt, Expr::value(now))
        .col_expr(
            segment::Column::DueAt,
            Expr::value(next_due(
                &seg.status,
                &seg.refresh_mode,
                seg.interval_minutes,
                Some(now),
                now,
            )),
        )
        .col_expr(
            segment::Column::LastError,
            Expr::value(Option::<String>::None),
        );
    if cause == Cause::Scheduled {
        q = q.col_expr(segment::Column::ClaimedUntil, unclaimed());
    }
    // Only the version that was counted takes the size: a condition changed meanwhile keeps
    // its own (unknown) size and stays due.
    let kept = q
        .filter(segment::Column::Id.eq(seg.id.as_str()))
        .filter(segment::Column::Version.eq(seg.version))
        .exec(&txn)
        .await?
        .rows_affected;
    if kept == 0 && cause == Cause::Scheduled {
        release(&txn, &seg.id).await?;
    }
    if let Some(b) = breakdowns.filter(|_| kept == 1) {
        rollup::store(&txn, seg, now, &b).await?;
    }
    txn.commit().await?;
    Ok(Refreshed {
        count,
        at: now,
        took_ms,
        segment: get(&t.db, tenant, &seg.id).await?,
    })
}

fn unclaimed() -> sea_orm::sea_query::SimpleExpr {
    Expr::value(Option::<DateTime<Utc>>::None)
}

async fn release<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    segment::Entity::update_many()
        .col_expr(segment::Column::ClaimedUntil, unclaimed())
        .filter(segment::Column::Id.eq(id))
        .exec(conn)
        .await
        .map(drop)
}

/// Records why `seg` could not be counted; a scheduled one is looked at again an interval later.
async fn failed(t: &Tagger, seg: &segment::Model, cause: Cause, why: &str) -> Result<(), DbErr> {
    let now = t.clock.now().trunc_subsecs(0);
    let again = next_due(
        &seg.status,
        &seg.refresh_mode,
        seg.interval_minutes,
        Some(now),
        now,
    );
    let mut q = segment::Entity::update_many()
        .col_expr(
            segment::Column::LastError,
            Expr::value(why.chars().take(1_000).collect::<String>()),
        )
        .col_expr(segment::Column::DueAt, Expr::value(again));
    if cause == Cause::Scheduled {
        q = q.col_expr(segment::Column::ClaimedUntil, unclaimed());
    }
    q.filter(segment::Column::Id.eq(seg.id.as_str()))
        .filter(segment::Column::Version.eq(seg.version))
        .exec(&t.db)
        .await?;
    if cause == Cause::Scheduled {
        release(&t.db, &seg.id).await?;
    }
    Ok(())
}

/// Claims up to `limit` active scheduled or real-time segments due by `now` (of any tenant) that no other
/// process holds, for [`LEASE`]: each by a conditional UPDATE, so a segment two replicas both
/// saw is taken by one.
pub async fn claim_due(
    t: &Tagger,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<segment::Model>, DbErr> {
    let free = || {
        sea_orm::Condition::any()
            .add(segment::Column::ClaimedUntil.is_null())
            .add(segment::Column::ClaimedUntil.lte(now))
    };
    let due = segment::Entity::find()
        .filter(segment::Column::DueAt.lte(now))
        .filter(segment::Column::Status.eq(ACTIVE))
        .filter(segment::Column::RefreshMode.ne(MANUAL))
        .filter(free())
        .order_by_asc(segment::Column::DueAt)
        .order_by_asc(segment::Column::Id)
        .limit(limit)
        .all(&t.db)
        .await?;
    let until = (now + LEASE).trunc_subsecs(0);
    let mut claimed = Vec::with_capacity(due.len());
    for s in due {
        let taken = segment::Entity::update_many()
            .col_expr(segment::Column::ClaimedUntil, Expr::value(until))
            .filter(segment::Column::Id.eq(s.id.as_str()))
            .filter(segment::Column::Version.eq(s.version))
            .filter(segment::Column::Status.eq(ACTIVE))
            .filter(segment::Column::DueAt.lte(now))
            .filter(free())
            .exec(&t.db)
            .await?
            .rows_affected;
        if taken == 1 {
            claimed.push(segment::Model {
                claimed_until: Some(until),
                ..s
            });
        }
    }
    Ok(claimed)
}

/// One pass of the scheduled refresh: claims up to `limit` due segments and counts each (a
/// failure is logged and recorded, see the module). Returns how many were claimed.
pub async fn refresh_due(t: &Tagger, limit: u64) -> Result<usize, DbErr> {
    let now = t.clock.now().trunc_subsecs(0);
    let claimed = claim_due(t, now, limit).await?;
    for seg in &claimed {
        match refresh(t, seg, Cause::Scheduled, None).await {
            Ok(r) => {
                tracing::info!(tenant_id = %seg.tenant_id, segment_id = %seg.id, count = r.count,
                    took_ms = r.took_ms, "Saved segment refreshed");
            }
            Err(SavedError::Stale(errors)) => {
                tracing::warn!(tenant_id = %seg.tenant_id, segment_id = %seg.id,
                    errors = errors.len(), "Saved segment not refreshed: its condition no longer validates");
            }
            Err(e) => {
                tracing::warn!(tenant_id = %seg.tenant_id, segment_id = %seg.id, error = %e,
                    "Saved segment refresh failed; taken again when its claim runs out");
            }
        }
    }
    Ok(claimed.len())
}

/// The size history of the segment `id` of `tenant`, newest first: at most `limit` refreshes
/// before the one numbered `before`.
pub async fn sizes<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    id: &str,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<SizeView>, SavedError> {
    get(conn, tenant, id).await?;
    let mut q = size::Entity::find()
        .filter(size::Column::TenantId.eq(tenant))
        .filter(size::Column::SegmentId.eq(id));
    if let Some(b) = before {
        q = q.filter(size::Column::Id.lt(b));
    }
    Ok(q.order_by_desc(size::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(SizeView::from)
        .collect())
}

/// Deletes up to `batch` size-history rows (of any segment) counted before `before`; returns
/// how many went.
pub async fn prune_sizes<C: ConnectionTrait>(
    conn: &C,
    before: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    let old: Vec<i64> = size::Entity::find()
        .select_only()
        .column(size::Column::Id)
        .filter(size::Column::At.lt(before))
        .order_by_asc(size::Column::At)
        .limit(batch)
        .into_tuple()
        .all(conn)
        .await?;
    if old.is_empty() {
        return Ok(0);
    }
    Ok(size::Entity::delete_many()
        .filter(size::Column::Id.is_in(old))
        .exec(conn)
        .await?
        .rows_affected)
}
