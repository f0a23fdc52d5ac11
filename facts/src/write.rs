//! Writing the projection: a profile's state (replacing its properties and relationships when a
//! newer `profile.updated` version arrives), behaviour events (raw row, daily buckets, rolling
//! counters), tags, and moving facts between profiles on merges and un-merges.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use proto::identity::{ProfileUpdated, Relations};
use rules::schema::{bump_daily, bump_daily_rows, FactsCol as C, FactsTable as T};
use rules::{EventFact, FactValue, RelationKind};
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, SqlErr};

use super::rolling::{mark_dirty, mark_dirty_many, recompute_profile, rolled_to, window_adds};
use super::{exec, opt_text, rows, text};

/// Rows per multi-row `INSERT`.
const ROWS_PER_INSERT: usize = 200;

/// What [`apply_profile`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileApplied {
    /// Property keys whose values may differ from before (every key the first time).
    pub changed_keys: Vec<String>,
    /// Relationship facts may differ from before.
    pub relations_changed: bool,
    /// The profile was not in the projection before.
    pub first: bool,
}

fn s(v: &str) -> SimpleExpr {
    Expr::val(v.to_string()).into()
}

fn is_duplicate(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

async fn insert_rows<Db: ConnectionTrait>(
    conn: &Db,
    table: T,
    cols: &[C],
    rows: Vec<Vec<SimpleExpr>>,
) -> Result<(), DbErr> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = Query::insert();
        q.into_table(table).columns(cols.iter().copied());
        for r in chunk {
            q.values(r.iter().cloned())
                .map_err(|e| DbErr::Custom(e.to_string()))?;
        }
        exec(conn, &q).await?;
    }
    Ok(())
}

/// The stored version of a profile, `None` when it is not in the projection.
async fn version<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
) -> Result<Option<i64>, DbErr> {
    let q = Query::select()
        .column(C::Version)
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .to_owned();
    match rows(conn, &q).await?.first() {
        Some(r) => Ok(Some(r.try_get("", "version")?)),
        None => Ok(None),
    }
}

/// Makes sure the profile is in the projection and takes its row lock (see [`lock_profile`]) in
/// one round trip for a known profile. Returns whether it was added.
pub async fn ensure_locked<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut q = Query::select();
    q.column(C::Version)
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile));
    if conn.get_database_backend() == sea_orm::DatabaseBackend::MySql {
        q.lock(sea_orm::sea_query::LockType::Update);
    }
    if !rows(conn, &q).await?.is_empty() {
        return Ok(false);
    }
    // A new profile: the inserted row is locked by its insert. On SQLite the read above was
    // not a lock, but SQLite has one writer; on MySQL another transaction adding the same
    // profile meanwhile makes this a duplicate key, a race the caller retries.
    insert_profile(conn, tenant, profile, now).await?;
    Ok(true)
}

/// [`ensure_locked`] for several profiles of a tenant: the known ones are locked one by one in
/// key order (as every caller locks), the others are added in one statement. Returns the
/// profiles added.
///
/// The known ones are found by a plain read first: a locking read of keys that are not there
/// would wait for whatever row follows each of them, and under a steady stream of new profiles
/// that row is always some other transaction's fresh, uncommitted insert.
pub async fn ensure_locked_many<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[&str],
    now: DateTime<Utc>,
) -> Result<BTreeSet<String>, DbErr> {
    let wanted: BTreeSet<&str> = profiles.iter().copied().collect();
    if let [one] = wanted.iter().copied().collect::<Vec<_>>()[..] {
        let added = ensure_locked(conn, tenant, one, now).await?;
        return Ok(added.then(|| one.to_string()).into_iter().collect());
    }
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let known = known_keys(conn, tenant, T::FactsProfile, C::ProfileId, &wanted).await?;
    for p in &known {
        lock_profile(conn, tenant, p).await?;
    }
    let added = absent(&wanted, &known);
    // A profile another transaction adds meanwhile makes this a duplicate key: a race the
    // caller runs again.
    insert_profiles(conn, tenant, added.iter().map(String::as_str), now).await?;
    Ok(added)
}

