//! The tags a profile holds, as the projection keeps them, and how many (`facts_profile.
//! tag_count`, recounted by every write here: see [`rules::schema::profile_summary_cols`]).

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
        _ => {}
    }
    recount(conn, tenant, &[profile], Summary::Tags).await
}

/// Every profile of `profiles` carries `tag` (bulk: chunked deletes and multi-row inserts).
pub async fn set_tag_many<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[String],
    tag: &str,
) -> Result<(), DbErr> {
    delete_tag_rows(conn, tenant, profiles, tag).await?;
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
    delete_tag_rows(conn, tenant, profiles, tag).await?;
    recount(conn, tenant, &refs(profiles), Summary::Tags).await
}

async fn delete_tag_rows<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[String],
    tag: &str,
) -> Result<(), DbErr> {
    for chunk in profiles.chunks(500) {
        let q = Query::delete()
            .from_table(T::FactsTag)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::TagId).eq(tag))
            .and_where(Expr::col(C::ProfileId).is_in(chunk.iter().cloned()))
            .to_owned();
        exec(conn, &q).await?;
    }
    Ok(())
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
    exec(conn, &q).await?;
    recount(conn, tenant, &[profile], Summary::Tags).await
}
