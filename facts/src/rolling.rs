//! The rolling behaviour counters (`facts_behaviour_rolling`: last 7 / 30 / 90 days and all time
//! per profile and metric, as of one day) that let a broad window be previewed over a million
//! profiles in well under a second (perf-notes), and their daily roll.
//!
//! The counters are current for a tenant when `facts_clock.rolled_to` is today: events then add
//! to them directly and the SQL compiler reads them. After the tenant's midnight they are stale
//! until [`roll`] brings them forward; meanwhile events mark their profile dirty and the compiler
//! sums the buckets. Moving one day forward only subtracts the buckets of the three days that
//! leave the 7-, 30- and 90-day windows (one transaction, with the clock: all or nothing) — the
//! new day's events all marked their profiles. When the counters were never built, or are more
//! than a week behind, they are rebuilt from the buckets in chunks of profiles instead (each chunk
//! its own short transaction, so events never wait on it). Then the dirty profiles are
//! recomputed; a profile marked by an event that committed after that is recomputed by the next
//! call of [`roll`] (every scheduler tick), so the counters are exact again within one tick.
//! Whatever changes a profile's rolling rows recounts its kind counts on `facts_profile`
//! ([`rules::schema::KIND_COLS`]) in the same transaction.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rules::schema::{FactsCol as C, FactsTable as T, Recount};
use sea_orm::sea_query::{Expr, Func, OnConflict, Order, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use super::migration::{FactsClock, FactsRollingDirty};
use super::{exec, rows, text};

/// What a call of [`roll`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollReport {
    /// The counters were rebuilt for a new day.
    pub rolled: bool,
    /// Profiles recomputed because events marked them.
    pub dirty_recomputed: u64,
}

/// The day the tenant's rolling counters are as of, when known.
pub async fn rolled_to<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
) -> Result<Option<NaiveDate>, DbErr> {
    let q = Query::select()
        .column(FactsClock::RolledTo)
        .from(FactsClock::Table)
        .and_where(Expr::col(FactsClock::TenantId).eq(tenant))
        .to_owned();
    match rows(conn, &q).await?.first() {
        Some(r) => r.try_get("", "rolled_to"),
        None => Ok(None),
    }
}

/// What one event of `day` adds to (last7, last30, last90, total) as of `today`.
pub(crate) fn window_adds(day: NaiveDate, today: NaiveDate, n: i64) -> [i64; 4] {
    let age = (today - day).num_days();
    let within = |w: i64| if (0..w).contains(&age) { n } else { 0 };
    [within(7), within(30), within(90), n]
}

/// Marks a profile whose counters must be recomputed before they are exact again.
pub(crate) async fn mark_dirty<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
) -> Result<(), DbErr> {
    mark_dirty_many(conn, tenant, &[profile]).await
}

/// [`mark_dirty`] for several profiles of a tenant (one statement; marked ones stay marked).
pub(crate) async fn mark_dirty_many<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[&str],
) -> Result<(), DbErr> {
    if profiles.is_empty() {
        return Ok(());
    }
    let mut q = Query::insert();
    q.into_table(FactsRollingDirty::Table)
        .columns([FactsRollingDirty::TenantId, FactsRollingDirty::ProfileId]);
    for p in profiles {
        q.values_panic([tenant.into(), (*p).into()]);
    }
    q.on_conflict(
        OnConflict::columns([FactsRollingDirty::TenantId, FactsRollingDirty::ProfileId])
            .update_column(FactsRollingDirty::ProfileId)
            .to_owned(),
    );
    exec(conn, &q).await.map(drop)
}

/// `SUM(CASE WHEN day BETWEEN from AND to THEN cnt ELSE 0 END)`.
fn window_sum(from: NaiveDate, to: NaiveDate) -> SimpleExpr {
    Func::sum(
        Expr::case(Expr::col(C::Day).between(from, to), Expr::col(C::Cnt)).finally(Expr::val(0)),
    )
    .into()
}

