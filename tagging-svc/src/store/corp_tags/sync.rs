//! Sync requests (`corp_tag_syncs`): asked for, claimed by one process at a time, finished; the
//! corps known and wanted, and what a corp's sync state is.

use std::collections::BTreeSet;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Set,
};
use serde::Serialize;

use crate::store::entities::{corp_tag, corp_tag_sync, tag_group};

/// Asks for `corp`'s tag library of `tenant` to be read again.
pub async fn request_sync<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    corp_tag_sync::Entity::insert(corp_tag_sync::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        corp_id: Set(corp.to_string()),
        requested: Set(1),
        synced: Set(0),
        claimed_until: Set(None),
        retry_at: Set(None),
        last_synced_at: Set(None),
        last_error: Set(None),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            corp_tag_sync::Column::TenantId,
            corp_tag_sync::Column::CorpId,
        ])
        .value(
            corp_tag_sync::Column::Requested,
            Expr::col(corp_tag_sync::Column::Requested).add(1),
        )
        .value(corp_tag_sync::Column::UpdatedAt, Expr::value(now))
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Forgets the sync requests of `corp` for `tenant` when the tenant holds nothing of it (no
/// mirror row, no tag group naming it): for a corp that is not the tenant's (the gateway's
/// token keeper knows no such WeCom app of the tenant), so the refresh stops asking for it.
/// Returns whether it was forgotten.
pub async fn forget_corp(db: &DatabaseConnection, tenant: &str, corp: &str) -> Result<bool, DbErr> {
    let txn = platform::db::begin_write(db).await?;
    let mirrored = corp_tag::Entity::find()
        .filter(corp_tag::Column::TenantId.eq(tenant))
        .filter(corp_tag::Column::CorpId.eq(corp))
        .one(&txn)
        .await?
        .is_some();
    let named = tag_group::Entity::find()
        .filter(tag_group::Column::TenantId.eq(tenant))
        .filter(tag_group::Column::CorpId.eq(corp))
        .one(&txn)
        .await?
        .is_some();
    if mirrored || named {
        return Ok(false);
    }
    corp_tag_sync::Entity::delete_many()
        .filter(corp_tag_sync::Column::TenantId.eq(tenant))
        .filter(corp_tag_sync::Column::CorpId.eq(corp))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(true)
}

/// Every (tenant, corp) the service knows: asked for before, or named by a tag group.
pub async fn known_corps<C: ConnectionTrait>(
    conn: &C,
) -> Result<BTreeSet<(String, String)>, DbErr> {
    let mut out: BTreeSet<(String, String)> = corp_tag_sync::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.tenant_id, r.corp_id))
        .collect();
    let groups: Vec<(String, Option<String>)> = tag_group::Entity::find()
        .select_only()
        .column(tag_group::Column::TenantId)
        .column(tag_group::Column::CorpId)
        .filter(tag_group::Column::CorpId.is_not_null())
        .distinct()
        .into_tuple()
        .all(conn)
        .await?;
    out.extend(groups.into_iter().filter_map(|(t, c)| Some((t, c?))));
    Ok(out)
}

/// (tenant, corp) with a sync asked for and not run since, not claimed by anyone and not
/// pausing after a failure at `now`.
pub async fn wanted<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, DbErr> {
    Ok(corp_tag_sync::Entity::find()
        .filter(
            Expr::col(corp_tag_sync::Column::Requested)
                .gt(Expr::col(corp_tag_sync::Column::Synced)),
        )
        .filter(
            sea_orm::Condition::any()
                .add(corp_tag_sync::Column::ClaimedUntil.is_null())
                .add(corp_tag_sync::Column::ClaimedUntil.lte(now)),
        )
        .filter(
            sea_orm::Condition::any()
                .add(corp_tag_sync::Column::RetryAt.is_null())
                .add(corp_tag_sync::Column::RetryAt.lte(now)),
        )
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.tenant_id, r.corp_id))
        .collect())
}

/// A sync this process runs until `until`, from request number `requested`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncClaim {
    pub until: DateTime<Utc>,
    pub requested: i64,
}

/// Takes the sync of `corp` (asked for with [`request_sync`]) for `lease` unless another
/// process holds it (`None`).
pub async fn claim_sync(
    db: &DatabaseConnection,
    tenant: &str,
    corp: &str,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> Result<Option<SyncClaim>, DbErr> {
    let until = (now + lease).trunc_subsecs(0);
    let taken = corp_tag_sync::Entity::update_many()
        .col_expr(corp_tag_sync::Column::ClaimedUntil, Expr::value(until))
        .filter(corp_tag_sync::Column::TenantId.eq(tenant))
        .filter(corp_tag_sync::Column::CorpId.eq(corp))
        .filter(
            sea_orm::Condition::any()
                .add(corp_tag_sync::Column::ClaimedUntil.is_null())
                .add(corp_tag_sync::Column::ClaimedUntil.lte(now)),
        )
        .exec(db)
        .await?
        .rows_affected;
    if taken == 0 {
        return Ok(None);
    }
    let row = corp_tag_sync::Entity::find_by_id((tenant.to_string(), corp.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("corp_tag_syncs row".into()))?;
    Ok(Some(SyncClaim {
        until,
        requested: row.requested,
    }))
}

/// Ends a claimed sync: done (every request up to the claim's is served) or failed (`error`;
/// the loop does not try again before `retry_at`, an operator's request may).
pub async fn finish_sync(
    db: &DatabaseConnection,
    tenant: &str,
    corp: &str,
    claim: &SyncClaim,
    result: Result<(), (String, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut q = corp_tag_sync::Entity::update_many()
        .col_expr(corp_tag_sync::Column::UpdatedAt, Expr::value(now))
        .filter(corp_tag_sync::Column::TenantId.eq(tenant))
        .filter(corp_tag_sync::Column::CorpId.eq(corp))
        .filter(corp_tag_sync::Column::ClaimedUntil.eq(claim.until))
        .col_expr(
            corp_tag_sync::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    q = match result {
        Ok(()) => q
            .col_expr(corp_tag_sync::Column::Synced, Expr::value(claim.requested))
            .col_expr(
                corp_tag_sync::Column::RetryAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(corp_tag_sync::Column::LastSyncedAt, Expr::value(now))
            .col_expr(
                corp_tag_sync::Column::LastError,
                Expr::value(Option::<String>::None),
            ),
        Err((error, retry_at)) => q
            .col_expr(corp_tag_sync::Column::RetryAt, Expr::value(retry_at))
            .col_expr(
                corp_tag_sync::Column::LastError,
                Expr::value(error.chars().take(1_000).collect::<String>()),
            ),
    };
    q.exec(db).await?;
    Ok(())
}

/// The sync state of one corp's mirror as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SyncState {
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// A sync is asked for and has not run yet.
    pub pending: bool,
}

/// The sync state of `corp`'s mirror (`None` before it was ever asked for).
pub async fn sync_state<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
) -> Result<Option<SyncState>, DbErr> {
    Ok(
        corp_tag_sync::Entity::find_by_id((tenant.to_string(), corp.to_string()))
            .one(conn)
            .await?
            .map(|r| SyncState {
                last_synced_at: r.last_synced_at,
                last_error: r.last_error,
                pending: r.requested > r.synced,
            }),
    )
}
