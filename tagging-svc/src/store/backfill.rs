//! Backfill jobs: when a rule is saved, changed or deleted, every profile of the tenant is brought
//! in line with it — in batches of profile ids (each batch one compiled query over the facts and
//! one transaction), adding the tag to new matches and (mode `add_remove`) removing it from stale
//! ones (the decision real-time settling makes per profile: [`settle::batch`]), with progress in
//! `tagging_jobs`. A job interrupted by a restart is run again from the start (every batch is
//! idempotent). Rules reading the tag are backfilled after it.
//!
//! A real-time saved segment's build (kind `segment`, the segment's id in `rule_id`) is the same
//! walk over its kept members ([`super::saved::kept`]): matches enter, stale members leave;
//! once done, the segment's members are read from what is kept (`members_version`). A segment
//! no longer real-time is emptied. The scheduled refresh of a real-time segment reconciles it
//! the same way ([`reconcile_segment`]), so members the walk added leave a window on the day
//! of their refresh even though only the engine schedules exits per profile.

use std::collections::BTreeSet;

use chrono::Utc;
use proto::tagging::{TagChange, TagChanged, TagSource};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;

use super::catalog::SINGLE;
use super::entities::{job, membership};
use super::members::{self, MemberError, Reason, TagInfo};
use super::rules::{self as tag_rules, RuleEntry};
use super::saved::{self, kept};
use super::segments;
use super::tagger::Tagger;
use super::writeback;
use crate::domain::{settle, Mode};

/// Job kinds.
pub const BACKFILL: &str = "backfill";
/// Removes what a deleted rule set.
pub const CLEANUP: &str = "cleanup";
/// Fills (or empties) a saved segment's kept members.
pub const SEGMENT: &str = "segment";

/// Job states.
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JobView {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// The saved segment a `segment` job builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    pub status: String,
    /// Profiles to look at, and looked at so far.
    pub total: i64,
    pub done: i64,
    pub added: i64,
    pub removed: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<chrono::DateTime<Utc>>,
}

impl From<job::Model> for JobView {
    fn from(j: job::Model) -> Self {
        let (rule_id, segment_id) = match j.kind.as_str() {
            SEGMENT => (None, j.rule_id),
            _ => (j.rule_id, None),
        };
        JobView {
            id: j.id,
            tenant_id: j.tenant_id,
            kind: j.kind,
            rule_id,
            segment_id,
            status: j.status,
            total: j.total,
            done: j.done,
            added: j.added,
            removed: j.removed,
            error: j.error,
            created_at: j.created_at,
            finished_at: j.finished_at,
        }
    }
}

/// Records a queued job.
pub async fn queue(
    tagger: &Tagger,
    tenant: &str,
    kind: &str,
    rule_id: &str,
    by: &str,
) -> Result<job::Model, DbErr> {
    let now = tagger.clock.now();
    job::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(tenant.to_string()),
        kind: Set(kind.to_string()),
        rule_id: Set(Some(rule_id.to_string())),
        status: Set(QUEUED.into()),
        total: Set(0),
        done: Set(0),
        added: Set(0),
        removed: Set(0),
        error: Set(None),
        created_by: Set(by.chars().take(64).collect()),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    }
    .insert(&tagger.db)
    .await
}

/// Where jobs run: under the process's supervisor (a job that panics is run again; it resumes
/// from its progress), stopping with the process.
#[derive(Clone, Default)]
pub struct Jobs {
    tasks: platform::tasks::Tasks,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Jobs {
    pub fn new(
        tasks: platform::tasks::Tasks,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        Jobs { tasks, shutdown }
    }

    fn run(&self, tagger: &Tagger, ids: Vec<String>) {
        let name = match ids.as_slice() {
            [one] => format!("tagging.job.{one}"),
            _ => format!("tagging.jobs.resumed.{}", uuid::Uuid::now_v7().simple()),
        };
        let t = tagger.clone();
        self.tasks
            .spawn_once(crate::ROLE, name, self.shutdown.clone(), move |_| {
                let (t, ids) = (t.clone(), ids.clone());
                async move {
                    for id in ids {
                        run_logged(&t, &id).await;
                    }
                }
            });
    }
}

/// Queues a job and runs it in the background.
pub async fn start(
    tagger: &Tagger,
    tenant: &str,
    kind: &str,
    rule_id: &str,
    by: &str,
) -> Result<job::Model, DbErr> {
    let j = queue(tagger, tenant, kind, rule_id, by).await?;
    tagger.jobs.run(tagger, vec![j.id.clone()]);
    Ok(j)
}

/// Runs again the jobs a stopped process left queued or running.
pub async fn resume(tagger: &Tagger) -> Result<usize, DbErr> {
    let open = job::Entity::find()
        .filter(job::Column::Status.is_in([QUEUED, RUNNING]))
        .order_by_asc(job::Column::CreatedAt)
        .all(&tagger.db)
        .await?;
    let n = open.len();
    if n > 0 {
        tagger
            .jobs
            .run(tagger, open.into_iter().map(|j| j.id).collect());
    }
    Ok(n)
}

async fn run_logged(tagger: &Tagger, id: &str) {
    if let Err(e) = run(tagger, id).await {
        tracing::error!(job_id = %id, error = %e, "Tagging job failed");
        let _ = job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(FAILED))
            .col_expr(job::Column::Error, Expr::value(e.to_string()))
            .col_expr(job::Column::FinishedAt, Expr::value(Some(Utc::now())))
            .filter(job::Column::Id.eq(id))
            .exec(&tagger.db)
            .await;
    }
}

