//! Leads: one row per profile with its stage, owner and activity — also the profile's lock
//! (`SELECT … FOR UPDATE` on MySQL/MariaDB; SQLite serialises writers), so caps, state holdings,
//! crossings and stage moves of one profile are decided by one transaction at a time, across
//! instances. Stage history (every move with who or what made it) and SLAs live here too.

use chrono::{DateTime, Utc};
use proto::identity::Relations;
use proto::scoring::{ActorKind, Owner};
use sea_orm::sea_query::{Alias, Expr, LockType, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult};

use super::migrations::{LeadSla as A, LeadStageHistory as H, Leads as L};
use super::{exec, fetch, fetch_one, is_duplicate};

/// Status of a live lead.
pub const ACTIVE: &str = "active";
/// Status of a profile merged into another (`merged_into`).
pub const MERGED: &str = "merged";

/// SLA states.
pub const SLA_OPEN: &str = "open";
pub const SLA_MET: &str = "met";
pub const SLA_BREACHED: &str = "breached";
pub const SLA_CLOSED: &str = "closed";

/// A lead row.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub tenant: String,
    pub profile: String,
    pub stage: String,
    pub stage_entered_at: DateTime<Utc>,
    pub history_id: i64,
    pub status: String,
    pub merged_into: Option<String>,
    pub owner: Option<Owner>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub next_check_at: Option<DateTime<Utc>>,
    /// Merged leads: the survivor's stage-history entry current when the merge was applied
    /// (0 otherwise), where an un-merge takes the survivor's stage back to.
    pub merge_history_id: i64,
}

impl Lead {
    pub fn active(&self) -> bool {
        self.status == ACTIVE
    }
}

/// A lead as [`COLS`] select it.
#[derive(FromQueryResult)]
struct LeadRow {
    tenant_id: String,
    profile_id: String,
    stage: String,
    stage_entered_at: DateTime<Utc>,
    history_id: i64,
    status: String,
    merged_into: Option<String>,
    owner_corp_id: Option<String>,
    owner_user_id: Option<String>,
    owner_external_userid: Option<String>,
    last_activity_at: Option<DateTime<Utc>>,
    next_check_at: Option<DateTime<Utc>>,
    merge_history_id: i64,
}

impl From<LeadRow> for Lead {
    fn from(r: LeadRow) -> Self {
        Lead {
            tenant: r.tenant_id,
            profile: r.profile_id,
            stage: r.stage,
            stage_entered_at: r.stage_entered_at,
            history_id: r.history_id,
            status: r.status,
            merged_into: r.merged_into,
            owner: match (r.owner_corp_id, r.owner_user_id) {
                (Some(corp_id), Some(user_id)) => Some(Owner {
                    corp_id,
                    user_id,
                    external_userid: r.owner_external_userid,
                }),
                _ => None,
            },
            last_activity_at: r.last_activity_at,
            next_check_at: r.next_check_at,
            merge_history_id: r.merge_history_id,
        }
    }
}

/// The columns of a lead row ([`LeadRow`]).
const COLS: [L; 13] = [
    L::TenantId,
    L::ProfileId,
    L::Stage,
    L::StageEnteredAt,
    L::HistoryId,
    L::Status,
    L::MergedInto,
    L::OwnerCorpId,
    L::OwnerUserId,
    L::OwnerExternalUserid,
    L::LastActivityAt,
    L::NextCheckAt,
    L::MergeHistoryId,
];

/// The select of the lead of `profile`.
fn select(tenant: &str, profile: &str) -> SelectStatement {
    Query::select()
        .columns(COLS)
        .from(L::Table)
        .and_where(Expr::col(L::TenantId).eq(tenant))
        .and_where(Expr::col(L::ProfileId).eq(profile))
        .to_owned()
}

/// Reads (and on MySQL locks) a lead.
pub async fn lock(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
) -> Result<Option<Lead>, DbErr> {
    let q = select(tenant, profile).lock(LockType::Update).to_owned();
    Ok(fetch_one::<LeadRow, _>(txn, &q).await?.map(Lead::from))
}

