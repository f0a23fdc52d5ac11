//! The ledger: one row per change of a profile's score — event points (keyed by rule and event
//! id), state points held or released, manual adjustments — with the rule, event, delta, nominal
//! points, the cap that cut it, when it was earned and when it expires. Rows are never changed
//! in value: a merge moves the absorbed profile's rows to the survivor (leaving behind any whose
//! rule and event the survivor has already, so an event both saw counts once), an un-merge moves
//! rows back, and a recompute voids rows (`void_key` = the row's id, so a new live row with the
//! same key can be written) before writing the replayed ones.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Cond, Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult};

use super::migrations::ScoreLedger as L;
use super::{exec, fetch, is_duplicate};
use crate::domain::decay::Worth;
use crate::domain::points::{Award, Prior};

/// Kind of an entry of event points.
pub const EVENT: &str = "event";
/// Kind of an entry of a state rule holding or releasing its points.
pub const STATE: &str = "state";
/// Kind of a manual adjustment.
pub const ADJUST: &str = "adjust";

/// Ids per `IN (…)` list.
const CHUNK: usize = 500;

/// An entry to write.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub model_id: String,
    pub rule_id: String,
    pub kind: &'static str,
    pub source_key: String,
    pub event_kind: Option<String>,
    pub points: f64,
    pub delta: f64,
    pub capped: Option<&'static str>,
    pub earned: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub cause_id: Option<String>,
    pub note: Option<String>,
}

impl NewEntry {
    /// What the entry adds to a score.
    pub fn worth(&self) -> Worth {
        Worth {
            delta: self.delta,
            earned: self.earned,
            decays: self.kind == EVENT,
        }
    }
}

fn live(tenant: &str, profile: &str) -> Cond {
    Cond::all()
        .add(Expr::col(L::TenantId).eq(tenant))
        .add(Expr::col(L::ProfileId).eq(profile))
        .add(Expr::col(L::VoidKey).eq(0))
}

/// The statement writing entry `e` of `profile` (with the profile it came from in a merge).
fn insert_stmt(
    tenant: &str,
    profile: &str,
    e: &NewEntry,
    merged_from: Option<&str>,
    now: DateTime<Utc>,
) -> sea_orm::sea_query::InsertStatement {
    Query::insert()
        .into_table(L::Table)
        .columns([
            L::TenantId,
            L::ProfileId,
            L::ModelId,
            L::RuleId,
            L::Kind,
            L::SourceKey,
            L::VoidKey,
            L::EventKind,
            L::Points,
            L::Delta,
            L::Capped,
            L::EarnedAt,
            L::ExpiresAt,
            L::MergedFrom,
            L::CauseId,
            L::Note,
            L::CreatedAt,
        ])
        .values_panic([
            tenant.into(),
            profile.into(),
            e.model_id.clone().into(),
            e.rule_id.clone().into(),
            e.kind.into(),
            e.source_key.clone().into(),
            0i64.into(),
            e.event_kind.clone().into(),
            e.points.into(),
            e.delta.into(),
            e.capped.map(str::to_string).into(),
            e.earned.into(),
            e.expires_at.into(),
            merged_from.map(str::to_string).into(),
            e.cause_id.clone().into(),
            e.note.clone().into(),
            now.into(),
        ])
        .to_owned()
}

/// Writes an entry; `false` when the profile has a live entry with the same rule and source key
/// (a replayed event).
pub async fn insert(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    e: &NewEntry,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    match exec(txn, &insert_stmt(tenant, profile, e, None, now)).await {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Voids the entries `cond` selects, as done by `by` (`void_key` = the row's id, so a new live
/// row with the same key can be written). Returns how many.
async fn void(
    txn: &DatabaseTransaction,
    cond: Cond,
    by: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let q = Query::update()
        .table(L::Table)
        .value(L::VoidKey, Expr::col(L::Id))
        .value(L::VoidedAt, now)
        .value(L::VoidedBy, by)
        .cond_where(cond)
        .to_owned();
    Ok(exec(txn, &q).await?.rows_affected())
}

/// What `rule` awarded the profile so far (live entries), for its caps, and whether one of
/// them is for `source_key` already.
pub async fn prior<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    rule: &str,
    source_key: &str,
) -> Result<(Vec<Prior>, bool), DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        delta: f64,
        earned_at: DateTime<Utc>,
        source_key: String,
    }
    let q = Query::select()
        .columns([L::Delta, L::EarnedAt, L::SourceKey])
        .from(L::Table)
        .cond_where(live(tenant, profile).add(Expr::col(L::RuleId).eq(rule)))
        .to_owned();
    let mut seen = false;
    let mut out = Vec::new();
    for r in fetch::<Row, _>(conn, &q).await? {
        seen |= r.source_key == source_key;
        out.push(Prior {
            delta: r.delta,
            earned: r.earned_at,
        });
    }
    Ok((out, seen))
}

