//! Rules of a model: read, created, replaced and deleted (kept as `deleted` for the ledger's
//! references).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{DatabaseConnection, DbErr};

use crate::domain::defs::RuleSpec;
use crate::store::migrations::ScoreRules;
use crate::store::{exec, fetch_one};

use super::model::{model_row, no_model};
use super::{bump, json, new_id, write_one, DefsError, RuleRow, RuleView, ACTIVE, DELETED};

async fn rule_row<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<RuleView>, DbErr> {
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreRules::Table)
        .and_where(Expr::col(ScoreRules::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreRules::Id).eq(id))
        .to_owned();
    fetch_one::<RuleRow, _>(db, &q)
        .await?
        .map(RuleRow::view)
        .transpose()
}

/// One rule of `tenant` (a deleted one too, with its status).
pub async fn rule(db: &DatabaseConnection, tenant: &str, id: &str) -> Result<RuleView, DefsError> {
    rule_row(db, tenant, id)
        .await?
        .ok_or_else(|| DefsError::NotFound(format!("no rule with id `{id}`")))
}

/// Adds a rule to model `model_id` of `tenant`.
pub async fn create_rule_in(
    db: &DatabaseConnection,
    tenant: &str,
    model_id: &str,
    spec: RuleSpec,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<RuleView, DefsError> {
    let m = model_row(db, tenant, model_id)
        .await?
        .ok_or_else(|| no_model(model_id))?;
    if m.status != ACTIVE {
        return Err(DefsError::Conflict {
            code: "model_archived",
            message: format!("model `{}` is archived", m.spec.key),
        });
    }
    spec.check("").map_err(DefsError::Invalid)?;
    let id = new_id();
    let txn = platform::db::begin_write(db).await?;
    let q = Query::insert()
        .into_table(ScoreRules::Table)
        .columns([
            ScoreRules::Id,
            ScoreRules::TenantId,
            ScoreRules::ModelId,
            ScoreRules::Name,
            ScoreRules::Kind,
            ScoreRules::Spec,
            ScoreRules::Points,
            ScoreRules::Enabled,
            ScoreRules::Status,
            ScoreRules::CreatedBy,
            ScoreRules::UpdatedBy,
            ScoreRules::CreatedAt,
            ScoreRules::UpdatedAt,
        ])
        .values_panic([
            id.clone().into(),
            m.tenant_id.clone().into(),
            model_id.into(),
            spec.name.trim().into(),
            spec.kind.as_str().into(),
            json(&spec)?.into(),
            spec.points.into(),
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
    rule(db, tenant, &id).await
}

/// Replaces the definition of a rule of `tenant` (its model stays).
pub async fn replace_rule(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    spec: RuleSpec,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<RuleView, DefsError> {
    let r = rule(db, tenant, id).await?;
    if r.status != ACTIVE {
        return Err(DefsError::NotFound(format!("rule `{id}` was deleted")));
    }
    spec.check("").map_err(DefsError::Invalid)?;
    let q = Query::update()
        .table(ScoreRules::Table)
        .value(ScoreRules::Name, spec.name.trim())
        .value(ScoreRules::Kind, spec.kind.as_str())
        .value(ScoreRules::Spec, json(&spec)?)
        .value(ScoreRules::Points, spec.points)
        .value(ScoreRules::Enabled, spec.enabled)
        .value(ScoreRules::UpdatedBy, actor)
        .value(ScoreRules::UpdatedAt, now)
        .and_where(Expr::col(ScoreRules::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreRules::Id).eq(id))
        .to_owned();
    write_one(db, tenant, &q, now).await?;
    rule(db, tenant, id).await
}

/// Deletes a rule of `tenant`: it scores no more; its ledger entries stay (a state rule's held
/// points are released the next time the lead is looked at).
pub async fn delete_rule(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), DefsError> {
    rule(db, tenant, id).await?;
    let q = Query::update()
        .table(ScoreRules::Table)
        .value(ScoreRules::Status, DELETED)
        .value(ScoreRules::UpdatedBy, actor)
        .value(ScoreRules::UpdatedAt, now)
        .and_where(Expr::col(ScoreRules::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreRules::Id).eq(id))
        .to_owned();
    write_one(db, tenant, &q, now).await?;
    Ok(())
}