/// The profiles of `wanted` not in `known`.
fn absent(wanted: &[&str], known: &BTreeSet<String>) -> BTreeSet<String> {
    wanted
        .iter()
        .filter(|p| !known.contains(**p))
        .map(|p| p.to_string())
        .collect()
}

/// Which of `keys` (values of `col`, in chunks) `table` holds for the tenant (a plain read).
async fn known_keys<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    table: T,
    col: C,
    keys: &[&str],
) -> Result<BTreeSet<String>, DbErr> {
    let mut known = BTreeSet::new();
    for chunk in keys.chunks(ROWS_PER_INSERT) {
        let q = Query::select()
            .expr_as(Expr::col(col), Alias::new("k"))
            .from(table)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(col).is_in(chunk.iter().map(|k| k.to_string())))
            .to_owned();
        for r in rows(conn, &q).await? {
            known.insert(text(&r, "k")?);
        }
    }
    Ok(known)
}

/// New projection rows (version 0) for `profiles`.
async fn insert_profiles<'a, Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: impl IntoIterator<Item = &'a str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let rows_new = profiles
        .into_iter()
        .map(|p| {
            vec![
                s(tenant),
                s(p),
                Expr::val(0i64).into(),
                Expr::val(now).into(),
            ]
        })
        .collect();
    insert_rows(
        conn,
        T::FactsProfile,
        &[C::TenantId, C::ProfileId, C::Version, C::UpdatedAt],
        rows_new,
    )
    .await
}

async fn insert_profile<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    insert_profiles(conn, tenant, [profile], now).await
}

/// Makes sure the profile is in the projection (the universe NOT and "did not do" start from).
/// Returns whether it was added.
pub async fn ensure_profile<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    if version(conn, tenant, profile).await?.is_some() {
        return Ok(false);
    }
    insert_profile(conn, tenant, profile, now).await?;
    Ok(true)
}

/// [`ensure_profile`] for several profiles of a tenant, in two statements whatever their number
/// (a plain read of the known ones, one insert of the others); no row is locked. Returns the
/// profiles added. A profile another transaction adds meanwhile makes this a duplicate key: a
/// race the caller runs again.
pub async fn ensure_profiles<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[&str],
    now: DateTime<Utc>,
) -> Result<BTreeSet<String>, DbErr> {
    let wanted: Vec<&str> = profiles
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known = known_keys(conn, tenant, T::FactsProfile, C::ProfileId, &wanted).await?;
    let added = absent(&wanted, &known);
    insert_profiles(conn, tenant, added.iter().map(String::as_str), now).await?;
    Ok(added)
}

/// Takes the profile's row lock (MySQL / MariaDB; SQLite serialises writers anyway) so that
/// everything a transaction derives from the profile's facts is not raced by another event of
/// the same profile on another connection or process. The profile must be in the projection.
pub async fn lock_profile<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
) -> Result<(), DbErr> {
    if conn.get_database_backend() != sea_orm::DatabaseBackend::MySql {
        return Ok(());
    }
    let q = Query::select()
        .column(C::Version)
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .lock(sea_orm::sea_query::LockType::Update)
        .to_owned();
    rows(conn, &q).await.map(drop)
}

/// The relationship facts of a profile's relationship state: subscriptions in force, active
/// follows, current group memberships.
fn relation_rows(r: &Relations) -> BTreeSet<(RelationKind, String, String)> {
    let mut out = BTreeSet::new();
    for s in r.oa_subscriptions.iter().filter(|s| s.subscribed) {
        out.insert((RelationKind::Oa, s.app_id.clone(), String::new()));
    }
    for f in r.wecom_follows.iter().filter(|f| f.is_active()) {
        out.insert((RelationKind::Follow, f.corp_id.clone(), f.user_id.clone()));
    }
    for g in &r.group_chats {
        out.insert((RelationKind::Group, g.corp_id.clone(), g.chat_id.clone()));
    }
    out
}