async fn progress(
    tagger: &Tagger,
    id: &str,
    cols: &[(job::Column, sea_orm::Value)],
) -> Result<(), DbErr> {
    let mut q = job::Entity::update_many()
        .col_expr(job::Column::UpdatedAt, Expr::value(tagger.clock.now()))
        .filter(job::Column::Id.eq(id));
    for (c, v) in cols {
        q = q.col_expr(*c, Expr::value(v.clone()));
    }
    q.exec(&tagger.db).await.map(drop)
}

/// Runs a job to the end. A tag the rule sets that is gone or retired meanwhile fails the job
/// with that reason (a [`MemberError`], not a database error).
pub async fn run(tagger: &Tagger, id: &str) -> Result<(), MemberError> {
    let Some(j) = job::Entity::find_by_id(id.to_string())
        .one(&tagger.db)
        .await?
    else {
        return Ok(());
    };
    let tenant = j.tenant_id.clone();
    let rule_id = j.rule_id.clone().unwrap_or_default();
    tagger.engine.rules.invalidate(&tenant);
    let set = tagger.engine.rules.get(&tenant).await?;
    let entry = match j.kind.as_str() {
        SEGMENT => set.segments.iter().find(|e| e.id == rule_id).cloned(),
        _ => set.entries.iter().find(|e| e.id == rule_id).cloned(),
    };
    let total = segments::profile_count(&tagger.db, &tenant).await? as i64;
    progress(
        tagger,
        id,
        &[
            (job::Column::Status, RUNNING.into()),
            (job::Column::Total, total.into()),
            (job::Column::Done, 0i64.into()),
        ],
    )
    .await?;
    let started = std::time::Instant::now();
    let (added, removed) = match (j.kind.as_str(), entry) {
        (BACKFILL, Some(e)) if e.live => backfill(tagger, id, &tenant, &e).await?,
        (SEGMENT, Some(e)) if e.live => {
            let done = build_segment(tagger, Some(id), &tenant, &e).await?;
            kept_whole(tagger, &tenant, &e).await?;
            done
        }
        (SEGMENT, _) => (0, kept::clear(&tagger.db, &tenant, &rule_id).await?),
        // A deleted, disabled or invalid rule: take back what it set.
        _ => cleanup(tagger, id, &tenant, &rule_id).await?,
    };
    progress(
        tagger,
        id,
        &[
            (job::Column::Status, DONE.into()),
            (job::Column::Done, total.into()),
            (job::Column::Added, (added as i64).into()),
            (job::Column::Removed, (removed as i64).into()),
            (job::Column::FinishedAt, Some(tagger.clock.now()).into()),
        ],
    )
    .await?;
    metrics::histogram!(crate::metrics::JOB_SECONDS, "kind" => j.kind.clone())
        .record(started.elapsed().as_secs_f64());
    tracing::info!(job_id = %id, rule_id = %rule_id, added, removed, secs = started.elapsed().as_secs_f64(), "Tagging job done");
    // Rules reading this tag may change for the profiles that changed: bring them in line too.
    if added + removed > 0 && j.kind != SEGMENT {
        let Some(tag_id) = set
            .entries
            .iter()
            .find(|e| e.id == rule_id)
            .map(|e| e.tag_id.clone())
        else {
            return Ok(());
        };
        for dependent in set.reading_tags(&BTreeSet::from([tag_id])) {
            if dependent.id != rule_id {
                let next = queue(tagger, &tenant, BACKFILL, &dependent.id, "chain").await?;
                Box::pin(run(tagger, &next.id)).await?;
            }
        }
    }
    Ok(())
}

