//! The tags a profile holds, as the projection keeps them, how many (`facts_profile.
//! tag_count`, recounted by every write here: see [`rules::schema::profile_summary_cols`]), and
//! each tag's holders: every write here logs the rows it added or removed in
//! `facts_tag_holder_log` (insert-only, so concurrent writers never wait on a shared counter
//! row), and [`compact_tag_holders`] folds the log into `facts_tag_holders`.

use rules::schema::{FactsCol as C, FactsTable as T};
use std::collections::BTreeMap;

use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

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
        Ok(_) => log_holders(conn, tenant, tag, 1).await?,
    }
    recount(conn, tenant, &[profile], Summary::Tags).await
}

/// Logs a change of `by` holders of `tag`.
async fn log_holders<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    tag: &str,
    by: i64,
) -> Result<(), DbErr> {
    match rules::schema::log_tag_holders(tenant, &[(tag, by)]) {
        Some(q) => exec(conn, &q).await.map(drop),
        None => Ok(()),
    }
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
    let gained = i64::try_from(profiles.len()).unwrap_or(i64::MAX) - held;
    log_holders(conn, tenant, tag, gained).await?;
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
    log_holders(conn, tenant, tag, -held).await?;
    recount(conn, tenant, &refs(profiles), Summary::Tags).await
}

/// Deletes the rows of `tag` of `profiles`: how many there were.
async fn delete_tag_rows<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[String],
    tag: &str,
) -> Result<i64, DbErr> {
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
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
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
    if exec(conn, &q).await?.rows_affected() > 0 {
        log_holders(conn, tenant, tag, -1).await?;
    }
    recount(conn, tenant, &[profile], Summary::Tags).await
}

/// Log rows a scheduler pass folds at most: far more than a pass's worth of tag changes at the
/// consumers' rate.
pub const HOLDER_LOG_BATCH: u64 = 20_000;

/// Folds up to `limit` of the oldest rows of `facts_tag_holder_log` into `facts_tag_holders`, in
/// one transaction: the rows read are deleted by their `seq` first, and when another compaction
/// took some of them meanwhile nothing is folded (the transaction rolls back), so no change is
/// counted twice; a row whose writer has not committed yet is not read and waits for the next
/// pass. Returns how many rows were folded (call again while it returns `limit`).
pub async fn compact_tag_holders(db: &DatabaseConnection, limit: u64) -> Result<u64, DbErr> {
    let q = Query::select()
        .columns([C::Seq, C::TenantId, C::TagId, C::Cnt])
        .from(T::FactsTagHolderLog)
        .order_by(C::Seq, Order::Asc)
        .limit(limit)
        .to_owned();
    let mut seqs = Vec::new();
    let mut sums: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in rows(db, &q).await? {
        seqs.push(r.try_get::<i64>("", "seq")?);
        let n: i64 = r.try_get("", "cnt")?;
        *sums
            .entry((text(&r, "tenant_id")?, text(&r, "tag_id")?))
            .or_default() += n;
    }
    if seqs.is_empty() {
        return Ok(0);
    }
    // Its first statement writes: no read to upgrade from on SQLite.
    let txn = db.begin().await?;
    let mut gone = 0;
    for chunk in seqs.chunks(1_000) {
        let q = Query::delete()
            .from_table(T::FactsTagHolderLog)
            .and_where(Expr::col(C::Seq).is_in(chunk.iter().copied()))
            .to_owned();
        gone += exec(&txn, &q).await?.rows_affected();
    }
    if gone != seqs.len() as u64 {
        txn.rollback().await?;
        return Ok(0);
    }
    for ((tenant, tag), n) in sums.into_iter().filter(|(_, n)| *n != 0) {
        exec(&txn, &rules::schema::fold_tag_holders(&tenant, &tag, n)).await?;
    }
    txn.commit().await?;
    Ok(gone)
}
