//! Segment preview, analytics breakdowns and rule backfill over a large population on MariaDB,
//! through tagging-svc's own code paths (`segments::preview`, `analytics::breakdown`, the
//! backfill job) on the facts projection.
//!
//! Run: `cargo bench -p scrm-tests --bench tagging_segments` (MariaDB from SCRM_TEST_MYSQL_URL or
//! the local default). Knobs:
//! - `BENCH_PROFILES=N` (default 1 000 000) profiles, each with a city, an industry and an age,
//!   about 3 of 200 tags, and — for 81 % of them — behaviour: `BENCH_BUCKETS=N` (default
//!   50 000 000) daily buckets `(profile, metric, day, cnt)` over the last 365 days across seven
//!   metrics (page views 45 % of rows).
//! - `BENCH_DB=name` reuses a database a previous run kept (skips the load);
//!   `BENCH_KEEP_DB=1` keeps the database instead of dropping it.
//! - `BENCH_PARTS=a,b` measures only those parts: `previews`, `counts`, `tenant` (analytics of
//!   the tenant), `segment` (of a segment), `saved` (a saved segment's scheduled refresh and
//!   its kept breakdowns), `backfill` (all by default).
//! - `BENCH_BUFFER_POOL_GB=N` sets MariaDB's `innodb_buffer_pool_size` for the run (a server
//!   setting: the measured facts in shared/perf-notes.md used 8 GB); unset, it is left alone.
//!
//! Buckets are generated metric by metric and day by day (primary-key order), each profile having
//! a bucket on a day with a per-metric probability, deterministic in (profile, metric, day).
//! First sightings and activity by hour come from `segments_time`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use rules::schema::{FactsCol as C, FactsTable as T};
use rules::Limits;
use sea_orm::sea_query::{Expr, InsertStatement, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;
use serde_json::{json, Value};
use tagging_svc::clock::SystemClock;
use tagging_svc::domain::analytics::Dimension;
use tagging_svc::store::rules::{self as tag_rules, RuleInput};
use tagging_svc::store::segments;
use tagging_svc::store::{analytics, backfill};
use test_support::servers::{mysql_url, unique};

mod segments_time;

const TENANT: &str = "t-bench";
const CITIES: [&str; 10] = [
    "Hangzhou",
    "Shanghai",
    "Beijing",
    "Shenzhen",
    "Guangzhou",
    "Chengdu",
    "Wuhan",
    "Nanjing",
    "Suzhou",
    "Xiamen",
];
/// Metrics and their share of bucket rows.
const METRICS: [(&str, f64); 7] = [
    ("e:track.page_view", 0.45),
    ("e:track.click", 0.20),
    ("e:oa.message.text", 0.10),
    ("c:case_study", 0.10),
    ("e:track.form_submit", 0.05),
    ("e:track.share", 0.05),
    ("e:track.download", 0.05),
];
const ROWS_PER_INSERT: usize = 10_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A deterministic 64-bit mix.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn pid(i: u64) -> String {
    format!("p{i:09}")
}

fn active(i: u64) -> bool {
    mix(i) % 100 >= 19
}

async fn exec(db: &DatabaseConnection, q: &InsertStatement) -> anyhow::Result<()> {
    db.execute(db.get_database_backend().build(q)).await?;
    Ok(())
}

async fn fast_session(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute(Statement::from_string(
        db.get_database_backend(),
        "SET SESSION unique_checks = 0, foreign_key_checks = 0",
    ))
    .await?;
    Ok(())
}

async fn load_profiles(db: &DatabaseConnection, n: u64) -> anyhow::Result<()> {
    fast_session(db).await?;
    let now = Utc::now();
    let (mut prof, mut props, mut tags) = (Vec::new(), Vec::new(), Vec::new());
    let flush = |rows: &mut Vec<Vec<sea_orm::Value>>, table: T, cols: &[C]| {
        let mut q = Query::insert();
        q.into_table(table).columns(cols.iter().copied());
        for r in rows.drain(..) {
            q.values_panic(r.into_iter().map(sea_orm::sea_query::SimpleExpr::Value));
        }
        q
    };
    let pcols = [
        C::TenantId,
        C::ProfileId,
        C::Pkey,
        C::Ord,
        C::Vtype,
        C::S,
        C::SFold,
        C::N,
    ];
    for i in 0..n {
        let id = pid(i);
        prof.push(vec![
            TENANT.into(),
            id.clone().into(),
            1i64.into(),
            now.into(),
        ]);
        let city = CITIES[(mix(i ^ 7) % 10) as usize];
        let industry = format!("industry-{:02}", mix(i ^ 11) % 20);
        for (k, s) in [
            ("contact.city", city.to_string()),
            ("company.industry", industry),
        ] {
            props.push(vec![
                TENANT.into(),
                id.clone().into(),
                k.into(),
                0i32.into(),
                "s".into(),
                Some(s.clone()).into(),
                Some(s.to_lowercase()).into(),
                Option::<f64>::None.into(),
            ]);
        }
        props.push(vec![
            TENANT.into(),
            id.clone().into(),
            "contact.age".into(),
            0i32.into(),
            "n".into(),
            Option::<String>::None.into(),
            Option::<String>::None.into(),
            Some((18 + mix(i ^ 13) % 50) as f64).into(),
        ]);
        let k = 2 + mix(i ^ 17) % 3;
        let mut mine = std::collections::BTreeSet::new();
        for j in 0..k {
            mine.insert(mix(i * 31 + j) % 200);
        }
        for t in mine {
            tags.push(vec![
                TENANT.into(),
                id.clone().into(),
                format!("t{t:03}").into(),
            ]);
        }
        if prof.len() >= 5_000 {
            exec(
                db,
                &flush(
                    &mut prof,
                    T::FactsProfile,
                    &[C::TenantId, C::ProfileId, C::Version, C::UpdatedAt],
                ),
            )
            .await?;
        }
        if props.len() >= 6_000 {
            exec(db, &flush(&mut props, T::FactsProperty, &pcols)).await?;
        }
        if tags.len() >= 10_000 {
            exec(
                db,
                &flush(
                    &mut tags,
                    T::FactsTag,
                    &[C::TenantId, C::ProfileId, C::TagId],
                ),
            )
            .await?;
        }
        if i > 0 && i % 200_000 == 0 {
            eprintln!("  profiles: {i}/{n}");
        }
    }
    if !prof.is_empty() {
        exec(
            db,
            &flush(
                &mut prof,
                T::FactsProfile,
                &[C::TenantId, C::ProfileId, C::Version, C::UpdatedAt],
            ),
        )
        .await?;
    }
    if !props.is_empty() {
        exec(db, &flush(&mut props, T::FactsProperty, &pcols)).await?;
    }
    if !tags.is_empty() {
        exec(
            db,
            &flush(
                &mut tags,
                T::FactsTag,
                &[C::TenantId, C::ProfileId, C::TagId],
            ),
        )
        .await?;
    }
    Ok(())
}

/// Loads the buckets of metric `m` on one connection, day by day.
async fn load_metric(
    db: DatabaseConnection,
    m: usize,
    n: u64,
    buckets: u64,
    today: NaiveDate,
) -> anyhow::Result<u64> {
    fast_session(&db).await?;
    let (metric, share) = METRICS[m];
    let actives = (n as f64 * 0.81).max(1.0);
    // Probability that an active profile has a bucket of this metric on a given day.
    let p = (buckets as f64 * share / 365.0 / actives).min(1.0);
    let threshold = (p * u64::MAX as f64) as u64;
    let mut rows: Vec<[sea_orm::Value; 5]> = Vec::with_capacity(ROWS_PER_INSERT);
    let mut total = 0u64;
    let flush = |rows: &mut Vec<[sea_orm::Value; 5]>| {
        let mut q = Query::insert();
        q.into_table(T::FactsBehaviourDaily).columns([
            C::TenantId,
            C::ProfileId,
            C::Metric,
            C::Day,
            C::Cnt,
        ]);
        for r in rows.drain(..) {
            q.values_panic(r.into_iter().map(sea_orm::sea_query::SimpleExpr::Value));
        }
        q
    };
    for d in 0..365u64 {
        let day = today - chrono::Duration::days(d as i64);
        for i in 0..n {
            if !active(i) {
                continue;
            }
            let h = mix(i.wrapping_mul(1_000_003) ^ (m as u64) << 40 ^ d << 20);
            if h > threshold {
                continue;
            }
            rows.push([
                TENANT.into(),
                pid(i).into(),
                metric.into(),
                day.into(),
                ((1 + h % 4) as i32).into(),
            ]);
            if rows.len() >= ROWS_PER_INSERT {
                total += rows.len() as u64;
                exec(&db, &flush(&mut rows)).await?;
            }
        }
        if d % 73 == 72 {
            eprintln!("  {metric}: day {}/365, {total} rows", d + 1);
        }
    }
    if !rows.is_empty() {
        total += rows.len() as u64;
        exec(&db, &flush(&mut rows)).await?;
    }
    Ok(total)
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<String> {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    if let Ok(v) = row.try_get_by_index::<i64>(0) {
        return Ok(v.to_string());
    }
    if let Ok(v) = row.try_get_by_index::<u64>(0) {
        return Ok(v.to_string());
    }
    Ok(row.try_get_by_index::<String>(0)?)
}

fn doc(root: Value) -> Value {
    json!({"version": 1, "root": root})
}

fn queries() -> Vec<(&'static str, Value)> {
    let pv = |n: i64, days: i64| {
        json!({"type": "behaviour", "event": "track.page_view", "count": {"op": "gte", "value": n},
               "window": {"type": "last", "days": days}})
    };
    let city = json!({"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "Hangzhou"});
    let tag = |t: &str| json!({"type": "tag", "op": "has", "tags": [t]});
    vec![
        (
            "property + page views ≥3 in 30 d + tag (nested AND)",
            doc(json!({"type": "and", "children": [city.clone(), pv(3, 30), tag("t007")]})),
        ),
        ("page views ≥10 in 90 d (broad window)", doc(pv(10, 90))),
        (
            "(property OR tag) AND page views ≥3 in 30 d AND NOT tag",
            doc(json!({"type": "and", "children": [
                {"type": "or", "children": [city, tag("t003")]}, pv(3, 30),
                {"type": "not", "child": tag("t009")}]})),
        ),
        (
            "distinct event kinds ≥3 in 30 d",
            doc(
                json!({"type": "distinct", "of": "event_kinds", "count": {"op": "gte", "value": 3},
                       "window": {"type": "last", "days": 30}}),
            ),
        ),
        (
            "case studies ≥2 in 7 d OR did not view in 90 d",
            doc(json!({"type": "or", "children": [
                {"type": "behaviour", "content_tag": "case_study", "count": {"op": "gte", "value": 2}, "window": {"type": "last", "days": 7}},
                {"type": "behaviour", "event": "track.page_view", "count": {"op": "eq", "value": 0}, "window": {"type": "last", "days": 90}}]})),
        ),
    ]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let n = env_u64("BENCH_PROFILES", 1_000_000);
    let buckets = env_u64("BENCH_BUCKETS", 50_000_000);
    let keep = std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1");
    let reuse = std::env::var("BENCH_DB").ok();
    let name = reuse.clone().unwrap_or_else(|| unique("bench_tag"));
    let url = format!("{}/{name}", mysql_url());
    let mut cfg = platform::config::DbConfig::new(url.clone());
    cfg.max_connections = 12;
    let db = platform::db::connect(&cfg, true).await?;
    if let Some(gb) = std::env::var("BENCH_BUFFER_POOL_GB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        db.execute(Statement::from_string(
            db.get_database_backend(),
            format!("SET GLOBAL innodb_buffer_pool_size = {}", gb << 30),
        ))
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "MariaDB {} — innodb_buffer_pool_size {} MiB, flush_log_at_trx_commit {}",
        scalar(&db, "SELECT VERSION()").await?,
        scalar(&db, "SELECT @@innodb_buffer_pool_size")
            .await?
            .parse::<u64>()
            .unwrap_or(0)
            >> 20,
        scalar(&db, "SELECT @@innodb_flush_log_at_trx_commit").await?,
    );
    let clock: Arc<dyn tagging_svc::clock::Clock> = Arc::new(SystemClock);
    let mut tcfg = tagging_svc::Config::new(
        platform::config::HttpConfig {
            bind: "127.0.0.1:0".parse()?,
            workers: 1,
        },
        cfg.clone(),
    );
    tcfg.backfill_batch = env_u64("BENCH_BATCH", 20_000) as u32;
    let tagger = tagging_svc::tagger(db.clone(), tcfg, clock);
    let at = tagger.at(TENANT);
    // A kept database made by an older build gets what was added since (and its backfills).
    let t = Instant::now();
    tagging_svc::store::Migrator::up(&db, None).await?;
    println!("migrations: {:.1} s", t.elapsed().as_secs_f64());
    if reuse.is_none() {
        println!("loading {n} profiles and ~{buckets} buckets into `{name}` ...");
        let t0 = Instant::now();
        load_profiles(&db, n).await?;
        println!(
            "  profiles, properties, tags: {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let t1 = Instant::now();
        let mut tasks = Vec::new();
        for m in 0..METRICS.len() {
            let conn = platform::db::connect(&cfg, false).await?;
            tasks.push(tokio::spawn(load_metric(conn, m, n, buckets, at.today)));
        }
        let mut rows = 0;
        for t in tasks {
            rows += t.await??;
        }
        println!(
            "  {rows} daily buckets: {:.1} s",
            t1.elapsed().as_secs_f64()
        );
        let t3 = Instant::now();
        let (act, sums) = segments_time::load(&db, n, at.today).await?;
        println!(
            "  first seen, {act} activity rows ({} days), {sums} tenant activity rows: {:.1} s",
            segments_time::ACTIVITY_DAYS,
            t3.elapsed().as_secs_f64()
        );
        // The loader writes the rows the consumers would; the profiles' summary of them is
        // counted from them in one grouped pass each (the migrations' correlated recount, one
        // subquery per profile, ran for many minutes on a freshly loaded 1 M database).
        let t4 = Instant::now();
        let b = db.get_database_backend();
        for sql in [
            "UPDATE facts_profile p JOIN (SELECT tenant_id, profile_id, COUNT(*) c FROM facts_tag \
             GROUP BY tenant_id, profile_id) x ON x.tenant_id = p.tenant_id \
             AND x.profile_id = p.profile_id SET p.tag_count = x.c",
            "UPDATE facts_profile p JOIN (SELECT tenant_id, profile_id, MAX(day) d \
             FROM facts_behaviour_daily WHERE metric LIKE 'c:%' AND cnt > 0 \
             GROUP BY tenant_id, profile_id) x ON x.tenant_id = p.tenant_id \
             AND x.profile_id = p.profile_id SET p.content_day = x.d",
        ] {
            db.execute(Statement::from_string(b, sql)).await?;
        }
        let (clear, count) = rules::schema::count_tag_holders();
        for d in clear {
            db.execute(b.build(&d)).await?;
        }
        db.execute(b.build(&count)).await?;
        println!(
            "  profiles' tag counts and content days, tags' holders: {:.1} s",
            t4.elapsed().as_secs_f64()
        );
        let t2 = Instant::now();
        let r = facts::roll(&db, TENANT, at.today, 20_000, Utc::now()).await?;
        println!(
            "  rolling counters built: {:.1} s ({r:?})",
            t2.elapsed().as_secs_f64()
        );
    } else if facts::rolled_to(&db, TENANT).await? != Some(at.today) {
        let t2 = Instant::now();
        facts::roll(&db, TENANT, at.today, 20_000, Utc::now()).await?;
        println!(
            "  rolling counters rolled to today: {:.1} s",
            t2.elapsed().as_secs_f64()
        );
    }
    println!(
        "population: {} profiles, {} buckets, {} rolling rows, {} tag rows, {} activity rows",
        scalar(&db, "SELECT COUNT(*) FROM facts_profile").await?,
        scalar(&db, "SELECT COUNT(*) FROM facts_behaviour_daily").await?,
        scalar(&db, "SELECT COUNT(*) FROM facts_behaviour_rolling").await?,
        scalar(&db, "SELECT COUNT(*) FROM facts_tag").await?,
        scalar(&db, "SELECT COUNT(*) FROM facts_activity").await?,
    );

    println!(
        "\n{:<58} {:>9} {:>9} {:>9} {:>9}",
        "preview (count + 20 samples)", "matches", "1st ms", "median ms", "max ms"
    );
    let parts = std::env::var("BENCH_PARTS").ok();
    let part = |name: &str| {
        parts
            .as_deref()
            .is_none_or(|p| p.split(',').any(|x| x.trim() == name))
    };
    let limits = Limits::default();
    let mut results: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (label, q) in queries().into_iter().filter(|_| part("previews")) {
        let (_, expanded) = tag_rules::validate(&db, TENANT, None, &q, &limits)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let r = segments::reader(&db).await?;
            let p = segments::preview(&r, TENANT, &expanded, &at, 20).await?;
            r.commit().await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            count = p.count;
        }
        let first = times[0];
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{label:<58} {count:>9} {first:>9.0} {:>9.0} {:>9.0}",
            sorted[2], sorted[4]
        );
        results.insert(label, times);
    }

    // The count alone, two ways: the compiled set counted as it is (a negative condition is the
    // universe EXCEPT what it excludes), and by subtraction (`rules::sql::count_query`, what
    // previews run).
    println!(
        "\n{:<58} {:>9} {:>12} {:>12}",
        "count only (median of 3)", "matches", "set ms", "subtract ms"
    );
    for (label, q) in queries().into_iter().filter(|_| part("counts")) {
        let (_, expanded) = tag_rules::validate(&db, TENANT, None, &q, &limits)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut medians = Vec::new();
        let mut counts = Vec::new();
        for by_subtraction in [false, true] {
            let mut times = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let r = segments::reader(&db).await?;
                let cctx = segments::ctx(&r, TENANT, &at, rules::sql::Restrict::All).await?;
                let stmt = if by_subtraction {
                    rules::sql::count_query(&expanded, &cctx)
                } else {
                    rules::sql::count_statement(&rules::sql::compile(&expanded, &cctx))
                };
                let b = r.get_database_backend();
                let row = r.query_one(b.build(&stmt)).await?.context("a count")?;
                r.commit().await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                counts.push(row.try_get_by_index::<i64>(0)?);
            }
            times.sort_by(|a, b| a.total_cmp(b));
            medians.push(times[1]);
        }
        anyhow::ensure!(
            counts.windows(2).all(|w| w[0] == w[1]),
            "{label}: the two counts differ: {counts:?}"
        );
        println!(
            "{label:<58} {:>9} {:>12.0} {:>12.0}",
            counts[0], medians[0], medians[1]
        );
    }

    // A scheduler pass's worth of unfolded tag-holder changes (netting zero), as the tenant's tag
    // coverage meets them between passes; folded again at the end.
    let b = db.get_database_backend();
    let tags: Vec<String> = db
        .query_all(
            b.build(
                Query::select()
                    .column(C::TagId)
                    .from(T::FactsTagHolders)
                    .and_where(Expr::col(C::TenantId).eq(TENANT)),
            ),
        )
        .await?
        .iter()
        .map(|r| {
            r.try_get::<Vec<u8>>("", "tag_id")
                .map(|v| String::from_utf8_lossy(&v).into())
        })
        .collect::<Result<_, _>>()?;
    if !tags.is_empty() {
        let changes: Vec<(&str, i64)> = (0..facts::HOLDER_LOG_BATCH as usize)
            .map(|i| {
                (
                    tags[(i / 2) % tags.len()].as_str(),
                    if i % 2 == 0 { 1 } else { -1 },
                )
            })
            .collect();
        for chunk in changes.chunks(1_000) {
            if let Some(q) = rules::schema::log_tag_holders(TENANT, chunk) {
                db.execute(b.build(&q)).await?;
            }
        }
    }
    println!(
        "\ntag-holder log rows unfolded: {}",
        scalar(&db, "SELECT COUNT(*) FROM facts_tag_holder_log").await?
    );

    // Analytics of the whole tenant and of a segment, dimension by dimension.
    println!(
        "\n{:<58} {:>9} {:>9} {:>9} {:>9}",
        "analytics breakdown", "profiles", "1st ms", "median ms", "max ms"
    );
    let (_, engaged) = tag_rules::validate(&db, TENANT, None, &queries()[1].1, &limits)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let dims: Vec<(&str, Dimension)> = vec![
        (
            "city",
            serde_json::from_value(json!({"kind": "property", "key": "contact.city"}))?,
        ),
        (
            "age bands",
            serde_json::from_value(
                json!({"kind": "bands", "key": "contact.age", "bounds": [25, 35, 45, 55]}),
            )?,
        ),
        (
            "tag coverage",
            serde_json::from_value(json!({"kind": "tags"}))?,
        ),
        (
            "content-tag interest, 30 d",
            serde_json::from_value(
                json!({"kind": "content_tags", "window": {"type": "last", "days": 30}}),
            )?,
        ),
        (
            "new profiles per day, 30 d",
            serde_json::from_value(json!({"kind": "new_profiles"}))?,
        ),
        (
            "new profiles per day, 366 d",
            serde_json::from_value(json!({"kind": "new_profiles", "from": (at.today
                - chrono::Duration::days(365)).to_string()}))?,
        ),
        (
            "activity hours, every event, 30 d",
            serde_json::from_value(json!({"kind": "activity_hours"}))?,
        ),
        (
            "activity hours, page views, 90 d",
            serde_json::from_value(json!({"kind": "activity_hours", "event": "track.page_view",
                "window": {"type": "last", "days": 90}}))?,
        ),
    ];
    for (who, cond) in [
        ("tenant", None),
        ("segment: page views ≥10 in 90 d", Some(&engaged)),
    ]
    .into_iter()
    .filter(|(_, c)| part(if c.is_some() { "segment" } else { "tenant" }))
    {
        for (label, d) in &dims {
            let mut times = Vec::new();
            let mut total = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let r = segments::reader(&db).await?;
                let b =
                    analytics::breakdown(&r, TENANT, cond, std::slice::from_ref(d), &at).await?;
                r.commit().await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                total = b.total;
            }
            let mut sorted = times.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{:<58} {total:>9} {:>9.0} {:>9.0} {:>9.0}",
                format!("{who}: {label}"),
                times[0],
                sorted[2],
                sorted[4]
            );
        }
    }

    // The same segment saved: its scheduled refresh (the count and the breakdowns it keeps),
    // then its analytics read from what was kept.
    if part("saved") {
        let seg = tagging_svc::store::saved::create(
            &tagger,
            TENANT,
            "bench",
            tagging_svc::store::saved::NewSegment {
                name: Some(unique("bench-segment")),
                condition: Some(queries()[1].1.clone()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = Instant::now();
        let n = tagging_svc::store::saved::refresh_due(&tagger, 1).await?;
        println!(
            "\nsaved segment `page views ≥10 in 90 d`: scheduled refresh ({n}) with its kept \
             breakdowns: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let seg = tagging_svc::store::saved::get(&db, TENANT, &seg.id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (label, d) in &dims {
            let mut times = Vec::new();
            let mut answered = false;
            for _ in 0..5 {
                let t = Instant::now();
                let kept =
                    tagging_svc::store::saved::rollup::kept(&db, &seg, std::slice::from_ref(d))
                        .await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                answered = kept.is_some();
            }
            times.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{:<58} {:>9} {:>9.1} ms",
                format!("saved segment, kept: {label}"),
                if answered { "kept" } else { "not kept" },
                times[2]
            );
        }
    }

    // Backfill of a rule over every profile, then the same rule again (nothing to change).
    if !part("backfill") {
        return finish(&db, keep || reuse.is_some(), &name, &url, None).await;
    }
    let tag_id =
        scrm_tests::tagging::group_with_tag(&db, TENANT, &unique("bench-group"), "bench-engaged")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, broad) = queries()[1].clone();
    let rule = tag_rules::create(
        &db,
        RuleInput {
            tenant_id: TENANT.into(),
            tag_id: tag_id.clone(),
            name: "bench".into(),
            condition: broad,
            mode: "add_remove".into(),
            enabled: true,
            operator: "bench".into(),
        },
        &limits,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!(
        "\nbackfill of `page views ≥10 in 90 d` over every profile (batches of {}):",
        tagger.cfg.backfill_batch
    );
    for round in ["first (tags every match)", "again (nothing changes)"] {
        let job = backfill::queue(&tagger, TENANT, backfill::BACKFILL, &rule.id, "bench").await?;
        let start = Instant::now();
        backfill::run(&tagger, &job.id).await?;
        let j = backfill::get_in(&tagger, TENANT, &job.id)
            .await?
            .context("job")?;
        println!(
            "  {round:<28} {:>7.1} s  profiles {}  added {}  removed {}",
            start.elapsed().as_secs_f64(),
            j.done,
            j.added,
            j.removed
        );
    }
    finish(&db, keep || reuse.is_some(), &name, &url, Some(&tag_id)).await
}

/// Keeps the database (without the backfilled tag's rows, so that the next run measures the
/// same facts) or drops it.
async fn finish(
    db: &DatabaseConnection,
    keep: bool,
    name: &str,
    url: &str,
    backfilled: Option<&str>,
) -> anyhow::Result<()> {
    if !keep {
        platform::db::drop_mysql_database(url).await?;
        return Ok(());
    }
    for sql in [
        "UPDATE facts_profile p JOIN facts_tag f ON f.tenant_id = p.tenant_id \
         AND f.profile_id = p.profile_id AND f.tag_id = ? SET p.tag_count = p.tag_count - 1",
        "DELETE FROM facts_tag WHERE tag_id = ?",
        "DELETE FROM facts_tag_holder_log WHERE tag_id = ?",
        "DELETE FROM facts_tag_holders WHERE tag_id = ?",
    ]
    .into_iter()
    .filter(|_| backfilled.is_some())
    {
        db.execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [backfilled.unwrap_or_default().into()],
        ))
        .await?;
    }
    while facts::compact_tag_holders(db, facts::HOLDER_LOG_BATCH).await? > 0 {}
    println!("\nkept database `{name}` (BENCH_DB={name} reuses it)");
    Ok(())
}
