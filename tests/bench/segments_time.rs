//! The rows the time dimensions of analytics read, for the segments benchmark: when each profile
//! was first seen (a day of the last 365, evenly), and activity by hour for the last 90 days
//! (page views and every event: on about 8 % of an active profile's days, in one hour of it),
//! with the tenant's sums built from them as the consumer would have kept them.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone};
use rules::schema::{FactsCol as C, FactsTable as T, EVERY_EVENT};
use sea_orm::sea_query::{Query, SimpleExpr};
use sea_orm::DatabaseConnection;

use super::{active, exec, fast_session, mix, pid, TENANT};

/// Days of activity loaded, back from today.
pub const ACTIVITY_DAYS: u64 = 90;
/// Rows per insert.
const ROWS: usize = 5_000;

async fn flush(
    db: &DatabaseConnection,
    table: T,
    cols: &[C],
    rows: &mut Vec<Vec<sea_orm::Value>>,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = Query::insert();
    q.into_table(table).columns(cols.iter().copied());
    for r in rows.drain(..) {
        q.values_panic(r.into_iter().map(SimpleExpr::Value));
    }
    exec(db, &q).await
}

/// Loads first-seen rows for `n` profiles and their activity; returns the activity rows and
/// the tenant rows written.
pub async fn load(db: &DatabaseConnection, n: u64, today: NaiveDate) -> anyhow::Result<(u64, u64)> {
    fast_session(db).await?;
    let zone = chrono_tz::Asia::Shanghai;
    let seen_cols = [
        C::TenantId,
        C::ProfileId,
        C::SeenAt,
        C::FirstAt,
        C::Day,
        C::MergedInto,
    ];
    let mut rows = Vec::with_capacity(ROWS);
    for i in 0..n {
        let day = today - chrono::Duration::days((mix(i ^ 23) % 365) as i64);
        let local = day
            .and_hms_opt((mix(i ^ 29) % 24) as u32, 0, 0)
            .unwrap_or_default();
        let at = zone
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.to_utc())
            .unwrap_or_default();
        rows.push(vec![
            TENANT.into(),
            pid(i).into(),
            Some(at).into(),
            at.into(),
            day.into(),
            "".into(),
        ]);
        if rows.len() >= ROWS {
            flush(db, T::FactsFirstSeen, &seen_cols, &mut rows).await?;
        }
    }
    flush(db, T::FactsFirstSeen, &seen_cols, &mut rows).await?;

    let cols = [C::TenantId, C::ProfileId, C::Kind, C::Day, C::Hour, C::Cnt];
    let mut sums: BTreeMap<(&str, NaiveDate, i16), i64> = BTreeMap::new();
    let mut written = 0u64;
    for d in 0..ACTIVITY_DAYS {
        let day = today - chrono::Duration::days(d as i64);
        for i in 0..n {
            let h = mix(i.wrapping_mul(7_919) ^ d << 24 ^ 0xa11);
            if !active(i) || h % 100 >= 8 {
                continue;
            }
            // Mostly daytime hours.
            let hour = ((8 + (h >> 8) % 14 + if (h >> 16) % 5 == 0 { 10 } else { 0 }) % 24) as i16;
            let views = (1 + (h >> 20) % 4) as i32;
            let every = views + ((h >> 24) % 3) as i32;
            for (kind, cnt) in [("track.page_view", views), (EVERY_EVENT, every)] {
                rows.push(vec![
                    TENANT.into(),
                    pid(i).into(),
                    kind.into(),
                    day.into(),
                    hour.into(),
                    cnt.into(),
                ]);
                *sums.entry((kind, day, hour)).or_default() += i64::from(cnt);
                written += 1;
            }
            if rows.len() >= ROWS {
                flush(db, T::FactsActivity, &cols, &mut rows).await?;
            }
        }
    }
    flush(db, T::FactsActivity, &cols, &mut rows).await?;
    let tenant_cols = [C::TenantId, C::Kind, C::Day, C::Hour, C::Shard, C::Cnt];
    let tenant_rows = sums.len() as u64;
    for ((kind, day, hour), cnt) in sums {
        rows.push(vec![
            TENANT.into(),
            kind.into(),
            day.into(),
            hour.into(),
            0i16.into(),
            cnt.into(),
        ]);
        if rows.len() >= ROWS {
            flush(db, T::FactsActivityTenant, &tenant_cols, &mut rows).await?;
        }
    }
    flush(db, T::FactsActivityTenant, &tenant_cols, &mut rows).await?;
    Ok((written, tenant_rows))
}
