//! Analytics reads: a population (the tenant, or the profiles a condition matches) broken down
//! by the dimensions [`crate::domain::analytics`] defines, through the `rules` crate's breakdown
//! statements over the facts projection, in one read transaction (every dimension sees the same
//! data). Tag names and groups come from the catalogue; new profiles per day from
//! `facts_first_seen`, activity by hour from the tenant's counters (`facts_activity_tenant`) or,
//! for a condition, its profiles' (`facts_activity`), stage conversion from the stage history
//! scoring announces (`facts_stage_entry`).

use std::collections::{BTreeMap, HashMap};

use rules::sql::breakdown::{self, COUNT};
use rules::sql::{CompileCtx, Restrict};
use rules::{Expanded, VType};
use sea_orm::sea_query::SelectStatement;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryResult};
use serde::Serialize;
use serde_json::{json, Value};

use crate::domain::analytics::{band_keys, bucket, ranked, Dimension, Distribution};
use crate::domain::analytics_time;
use crate::domain::At;
use crate::store::entities::tag;
use crate::store::segments::{self, run};

/// The answer to an analytics request.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Profiles in the population.
    pub total: u64,
    /// One per dimension asked, in order.
    pub dimensions: Vec<Distribution>,
    pub took_ms: u64,
    /// For a saved segment answered from its last scheduled refresh: that refresh's instant
    /// (absent for an answer of the facts now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

