//! Scoring models: listed, read with their rules, created and changed (a change of key or
//! decay, or an archive, keeps the ledger and folds consistent).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{DatabaseConnection, DbErr, FromQueryResult};
use serde::Deserialize;

use crate::domain::decay::Decay;
use crate::domain::defs::ModelSpec;
use crate::domain::DefError;
use crate::store::migrations::{Leads, ProfileScores, ScoreLedger, ScoreModels, ScoreRules};
use crate::store::{exec, fetch, fetch_one, is_duplicate};

use super::{
    bump, json, new_id, DefsError, ModelRow, ModelView, RuleRow, RuleView, ACTIVE, ARCHIVED,
};

pub(super) async fn model_row<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<ModelView>, DbErr> {
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreModels::Table)
        .and_where(Expr::col(ScoreModels::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreModels::Id).eq(id))
        .to_owned();
    fetch_one::<ModelRow, _>(db, &q)
        .await?
        .map(ModelRow::view)
        .transpose()
}

/// Models of a tenant (every status) by id, the order they were created in (ids are
/// time-ordered): at most `limit` after `after`.
pub async fn models(
    db: &DatabaseConnection,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<ModelView>, DbErr> {
    let mut q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreModels::Table)
        .and_where(Expr::col(ScoreModels::TenantId).eq(tenant))
        .order_by(ScoreModels::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    if let Some(a) = after {
        q.and_where(Expr::col(ScoreModels::Id).gt(a));
    }
    fetch::<ModelRow, _>(db, &q)
        .await?
        .into_iter()
        .map(ModelRow::view)
        .collect()
}

/// The keys of `tenant`'s active models.
pub(super) async fn active_model_keys(
    db: &DatabaseConnection,
    tenant: &str,
) -> Result<Vec<String>, DbErr> {
    #[derive(FromQueryResult)]
    struct Key {
        key: String,
    }
    let q = Query::select()
        .column(ScoreModels::Key)
        .from(ScoreModels::Table)
        .and_where(Expr::col(ScoreModels::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreModels::Status).eq(ACTIVE))
        .to_owned();
    Ok(fetch::<Key, _>(db, &q)
        .await?
        .into_iter()
        .map(|r| r.key)
        .collect())
}

pub(super) fn no_model(id: &str) -> DefsError {
    DefsError::NotFound(format!("no model with id `{id}`"))
}

/// One model of `tenant` with its live rules.
pub async fn model(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
) -> Result<ModelView, DefsError> {
    let mut m = model_row(db, tenant, id)
        .await?
        .ok_or_else(|| no_model(id))?;
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreRules::Table)
        .and_where(Expr::col(ScoreRules::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreRules::ModelId).eq(id))
        .and_where(Expr::col(ScoreRules::Status).eq(ACTIVE))
        .order_by(ScoreRules::CreatedAt, Order::Asc)
        .order_by(ScoreRules::Id, Order::Asc)
        .to_owned();
    m.rules = Some(
        fetch::<RuleRow, _>(db, &q)
            .await?
            .into_iter()
            .map(RuleRow::view)
            .collect::<Result<_, _>>()?,
    );
    Ok(m)
}