/// Replaces the rolling rows of the profiles `filter` selects with sums of their buckets as of
/// `as_of`.
async fn rebuild<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    as_of: NaiveDate,
    filter: impl Fn() -> SimpleExpr,
) -> Result<(), DbErr> {
    let del = Query::delete()
        .from_table(T::FactsBehaviourRolling)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(filter())
        .to_owned();
    exec(conn, &del).await?;
    let days = |n: i64| as_of - Duration::days(n - 1);
    let sums = Query::select()
        .column(C::TenantId)
        .column(C::ProfileId)
        .column(C::Metric)
        .expr(window_sum(days(7), as_of))
        .expr(window_sum(days(30), as_of))
        .expr(window_sum(days(90), as_of))
        .expr(Func::sum(Expr::col(C::Cnt)))
        .from(T::FactsBehaviourDaily)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(filter())
        .add_group_by([
            Expr::col(C::TenantId).into(),
            Expr::col(C::ProfileId).into(),
            Expr::col(C::Metric).into(),
        ])
        .to_owned();
    let ins = Query::insert()
        .into_table(T::FactsBehaviourRolling)
        .columns([
            C::TenantId,
            C::ProfileId,
            C::Metric,
            C::Last7,
            C::Last30,
            C::Last90,
            C::Total,
        ])
        .select_from(sums)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    exec(conn, &ins).await.map(drop)
}

/// Recomputes one profile's rolling rows as of `as_of`.
pub(crate) async fn recompute_profile<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    as_of: NaiveDate,
) -> Result<(), DbErr> {
    let p = profile.to_string();
    rebuild(conn, tenant, as_of, move || {
        Expr::col(C::ProfileId).eq(p.clone())
    })
    .await?;
    recount_kinds(conn, Recount::Profiles(tenant, &[profile])).await
}

/// Recounts the kind counts of `facts_profile` ([`rules::schema::KIND_COLS`]) of the rows `of`
/// names, after their rolling rows changed.
async fn recount_kinds<Db: ConnectionTrait>(conn: &Db, of: Recount<'_>) -> Result<(), DbErr> {
    exec(conn, &rules::schema::recount_kinds(of))
        .await
        .map(drop)
}

/// Brings the tenant's rolling counters to `today`: rebuilds them in chunks of `chunk` profiles
/// when they are as of an earlier day, then recomputes the profiles events marked meanwhile.
/// Cheap when there is nothing to do; call it on every scheduler tick.
pub async fn roll(
    db: &DatabaseConnection,
    tenant: &str,
    today: NaiveDate,
    chunk: u64,
    now: DateTime<Utc>,
) -> Result<RollReport, DbErr> {
    let mut report = RollReport::default();
    let mut at = rolled_to(db, tenant).await?;
    // A few days behind: step forward day by day.
    while let Some(d) = at.filter(|d| *d < today && (today - *d).num_days() <= 7) {
        let next = d + Duration::days(1);
        let txn = db.begin().await?;
        for (window, col) in [(7, C::Last7), (30, C::Last30), (90, C::Last90)] {
            subtract_day(&txn, tenant, next - Duration::days(window), col).await?;
        }
        set_clock(&txn, tenant, next, now).await?;
        txn.commit().await?;
        at = Some(next);
        report.rolled = true;
        metrics::counter!(crate::metrics::ROLLS, "how" => "step").increment(1);
    }
    if at != Some(today) {
        let mut after: Option<String> = None;
        loop {
            let mut q = Query::select();
            q.column(C::ProfileId)
                .from(T::FactsProfile)
                .and_where(Expr::col(C::TenantId).eq(tenant))
                .order_by(C::ProfileId, Order::Asc)
                .limit(chunk);
            if let Some(a) = &after {
                q.and_where(Expr::col(C::ProfileId).gt(a.as_str()));
            }
            let ids: Vec<String> = rows(db, &q)
                .await?
                .iter()
                .map(|r| text(r, "profile_id"))
                .collect::<Result<_, _>>()?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            let (lo, hi) = (after.clone(), last.clone());
            let txn = db.begin().await?;
            rebuild(&txn, tenant, today, move || {
                let upto = Expr::col(C::ProfileId).lte(hi.as_str());
                match &lo {
                    Some(l) => upto.and(Expr::col(C::ProfileId).gt(l.as_str())),
                    None => upto,
                }
            })
            .await?;
            let range = Recount::Range {
                tenant_id: tenant,
                after: after.as_deref(),
                until: &last,
            };
            recount_kinds(&txn, range).await?;
            txn.commit().await?;
            after = Some(last);
        }
        set_clock(db, tenant, today, now).await?;
        report.rolled = true;
        metrics::counter!(crate::metrics::ROLLS, "how" => "rebuild").increment(1);
    }
    report.dirty_recomputed = drain_dirty(db, tenant, today).await?;
    Ok(report)
}