fn count(r: &QueryResult) -> Result<u64, DbErr> {
    let n: i64 = r.try_get("", COUNT)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn text(r: &QueryResult, col: &str) -> Result<Option<String>, DbErr> {
    let raw: Option<Vec<u8>> = r.try_get("", col)?;
    raw.map(|b| String::from_utf8(b).map_err(|e| DbErr::Custom(format!("{col}: {e}"))))
        .transpose()
}

/// A row's [`breakdown::LATER`]: values it counts that are a profile's second or later.
fn later(r: &QueryResult) -> Result<i64, DbErr> {
    Ok(r.try_get::<Option<i64>>("", breakdown::LATER)?.unwrap_or(0))
}

async fn one<Db: ConnectionTrait>(conn: &Db, q: &SelectStatement) -> Result<u64, DbErr> {
    match run(conn, q).await?.first() {
        Some(r) => {
            let n: i64 = r.try_get_by_index(0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        }
        None => Ok(0),
    }
}

/// Breaks down `tenant`'s profiles — those matching `cond` when given — by `dims` at `at`.
pub async fn breakdown<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    cond: Option<&Expanded>,
    dims: &[Dimension],
    at: &At,
) -> Result<Breakdown, DbErr> {
    let started = std::time::Instant::now();
    let ctx = segments::ctx(conn, tenant, at, Restrict::All).await?;
    let within = cond.map(|c| rules::sql::compile(c, &ctx));
    let within = within.as_ref();
    let total = one(conn, &breakdown::population(&ctx, within)).await?;
    let mut dimensions = Vec::with_capacity(dims.len());
    for d in dims {
        dimensions.push(dimension(conn, &ctx, d, within, total).await?);
    }
    Ok(Breakdown {
        total,
        dimensions,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        as_of: None,
    })
}

async fn dimension<Db: ConnectionTrait>(
    conn: &Db,
    ctx: &CompileCtx,
    d: &Dimension,
    within: Option<&SelectStatement>,
    total: u64,
) -> Result<Distribution, DbErr> {
    let limit = u64::from(d.limit());
    Ok(match d {
        Dimension::Property { key, .. } => {
            property(conn, ctx, "property", key, limit, within, total).await?
        }
        Dimension::Stage {} => {
            property(
                conn,
                ctx,
                "stage",
                rules::LEAD_STAGE_KEY,
                limit,
                within,
                total,
            )
            .await?
        }
        Dimension::Bands { key, bounds } => {
            let mut counts = vec![0u64; bounds.len() + 1];
            let mut twice = false;
            for distinct in [false, true] {
                if distinct && !twice {
                    break;
                }
                for r in run(conn, &breakdown::bands(ctx, key, bounds, within, distinct)).await? {
                    let band: i64 = r.try_get("", "band")?;
                    if let Some(c) = usize::try_from(band).ok().and_then(|b| counts.get_mut(b)) {
                        *c = count(&r)?;
                    }
                    twice |= later(&r)? > 0;
                }
            }
            // Every row a first value: the bands hold each profile with a number once.
            let with = if twice {
                one(
                    conn,
                    &breakdown::with_value(ctx, key, &[VType::Num], within),
                )
                .await?
            } else {
                counts.iter().sum()
            };
            Distribution {
                kind: "bands",
                key: Some(key.clone()),
                buckets: band_keys(bounds)
                    .into_iter()
                    .zip(counts)
                    .map(|(k, n)| bucket(k, n, total))
                    .collect(),
                with_value: Some(with),
                missing: Some(total.saturating_sub(with)),
                events: None,
            }
        }
        Dimension::Tags { group_id } => tags(conn, ctx, group_id.as_deref(), within, total).await?,
        Dimension::ContentTags { window, .. } => {
            let mut rows = Vec::new();
            let q = breakdown::content_tag_interest(ctx, window, within, limit);
            for r in run(conn, &q).await? {
                let metric = text(&r, "metric")?.unwrap_or_default();
                let tag = metric.strip_prefix("c:").unwrap_or(&metric).to_string();
                rows.push((Value::String(tag), count(&r)?));
            }
            let any = breakdown::content_tag_interest(ctx, window, within, 0);
            ranked("content_tags", None, rows, one(conn, &any).await?, total)
        }
        Dimension::NewProfiles { from, to } => {
            let (from, to) = analytics_time::period(0, from.as_deref(), to.as_deref(), ctx.today)
                .map_err(|e| DbErr::Custom(format!("{}: {}", e.field, e.message)))?;
            let mut counts = BTreeMap::new();
            for r in run(conn, &breakdown::first_seen_days(ctx, from, to, within)).await? {
                counts.insert(r.try_get::<chrono::NaiveDate>("", "day")?, count(&r)?);
            }
            analytics_time::new_profiles(from, to, &counts, total)
        }
        Dimension::StageConversion { from, to } => {
            let (from, to) = analytics_time::period(0, from.as_deref(), to.as_deref(), ctx.today)
                .map_err(|e| DbErr::Custom(format!("{}: {}", e.field, e.message)))?;
            let mut entered = Vec::new();
            for r in run(conn, &breakdown::stage_entered(ctx, from, to, within)).await? {
                entered.push((text(&r, "stage")?.unwrap_or_default(), count(&r)?));
            }
            let mut reached = Vec::new();
            for r in run(conn, &breakdown::stage_reached(ctx, from, to, within)).await? {
                reached.push((
                    text(&r, "stage")?.unwrap_or_default(),
                    text(&r, "reached")?.unwrap_or_default(),
                    count(&r)?,
                ));
            }
            let with = one(conn, &breakdown::stage_entered_any(ctx, from, to, within)).await?;
            analytics_time::stage_conversion(&entered, &reached, with, total)
        }
        Dimension::ActivityHours { event, window } => {
            let kind = event.as_deref().unwrap_or(rules::schema::EVERY_EVENT);
            let mut rows = Vec::new();
            for r in run(conn, &breakdown::activity_hours(ctx, kind, window, within)).await? {
                let hour: i16 = r.try_get("", "hour")?;
                rows.push((
                    r.try_get("", "day")?,
                    u8::try_from(hour).unwrap_or(u8::MAX),
                    count(&r)?,
                ));
            }
            analytics_time::activity_hours(event.as_deref(), &rows)
        }
    })
}

async fn property<Db: ConnectionTrait>(
    conn: &Db,
    ctx: &CompileCtx,
    kind: &'static str,
    key: &str,
    limit: u64,
    within: Option<&SelectStatement>,
    total: u64,
) -> Result<Distribution, DbErr> {
    let mut rows = Vec::new();
    // Whether the buckets hold every profile with a value exactly once: every value of every
    // type came back, each the profile's first.
    let mut whole = true;
    for vtype in [VType::Str, VType::Bool] {
        let q = breakdown::property_values(ctx, key, vtype, within, limit);
        let found = run(conn, &q).await?;
        whole &= (found.len() as u64) < limit;
        for r in found {
            whole &= later(&r)? == 0;
            let value = match vtype {
                VType::Str => json!(text(&r, breakdown::PROPERTY_VALUE)?.unwrap_or_default()),
                _ => {
                    let n: Option<f64> = r.try_get("", breakdown::PROPERTY_VALUE)?;
                    json!(n.is_some_and(|n| n != 0.0))
                }
            };
            rows.push((value, count(&r)?));
        }
    }
    // Two types, each its `limit` most frequent: the `limit` most frequent of both.
    rows.sort_by(|(ka, a), (kb, b)| b.cmp(a).then_with(|| ka.to_string().cmp(&kb.to_string())));
    let with = if whole {
        rows.iter().map(|(_, n)| n).sum()
    } else {
        let types = [VType::Str, VType::Bool];
        one(conn, &breakdown::with_value(ctx, key, &types, within)).await?
    };
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(ranked(kind, Some(key.to_string()), rows, with, total))
}

async fn tags<Db: ConnectionTrait>(
    conn: &Db,
    ctx: &CompileCtx,
    group: Option<&str>,
    within: Option<&SelectStatement>,
    total: u64,
) -> Result<Distribution, DbErr> {
    let mut q = tag::Entity::find().filter(tag::Column::TenantId.eq(ctx.tenant_id.as_str()));
    if let Some(g) = group {
        q = q.filter(tag::Column::GroupId.eq(g));
    }
    let catalogue: HashMap<String, tag::Model> = q
        .all(conn)
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    let ids: Option<Vec<String>> = group.map(|_| catalogue.keys().cloned().collect());
    let mut held: HashMap<String, u64> = HashMap::new();
    for r in run(conn, &breakdown::tag_holders(ctx, ids.as_deref(), within)).await? {
        held.insert(text(&r, "tag_id")?.unwrap_or_default(), count(&r)?);
    }
    // Every tag of the catalogue (of the group) has a bucket, held or not.
    let rows = catalogue
        .keys()
        .map(|id| (json!(id), held.get(id).copied().unwrap_or(0)))
        .collect();
    let with = one(conn, &breakdown::tagged(ctx, ids.as_deref(), within)).await?;
    let mut d = ranked("tags", None, rows, with, total);
    for b in &mut d.buckets {
        if let Some(t) = b.key.as_str().and_then(|id| catalogue.get(id)) {
            b.label = Some(t.name.clone());
            b.group_id = Some(t.group_id.clone());
        }
    }
    Ok(d)
}