/// Points each state rule holds for the profile: rule id → (model id, sum of live entries).
pub async fn held<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
) -> Result<BTreeMap<String, (String, f64)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        rule_id: String,
        model_id: String,
        delta: f64,
    }
    let q = Query::select()
        .columns([L::RuleId, L::ModelId, L::Delta])
        .from(L::Table)
        .cond_where(live(tenant, profile).add(Expr::col(L::Kind).eq(STATE)))
        .to_owned();
    let mut out: BTreeMap<String, (String, f64)> = BTreeMap::new();
    for r in fetch::<Row, _>(conn, &q).await? {
        out.entry(r.rule_id).or_insert((r.model_id, 0.0)).1 += r.delta;
    }
    Ok(out)
}

/// The live, unexpired entries of one model of the profile, as score contributions.
pub async fn worths<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    model: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Worth>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        kind: String,
        delta: f64,
        earned_at: DateTime<Utc>,
    }
    let q = Query::select()
        .columns([L::Kind, L::Delta, L::EarnedAt])
        .from(L::Table)
        .cond_where(
            live(tenant, profile)
                .add(Expr::col(L::ModelId).eq(model))
                .add(
                    Cond::any()
                        .add(Expr::col(L::ExpiresAt).is_null())
                        .add(Expr::col(L::ExpiresAt).gt(now)),
                ),
        )
        .to_owned();
    Ok(fetch::<Row, _>(conn, &q)
        .await?
        .into_iter()
        .map(|r| Worth {
            delta: r.delta,
            earned: r.earned_at,
            decays: r.kind == EVENT,
        })
        .collect())
}

/// (id, rule, source key) of live entries matching `extra`.
async fn keys<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    extra: Cond,
) -> Result<Vec<(i64, String, String)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        id: i64,
        rule_id: String,
        source_key: String,
    }
    let q = Query::select()
        .columns([L::Id, L::RuleId, L::SourceKey])
        .from(L::Table)
        .cond_where(live(tenant, profile).add(extra))
        .to_owned();
    Ok(fetch::<Row, _>(conn, &q)
        .await?
        .into_iter()
        .map(|r| (r.id, r.rule_id, r.source_key))
        .collect())
}

/// Moves entries `ids` to `to`, recording `merged_from`.
async fn reassign(
    txn: &DatabaseTransaction,
    ids: &[i64],
    to: &str,
    merged_from: Option<&str>,
) -> Result<(), DbErr> {
    for chunk in ids.chunks(CHUNK) {
        let q = Query::update()
            .table(L::Table)
            .value(L::ProfileId, to)
            .value(L::MergedFrom, merged_from.map(str::to_string))
            .and_where(Expr::col(L::Id).is_in(chunk.iter().copied()))
            .to_owned();
        exec(txn, &q).await?;
    }
    Ok(())
}

/// Which of `candidates` may move to `to`: those whose (rule, source key) `to` has no live
/// entry for.
async fn movable(
    txn: &DatabaseTransaction,
    tenant: &str,
    to: &str,
    candidates: Vec<(i64, String, String)>,
) -> Result<(Vec<i64>, usize), DbErr> {
    let rules: BTreeSet<String> = candidates.iter().map(|c| c.1.clone()).collect();
    let mut taken = BTreeSet::new();
    let rules: Vec<String> = rules.into_iter().collect();
    for chunk in rules.chunks(CHUNK) {
        let theirs = keys(
            txn,
            tenant,
            to,
            Cond::all().add(Expr::col(L::RuleId).is_in(chunk.iter().cloned())),
        )
        .await?;
        taken.extend(theirs.into_iter().map(|(_, r, k)| (r, k)));
    }
    let mut ids = Vec::new();
    let mut kept = 0;
    for (id, r, k) in candidates {
        if taken.contains(&(r, k)) {
            kept += 1;
        } else {
            ids.push(id);
        }
    }
    Ok((ids, kept))
}