/// Live rules of `tenant`'s model `model_id` by id, the order they were created in (ids are
/// time-ordered): at most `limit` after `after`. A model of another tenant is not found.
pub async fn model_rules(
    db: &DatabaseConnection,
    tenant: &str,
    model_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<RuleView>, DefsError> {
    model_row(db, tenant, model_id)
        .await?
        .ok_or_else(|| no_model(model_id))?;
    let mut q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreRules::Table)
        .and_where(Expr::col(ScoreRules::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreRules::ModelId).eq(model_id))
        .and_where(Expr::col(ScoreRules::Status).eq(ACTIVE))
        .order_by(ScoreRules::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    if let Some(a) = after {
        q.and_where(Expr::col(ScoreRules::Id).gt(a));
    }
    Ok(fetch::<RuleRow, _>(db, &q)
        .await?
        .into_iter()
        .map(RuleRow::view)
        .collect::<Result<_, _>>()?)
}

/// Creates a model.
pub async fn create_model(
    db: &DatabaseConnection,
    tenant: &str,
    spec: ModelSpec,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<ModelView, DefsError> {
    let errors = spec.validate();
    if !errors.is_empty() {
        return Err(DefsError::Invalid(errors));
    }
    let id = new_id();
    let txn = platform::db::begin_write(db).await?;
    let q = Query::insert()
        .into_table(ScoreModels::Table)
        .columns([
            ScoreModels::Id,
            ScoreModels::TenantId,
            ScoreModels::Key,
            ScoreModels::Name,
            ScoreModels::Description,
            ScoreModels::Decay,
            ScoreModels::Status,
            ScoreModels::Epoch,
            ScoreModels::CreatedBy,
            ScoreModels::UpdatedBy,
            ScoreModels::CreatedAt,
            ScoreModels::UpdatedAt,
        ])
        .values_panic([
            id.clone().into(),
            tenant.into(),
            spec.key.clone().into(),
            spec.name.trim().into(),
            spec.description.clone().into(),
            json(&spec.decay)?.into(),
            ACTIVE.into(),
            now.into(),
            actor.into(),
            actor.into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    if let Err(e) = exec(&txn, &q).await {
        return Err(if is_duplicate(&e) {
            DefsError::Conflict {
                code: "duplicate_key",
                message: format!("the tenant has a model with key `{}` already", spec.key),
            }
        } else {
            e.into()
        });
    }
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
    model(db, tenant, &id).await
}

/// A change to a model (`PATCH /v1/models/{id}`, read as it is): its key stays; a field left
/// out stays as it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub decay: Option<Decay>,
    pub status: Option<String>,
}

/// Changes a model of `tenant`. A new decay makes every stored fold of the model stale (each
/// lead is looked at again by the scheduler) and forgets entry expiries computed with the old
/// one.
pub async fn update_model(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    patch: ModelPatch,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<ModelView, DefsError> {
    let current = model_row(db, tenant, id)
        .await?
        .ok_or_else(|| no_model(id))?;
    let mut spec = current.spec.clone();
    if let Some(n) = patch.name {
        spec.name = n;
    }
    if let Some(d) = patch.description {
        spec.description = d;
    }
    let decay_changed = patch.decay.as_ref().is_some_and(|d| *d != spec.decay);
    if let Some(d) = patch.decay {
        spec.decay = d;
    }
    let mut errors = spec.validate();
    let status = patch.status.unwrap_or(current.status.clone());
    if status != ACTIVE && status != ARCHIVED {
        errors.push(DefError::new(
            "status",
            "invalid_value",
            "must be `active` or `archived`",
        ));
    }
    if !errors.is_empty() {
        return Err(DefsError::Invalid(errors));
    }
    let txn = platform::db::begin_write(db).await?;
    let q = Query::update()
        .table(ScoreModels::Table)
        .value(ScoreModels::Name, spec.name.trim())
        .value(ScoreModels::Description, spec.description.clone())
        .value(ScoreModels::Decay, json(&spec.decay)?)
        .value(ScoreModels::Status, status)
        .value(ScoreModels::UpdatedBy, actor)
        .value(ScoreModels::UpdatedAt, now)
        .and_where(Expr::col(ScoreModels::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreModels::Id).eq(id))
        .to_owned();
    exec(&txn, &q).await?;
    if decay_changed {
        let q = Query::update()
            .table(ScoreLedger::Table)
            .value(ScoreLedger::ExpiresAt, Option::<DateTime<Utc>>::None)
            .and_where(Expr::col(ScoreLedger::TenantId).eq(tenant))
            .and_where(Expr::col(ScoreLedger::ModelId).eq(id))
            .to_owned();
        exec(&txn, &q).await?;
        let q = Query::update()
            .table(ProfileScores::Table)
            .value(
                ProfileScores::ValidUntil,
                Expr::col(ProfileScores::FoldedAt),
            )
            .and_where(Expr::col(ProfileScores::TenantId).eq(tenant))
            .and_where(Expr::col(ProfileScores::ModelId).eq(id))
            .to_owned();
        exec(&txn, &q).await?;
        let q = Query::update()
            .table(Leads::Table)
            .value(Leads::NextCheckAt, now)
            .and_where(Expr::col(Leads::TenantId).eq(tenant))
            .and_where(Expr::col(Leads::Status).eq(crate::store::leads::ACTIVE))
            .to_owned();
        exec(&txn, &q).await?;
    }
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
    model(db, tenant, id).await
}
