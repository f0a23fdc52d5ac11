//! Saved segments as operators write them: created with a validated condition, read, changed
//! (optionally only at a given version), archived and listed. A name is unique among a tenant's
//! active segments (a unique index on the live name); changing the condition forgets the last
//! size and makes a scheduled segment due at once. A segment that becomes real-time, or whose
//! condition changes while it is, gets a build job filling its kept members; one that stops
//! being real-time (archived, or another mode) gets a job emptying them.

use chrono::SubsecRound;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, SqlErr,
};
use serde_json::Value;

use super::entities::segment;
use super::{
    description_of, interval_of, mode_of, name_of, next_due, status_of, NewSegment, SavedError,
    SegmentPatch, SegmentView, ACTIVE, ARCHIVED, DEFAULT_INTERVAL_MINUTES, REALTIME, SCHEDULED,
};
use crate::store::backfill;
use crate::store::rules as tag_rules;
use crate::store::tagger::Tagger;

/// A unique-name violation as the API answers it.
fn duplicate(e: DbErr) -> SavedError {
    if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        SavedError::Conflict {
            code: "duplicate_name",
            message: "an active saved segment with this name exists already".into(),
        }
    } else {
        SavedError::Db(e)
    }
}

/// `condition` validated as a rule's condition of `tenant` is (errors name the node; tags the
/// tenant does not have are `unknown_tag`), as stored.
async fn condition_text(t: &Tagger, tenant: &str, condition: &Value) -> Result<String, SavedError> {
    let (doc, _) =
        tag_rules::check(&t.db, tenant, None, condition, t.engine.rules.limits()).await?;
    serde_json::to_string(&doc).map_err(|e| SavedError::Db(DbErr::Custom(e.to_string())))
}

fn required<T>(v: Option<T>, field: &'static str) -> Result<T, SavedError> {
    v.ok_or(SavedError::Missing(field))
}

/// Creates a saved segment of `tenant` owned by `actor`; a scheduled one is due at once.
pub async fn create(
    t: &Tagger,
    tenant: &str,
    actor: &str,
    n: NewSegment,
) -> Result<segment::Model, SavedError> {
    let name = required(n.name.filter(|s| !s.trim().is_empty()), "name")?;
    let name = name_of(&name)?;
    let description = description_of(n.description.as_deref().unwrap_or_default())?;
    let mode = mode_of(n.refresh_mode.as_deref().unwrap_or(SCHEDULED))?;
    let interval = interval_of(n.interval_minutes.unwrap_or(DEFAULT_INTERVAL_MINUTES))?;
    let condition = required(n.condition.filter(|c| !c.is_null()), "condition")?;
    let condition = condition_text(t, tenant, &condition).await?;
    let now = t.clock.now().trunc_subsecs(0);
    let actor: String = actor.chars().take(64).collect();
    let id = uuid::Uuid::now_v7().to_string();
    segment::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.to_string()),
        live_name: Set(Some(name.clone())),
        name: Set(name),
        description: Set(description),
        owner: Set(actor.clone()),
        condition: Set(condition),
        refresh_mode: Set(mode.to_string()),
        interval_minutes: Set(interval),
        status: Set(ACTIVE.to_string()),
        size: Set(None),
        refreshed_at: Set(None),
        due_at: Set(next_due(ACTIVE, mode, interval, None, now)),
        claimed_until: Set(None),
        last_error: Set(None),
        version: Set(1),
        updated_by: Set(actor),
        created_at: Set(now),
        updated_at: Set(now),
        archived_at: Set(None),
        members_version: Set(None),
    }
    .insert(&t.db)
    .await
    .map_err(duplicate)?;
    let s = get(&t.db, tenant, &id).await?;
    if s.refresh_mode == REALTIME {
        build(t, &s, &s.owner).await?;
    }
    Ok(s)
}

/// Starts the job that brings the segment's kept members in line with what it is now: filled
/// for a real-time segment, emptied for another (the rule engine sees the change at once).
async fn build(t: &Tagger, s: &segment::Model, by: &str) -> Result<(), SavedError> {
    t.engine.rules.invalidate(&s.tenant_id);
    backfill::start(t, &s.tenant_id, backfill::SEGMENT, &s.id, by).await?;
    Ok(())
}

/// The saved segment `id` of `tenant`, active or archived (another tenant's is not found, like
/// an unknown id).
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    id: &str,
) -> Result<segment::Model, SavedError> {
    segment::Entity::find_by_id(id.to_string())
        .filter(segment::Column::TenantId.eq(tenant))
        .one(conn)
        .await?
        .ok_or_else(|| SavedError::NotFound(format!("no saved segment with id `{id}`")))
}

/// The tenant's saved segments of `status` (every one when `None`) in the order they were
/// created: at most `limit` after `after`.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    status: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<SegmentView>, DbErr> {
    let mut q = segment::Entity::find().filter(segment::Column::TenantId.eq(tenant));
    if let Some(s) = status {
        q = q.filter(segment::Column::Status.eq(s));
    }
    if let Some(a) = after {
        q = q.filter(segment::Column::Id.gt(a));
    }
    Ok(q.order_by_asc(segment::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(SegmentView::from)
        .collect())
}