fn value_row(key: &str, ord: usize, v: &FactValue) -> Vec<SimpleExpr> {
    let e = v.encode();
    vec![
        s(key),
        Expr::val(i32::try_from(ord).unwrap_or(i32::MAX)).into(),
        s(e.vtype.code()),
        Expr::val(e.s).into(),
        Expr::val(e.s_fold).into(),
        Expr::val(e.n).into(),
    ]
}

const VALUE_COLS: [C; 6] = [C::Pkey, C::Ord, C::Vtype, C::S, C::SFold, C::N];

/// Replaces the profile's properties and relationships with the state `u` carries, unless the
/// projection holds that version or a newer one already (redelivery, reordering): then `None`.
pub async fn apply_profile<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    u: &ProfileUpdated,
    now: DateTime<Utc>,
) -> Result<Option<ProfileApplied>, DbErr> {
    let profile = u.profile_id.as_str();
    let stored = version(conn, tenant, profile).await?;
    if stored.is_some_and(|v| v >= u.version) {
        return Ok(None);
    }
    let first = stored.is_none_or(|v| v == 0);
    match stored {
        None => {
            let q = Query::insert()
                .into_table(T::FactsProfile)
                .columns([C::TenantId, C::ProfileId, C::Version, C::UpdatedAt])
                .values_panic([
                    s(tenant),
                    s(profile),
                    Expr::val(u.version).into(),
                    Expr::val(now).into(),
                ])
                .to_owned();
            exec(conn, &q).await?;
        }
        Some(_) => {
            let q = Query::update()
                .table(T::FactsProfile)
                .value(C::Version, u.version)
                .value(C::UpdatedAt, now)
                .and_where(Expr::col(C::TenantId).eq(tenant))
                .and_where(Expr::col(C::ProfileId).eq(profile))
                .to_owned();
            exec(conn, &q).await?;
        }
    }
    // A profile never applied (no row, or version 0 — identity's state before it was first
    // derived, which is empty) has no property or relation rows to replace.
    for table in [T::FactsProperty, T::FactsRelation]
        .into_iter()
        .filter(|_| !first)
    {
        let q = Query::delete()
            .from_table(table)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::ProfileId).eq(profile))
            .to_owned();
        exec(conn, &q).await?;
    }
    let mut props = Vec::new();
    for (key, v) in &u.fields {
        if !rules::valid_key(key) {
            continue;
        }
        for (ord, fv) in FactValue::from_json_multi(v).iter().enumerate() {
            props.push([vec![s(tenant), s(profile)], value_row(key, ord, fv)].concat());
        }
    }
    let cols: Vec<C> = [C::TenantId, C::ProfileId]
        .into_iter()
        .chain(VALUE_COLS)
        .collect();
    insert_rows(conn, T::FactsProperty, &cols, props).await?;
    let rels = relation_rows(&u.relations)
        .into_iter()
        .map(|(k, ns, r)| vec![s(tenant), s(profile), s(k.as_str()), s(&ns), s(&r)])
        .collect();
    insert_rows(
        conn,
        T::FactsRelation,
        &[C::TenantId, C::ProfileId, C::Kind, C::Ns, C::Ref],
        rels,
    )
    .await?;
    let changed_keys = if first {
        u.fields.keys().cloned().collect()
    } else {
        u.changed
            .iter()
            .filter(|k| !k.starts_with("relations."))
            .cloned()
            .collect()
    };
    Ok(Some(ProfileApplied {
        changed_keys,
        relations_changed: first || u.changed.iter().any(|k| k.starts_with("relations.")),
        first,
    }))
}