/// Reads a lead without locking it.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
) -> Result<Option<Lead>, DbErr> {
    let q = select(tenant, profile);
    Ok(fetch_one::<LeadRow, _>(conn, &q).await?.map(Lead::from))
}

/// A select of leads (as `l`) with their creation time, for [`listed`].
pub(crate) fn listing(l: &Alias) -> SelectStatement {
    let mut q = Query::select();
    q.columns(COLS.map(|c| (l.clone(), c)))
        .column((l.clone(), L::CreatedAt))
        .from_as(L::Table, l.clone());
    q
}

/// A lead as [`listing`] selects it.
#[derive(FromQueryResult)]
struct Listed {
    #[sea_orm(nested)]
    lead: LeadRow,
    created_at: DateTime<Utc>,
}

/// The leads `q` (a [`listing`]) finds, each with its creation time.
pub(crate) async fn listed<C: ConnectionTrait>(
    db: &C,
    q: &SelectStatement,
) -> Result<Vec<(Lead, DateTime<Utc>)>, DbErr> {
    Ok(fetch::<Listed, _>(db, q)
        .await?
        .into_iter()
        .map(|r| (Lead::from(r.lead), r.created_at))
        .collect())
}

/// The profile ids a select of the one column `profile_id` finds, in its order.
pub(crate) async fn profile_ids<C: ConnectionTrait>(
    conn: &C,
    stmt: &SelectStatement,
) -> Result<Vec<String>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        profile_id: String,
    }
    Ok(fetch::<Row, _>(conn, stmt)
        .await?
        .into_iter()
        .map(|r| r.profile_id)
        .collect())
}

