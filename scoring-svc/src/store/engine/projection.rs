//! What scoring keeps beside the facts projection: when each event happened (`lead_events`, for
//! replays and decay), the last change seen of each tag (`tag_clock`, so late tag messages lose),
//! and the reads built on them.

use platform::clock::{local_midnight, Tz};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{DatabaseTransaction, DbErr, FromQueryResult};

use crate::domain::replay::ReplayEvent;
use crate::store::migrations::{LeadEvents, TagClock};
use crate::store::{exec, fetch, fetch_one};

/// Remembers when events happened (replays order and decay events by it); an event known
/// before keeps its first time.
pub(super) async fn record_times(
    txn: &DatabaseTransaction,
    tenant: &str,
    events: &[(&str, DateTime<Utc>)],
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let mut q = Query::insert();
    q.into_table(LeadEvents::Table).columns([
        LeadEvents::TenantId,
        LeadEvents::EventId,
        LeadEvents::EarnedAt,
    ]);
    for (id, at) in events {
        q.values_panic([tenant.into(), (*id).into(), (*at).into()]);
    }
    q.on_conflict(
        OnConflict::columns([LeadEvents::TenantId, LeadEvents::EventId])
            .value(LeadEvents::EarnedAt, Expr::col(LeadEvents::EarnedAt))
            .to_owned(),
    );
    exec(txn, &q).await.map(drop)
}

/// Records a tag change unless a later one was seen; `true` when it should be applied.
pub(super) async fn tag_is_newer(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    tag: &str,
    at: DateTime<Utc>,
    present: bool,
) -> Result<bool, DbErr> {
    #[derive(FromQueryResult)]
    struct Clock {
        changed_at: DateTime<Utc>,
    }
    let q = Query::select()
        .column(TagClock::ChangedAt)
        .from(TagClock::Table)
        .and_where(Expr::col(TagClock::TenantId).eq(tenant))
        .and_where(Expr::col(TagClock::ProfileId).eq(profile))
        .and_where(Expr::col(TagClock::TagId).eq(tag))
        .to_owned();
    if let Some(seen) = fetch_one::<Clock, _>(txn, &q).await? {
        if seen.changed_at > at {
            return Ok(false);
        }
    }
    let q = Query::insert()
        .into_table(TagClock::Table)
        .columns([
            TagClock::TenantId,
            TagClock::ProfileId,
            TagClock::TagId,
            TagClock::ChangedAt,
            TagClock::Present,
        ])
        .values_panic([
            tenant.into(),
            profile.into(),
            tag.into(),
            at.into(),
            present.into(),
        ])
        .on_conflict(
            OnConflict::columns([TagClock::TenantId, TagClock::ProfileId, TagClock::TagId])
                .update_columns([TagClock::ChangedAt, TagClock::Present])
                .to_owned(),
        )
        .to_owned();
    exec(txn, &q).await?;
    Ok(true)
}

/// Sets the profile's tags in the projection to `tags` as of `at`: each tag whose last change
/// seen is not later (see [`tag_is_newer`]) is set or unset.
pub(super) async fn replace_tags(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    tags: &[String],
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    facts::ensure_profile(txn, tenant, profile, now).await?;
    let opts = facts::LoadOptions {
        properties: None,
        relations: false,
        ..Default::default()
    };
    let held = facts::load_profile(txn, tenant, profile, &opts).await?.tags;
    let wanted: std::collections::BTreeSet<&String> = tags.iter().collect();
    for tag in held.iter().chain(tags) {
        let present = wanted.contains(tag);
        if tag_is_newer(txn, tenant, profile, tag, at, present).await? {
            if present {
                facts::set_tag(txn, tenant, profile, tag).await?;
            } else {
                facts::unset_tag(txn, tenant, profile, tag).await?;
            }
        }
    }
    Ok(())
}

/// When the latest of a profile's events in the projection happened (its last activity).
pub(super) async fn last_activity(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    zone: Tz,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let events = profile_events(txn, tenant, profile, zone).await?;
    Ok(events.iter().map(|e| e.earned).max())
}

/// Every event of a profile in the projection with when it happened (from `lead_events`; the
/// start of its local day when unknown).
pub async fn profile_events<C: sea_orm::ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    zone: Tz,
) -> Result<Vec<ReplayEvent>, DbErr> {
    let opts = facts::LoadOptions {
        events_since: chrono::NaiveDate::from_ymd_opt(1970, 1, 1),
        event_kinds: Default::default(),
        ..Default::default()
    };
    let f = facts::load_profile(conn, tenant, profile, &opts).await?;
    #[derive(FromQueryResult)]
    struct Earned {
        event_id: String,
        earned_at: DateTime<Utc>,
    }
    let mut times: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let ids: Vec<String> = f.events.iter().map(|e| e.event_id.clone()).collect();
    for chunk in ids.chunks(500) {
        let q = Query::select()
            .columns([LeadEvents::EventId, LeadEvents::EarnedAt])
            .from(LeadEvents::Table)
            .and_where(Expr::col(LeadEvents::TenantId).eq(tenant))
            .and_where(Expr::col(LeadEvents::EventId).is_in(chunk.iter().cloned()))
            .to_owned();
        for r in fetch::<Earned, _>(conn, &q).await? {
            times.insert(r.event_id, r.earned_at);
        }
    }
    Ok(f.events
        .into_iter()
        .map(|e| {
            let earned = times
                .get(&e.event_id)
                .copied()
                .unwrap_or_else(|| local_midnight(e.day, zone));
            ReplayEvent { event: e, earned }
        })
        .collect())
}