/// Holders of the rule's membership among `after < id <= until`.
async fn rule_members(
    tagger: &Tagger,
    tenant: &str,
    tag_id: &str,
    rule_id: &str,
    after: Option<&str>,
    until: &str,
) -> Result<BTreeSet<String>, DbErr> {
    let mut q = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::TagId.eq(tag_id))
        .filter(membership::Column::Source.eq(TagSource::Rule.as_str()))
        .filter(membership::Column::Origin.eq(rule_id))
        .filter(membership::Column::ProfileId.lte(until));
    if let Some(a) = after {
        q = q.filter(membership::Column::ProfileId.gt(a));
    }
    Ok(q.all(&tagger.db)
        .await?
        .into_iter()
        .map(|m| m.profile_id)
        .collect())
}

/// A batch of a job's walk over the tenant's profile ids.
struct Batch {
    ids: Vec<String>,
    /// The last of them.
    until: String,
    /// Those the condition matches.
    matched: BTreeSet<String>,
    at: crate::domain::At,
}

/// The batch of profile ids after `after` with those `cond` matches among them, read in one
/// snapshot; `None` past the last profile.
async fn next_batch(
    tagger: &Tagger,
    tenant: &str,
    cond: &rules::Expanded,
    after: Option<&str>,
) -> Result<Option<Batch>, DbErr> {
    let batch = u64::from(tagger.cfg.backfill_batch);
    let r = segments::reader(&tagger.db).await?;
    let ids = segments::next_ids(&r, tenant, after, batch).await?;
    let Some(until) = ids.last().cloned() else {
        return Ok(None);
    };
    let at = tagger.at(tenant);
    let matched = segments::matching(&r, tenant, cond, &at, after, &until).await?;
    r.commit().await?;
    Ok(Some(Batch {
        ids,
        until,
        matched,
        at,
    }))
}

async fn backfill(
    tagger: &Tagger,
    id: &str,
    tenant: &str,
    rule: &RuleEntry,
) -> Result<(u64, u64), MemberError> {
    let Some(cond) = &rule.expanded else {
        return Ok((0, 0));
    };
    let Some(info) = members::tag_info(&tagger.db, tenant, &rule.tag_id).await? else {
        return Ok((0, 0));
    };
    let (mut added, mut removed, mut done) = (0u64, 0u64, 0i64);
    let mut after: Option<String> = None;
    while let Some(b) = next_batch(tagger, tenant, cond, after.as_deref()).await? {
        let Batch {
            ids,
            until,
            matched,
            ..
        } = b;
        let current = rule_members(
            tagger,
            tenant,
            &rule.tag_id,
            &rule.id,
            after.as_deref(),
            &until,
        )
        .await?;
        let (to_add, to_remove) = settle::batch(rule.mode, &matched, &current);
        let (a, r) = apply(tagger, tenant, &info, &rule.id, &to_add, &to_remove).await?;
        added += a;
        removed += r;
        done += ids.len() as i64;
        progress(
            tagger,
            id,
            &[
                (job::Column::Done, done.into()),
                (job::Column::Added, (added as i64).into()),
                (job::Column::Removed, (removed as i64).into()),
            ],
        )
        .await?;
        after = Some(until);
    }
    Ok((added, removed))
}

/// Brings the kept members of the real-time segment `seg` in line with its condition, a batch of
/// profile ids at a time (progress recorded on the job `job`, when there is one): the
/// members that entered and left.
async fn build_segment(
    tagger: &Tagger,
    job: Option<&str>,
    tenant: &str,
    seg: &RuleEntry,
) -> Result<(u64, u64), DbErr> {
    let Some(cond) = &seg.expanded else {
        return Ok((0, 0));
    };
    let (mut added, mut removed, mut done) = (0u64, 0u64, 0i64);
    let mut after: Option<String> = None;
    while let Some(b) = next_batch(tagger, tenant, cond, after.as_deref()).await? {
        let Batch {
            ids,
            until,
            matched,
            at,
        } = b;
        let current = kept::in_range(&tagger.db, tenant, &seg.id, after.as_deref(), &until).await?;
        let (to_add, to_remove) = settle::batch(Mode::AddRemove, &matched, &current);
        if !to_add.is_empty() || !to_remove.is_empty() {
            let txn = platform::db::begin_write(&tagger.db).await?;
            kept::enter(&txn, tenant, &seg.id, &to_add, at.now, "build").await?;
            kept::leave(&txn, tenant, &seg.id, &to_remove, "build").await?;
            txn.commit().await?;
        }
        added += to_add.len() as u64;
        removed += to_remove.len() as u64;
        done += ids.len() as i64;
        if let Some(job) = job {
            progress(
                tagger,
                job,
                &[
                    (job::Column::Done, done.into()),
                    (job::Column::Added, (added as i64).into()),
                    (job::Column::Removed, (removed as i64).into()),
                ],
            )
            .await?;
        }
        after = Some(until);
    }
    Ok((added, removed))
}

