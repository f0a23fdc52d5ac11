//! Facts moving between profiles on merges and un-merges, a profile removed, old events pruned.

use chrono::{DateTime, NaiveDate, Utc};
use rules::schema::{bump_daily, FactsCol as C, FactsTable as T};
use rules::EventFact;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ConnectionTrait, DbErr};

use super::activity::{drop_empty_activity, move_activity, move_event_activity};
use super::*;
use crate::rolling::{mark_dirty, recompute_profile, rolled_to};
use crate::{exec, opt_text, rows, text};

/// `absorbed` was merged into `survivor`: its events, buckets, activity rows and tags become the
/// survivor's (buckets and activity added day by day), its own state rows go (the survivor's
/// arrive with its next `profile.updated`), and the survivor's rolling counters are recomputed.
/// A projection that keeps first-seen instants calls [`super::merge_first_seen`] first.
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
    move_activity(conn, tenant, absorbed, survivor).await?;
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
    recount(conn, tenant, &[survivor], Summary::ContentDay).await?;
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
/// counts (−1 / +1 on each metric's bucket of their day, and on their activity hour) follow
/// them. Events older than the retention of raw events are no longer known one by one and stay
/// counted with the survivor, as does the activity of events recorded before their hour was
/// kept.
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
            .columns([C::EventId, C::Kind, C::Day, C::Hour])
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
            let hour: Option<i16> = r.try_get("", "hour")?;
            if let Some(h) = hour.and_then(|h| u8::try_from(h).ok()) {
                let slot = (ev.kind.as_str(), ev.day, h);
                move_event_activity(conn, tenant, survivor, restored, slot).await?;
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
    drop_empty_activity(conn, tenant, survivor).await?;
    recount(conn, tenant, &[survivor, restored], Summary::ContentDay).await?;
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
    // Its tags lose a holder.
    exec(conn, &rules::schema::unhold_profile_tags(tenant, profile)).await?;
    for stmt in rules::schema::delete_profile_statements(tenant, profile) {
        exec(conn, &stmt).await?;
    }
    let q = Query::delete()
        .from_table(crate::FactsRollingDirty::Table)
        .and_where(Expr::col(crate::FactsRollingDirty::TenantId).eq(tenant))
        .and_where(Expr::col(crate::FactsRollingDirty::ProfileId).eq(profile))
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
