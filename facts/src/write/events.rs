//! Behaviour events: the raw row with its properties, the daily buckets, the rolling counters
//! and the activity by hour.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rules::schema::{bump_daily_rows, FactsCol as C, FactsTable as T, EVENT_COLS};
use rules::EventFact;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};

use super::*;
use crate::exec;
use crate::rolling::{mark_dirty_many, rolled_to, window_adds};

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

/// What [`record_events`] does with the counters kept beside the daily buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rolling {
    /// Nothing: the projection never reads them (neither bumped nor marked).
    Skip,
    /// The activity by hour is counted (`facts_activity`; the tenant's sums are the caller's,
    /// last in its transaction: [`super::bump_tenant_activity`]), and the
    /// rolling counters are bumped as of `today` when the tenant's are rolled to it, else the
    /// profiles are marked for recomputation. `rolled_to` is the tenant's `facts_clock.rolled_to` when the
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
    let content_metric = rules::content_tag_metric("");
    let content: BTreeSet<&str> = daily
        .keys()
        .filter(|(_, m, _)| m.starts_with(&content_metric))
        .map(|(p, _, _)| *p)
        .collect();
    let content: Vec<&str> = content.into_iter().collect();
    if matches!(rolling, Rolling::AsOf { .. }) {
        super::activity::bump_activity(conn, tenant, &fresh).await?;
    }
    let Rolling::AsOf {
        today,
        rolled_to: known,
    } = rolling
    else {
        recount(conn, tenant, &content, Summary::ContentDay).await?;
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
        // The kind counts of the profiles whose event-kind rows were bumped, with the content
        // days of those with content events (one statement: every event has a kind).
        let mut kinds: BTreeSet<&str> = adds
            .keys()
            .filter(|(_, m)| m.starts_with(&rules::event_metric("")))
            .map(|(p, _)| *p)
            .collect();
        kinds.extend(content.iter().copied());
        let kinds: Vec<&str> = kinds.into_iter().collect();
        recount(conn, tenant, &kinds, Summary::ContentDayAndKinds).await?;
    } else {
        recount(conn, tenant, &content, Summary::ContentDay).await?;
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
            Expr::val(ev.hour.map(i16::from)).into(),
        ]
    };
    let cols = EVENT_COLS;
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