/// Takes the buckets of `day` out of the window column `col` of the rolling counters (one
/// statement joining the two tables; MySQL and SQLite spell a joined UPDATE differently). The
/// column is one of three fixed names, never input; the values are bound.
async fn subtract_day<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    day: NaiveDate,
    col: C,
) -> Result<(), DbErr> {
    let col = match col {
        C::Last7 => "last7",
        C::Last30 => "last30",
        C::Last90 => "last90",
        _ => return Err(DbErr::Custom("not a window column".into())),
    };
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::MySql => format!(
            "UPDATE facts_behaviour_rolling AS r JOIN facts_behaviour_daily AS d \
             ON r.tenant_id = d.tenant_id AND r.profile_id = d.profile_id AND r.metric = d.metric \
             SET r.{col} = r.{col} - d.cnt WHERE d.tenant_id = ? AND d.day = ?"
        ),
        _ => format!(
            "UPDATE facts_behaviour_rolling SET {col} = {col} - d.cnt \
             FROM facts_behaviour_daily AS d \
             WHERE facts_behaviour_rolling.tenant_id = d.tenant_id \
             AND facts_behaviour_rolling.profile_id = d.profile_id \
             AND facts_behaviour_rolling.metric = d.metric AND d.tenant_id = ? AND d.day = ?"
        ),
    };
    conn.execute(sea_orm::Statement::from_sql_and_values(
        backend,
        sql,
        [tenant.into(), day.into()],
    ))
    .await?;
    recount_kinds(conn, Recount::EventsOn(tenant, day)).await
}

async fn set_clock<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let upd = Query::update()
        .table(FactsClock::Table)
        .value(FactsClock::RolledTo, day)
        .value(FactsClock::UpdatedAt, now)
        .and_where(Expr::col(FactsClock::TenantId).eq(tenant))
        .to_owned();
    if exec(conn, &upd).await?.rows_affected() == 0 {
        let ins = Query::insert()
            .into_table(FactsClock::Table)
            .columns([
                FactsClock::TenantId,
                FactsClock::RolledTo,
                FactsClock::UpdatedAt,
            ])
            .values_panic([tenant.into(), day.into(), now.into()])
            .to_owned();
        exec(conn, &ins).await?;
    }
    Ok(())
}

/// Recomputes the marked profiles (each with its own small transaction) and unmarks them.
async fn drain_dirty(
    db: &DatabaseConnection,
    tenant: &str,
    today: NaiveDate,
) -> Result<u64, DbErr> {
    let q = Query::select()
        .column(FactsRollingDirty::ProfileId)
        .from(FactsRollingDirty::Table)
        .and_where(Expr::col(FactsRollingDirty::TenantId).eq(tenant))
        .limit(10_000)
        .to_owned();
    let ids: Vec<String> = rows(db, &q)
        .await?
        .iter()
        .map(|r| r.try_get::<String>("", "profile_id"))
        .collect::<Result<_, _>>()?;
    for id in &ids {
        let txn = db.begin().await?;
        let del = Query::delete()
            .from_table(FactsRollingDirty::Table)
            .and_where(Expr::col(FactsRollingDirty::TenantId).eq(tenant))
            .and_where(Expr::col(FactsRollingDirty::ProfileId).eq(id.as_str()))
            .to_owned();
        exec(&txn, &del).await?;
        recompute_profile(&txn, tenant, id, today).await?;
        txn.commit().await?;
    }
    Ok(ids.len() as u64)
}

/// Tenants that have a projection (for the scheduler's rolls).
pub async fn tenants<Db: ConnectionTrait>(conn: &Db) -> Result<Vec<String>, DbErr> {
    let q = Query::select()
        .distinct()
        .column(C::TenantId)
        .from(T::FactsProfile)
        .to_owned();
    rows(conn, &q)
        .await?
        .iter()
        .map(|r| text(r, "tenant_id"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_adds_to_the_windows_it_falls_in() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        let d = |n: i64| today - Duration::days(n);
        assert_eq!(window_adds(d(0), today, 1), [1, 1, 1, 1]);
        assert_eq!(window_adds(d(6), today, 1), [1, 1, 1, 1]);
        assert_eq!(window_adds(d(7), today, 1), [0, 1, 1, 1]);
        assert_eq!(window_adds(d(29), today, 1), [0, 1, 1, 1]);
        assert_eq!(window_adds(d(30), today, 1), [0, 0, 1, 1]);
        assert_eq!(window_adds(d(90), today, 1), [0, 0, 0, 1]);
        assert_eq!(
            window_adds(d(-1), today, 1),
            [0, 0, 0, 1],
            "a future day counts in total only"
        );
    }
}
