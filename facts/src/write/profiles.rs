//! A profile in the projection: added (one or many, locked or not) and its state applied from
//! `profile.updated` (properties and relationships replaced when the version is newer).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use proto::identity::{ProfileUpdated, Relations};
use rules::schema::{FactsCol as C, FactsTable as T};
use rules::{FactValue, RelationKind};
use sea_orm::sea_query::{Cond, Expr, Query};
use sea_orm::{ConnectionTrait, DbErr};

use super::*;
use crate::{exec, rows};

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

/// Makes sure the profile is in the projection and takes its row lock (see [`lock_profile`]) in
/// one round trip for a known profile. Returns whether it was added.
pub async fn ensure_locked<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    if lock_known(conn, tenant, profile).await? {
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

/// [`lock_profile`] for a profile that may not be in the projection: returns whether it is
/// (and then holds its lock).
pub async fn lock_known<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
) -> Result<bool, DbErr> {
    let mut q = Query::select();
    q.column(C::Version)
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile));
    if conn.get_database_backend() == sea_orm::DatabaseBackend::MySql {
        q.lock(sea_orm::sea_query::LockType::Update);
    }
    Ok(!rows(conn, &q).await?.is_empty())
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

/// The first key after every `lead.` key.
const LEAD_PREFIX_END: &str = "lead/";
/// The first key after every `profile.` key.
const PROFILE_PREFIX_END: &str = "profile/";

/// A key identity's state never sets: scoring's (`score.<model>`, `lead.*`) and the
/// projection's own (`profile.*`, e.g. when the profile was first seen). A field of that name
/// in identity's state is not read.
fn is_scoring_key(key: &str) -> bool {
    key.starts_with(rules::SCORE_PREFIX)
        || key.starts_with(rules::LEAD_PREFIX)
        || key.starts_with(rules::PROFILE_PREFIX)
}

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
    // The lead's own properties (scoring's, see `lead`) and the projection's own (`profile.*`)
    // are kept: they sort between `lead.` and `lead/` (the next byte), `profile.` and
    // `profile/`.
    for table in [T::FactsProperty, T::FactsRelation]
        .into_iter()
        .filter(|_| !first)
    {
        let mut q = Query::delete()
            .from_table(table)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::ProfileId).eq(profile))
            .to_owned();
        if table == T::FactsProperty {
            let outside = |from: &str, to: &str| {
                Cond::any()
                    .add(Expr::col(C::Pkey).lt(from))
                    .add(Expr::col(C::Pkey).gte(to))
            };
            q.cond_where(
                Cond::all()
                    .add(outside(rules::LEAD_PREFIX, LEAD_PREFIX_END))
                    .add(outside(rules::PROFILE_PREFIX, PROFILE_PREFIX_END)),
            );
        }
        exec(conn, &q).await?;
    }
    let mut props = Vec::new();
    for (key, v) in &u.fields {
        if !rules::valid_key(key) || is_scoring_key(key) {
            continue;
        }
        let values = FactValue::from_json_multi(v);
        for (ord, fv) in FactValue::stored_distinct(&values).into_iter().enumerate() {
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