/// Applies `p` to the saved segment `id` of `tenant` as `actor`: a new version when anything
/// changed. A segment changed by someone else meanwhile (or not at `p.version`) is 409
/// `version_conflict`.
pub async fn update(
    t: &Tagger,
    tenant: &str,
    actor: &str,
    id: &str,
    p: SegmentPatch,
) -> Result<segment::Model, SavedError> {
    let row = get(&t.db, tenant, id).await?;
    if let Some(v) = p.version.filter(|v| *v != row.version) {
        return Err(SavedError::Conflict {
            code: "version_conflict",
            message: format!("the segment is at version {}, not {v}", row.version),
        });
    }
    let name = match &p.name {
        Some(n) => name_of(n)?,
        None => row.name.clone(),
    };
    let description = match &p.description {
        Some(d) => description_of(d)?,
        None => row.description.clone(),
    };
    let mode = mode_of(p.refresh_mode.as_deref().unwrap_or(&row.refresh_mode))?;
    let interval = interval_of(p.interval_minutes.unwrap_or(row.interval_minutes))?;
    let status = status_of(p.status.as_deref().unwrap_or(&row.status))?;
    let condition = match &p.condition {
        Some(c) if !c.is_null() => condition_text(t, tenant, c).await?,
        Some(_) => return Err(SavedError::Missing("condition")),
        None => row.condition.clone(),
    };
    let same = name == row.name
        && description == row.description
        && mode == row.refresh_mode
        && interval == row.interval_minutes
        && status == row.status
        && condition == row.condition;
    if same {
        return Ok(row);
    }
    let now = t.clock.now().trunc_subsecs(0);
    // A new condition was never counted: its size is unknown until the next refresh.
    let recount = condition != row.condition;
    let (size, refreshed_at) = if recount {
        (None, None)
    } else {
        (row.size, row.refreshed_at)
    };
    let archived_at = match status {
        ARCHIVED => row.archived_at.or(Some(now)),
        _ => None,
    };
    // Kept members: built again when the segment becomes real-time or its condition changes,
    // emptied when it stops being real-time, still whole otherwise.
    let was_kept = row.refresh_mode == REALTIME && row.status == ACTIVE;
    let kept = mode == REALTIME && status == ACTIVE;
    let rebuild = kept && (!was_kept || recount);
    let members_version =
        (kept && !rebuild && row.members_version == Some(row.version)).then_some(row.version + 1);
    let cols: Vec<(segment::Column, sea_orm::Value)> = vec![
        (segment::Column::Name, name.clone().into()),
        (
            segment::Column::LiveName,
            (status == ACTIVE).then(|| name.clone()).into(),
        ),
        (segment::Column::Description, description.into()),
        (segment::Column::Condition, condition.into()),
        (segment::Column::RefreshMode, mode.into()),
        (segment::Column::IntervalMinutes, interval.into()),
        (segment::Column::Status, status.into()),
        (segment::Column::Size, size.into()),
        (segment::Column::RefreshedAt, refreshed_at.into()),
        (
            segment::Column::DueAt,
            next_due(status, mode, interval, refreshed_at, now).into(),
        ),
        (segment::Column::ArchivedAt, archived_at.into()),
        (segment::Column::Version, (row.version + 1).into()),
        (
            segment::Column::UpdatedBy,
            actor.chars().take(64).collect::<String>().into(),
        ),
        (segment::Column::UpdatedAt, now.into()),
        (segment::Column::MembersVersion, members_version.into()),
    ];
    let mut q = segment::Entity::update_many()
        .filter(segment::Column::Id.eq(id))
        .filter(segment::Column::TenantId.eq(tenant))
        .filter(segment::Column::Version.eq(row.version));
    for (c, v) in cols {
        q = q.col_expr(c, Expr::value(v));
    }
    let changed = q.exec(&t.db).await.map_err(duplicate)?.rows_affected;
    if changed == 0 {
        return Err(SavedError::Conflict {
            code: "version_conflict",
            message: "the segment was changed meanwhile; read it again".into(),
        });
    }
    let s = get(&t.db, tenant, id).await?;
    if rebuild || (was_kept && !kept) {
        build(t, &s, actor).await?;
    }
    Ok(s)
}

/// Archives the saved segment `id` of `tenant`: kept with its size history, no longer
/// refreshed, its name free for another. Archiving an archived segment changes nothing.
pub async fn archive(
    t: &Tagger,
    tenant: &str,
    actor: &str,
    id: &str,
) -> Result<segment::Model, SavedError> {
    let patch = SegmentPatch {
        status: Some(ARCHIVED.into()),
        ..SegmentPatch::default()
    };
    update(t, tenant, actor, id, patch).await
}