/// Records one behaviour event of `profile`: the raw event with its properties, +1 on each of
/// its metrics' daily buckets, and the rolling counters (as of `today`) when they are current,
/// else the profile is marked for recomputation. `false` when the event was recorded before.
pub async fn record_event<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    ev: &EventFact,
    today: NaiveDate,
) -> Result<bool, DbErr> {
    record_event_as_of(conn, tenant, profile, ev, today, None).await
}

/// [`record_event`] with the tenant's `facts_clock.rolled_to` when the caller knows it (see
/// [`Rolling::AsOf`]).
pub async fn record_event_as_of<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    ev: &EventFact,
    today: NaiveDate,
    known_rolled_to: Option<Option<NaiveDate>>,
) -> Result<bool, DbErr> {
    let rolling = Rolling::AsOf {
        today,
        rolled_to: known_rolled_to,
    };
    let new = record_events(conn, tenant, &[(profile, ev)], rolling).await?;
    Ok(new.first().copied().unwrap_or(false))
}

/// [`record_event`] for a projection that never reads its rolling counters (they are neither
/// bumped nor marked for recomputation): the raw event with its properties and +1 on each of
/// its metrics' daily buckets. `false` when the event was recorded before.
pub async fn record_event_buckets<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    ev: &EventFact,
) -> Result<bool, DbErr> {
    let new = record_events(conn, tenant, &[(profile, ev)], Rolling::Skip).await?;
    Ok(new.first().copied().unwrap_or(false))
}

/// A behaviour event and the profile it belongs to.
pub type ProfileEvent<'a> = (&'a str, &'a EventFact);

/// What [`record_events`] does with the rolling counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rolling {
    /// Nothing: the projection never reads them (neither bumped nor marked).
    Skip,
    /// Bumped as of `today` when the tenant's counters are rolled to it, else the profiles are
    /// marked for recomputation. `rolled_to` is the tenant's `facts_clock.rolled_to` when the
    /// caller knows it (it only ever moves forward, so a value read a moment ago is safe: if it
    /// says today, it still is; if it says an earlier day the profiles are marked and
    /// recomputed, which is never wrong); `None` reads it.
    AsOf {
        today: NaiveDate,
        rolled_to: Option<Option<NaiveDate>>,
    },
}

/// Records behaviour events of a tenant's profiles in a handful of statements whatever their
/// number: the raw events with their properties, their metrics' daily buckets and the rolling
/// counters as `rolling` says. Returns, for each event, whether it is new (`false` for one
/// recorded before, or earlier in `events`). Two transactions recording the same new event at
/// once make the later one fail on the event's key: a race the caller runs again.
pub async fn record_events<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    events: &[ProfileEvent<'_>],
    rolling: Rolling,
) -> Result<Vec<bool>, DbErr> {
    let new = insert_events(conn, tenant, events).await?;
    let fresh: Vec<ProfileEvent> = events
        .iter()
        .zip(&new)
        .filter(|(_, n)| **n)
        .map(|(e, _)| *e)
        .collect();
    if fresh.is_empty() {
        return Ok(new);
    }
    let mut props = Vec::new();
    for (_, ev) in &fresh {
        for (key, vs) in &ev.props {
            for (ord, v) in vs.iter().enumerate() {
                props.push([vec![s(tenant), s(&ev.event_id)], value_row(key, ord, v)].concat());
            }
        }
    }
    let cols: Vec<C> = [C::TenantId, C::EventId]
        .into_iter()
        .chain(VALUE_COLS)
        .collect();
    insert_rows(conn, T::FactsEventProp, &cols, props).await?;
    // Buckets: each gets the number of its events; rows changing by the same number share a
    // statement (almost always one: an event per bucket).
    let mut daily: BTreeMap<(&str, String, NaiveDate), i32> = BTreeMap::new();
    for (p, ev) in &fresh {
        for m in ev.metrics() {
            *daily.entry((p, m, ev.day)).or_default() += 1;
        }
    }
    let mut by_count: BTreeMap<i32, Vec<(&str, &str, NaiveDate)>> = BTreeMap::new();
    for ((p, m, day), n) in &daily {
        by_count.entry(*n).or_default().push((p, m.as_str(), *day));
    }
    for (n, rows) in by_count {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            exec(conn, &bump_daily_rows(tenant, chunk, n)).await?;
        }
    }
    let Rolling::AsOf {
        today,
        rolled_to: known,
    } = rolling
    else {
        return Ok(new);
    };
    let rolled = match known {
        Some(r) => r,
        None => rolled_to(conn, tenant).await?,
    };
    if rolled == Some(today) {
        let mut adds: BTreeMap<(&str, String), [i64; 4]> = BTreeMap::new();
        for (p, ev) in &fresh {
            let add = window_adds(ev.day, today, 1);
            for m in ev.metrics() {
                let sum = adds.entry((p, m)).or_default();
                for (s, a) in sum.iter_mut().zip(add) {
                    *s += a;
                }
            }
        }
        let mut by_add: BTreeMap<[i64; 4], Vec<(&str, &str)>> = BTreeMap::new();
        for ((p, m), add) in &adds {
            if add.iter().any(|n| *n != 0) {
                by_add.entry(*add).or_default().push((p, m.as_str()));
            }
        }
        for (add, rows) in by_add {
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                bump_rolling(conn, tenant, chunk, add).await?;
            }
        }
    } else {
        let profiles: BTreeSet<&str> = fresh.iter().map(|(p, _)| *p).collect();
        mark_dirty_many(conn, tenant, &profiles.into_iter().collect::<Vec<_>>()).await?;
    }
    Ok(new)
}

