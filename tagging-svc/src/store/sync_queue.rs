//! The write-back queue (`tag_sync_queue`) as the worker sees it: claiming due contacts (rep ×
//! customer) in short transactions, recording each call's outcome, the status per tenant, and
//! pruning.
//!
//! Claiming: due rows are locked `FOR UPDATE SKIP LOCKED` (MySQL/MariaDB; READ COMMITTED, so
//! no gap locks) or under SQLite's write lock; then every open row of their contacts is locked
//! the same way and read again without locking. A contact is taken only when this worker holds
//! all of its open rows and none is in flight — so one contact is never sent by two workers at
//! once, and a newer item never overtakes a retry of an older one. The rows to send become
//! `sending` with `next_at` = the lease's end, which is also the claim's token: a result is
//! recorded only while the row is still `sending` with that `next_at` (a worker whose lease ran
//! out and was taken over changes nothing). A lease that runs out makes the row open again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Serialize;

use super::entities::sync_item;
use super::rep_tags;
use super::writeback::PENDING;
use crate::wecom::plan::{self, Action, Open, Plan};

/// Status of an item whose call is in flight (until `next_at`, the lease's end).
pub const SENDING: &str = "sending";
/// Status of an item WeCom accepted.
pub const DONE: &str = "done";
/// Status of an item given up (`last_error` says why).
pub const FAILED: &str = "failed";
/// Status of an item a newer one of the same tag replaced, or that needed no call.
pub const SUPERSEDED: &str = "superseded";

/// One rep's view of one customer in one corp: whom a `mark_tag` call addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Contact {
    pub tenant_id: String,
    pub corp_id: String,
    pub user_id: String,
    pub external_userid: String,
}

impl Contact {
    fn of(m: &sync_item::Model) -> Self {
        Contact {
            tenant_id: m.tenant_id.clone(),
            corp_id: m.corp_id.clone(),
            user_id: m.user_id.clone(),
            external_userid: m.external_userid.clone(),
        }
    }
}

/// A tag to send for a claimed contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    pub id: i64,
    pub wecom_tag_id: String,
    pub action: Action,
    /// Tries including this one.
    pub attempts: i32,
}

/// A contact this worker holds until `lease_until`, with the tags to send in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub contact: Contact,
    pub lease_until: DateTime<Utc>,
    pub items: Vec<ClaimedItem>,
}

/// What one claim pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClaimReport {
    pub claimed: Vec<Claimed>,
    /// Items replaced by a newer one of their tag, or whose changes cancelled out.
    pub superseded: u64,
    /// Contacts left for another worker or for later this pass.
    pub skipped: u64,
}

/// How a claimed item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// WeCom accepted it.
    Done,
    /// Try again at `at`.
    Retry { at: DateTime<Utc>, error: String },
    /// Given up.
    Failed { error: String },
    /// Not tried (no rate-limit slot in time): open again at `at`, the try not counted.
    Release { at: DateTime<Utc> },
}

fn open_statuses() -> Condition {
    Condition::any()
        .add(sync_item::Column::Status.eq(PENDING))
        .add(sync_item::Column::Status.eq(SENDING))
}