/// Records that the segment's kept members are whole for the version built (unless it changed
/// meanwhile: the job its change started builds that one).
async fn kept_whole(tagger: &Tagger, tenant: &str, seg: &RuleEntry) -> Result<(), DbErr> {
    saved::entities::segment::Entity::update_many()
        .col_expr(
            saved::entities::segment::Column::MembersVersion,
            Expr::value(Some(seg.version)),
        )
        .filter(saved::entities::segment::Column::Id.eq(seg.id.as_str()))
        .filter(saved::entities::segment::Column::TenantId.eq(tenant))
        .filter(saved::entities::segment::Column::Version.eq(seg.version))
        .filter(saved::entities::segment::Column::RefreshMode.eq(saved::REALTIME))
        .filter(saved::entities::segment::Column::Status.eq(saved::ACTIVE))
        .exec(&tagger.db)
        .await
        .map(drop)
}

/// Reconciles the kept members of the real-time segment `id` at `version` with its condition
/// (its scheduled refresh): entered and left, or `None` when the rule set does not hold that
/// version (it changed: its build job does the work).
pub async fn reconcile_segment(
    tagger: &Tagger,
    tenant: &str,
    id: &str,
    version: i64,
) -> Result<Option<(u64, u64)>, DbErr> {
    let find = |set: &tag_rules::TenantRules| {
        set.segments
            .iter()
            .find(|e| e.id == id && e.version == version && e.live)
            .cloned()
    };
    let mut entry = find(&*tagger.engine.rules.get(tenant).await?);
    if entry.is_none() {
        tagger.engine.rules.invalidate(tenant);
        entry = find(&*tagger.engine.rules.get(tenant).await?);
    }
    match entry {
        Some(e) => build_segment(tagger, None, tenant, &e).await.map(Some),
        None => Ok(None),
    }
}

async fn cleanup(
    tagger: &Tagger,
    id: &str,
    tenant: &str,
    rule_id: &str,
) -> Result<(u64, u64), MemberError> {
    let rule = tag_rules::get(&tagger.db, tenant, rule_id).await;
    let tag_id = match rule {
        Ok(r) => r.tag_id,
        Err(_) => match membership::Entity::find()
            .filter(membership::Column::TenantId.eq(tenant))
            .filter(membership::Column::Origin.eq(rule_id))
            .one(&tagger.db)
            .await?
        {
            Some(m) => m.tag_id,
            None => return Ok((0, 0)),
        },
    };
    let Some(info) = members::tag_info(&tagger.db, tenant, &tag_id).await? else {
        return Ok((0, 0));
    };
    let mut removed = 0;
    loop {
        let holders: Vec<String> = membership::Entity::find()
            .filter(membership::Column::TenantId.eq(tenant))
            .filter(membership::Column::TagId.eq(tag_id.clone()))
            .filter(membership::Column::Source.eq(TagSource::Rule.as_str()))
            .filter(membership::Column::Origin.eq(rule_id))
            .order_by_asc(membership::Column::ProfileId)
            .all(&tagger.db)
            .await?
            .into_iter()
            .take(tagger.cfg.backfill_batch as usize)
            .map(|m| m.profile_id)
            .collect();
        if holders.is_empty() {
            break;
        }
        removed += apply(tagger, tenant, &info, rule_id, &[], &holders)
            .await?
            .1;
        progress(
            tagger,
            id,
            &[(job::Column::Removed, (removed as i64).into())],
        )
        .await?;
    }
    Ok((0, removed))
}

