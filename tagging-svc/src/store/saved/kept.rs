//! A real-time saved segment's members as kept in `saved_segment_members`: the rule engine
//! writes a profile's entries and exits inside the transaction of the change that caused them
//! ([`enter`], [`leave`]); the segment's build job brings a batch of profiles in line with the
//! condition ([`replace_batch`]); a merged-away profile leaves every segment ([`forget`]). Reads
//! page through the members by profile id ([`page`]) and count them ([`count`]). Nothing here
//! decides who is a member: `crate::domain::segment` does, per profile, and the compiled
//! condition does, per batch.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::entities::member;
use crate::metrics::SEGMENT_MEMBERSHIP_CHANGES;

/// Rows per multi-row insert or `IN` list.
const CHUNK: usize = 500;

/// Which of `segments` the profile is a member of.
pub async fn held<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    segments: &[&str],
) -> Result<BTreeSet<String>, DbErr> {
    if segments.is_empty() {
        return Ok(BTreeSet::new());
    }
    Ok(member::Entity::find()
        .filter(member::Column::TenantId.eq(tenant))
        .filter(member::Column::ProfileId.eq(profile))
        .filter(member::Column::SegmentId.is_in(segments.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.segment_id)
        .collect())
}

/// Makes `profiles` members of `segment` since `now` (those that are already keep their time).
pub async fn enter<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    segment: &str,
    profiles: &[String],
    now: DateTime<Utc>,
    by: &'static str,
) -> Result<(), DbErr> {
    for chunk in profiles.chunks(CHUNK) {
        member::Entity::insert_many(chunk.iter().map(|p| member::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            segment_id: Set(segment.to_string()),
            profile_id: Set(p.clone()),
            since: Set(now),
        }))
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                member::Column::TenantId,
                member::Column::SegmentId,
                member::Column::ProfileId,
            ])
            // A member already: its entry time stands.
            .update_column(member::Column::ProfileId)
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    metrics::counter!(SEGMENT_MEMBERSHIP_CHANGES, "change" => "entered", "by" => by)
        .increment(profiles.len() as u64);
    Ok(())
}

/// Takes `profiles` out of `segment`.
pub async fn leave<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    segment: &str,
    profiles: &[String],
    by: &'static str,
) -> Result<(), DbErr> {
    for chunk in profiles.chunks(CHUNK) {
        member::Entity::delete_many()
            .filter(member::Column::TenantId.eq(tenant))
            .filter(member::Column::SegmentId.eq(segment))
            .filter(member::Column::ProfileId.is_in(chunk.iter().cloned()))
            .exec(conn)
            .await?;
    }
    metrics::counter!(SEGMENT_MEMBERSHIP_CHANGES, "change" => "left", "by" => by)
        .increment(profiles.len() as u64);
    Ok(())
}

/// Takes the profile out of every segment (it was merged into another).
pub async fn forget<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
) -> Result<(), DbErr> {
    member::Entity::delete_many()
        .filter(member::Column::TenantId.eq(tenant))
        .filter(member::Column::ProfileId.eq(profile))
        .exec(conn)
        .await
        .map(drop)
}

/// The members of `segment` among the profile ids `after < id <= until`.
pub async fn in_range<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    segment: &str,
    after: Option<&str>,
    until: &str,
) -> Result<BTreeSet<String>, DbErr> {
    let mut q = member::Entity::find()
        .select_only()
        .column(member::Column::ProfileId)
        .filter(member::Column::TenantId.eq(tenant))
        .filter(member::Column::SegmentId.eq(segment))
        .filter(member::Column::ProfileId.lte(until));
    if let Some(a) = after {
        q = q.filter(member::Column::ProfileId.gt(a));
    }
    Ok(q.into_tuple::<String>()
        .all(conn)
        .await?
        .into_iter()
        .collect())
}

/// At most `limit` members of `segment` after the profile id `after`, in id order.
pub async fn page<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    segment: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let mut q = member::Entity::find()
        .select_only()
        .column(member::Column::ProfileId)
        .filter(member::Column::TenantId.eq(tenant))
        .filter(member::Column::SegmentId.eq(segment));
    if let Some(a) = after {
        q = q.filter(member::Column::ProfileId.gt(a));
    }
    q.order_by_asc(member::Column::ProfileId)
        .limit(limit)
        .into_tuple::<String>()
        .all(conn)
        .await
}

/// How many members `segment` has.
pub async fn count<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    segment: &str,
) -> Result<u64, DbErr> {
    member::Entity::find()
        .filter(member::Column::TenantId.eq(tenant))
        .filter(member::Column::SegmentId.eq(segment))
        .count(conn)
        .await
}

/// Takes every member out of `segment`, a chunk at a time (it is no longer real-time): the
/// number taken out.
pub async fn clear<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    segment: &str,
) -> Result<u64, DbErr> {
    let mut removed = 0;
    loop {
        let ids = page(conn, tenant, segment, None, CHUNK as u64).await?;
        if ids.is_empty() {
            return Ok(removed);
        }
        removed += ids.len() as u64;
        leave(conn, tenant, segment, &ids, "build").await?;
    }
}