/// Inserts a new lead in `stage`; `false` when another transaction created it first.
pub async fn insert(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    stage: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let q = Query::insert()
        .into_table(L::Table)
        .columns([
            L::TenantId,
            L::ProfileId,
            L::Stage,
            L::StageEnteredAt,
            L::HistoryId,
            L::Status,
            L::CreatedAt,
            L::UpdatedAt,
        ])
        .values_panic([
            tenant.into(),
            profile.into(),
            stage.into(),
            now.into(),
            0i64.into(),
            ACTIVE.into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    match exec(txn, &q).await {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes every mutable column of `lead`.
pub async fn save(txn: &DatabaseTransaction, lead: &Lead, now: DateTime<Utc>) -> Result<(), DbErr> {
    let o = lead.owner.as_ref();
    let q = Query::update()
        .table(L::Table)
        .value(L::Stage, lead.stage.clone())
        .value(L::StageEnteredAt, lead.stage_entered_at)
        .value(L::HistoryId, lead.history_id)
        .value(L::Status, lead.status.clone())
        .value(L::MergedInto, lead.merged_into.clone())
        .value(L::OwnerCorpId, o.map(|o| o.corp_id.clone()))
        .value(L::OwnerUserId, o.map(|o| o.user_id.clone()))
        .value(
            L::OwnerExternalUserid,
            o.and_then(|o| o.external_userid.clone()),
        )
        .value(L::LastActivityAt, lead.last_activity_at)
        .value(L::NextCheckAt, lead.next_check_at)
        .value(L::MergeHistoryId, lead.merge_history_id)
        .value(L::UpdatedAt, now)
        .and_where(Expr::col(L::TenantId).eq(&lead.tenant))
        .and_where(Expr::col(L::ProfileId).eq(&lead.profile))
        .to_owned();
    exec(txn, &q).await.map(drop)
}

/// The owning rep of a relationship state: the earliest active WeCom follow.
pub fn owner_of(r: &Relations) -> Option<Owner> {
    r.wecom_follows
        .iter()
        .filter(|f| f.is_active())
        .min_by(|a, b| (a.added_at, &a.user_id).cmp(&(b.added_at, &b.user_id)))
        .map(|f| Owner {
            corp_id: f.corp_id.clone(),
            user_id: f.user_id.clone(),
            external_userid: f.external_userid.clone(),
        })
}

/// A stage-history entry to write.
#[derive(Debug, Clone)]
pub struct Move<'a> {
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub actor_kind: ActorKind,
    pub actor: &'a str,
    pub reason: &'a str,
    pub cause_id: Option<&'a str>,
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Records a move: closes the current entry (`previous`, 0 for none) and writes the new one.
/// Returns its id.
pub async fn record_move(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    previous: i64,
    m: &Move<'_>,
    at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    if previous > 0 {
        let q = Query::update()
            .table(H::Table)
            .value(H::LeftAt, at)
            .and_where(Expr::col(H::Id).eq(previous))
            .to_owned();
        exec(txn, &q).await?;
    }
    let q = Query::insert()
        .into_table(H::Table)
        .columns([
            H::TenantId,
            H::ProfileId,
            H::FromStage,
            H::ToStage,
            H::ActorKind,
            H::Actor,
            H::Reason,
            H::EnteredAt,
            H::CauseId,
        ])
        .values_panic([
            tenant.into(),
            profile.into(),
            m.from.map(str::to_string).into(),
            m.to.into(),
            m.actor_kind.as_str().into(),
            cut(m.actor, 255).into(),
            cut(m.reason, 1000).into(),
            at.into(),
            m.cause_id.map(|c| cut(c, 64)).into(),
        ])
        .to_owned();
    let r = exec(txn, &q).await?;
    i64::try_from(r.last_insert_id()).map_err(|e| DbErr::Custom(e.to_string()))
}

/// Opens the SLA of the stage entered with history entry `history_id`.
pub async fn open_sla(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    history_id: i64,
    stage: &str,
    entered: DateTime<Utc>,
    due: DateTime<Utc>,
) -> Result<(), DbErr> {
    let q = Query::insert()
        .into_table(A::Table)
        .columns([
            A::HistoryId,
            A::TenantId,
            A::ProfileId,
            A::Stage,
            A::EnteredAt,
            A::DueAt,
            A::Status,
        ])
        .values_panic([
            history_id.into(),
            tenant.into(),
            profile.into(),
            stage.into(),
            entered.into(),
            due.into(),
            SLA_OPEN.into(),
        ])
        .to_owned();
    exec(txn, &q).await.map(drop)
}

/// Settles the profile's open SLAs as `status` (met, or closed when the lead left the stage or
/// was merged away). Returns how many.
pub async fn settle_open_slas(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    status: &str,
    by: &str,
    at: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let q = Query::update()
        .table(A::Table)
        .value(A::Status, status)
        .value(A::SettledAt, at)
        .value(A::SettledBy, cut(by, 255))
        .and_where(Expr::col(A::TenantId).eq(tenant))
        .and_where(Expr::col(A::ProfileId).eq(profile))
        .and_where(Expr::col(A::Status).eq(SLA_OPEN))
        .to_owned();
    Ok(exec(txn, &q).await?.rows_affected())
}

/// A stage-history entry as [`history_from`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: i64,
    pub to_stage: String,
    pub actor_kind: Option<ActorKind>,
}

/// The profile's stage-history entries from entry `from_id` on (that one included), in order.
pub async fn history_from(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    from_id: i64,
) -> Result<Vec<HistoryEntry>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        id: i64,
        to_stage: String,
        actor_kind: String,
    }
    let q = Query::select()
        .columns([H::Id, H::ToStage, H::ActorKind])
        .from(H::Table)
        .and_where(Expr::col(H::TenantId).eq(tenant))
        .and_where(Expr::col(H::ProfileId).eq(profile))
        .and_where(Expr::col(H::Id).gte(from_id))
        .order_by(H::Id, sea_orm::sea_query::Order::Asc)
        .to_owned();
    Ok(fetch::<Row, _>(txn, &q)
        .await?
        .into_iter()
        .map(|r| HistoryEntry {
            id: r.id,
            to_stage: r.to_stage,
            actor_kind: ActorKind::parse(&r.actor_kind),
        })
        .collect())
}