/// Inserts the raw rows of the events not recorded before; returns which were new.
async fn insert_events<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    events: &[ProfileEvent<'_>],
) -> Result<Vec<bool>, DbErr> {
    let row = |(p, ev): &ProfileEvent| {
        vec![
            s(tenant),
            s(&ev.event_id),
            s(p),
            s(&ev.kind),
            Expr::val(ev.day).into(),
        ]
    };
    let cols = [C::TenantId, C::EventId, C::ProfileId, C::Kind, C::Day];
    if let [one] = events {
        // One event: the insert itself tells a duplicate.
        return match insert_rows(conn, T::FactsEvent, &cols, vec![row(one)]).await {
            Ok(()) => Ok(vec![true]),
            Err(e) if is_duplicate(&e) => Ok(vec![false]),
            Err(e) => Err(e),
        };
    }
    let ids: BTreeSet<&str> = events.iter().map(|(_, ev)| ev.event_id.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut known = known_keys(conn, tenant, T::FactsEvent, C::EventId, &ids).await?;
    let mut new = Vec::with_capacity(events.len());
    let mut rows_new = Vec::new();
    for e in events {
        let fresh = known.insert(e.1.event_id.clone());
        if fresh {
            rows_new.push(row(e));
        }
        new.push(fresh);
    }
    insert_rows(conn, T::FactsEvent, &cols, rows_new).await?;
    Ok(new)
}

/// Adds `add` (last7, last30, last90, total) to the rolling rows (profile, metric) of the tenant
/// (one statement), creating the missing ones.
async fn bump_rolling<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    rows: &[(&str, &str)],
    add: [i64; 4],
) -> Result<(), DbErr> {
    let cols = [C::Last7, C::Last30, C::Last90, C::Total];
    let mut on = OnConflict::columns([C::TenantId, C::ProfileId, C::Metric]);
    for (c, n) in cols.iter().zip(add) {
        on.value(*c, Expr::col((T::FactsBehaviourRolling, *c)).add(n));
    }
    let mut q = Query::insert();
    q.into_table(T::FactsBehaviourRolling).columns([
        C::TenantId,
        C::ProfileId,
        C::Metric,
        C::Last7,
        C::Last30,
        C::Last90,
        C::Total,
    ]);
    for (profile, metric) in rows {
        q.values_panic([
            s(tenant),
            s(profile),
            s(metric),
            Expr::val(add[0]).into(),
            Expr::val(add[1]).into(),
            Expr::val(add[2]).into(),
            Expr::val(add[3]).into(),
        ]);
    }
    q.on_conflict(on.to_owned());
    exec(conn, &q).await.map(drop)
}