/// `absorbed` was merged into `survivor`: its live entries move over, except those whose rule
/// and source the survivor has already (they stay with the absorbed profile, which counts for
/// nothing while merged and holds them again if the merge is undone). Returns (moved, kept).
pub async fn merge(
    txn: &DatabaseTransaction,
    tenant: &str,
    survivor: &str,
    absorbed: &str,
) -> Result<(usize, usize), DbErr> {
    let theirs = keys(txn, tenant, absorbed, Cond::all()).await?;
    let (ids, kept) = movable(txn, tenant, survivor, theirs).await?;
    reassign(txn, &ids, survivor, Some(absorbed)).await?;
    Ok((ids.len(), kept))
}

/// An un-merge gave `restored` back the events `moved_events`: entries of those events, and
/// entries that came from `restored` in a merge, move back from `survivor` — unless `restored`
/// still holds its own entry for the same rule and event (an event both saw: each keeps one).
/// Returns how many moved.
pub async fn split(
    txn: &DatabaseTransaction,
    tenant: &str,
    survivor: &str,
    restored: &str,
    moved_events: &[String],
) -> Result<usize, DbErr> {
    let mut candidates = keys(
        txn,
        tenant,
        survivor,
        Cond::all().add(Expr::col(L::MergedFrom).eq(restored)),
    )
    .await?;
    for chunk in moved_events.chunks(CHUNK) {
        let more = keys(
            txn,
            tenant,
            survivor,
            Cond::all()
                .add(Expr::col(L::Kind).eq(EVENT))
                .add(Expr::col(L::SourceKey).is_in(chunk.iter().cloned())),
        )
        .await?;
        candidates.extend(more);
    }
    candidates.sort();
    candidates.dedup();
    let (ids, _) = movable(txn, tenant, restored, candidates).await?;
    reassign(txn, &ids, restored, None).await?;
    Ok(ids.len())
}

/// A live event entry as [`rule_events`] reads it.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct EventEntry {
    pub id: i64,
    pub model_id: String,
    pub source_key: String,
    pub event_kind: Option<String>,
    pub points: f64,
    pub delta: f64,
    pub capped: Option<String>,
    #[sea_orm(from_alias = "earned_at")]
    pub earned: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub merged_from: Option<String>,
}

/// The profile's live entries of event rule `rule`, in the order they were written (the order
/// the rule awarded them).
pub async fn rule_events(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    rule: &str,
) -> Result<Vec<EventEntry>, DbErr> {
    let q = Query::select()
        .columns([
            L::Id,
            L::ModelId,
            L::SourceKey,
            L::EventKind,
            L::Points,
            L::Delta,
            L::Capped,
            L::EarnedAt,
            L::ExpiresAt,
            L::MergedFrom,
        ])
        .from(L::Table)
        .cond_where(
            live(tenant, profile)
                .add(Expr::col(L::RuleId).eq(rule))
                .add(Expr::col(L::Kind).eq(EVENT)),
        )
        .order_by(L::Id, sea_orm::sea_query::Order::Asc)
        .to_owned();
    fetch(txn, &q).await
}

/// Writes a rule's entries again with new awards: each old entry is voided (by `by`) and
/// written anew, in the same order, with the same event, times and origin (`merged_from`), and
/// the award's delta and cap.
pub async fn rewrite_awards(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    rule: &str,
    entries: &[(EventEntry, Award)],
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let ids: Vec<i64> = entries.iter().map(|(e, _)| e.id).collect();
    for chunk in ids.chunks(CHUNK) {
        let cond = Cond::all().add(Expr::col(L::Id).is_in(chunk.iter().copied()));
        void(txn, cond, by, now).await?;
    }
    for (e, a) in entries {
        let entry = NewEntry {
            model_id: e.model_id.clone(),
            rule_id: rule.to_string(),
            kind: EVENT,
            source_key: e.source_key.clone(),
            event_kind: e.event_kind.clone(),
            points: e.points,
            delta: a.delta,
            capped: a.capped,
            earned: e.earned,
            expires_at: e.expires_at,
            cause_id: Some(by.to_string()),
            note: Some("caps applied again".into()),
        };
        let q = insert_stmt(tenant, profile, &entry, e.merged_from.as_deref(), now);
        exec(txn, &q).await?;
    }
    Ok(())
}

/// Voids the profile's live event and state entries of `model` (a recompute rewrites them).
pub async fn void_model(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    model: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let cond = live(tenant, profile)
        .add(Expr::col(L::ModelId).eq(model))
        .add(Expr::col(L::Kind).is_in([EVENT, STATE]));
    void(txn, cond, by, now).await
}