/// Claims up to `batch` due contacts at `now`, for `lease`.
pub async fn claim(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    batch: u64,
    lease: chrono::Duration,
) -> Result<ClaimReport, DbErr> {
    let backend = db.get_database_backend();
    let isolation = (backend == DbBackend::MySql).then_some(sea_orm::IsolationLevel::ReadCommitted);
    let txn = match isolation {
        Some(_) => db.begin_with_config(isolation, None).await?,
        None => platform::db::begin_write(db).await?,
    };
    let due = sync_item::Entity::find()
        .filter(open_statuses())
        .filter(sync_item::Column::NextAt.lte(now))
        .order_by_asc(sync_item::Column::NextAt)
        .order_by_asc(sync_item::Column::Id)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&txn)
        .await?;
    let contacts: BTreeSet<Contact> = due.iter().map(Contact::of).collect();
    let mut report = ClaimReport::default();
    if contacts.is_empty() {
        txn.commit().await?;
        return Ok(report);
    }
    let of_contacts = || {
        let corps: BTreeSet<&str> = contacts.iter().map(|c| c.corp_id.as_str()).collect();
        let exts: BTreeSet<&str> = contacts
            .iter()
            .map(|c| c.external_userid.as_str())
            .collect();
        sync_item::Entity::find()
            .filter(open_statuses())
            .filter(sync_item::Column::CorpId.is_in(corps))
            .filter(sync_item::Column::ExternalUserid.is_in(exts))
    };
    let mine: BTreeMap<i64, sync_item::Model> = of_contacts()
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let seen = of_contacts().all(&txn).await?;
    let mut rows: BTreeMap<Contact, Vec<sync_item::Model>> = BTreeMap::new();
    let mut blocked: BTreeSet<Contact> = BTreeSet::new();
    for m in seen {
        let c = Contact::of(&m);
        if !contacts.contains(&c) {
            continue;
        }
        match mine.get(&m.id) {
            // Locked by another worker's claim right now.
            None => {
                blocked.insert(c);
            }
            // In flight under a live lease.
            Some(r) if r.status == SENDING && r.next_at > now => {
                blocked.insert(c);
            }
            Some(r) => rows.entry(c).or_default().push(r.clone()),
        }
    }
    let lease_until = (now + lease).trunc_subsecs(0);
    for (contact, items) in rows {
        if blocked.contains(&contact) {
            report.skipped += 1;
            continue;
        }
        let open: Vec<Open> = items
            .iter()
            .filter_map(|m| {
                Some(Open {
                    id: m.id,
                    wecom_tag_id: m.wecom_tag_id.clone(),
                    action: Action::parse(&m.action)?,
                    attempts: m.attempts,
                    // A run-out lease is due now.
                    next_at: if m.status == SENDING { now } else { m.next_at },
                })
            })
            .collect();
        match plan::plan(&open, now) {
            Plan::Wait(until) => {
                // The due rows wait with the one still waiting, so they are not picked again
                // on every pass until then.
                let due: Vec<i64> = items
                    .iter()
                    .filter(|m| m.next_at <= now)
                    .map(|m| m.id)
                    .collect();
                sync_item::Entity::update_many()
                    .col_expr(sync_item::Column::Status, Expr::value(PENDING))
                    .col_expr(sync_item::Column::NextAt, Expr::value(until))
                    .col_expr(sync_item::Column::UpdatedAt, Expr::value(now))
                    .filter(sync_item::Column::Id.is_in(due))
                    .exec(&txn)
                    .await?;
                report.skipped += 1;
            }
            Plan::Go { sends, superseded } => {
                if !superseded.is_empty() {
                    report.superseded += superseded.len() as u64;
                    sync_item::Entity::update_many()
                        .col_expr(sync_item::Column::Status, Expr::value(SUPERSEDED))
                        .col_expr(sync_item::Column::UpdatedAt, Expr::value(now))
                        .filter(sync_item::Column::Id.is_in(superseded))
                        .exec(&txn)
                        .await?;
                }
                if sends.is_empty() {
                    continue;
                }
                for s in &sends {
                    sync_item::Entity::update_many()
                        .col_expr(sync_item::Column::Status, Expr::value(SENDING))
                        .col_expr(sync_item::Column::Attempts, Expr::value(s.attempts))
                        .col_expr(sync_item::Column::NextAt, Expr::value(lease_until))
                        .col_expr(sync_item::Column::UpdatedAt, Expr::value(now))
                        .filter(sync_item::Column::Id.eq(s.id))
                        .exec(&txn)
                        .await?;
                }
                report.claimed.push(Claimed {
                    contact,
                    lease_until,
                    items: sends
                        .into_iter()
                        .map(|s| ClaimedItem {
                            id: s.id,
                            wecom_tag_id: s.wecom_tag_id,
                            action: s.action,
                            attempts: s.attempts,
                        })
                        .collect(),
                });
            }
        }
    }
    txn.commit().await?;
    Ok(report)
}

/// Records the outcome of `items` claimed for `contact` (in a claim that ends at
/// `lease_until`). Returns the rows changed (0 when the lease was taken over). What WeCom
/// accepted updates the contact's marks (`wecom_marks`: added tags recorded, removed ones
/// forgotten) in the same transaction.
pub async fn finish(
    db: &DatabaseConnection,
    contact: &Contact,
    items: &[ClaimedItem],
    lease_until: DateTime<Utc>,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    let txn = platform::db::begin_write(db).await?;
    // The items still under this lease (a lease that ran out and was taken over records
    // nothing).
    let live: BTreeSet<i64> = sync_item::Entity::find()
        .select_only()
        .column(sync_item::Column::Id)
        .filter(sync_item::Column::Id.is_in(ids))
        .filter(sync_item::Column::Status.eq(SENDING))
        .filter(sync_item::Column::NextAt.eq(lease_until))
        .lock_exclusive()
        .into_tuple::<i64>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    if live.is_empty() {
        txn.rollback().await?;
        return Ok(0);
    }
    let mut q = sync_item::Entity::update_many()
        .col_expr(sync_item::Column::UpdatedAt, Expr::value(now))
        .filter(sync_item::Column::Id.is_in(live.iter().copied()));
    q = match outcome {
        Outcome::Done => q
            .col_expr(sync_item::Column::Status, Expr::value(DONE))
            .col_expr(
                sync_item::Column::LastError,
                Expr::value(Option::<String>::None),
            ),
        Outcome::Retry { at, error } => q
            .col_expr(sync_item::Column::Status, Expr::value(PENDING))
            .col_expr(sync_item::Column::NextAt, Expr::value(*at))
            .col_expr(sync_item::Column::LastError, Expr::value(clip(error))),
        Outcome::Failed { error } => q
            .col_expr(sync_item::Column::Status, Expr::value(FAILED))
            .col_expr(sync_item::Column::LastError, Expr::value(clip(error))),
        Outcome::Release { at } => q
            .col_expr(sync_item::Column::Status, Expr::value(PENDING))
            .col_expr(sync_item::Column::NextAt, Expr::value(*at))
            .col_expr(
                sync_item::Column::Attempts,
                Expr::col(sync_item::Column::Attempts).sub(1),
            ),
    };
    let n = q.exec(&txn).await?.rows_affected;
    if *outcome == Outcome::Done {
        let sent = items.iter().filter(|i| live.contains(&i.id));
        let (added, removed): (Vec<&ClaimedItem>, Vec<&ClaimedItem>) =
            sent.partition(|i| i.action == Action::Add);
        rep_tags::record_marks(&txn, contact, &added, &removed, now).await?;
    }
    txn.commit().await?;
    Ok(n)
}