/// The profile carries `tag` (idempotent).
pub async fn set_tag<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    tag: &str,
) -> Result<(), DbErr> {
    let q = Query::insert()
        .into_table(T::FactsTag)
        .columns([C::TenantId, C::ProfileId, C::TagId])
        .values_panic([s(tenant), s(profile), s(tag)])
        .to_owned();
    match exec(conn, &q).await {
        Err(e) if !is_duplicate(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Every profile of `profiles` carries `tag` (bulk: chunked deletes and multi-row inserts).
pub async fn set_tag_many<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[String],
    tag: &str,
) -> Result<(), DbErr> {
    unset_tag_many(conn, tenant, profiles, tag).await?;
    let rows = profiles
        .iter()
        .map(|p| vec![s(tenant), s(p), s(tag)])
        .collect();
    insert_rows(
        conn,
        T::FactsTag,
        &[C::TenantId, C::ProfileId, C::TagId],
        rows,
    )
    .await
}

/// No profile of `profiles` carries `tag` any more.
pub async fn unset_tag_many<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[String],
    tag: &str,
) -> Result<(), DbErr> {
    for chunk in profiles.chunks(500) {
        let q = Query::delete()
            .from_table(T::FactsTag)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::TagId).eq(tag))
            .and_where(Expr::col(C::ProfileId).is_in(chunk.iter().cloned()))
            .to_owned();
        exec(conn, &q).await?;
    }
    Ok(())
}

/// The profile no longer carries `tag`.
pub async fn unset_tag<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    tag: &str,
) -> Result<(), DbErr> {
    let q = Query::delete()
        .from_table(T::FactsTag)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .and_where(Expr::col(C::TagId).eq(tag))
        .to_owned();
    exec(conn, &q).await.map(drop)
}

/// `absorbed` was merged into `survivor`: its events, buckets and tags become the survivor's
/// (buckets added day by day), its own state rows go (the survivor's arrive with its next
/// `profile.updated`), and the survivor's rolling counters are recomputed.
pub async fn merge_profiles<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    survivor: &str,
    absorbed: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    ensure_profile(conn, tenant, survivor, now).await?;
    let q = Query::update()
        .table(T::FactsEvent)
        .value(C::ProfileId, survivor)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(absorbed))
        .to_owned();
    exec(conn, &q).await?;
    let buckets = Query::select()
        .columns([C::Metric, C::Day, C::Cnt])
        .from(T::FactsBehaviourDaily)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(absorbed))
        .to_owned();
    for r in rows(conn, &buckets).await? {
        let metric = text(&r, "metric")?;
        let day: NaiveDate = r.try_get("", "day")?;
        let cnt: i32 = r.try_get("", "cnt")?;
        exec(conn, &bump_daily(tenant, survivor, &metric, day, cnt)).await?;
    }
    let tags = Query::select()
        .column(C::TagId)
        .from(T::FactsTag)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(absorbed))
        .to_owned();
    for r in rows(conn, &tags).await? {
        set_tag(conn, tenant, survivor, &text(&r, "tag_id")?).await?;
    }
    remove_profile(conn, tenant, absorbed).await?;
    refresh_rolling(conn, tenant, survivor, today).await
}

/// Recomputes a profile's rolling counters when the tenant's are current, else marks it.
async fn refresh_rolling<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    today: NaiveDate,
) -> Result<(), DbErr> {
    if rolled_to(conn, tenant).await? == Some(today) {
        recompute_profile(conn, tenant, profile, today).await
    } else {
        mark_dirty(conn, tenant, profile).await
    }
}

