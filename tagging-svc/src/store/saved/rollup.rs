//! A saved segment's analytics breakdowns kept as of its last scheduled refresh, so that its
//! analytics and its persona reports read a row instead of joining every member's facts (at a
//! million profiles a breakdown of a large segment takes seconds; the kept one, milliseconds).
//!
//! A scheduled refresh breaks the segment down by [`DIMENSIONS`] in the read snapshot it counts
//! in, and stores the answers with its size in the transaction that records the size (one row
//! per segment, replaced). A request for a saved segment is answered from the row when every
//! dimension it asks can be derived from the kept ones ([`derive`]) and the segment's
//! definition has not changed since; the answer then carries `as_of`, the refresh's instant,
//! and its total is the size then. Otherwise — another dimension, a manual-only segment, a
//! changed condition — it is broken down live.

use chrono::{DateTime, Utc};
use rules::Expanded;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};

use super::entities::{breakdown, segment};
use crate::domain::analytics::{derive, Dimension, Distribution};
use crate::domain::persona::report_dimensions;
use crate::domain::At;
use crate::store::analytics::{self, Breakdown};

/// The dimensions kept: those a persona report reads by default (stage, city, province,
/// gender, first-touch channel, tag coverage, content-tag interest and activity by hour over
/// 30 days; property and content-tag ones with their most buckets).
pub fn dimensions() -> Vec<Dimension> {
    report_dimensions(&[])
}

/// Breaks down the profiles matching `cond` by [`dimensions`] (in the caller's snapshot).
pub async fn compute<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    cond: &Expanded,
    at: &At,
) -> Result<Breakdown, DbErr> {
    analytics::breakdown(conn, tenant, Some(cond), &dimensions(), at).await
}

/// Keeps `b` as `seg`'s breakdowns at `at` (replacing what was kept).
pub async fn store<C: ConnectionTrait>(
    conn: &C,
    seg: &segment::Model,
    at: DateTime<Utc>,
    b: &Breakdown,
) -> Result<(), DbErr> {
    let json = |v: serde_json::Result<String>| v.map_err(|e| DbErr::Custom(e.to_string()));
    let row = breakdown::ActiveModel {
        segment_id: Set(seg.id.clone()),
        tenant_id: Set(seg.tenant_id.clone()),
        segment_version: Set(seg.version),
        at: Set(at),
        total: Set(i64::try_from(b.total).unwrap_or(i64::MAX)),
        dimensions: Set(json(serde_json::to_string(&dimensions()))?),
        answers: Set(json(serde_json::to_string(&b.dimensions))?),
        took_ms: Set(i64::try_from(b.took_ms).unwrap_or(i64::MAX)),
    };
    breakdown::Entity::insert(row)
        .on_conflict(
            OnConflict::column(breakdown::Column::SegmentId)
                .update_columns([
                    breakdown::Column::TenantId,
                    breakdown::Column::SegmentVersion,
                    breakdown::Column::At,
                    breakdown::Column::Total,
                    breakdown::Column::Dimensions,
                    breakdown::Column::Answers,
                    breakdown::Column::TookMs,
                ])
                .to_owned(),
        )
        .exec(conn)
        .await
        .map(drop)
}

/// `seg`'s answers to `wanted` as of its last scheduled refresh, when they were kept for its
/// current definition and every one can be derived from them.
pub async fn kept<C: ConnectionTrait>(
    conn: &C,
    seg: &segment::Model,
    wanted: &[Dimension],
) -> Result<Option<Breakdown>, DbErr> {
    let started = std::time::Instant::now();
    let Some(row) = breakdown::Entity::find_by_id(seg.id.clone())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if row.tenant_id != seg.tenant_id || row.segment_version != seg.version {
        return Ok(None);
    }
    // What an older build kept and this one cannot read is simply not used.
    let (Ok(dims), Ok(answers)) = (
        serde_json::from_str::<Vec<Dimension>>(&row.dimensions),
        serde_json::from_str::<Vec<Distribution>>(&row.answers),
    ) else {
        return Ok(None);
    };
    Ok(derive(&dims, &answers, wanted).map(|dimensions| Breakdown {
        total: u64::try_from(row.total).unwrap_or(0),
        dimensions,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        as_of: Some(row.at),
    }))
}
