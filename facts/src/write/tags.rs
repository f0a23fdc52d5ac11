//! The tags a profile holds, as the projection keeps them, how many (`facts_profile.
//! tag_count`, recounted by every write here: see [`rules::schema::profile_summary_cols`]), and
//! each tag's holders (`facts_tag_holders`: every write here adds the rows it inserted and takes
//! off those it deleted, in one of the tag's shards).

use rules::schema::{FactsCol as C, FactsTable as T};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ConnectionTrait, DbErr};

use super::*;
use crate::exec;

/// The profile carries `tag` (idempotent).
pub async fn set_tag<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    tag: &str,
) -> Result<(), DbErr> {
    let q = Query::insert()
        .into_table(T::FactsTag)
        .columns([C::TenantId, C::ProfileId, C::TagId])
        .values_panic([s(tenant), s(profile), s(tag)])
        .to_owned();
    match exec(conn, &q).await {
        Err(e) if !is_duplicate(&e) => return Err(e),
        Err(_) => {}
        Ok(_) => holders(conn, tenant, tag, profile, 1).await?,
    }
    recount(conn, tenant, &[profile], Summary::Tags).await
}

/// Adds `delta` to `tag`'s holders, in the shard of `profile` (the first profile a bulk write
/// names).
pub(crate) async fn holders<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    tag: &str,
    profile: &str,
    delta: i64,
) -> Result<(), DbErr> {
    if delta == 0 {
        return Ok(());
    }
    // FNV-1a: stable across builds and processes.
    let h = profile.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let shard = u32::try_from(h % u64::from(rules::schema::TAG_HOLDER_SHARDS)).unwrap_or(0);
    exec(
        conn,
        &rules::schema::bump_tag_holders(tenant, tag, shard, delta),
    )
    .await
    .map(drop)
}

/// Every profile of `profiles` carries `tag` (bulk: chunked deletes and multi-row inserts).
pub async fn set_tag_many<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[String],
    tag: &str,
) -> Result<(), DbErr> {
    let held = delete_tag_rows(conn, tenant, profiles, tag).await?;
    let rows = profiles
        .iter()
        .map(|p| vec![s(tenant), s(p), s(tag)])
        .collect();
    insert_rows(
        conn,
        T::FactsTag,
        &[C::TenantId, C::ProfileId, C::TagId],
        rows,
    )
    .await?;
    if let Some(first) = profiles.first() {
        let gained = profiles.len() as i64 - held as i64;
        holders(conn, tenant, tag, first, gained).await?;
    }
    recount(conn, tenant, &refs(profiles), Summary::Tags).await
}

fn refs(profiles: &[String]) -> Vec<&str> {
    profiles.iter().map(String::as_str).collect()
}

/// No profile of `profiles` carries `tag` any more.
pub async fn unset_tag_many<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[String],
    tag: &str,
) -> Result<(), DbErr> {
    let held = delete_tag_rows(conn, tenant, profiles, tag).await?;
    if let Some(first) = profiles.first() {
        holders(conn, tenant, tag, first, -(held as i64)).await?;
    }
    recount(conn, tenant, &refs(profiles), Summary::Tags).await
}

/// Deletes the rows of `tag` of `profiles`: how many there were.
async fn delete_tag_rows<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[String],
    tag: &str,
) -> Result<u64, DbErr> {
    let mut n = 0;
    for chunk in profiles.chunks(500) {
        let q = Query::delete()
            .from_table(T::FactsTag)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::TagId).eq(tag))
            .and_where(Expr::col(C::ProfileId).is_in(chunk.iter().cloned()))
            .to_owned();
        n += exec(conn, &q).await?.rows_affected();
    }
    Ok(n)
}

/// The profile no longer carries `tag`.
pub async fn unset_tag<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    tag: &str,
) -> Result<(), DbErr> {
    let q = Query::delete()
        .from_table(T::FactsTag)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .and_where(Expr::col(C::TagId).eq(tag))
        .to_owned();
    let gone = exec(conn, &q).await?.rows_affected();
    holders(conn, tenant, tag, profile, -(gone as i64)).await?;
    recount(conn, tenant, &[profile], Summary::Tags).await
}