/// Adds / removes the rule's membership for a batch in one transaction. Multi-select groups go
/// in bulk (multi-row inserts and deletes); single-select groups profile by profile, as each
/// addition drops the group's other tags.
async fn apply(
    tagger: &Tagger,
    tenant: &str,
    info: &TagInfo,
    rule_id: &str,
    to_add: &[String],
    to_remove: &[String],
) -> Result<(u64, u64), MemberError> {
    if to_add.is_empty() && to_remove.is_empty() {
        return Ok((0, 0));
    }
    let now = tagger.clock.now();
    let why = Reason::rule(rule_id);
    let txn = platform::db::begin_write(&tagger.db).await?;
    let mut changes: Vec<TagChanged> = Vec::new();
    if info.group.selection == SINGLE {
        for p in to_add {
            changes.extend(members::add(&txn, tenant, p, info, &why, now).await?);
        }
        for p in to_remove {
            changes.extend(
                members::remove(
                    &txn,
                    tenant,
                    p,
                    info,
                    Some((TagSource::Rule, rule_id)),
                    &why,
                    now,
                )
                .await?,
            );
        }
        members::publish(&txn, tenant, &changes).await?;
        txn.commit().await?;
        return Ok(count(&changes, info));
    }
    let tag_id = info.tag.id.as_str();
    let held_by_any = |ps: Vec<String>| {
        let txn = &txn;
        async move {
            let mut held = BTreeSet::new();
            for chunk in ps.chunks(500) {
                for m in membership::Entity::find()
                    .filter(membership::Column::TenantId.eq(tenant))
                    .filter(membership::Column::TagId.eq(tag_id))
                    .filter(membership::Column::ProfileId.is_in(chunk.to_vec()))
                    .all(txn)
                    .await?
                {
                    held.insert(m.profile_id);
                }
            }
            Ok::<_, DbErr>(held)
        }
    };
    let before = held_by_any(to_add.to_vec()).await?;
    for chunk in to_add.chunks(200) {
        membership::Entity::insert_many(chunk.iter().map(|p| membership::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            profile_id: Set(p.clone()),
            tag_id: Set(tag_id.to_string()),
            source: Set(TagSource::Rule.as_str().to_string()),
            origin: Set(rule_id.to_string()),
            actor: Set(None),
            merged_from: Set(None),
            created_at: Set(now),
        }))
        .exec_without_returning(&txn)
        .await?;
    }
    for chunk in to_remove.chunks(500) {
        membership::Entity::delete_many()
            .filter(membership::Column::TenantId.eq(tenant))
            .filter(membership::Column::TagId.eq(tag_id))
            .filter(membership::Column::Source.eq(TagSource::Rule.as_str()))
            .filter(membership::Column::Origin.eq(rule_id))
            .filter(membership::Column::ProfileId.is_in(chunk.to_vec()))
            .exec(&txn)
            .await?;
    }
    let still = held_by_any(to_remove.to_vec()).await?;
    let gained: Vec<&String> = to_add.iter().filter(|p| !before.contains(*p)).collect();
    let lost: Vec<&String> = to_remove.iter().filter(|p| !still.contains(*p)).collect();
    let owned = |ps: &[&String]| ps.iter().map(|p| (*p).clone()).collect::<Vec<String>>();
    facts::set_tag_many(&txn, tenant, &owned(&gained), tag_id).await?;
    facts::unset_tag_many(&txn, tenant, &owned(&lost), tag_id).await?;
    for (ps, change) in [(&gained, TagChange::Added), (&lost, TagChange::Removed)] {
        for p in ps {
            writeback::enqueue(&txn, tenant, p, info, change, None, now).await?;
            changes.push(TagChanged {
                profile_id: (*p).clone(),
                tag_id: tag_id.to_string(),
                tag_name: info.tag.name.clone(),
                group_id: Some(info.group.id.clone()),
                change,
                source: TagSource::Rule,
                rule_id: Some(rule_id.to_string()),
                actor: None,
                at: now,
            });
        }
    }
    members::publish(&txn, tenant, &changes).await?;
    txn.commit().await?;
    Ok(count(&changes, info))
}

fn count(changes: &[TagChanged], info: &TagInfo) -> (u64, u64) {
    let of = |c: TagChange| {
        changes
            .iter()
            .filter(|x| x.tag_id == info.tag.id && x.change == c)
            .count() as u64
    };
    (of(TagChange::Added), of(TagChange::Removed))
}

/// The job `id` of `tenant` (a job of another tenant is not found, like an unknown id).
pub async fn get_in(tagger: &Tagger, tenant: &str, id: &str) -> Result<Option<JobView>, DbErr> {
    Ok(job::Entity::find_by_id(id.to_string())
        .filter(job::Column::TenantId.eq(tenant))
        .one(&tagger.db)
        .await?
        .map(JobView::from))
}