fn clip(error: &str) -> String {
    error.chars().take(1_000).collect()
}

/// Why pending items of some corp tags will not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The corp tag was deleted in WeCom: `failed`, saying so.
    TagDeleted,
    /// The tag's group is no longer written back: `superseded`.
    SyncOff,
}

/// Closes the pending items of `wecom_tag_ids` in `corp` for `why`; returns how many.
pub async fn close_pending<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
    wecom_tag_ids: &[String],
    why: Closed,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if wecom_tag_ids.is_empty() {
        return Ok(0);
    }
    let mut q = sync_item::Entity::update_many()
        .col_expr(sync_item::Column::UpdatedAt, Expr::value(now))
        .filter(sync_item::Column::TenantId.eq(tenant))
        .filter(sync_item::Column::CorpId.eq(corp))
        .filter(sync_item::Column::WecomTagId.is_in(wecom_tag_ids.to_vec()))
        .filter(sync_item::Column::Status.eq(PENDING));
    q = match why {
        Closed::TagDeleted => q
            .col_expr(sync_item::Column::Status, Expr::value(FAILED))
            .col_expr(
                sync_item::Column::LastError,
                Expr::value("the corp tag was deleted in WeCom"),
            ),
        Closed::SyncOff => q.col_expr(sync_item::Column::Status, Expr::value(SUPERSEDED)),
    };
    Ok(q.exec(conn).await?.rows_affected)
}

/// Removes done and superseded items last changed before `before`.
pub async fn prune(db: &DatabaseConnection, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(sync_item::Entity::delete_many()
        .filter(
            Condition::any()
                .add(sync_item::Column::Status.eq(DONE))
                .add(sync_item::Column::Status.eq(SUPERSEDED)),
        )
        .filter(sync_item::Column::UpdatedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}

/// A failed item as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailedItem {
    pub id: i64,
    pub corp_id: String,
    pub user_id: String,
    pub external_userid: String,
    pub wecom_tag_id: String,
    pub action: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// The queue of one tenant: items per status, a page of failures.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueStatus {
    pub counts: BTreeMap<String, i64>,
    /// Latest first.
    pub recent_failures: Vec<FailedItem>,
}

#[derive(FromQueryResult)]
struct StatusCount {
    status: String,
    n: i64,
}

impl FailedItem {
    /// The failure's place in the list, latest first: `(failed at in nanoseconds, id)` (a
    /// failed item is final, so its time no longer changes).
    pub fn key(&self) -> (i64, i64) {
        (self.at.timestamp_nanos_opt().unwrap_or(i64::MAX), self.id)
    }
}

/// Items of `tenant` per status and its latest failures: at most `limit` older than `before`
/// (a failure's [`FailedItem::key`]).
pub async fn status<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    before: Option<(i64, i64)>,
    limit: u64,
) -> Result<QueueStatus, DbErr> {
    let counts = sync_item::Entity::find()
        .select_only()
        .column(sync_item::Column::Status)
        .column_as(sync_item::Column::Id.count(), "n")
        .filter(sync_item::Column::TenantId.eq(tenant))
        .group_by(sync_item::Column::Status)
        .into_model::<StatusCount>()
        .all(conn)
        .await?;
    let mut out: BTreeMap<String, i64> = [PENDING, SENDING, DONE, FAILED, SUPERSEDED]
        .into_iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for c in counts {
        out.insert(c.status, c.n);
    }
    let mut failed = sync_item::Entity::find()
        .filter(sync_item::Column::TenantId.eq(tenant))
        .filter(sync_item::Column::Status.eq(FAILED));
    if let Some((nanos, id)) = before {
        let at = DateTime::<Utc>::from_timestamp_nanos(nanos);
        failed = failed.filter(
            Condition::any()
                .add(sync_item::Column::UpdatedAt.lt(at))
                .add(
                    Condition::all()
                        .add(sync_item::Column::UpdatedAt.eq(at))
                        .add(sync_item::Column::Id.lt(id)),
                ),
        );
    }
    let failures = failed
        .order_by_desc(sync_item::Column::UpdatedAt)
        .order_by_desc(sync_item::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| FailedItem {
            id: m.id,
            corp_id: m.corp_id,
            user_id: m.user_id,
            external_userid: m.external_userid,
            wecom_tag_id: m.wecom_tag_id,
            action: m.action,
            attempts: m.attempts,
            error: m.last_error,
            at: m.updated_at,
        })
        .collect();
    Ok(QueueStatus {
        counts: out,
        recent_failures: failures,
    })
}
