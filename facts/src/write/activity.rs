//! Activity by hour: events per profile, kind and tenant-local (day, hour) in `facts_activity`
//! and the same summed over the tenant in `facts_activity_tenant`, kept with the daily buckets by
//! a projection that answers analytics (see [`Rolling::AsOf`]). Each event counts under its kind
//! and under [`EVERY_EVENT`]. A profile's rows move with it on merges and un-merges; the tenant's
//! sums never change then (the events are the same events).
//!
//! The tenant's sums of one hour are spread over [`ACTIVITY_SHARDS`] rows and a transaction adds
//! to one of them (picked from its first event's id), so concurrent consumers of one tenant
//! seldom wait for each other's row locks; it adds last, right before its commit
//! ([`bump_tenant_activity`]), so the shared row is never held while other locks are awaited.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rules::schema::{
    bump_activity_rows, bump_activity_tenant, FactsCol as C, FactsTable as T, ACTIVITY_SHARDS,
    EVERY_EVENT,
};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ConnectionTrait, DbErr};

use super::*;
use crate::{exec, rows, text};

/// An activity row of one profile: (kind, day, hour).
type Slot<'a> = (&'a str, NaiveDate, u8);

/// The shard of `facts_activity_tenant` a transaction whose first event is `event_id` adds to.
fn shard_of(event_id: &str) -> u32 {
    // FNV-1a: stable across builds and processes.
    let h = event_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    u32::try_from(h % u64::from(ACTIVITY_SHARDS)).unwrap_or(0)
}

/// Counts new events into the activity rows of their profiles (a few statements whatever their
/// number). Events without an hour count nowhere. The tenant's sums are the caller's, at the end
/// of its transaction ([`bump_tenant_activity`]).
pub(super) async fn bump_activity<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    fresh: &[ProfileEvent<'_>],
) -> Result<(), DbErr> {
    let mut mine: BTreeMap<(&str, Slot), i32> = BTreeMap::new();
    for (p, ev) in fresh {
        let Some(hour) = ev.hour else { continue };
        for kind in [ev.kind.as_str(), EVERY_EVENT] {
            *mine.entry((p, (kind, ev.day, hour))).or_default() += 1;
        }
    }
    // Rows changing by the same number share a statement (almost always one).
    let mut by_count: BTreeMap<i32, Vec<(&str, &str, NaiveDate, u8)>> = BTreeMap::new();
    for ((p, (kind, day, hour)), n) in mine {
        by_count.entry(n).or_default().push((p, kind, day, hour));
    }
    for (n, rows) in by_count {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            exec(conn, &bump_activity_rows(tenant, chunk, n)).await?;
        }
    }
    Ok(())
}

/// Adds the events newly recorded in a transaction to the tenant's sums by hour, in one of the
/// [`ACTIVITY_SHARDS`] rows of each hour. Called last, right before the commit: the shard row is
/// the one lock two consumers of a tenant share, and a transaction that takes it last never
/// waits for anything while holding it, so it cannot take part in a deadlock.
pub async fn bump_tenant_activity<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    fresh: &[&rules::EventFact],
) -> Result<(), DbErr> {
    let Some(first) = fresh.first() else {
        return Ok(());
    };
    let mut sums: BTreeMap<Slot, i64> = BTreeMap::new();
    for ev in fresh {
        let Some(hour) = ev.hour else { continue };
        for kind in [ev.kind.as_str(), EVERY_EVENT] {
            *sums.entry((kind, ev.day, hour)).or_default() += 1;
        }
    }
    let shard = shard_of(&first.event_id);
    let mut by_sum: BTreeMap<i64, Vec<Slot>> = BTreeMap::new();
    for (slot, n) in sums {
        by_sum.entry(n).or_default().push(slot);
    }
    for (n, rows) in by_sum {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            exec(conn, &bump_activity_tenant(tenant, chunk, shard, n)).await?;
        }
    }
    Ok(())
}

/// Adds every activity row of `from` to `to`'s (a merge; `from`'s rows go with the rest of its
/// facts).
pub(super) async fn move_activity<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    from: &str,
    to: &str,
) -> Result<(), DbErr> {
    let q = Query::select()
        .columns([C::Kind, C::Day, C::Hour, C::Cnt])
        .from(T::FactsActivity)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(from))
        .to_owned();
    let mut by_count: BTreeMap<i32, Vec<(String, NaiveDate, u8)>> = BTreeMap::new();
    for r in rows(conn, &q).await? {
        let hour: i16 = r.try_get("", "hour")?;
        let cnt: i32 = r.try_get("", "cnt")?;
        by_count.entry(cnt).or_default().push((
            text(&r, "kind")?,
            r.try_get("", "day")?,
            u8::try_from(hour).unwrap_or(0),
        ));
    }
    for (n, slots) in by_count {
        let rows: Vec<(&str, &str, NaiveDate, u8)> = slots
            .iter()
            .map(|(k, d, h)| (to, k.as_str(), *d, *h))
            .collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            exec(conn, &bump_activity_rows(tenant, chunk, n)).await?;
        }
    }
    Ok(())
}

/// One event of `kind` on (day, hour) counted under `to` instead of `from` (an un-merge moving
/// it back). Rows it empties are removed by [`drop_empty_activity`].
pub(super) async fn move_event_activity<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    from: &str,
    to: &str,
    (kind, day, hour): Slot<'_>,
) -> Result<(), DbErr> {
    for (p, by) in [(from, -1), (to, 1)] {
        let rows = [(p, kind, day, hour), (p, EVERY_EVENT, day, hour)];
        exec(conn, &bump_activity_rows(tenant, &rows, by)).await?;
    }
    Ok(())
}

/// Removes `profile`'s activity rows that count nothing.
pub(super) async fn drop_empty_activity<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
) -> Result<(), DbErr> {
    let q = Query::delete()
        .from_table(T::FactsActivity)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .and_where(Expr::col(C::Cnt).lte(0))
        .to_owned();
    exec(conn, &q).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_and_stay() {
        let ids: Vec<String> = (0..400).map(|i| format!("0190-{i:04}")).collect();
        let mut seen = std::collections::BTreeSet::new();
        for id in &ids {
            let s = shard_of(id);
            assert!(s < ACTIVITY_SHARDS);
            assert_eq!(s, shard_of(id));
            seen.insert(s);
        }
        assert_eq!(seen.len(), ACTIVITY_SHARDS as usize);
    }
}
