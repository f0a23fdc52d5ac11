//! Score triggers: listed, read, created, replaced and deleted, each checked against the
//! tenant's active models.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{DatabaseConnection, DbErr};

use crate::domain::defs::TriggerSpec;
use crate::store::migrations::ScoreTriggers;
use crate::store::{exec, fetch, fetch_one};

use super::machine::machine;
use super::model::active_model_keys;
use super::{bump, json, new_id, write_one, DefsError, TriggerRow, TriggerView, ACTIVE, DELETED};

async fn trigger_row<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<TriggerView>, DbErr> {
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreTriggers::Table)
        .and_where(Expr::col(ScoreTriggers::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreTriggers::Id).eq(id))
        .to_owned();
    fetch_one::<TriggerRow, _>(db, &q)
        .await?
        .map(TriggerRow::view)
        .transpose()
}

/// One trigger of `tenant` (a deleted one too, with its status).
pub async fn trigger(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
) -> Result<TriggerView, DefsError> {
    trigger_row(db, tenant, id)
        .await?
        .ok_or_else(|| DefsError::NotFound(format!("no trigger with id `{id}`")))
}

/// Active triggers of a tenant by id, the order they were created in (ids are time-ordered):
/// at most `limit` after `after`.
pub async fn triggers(
    db: &DatabaseConnection,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<TriggerView>, DbErr> {
    let mut q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreTriggers::Table)
        .and_where(Expr::col(ScoreTriggers::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreTriggers::Status).eq(ACTIVE))
        .order_by(ScoreTriggers::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    if let Some(a) = after {
        q.and_where(Expr::col(ScoreTriggers::Id).gt(a));
    }
    fetch::<TriggerRow, _>(db, &q)
        .await?
        .into_iter()
        .map(TriggerRow::view)
        .collect()
}

async fn check_trigger(
    db: &DatabaseConnection,
    tenant: &str,
    spec: &TriggerSpec,
) -> Result<(), DefsError> {
    let keys = active_model_keys(db, tenant).await?;
    let stages: Vec<String> = machine(db, tenant)
        .await?
        .spec
        .stages
        .into_iter()
        .map(|s| s.key)
        .collect();
    spec.check(&keys, &stages)
        .map(drop)
        .map_err(DefsError::Invalid)
}

/// Creates a trigger.
pub async fn create_trigger(
    db: &DatabaseConnection,
    tenant: &str,
    spec: TriggerSpec,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<TriggerView, DefsError> {
    check_trigger(db, tenant, &spec).await?;
    let id = new_id();
    let txn = platform::db::begin_write(db).await?;
    let q = Query::insert()
        .into_table(ScoreTriggers::Table)
        .columns([
            ScoreTriggers::Id,
            ScoreTriggers::TenantId,
            ScoreTriggers::Name,
            ScoreTriggers::Spec,
            ScoreTriggers::Enabled,
            ScoreTriggers::Status,
            ScoreTriggers::CreatedBy,
            ScoreTriggers::UpdatedBy,
            ScoreTriggers::CreatedAt,
            ScoreTriggers::UpdatedAt,
        ])
        .values_panic([
            id.clone().into(),
            tenant.into(),
            spec.name.trim().into(),
            json(&spec)?.into(),
            spec.enabled.into(),
            ACTIVE.into(),
            actor.into(),
            actor.into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    exec(&txn, &q).await?;
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
    trigger(db, tenant, &id).await
}

/// Replaces the definition of a trigger of `tenant`.
pub async fn replace_trigger(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    spec: TriggerSpec,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<TriggerView, DefsError> {
    let t = trigger(db, tenant, id).await?;
    if t.status != ACTIVE {
        return Err(DefsError::NotFound(format!("trigger `{id}` was deleted")));
    }
    check_trigger(db, tenant, &spec).await?;
    let q = Query::update()
        .table(ScoreTriggers::Table)
        .value(ScoreTriggers::Name, spec.name.trim())
        .value(ScoreTriggers::Spec, json(&spec)?)
        .value(ScoreTriggers::Enabled, spec.enabled)
        .value(ScoreTriggers::UpdatedBy, actor)
        .value(ScoreTriggers::UpdatedAt, now)
        .and_where(Expr::col(ScoreTriggers::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreTriggers::Id).eq(id))
        .to_owned();
    write_one(db, tenant, &q, now).await?;
    trigger(db, tenant, id).await
}

/// Deletes a trigger of `tenant` (its firings stay).
pub async fn delete_trigger(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), DefsError> {
    trigger(db, tenant, id).await?;
    let q = Query::update()
        .table(ScoreTriggers::Table)
        .value(ScoreTriggers::Status, DELETED)
        .value(ScoreTriggers::UpdatedBy, actor)
        .value(ScoreTriggers::UpdatedAt, now)
        .and_where(Expr::col(ScoreTriggers::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreTriggers::Id).eq(id))
        .to_owned();
    write_one(db, tenant, &q, now).await?;
    Ok(())
}