/// An un-merge moved `moved` events from `survivor` back to `restored`: their raw rows and their
/// counts (−1 / +1 on each metric's bucket of their day) follow them. Events older than the
/// retention of raw events are no longer known one by one and stay counted with the survivor.
pub async fn split_events<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    survivor: &str,
    restored: &str,
    moved: &[String],
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    ensure_profile(conn, tenant, restored, now).await?;
    let mut n = 0;
    for chunk in moved.chunks(ROWS_PER_INSERT) {
        let q = Query::select()
            .columns([C::EventId, C::Kind, C::Day])
            .from(T::FactsEvent)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::ProfileId).eq(survivor))
            .and_where(Expr::col(C::EventId).is_in(chunk.iter().cloned()))
            .to_owned();
        for r in rows(conn, &q).await? {
            let id = text(&r, "event_id")?;
            let mut ev = EventFact::new(id.clone(), text(&r, "kind")?, r.try_get("", "day")?);
            let tags = Query::select()
                .column(C::S)
                .from(T::FactsEventProp)
                .and_where(Expr::col(C::TenantId).eq(tenant))
                .and_where(Expr::col(C::EventId).eq(id.clone()))
                .and_where(Expr::col(C::Pkey).eq(rules::CONTENT_TAGS_KEY))
                .to_owned();
            for t in rows(conn, &tags).await? {
                if let Some(tag) = opt_text(&t, "s")? {
                    ev = ev.with_content_tag(tag);
                }
            }
            for m in ev.metrics() {
                exec(conn, &bump_daily(tenant, survivor, &m, ev.day, -1)).await?;
                exec(conn, &bump_daily(tenant, restored, &m, ev.day, 1)).await?;
            }
            let q = Query::update()
                .table(T::FactsEvent)
                .value(C::ProfileId, restored)
                .and_where(Expr::col(C::TenantId).eq(tenant))
                .and_where(Expr::col(C::EventId).eq(id))
                .to_owned();
            exec(conn, &q).await?;
            n += 1;
        }
    }
    // Buckets emptied by the move carry nothing.
    let q = Query::delete()
        .from_table(T::FactsBehaviourDaily)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(survivor))
        .and_where(Expr::col(C::Cnt).lte(0))
        .to_owned();
    exec(conn, &q).await?;
    for p in [survivor, restored] {
        refresh_rolling(conn, tenant, p, today).await?;
    }
    Ok(n)
}

/// Removes every facts row of a profile (merged away, or erased).
pub async fn remove_profile<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
) -> Result<(), DbErr> {
    for stmt in rules::schema::delete_profile_statements(tenant, profile) {
        exec(conn, &stmt).await?;
    }
    let q = Query::delete()
        .from_table(super::FactsRollingDirty::Table)
        .and_where(Expr::col(super::FactsRollingDirty::TenantId).eq(tenant))
        .and_where(Expr::col(super::FactsRollingDirty::ProfileId).eq(profile))
        .to_owned();
    exec(conn, &q).await.map(drop)
}

/// Deletes up to `limit` raw events (with their properties) of days before `before`; their
/// counts stay in the daily buckets. Returns how many went (call again while it returns `limit`).
pub async fn prune_events<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    before: NaiveDate,
    limit: u64,
) -> Result<u64, DbErr> {
    let q = Query::select()
        .column(C::EventId)
        .from(T::FactsEvent)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::Day).lt(before))
        .limit(limit)
        .to_owned();
    let ids: Vec<String> = rows(conn, &q)
        .await?
        .iter()
        .map(|r| text(r, "event_id"))
        .collect::<Result<_, _>>()?;
    for chunk in ids.chunks(500) {
        for table in [T::FactsEventProp, T::FactsEvent] {
            let q = Query::delete()
                .from_table(table)
                .and_where(Expr::col(C::TenantId).eq(tenant))
                .and_where(Expr::col(C::EventId).is_in(chunk.iter().cloned()))
                .to_owned();
            exec(conn, &q).await?;
        }
    }
    Ok(ids.len() as u64)
}
