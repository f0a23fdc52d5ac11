//! Definitions in the database: models, rules, the stage machine and triggers. Every write
//! validates (errors name the field or node), runs in one transaction and bumps the tenant's
//! definitions version, which every instance checks before using its compiled copy.
//!
//! Every function that reads or writes a definition by id takes the tenant and filters by it: a
//! definition of another tenant is not found, exactly like an unknown id.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Order, Query};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, QueryResult, TransactionTrait};
use serde::Serialize;
use serde_json::Value;

use super::migrations::{
    Leads, ProfileScores, ScoreLedger, ScoreModels, ScoreRules, ScoreTriggers, ScoringTenants,
    StageMachines,
};
use super::{exec, is_duplicate, one, rows};
use crate::domain::compiled::{ModelDef, RuleDef, TriggerDef};
use crate::domain::decay::Decay;
use crate::domain::defs::{MachineSpec, ModelSpec, RuleSpec, TriggerSpec};
use crate::domain::DefError;

/// Status of live definitions.
pub const ACTIVE: &str = "active";
/// Status of an archived model (no longer scored; its ledger stays).
pub const ARCHIVED: &str = "archived";
/// Status of a deleted rule or trigger (kept for the ledger's references).
pub const DELETED: &str = "deleted";

/// Why a definition write was refused.
#[derive(Debug, thiserror::Error)]
pub enum DefsError {
    #[error("invalid definition: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<DefError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A model as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    pub id: String,
    pub tenant_id: String,
    #[serde(flatten)]
    pub spec: ModelSpec,
    pub status: String,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleView>>,
}

/// A rule as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub id: String,
    pub tenant_id: String,
    pub model_id: String,
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub status: String,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A trigger as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerView {
    pub id: String,
    pub tenant_id: String,
    #[serde(flatten)]
    pub spec: TriggerSpec,
    pub status: String,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tenant's stage machine as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MachineView {
    pub tenant_id: String,
    #[serde(flatten)]
    pub spec: MachineSpec,
    /// No machine was saved: this is the default one.
    pub is_default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

fn json<T: Serialize>(v: &T) -> Result<String, DbErr> {
    serde_json::to_string(v).map_err(|e| DbErr::Custom(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, DbErr> {
    serde_json::from_str(s)
        .map_err(|e| DbErr::Custom(format!("stored {what} does not decode: {e}")))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The tenant's definitions version (0 before any definition).
pub async fn version<C: sea_orm::ConnectionTrait>(db: &C, tenant: &str) -> Result<i64, DbErr> {
    let q = Query::select()
        .column(ScoringTenants::Version)
        .from(ScoringTenants::Table)
        .and_where(Expr::col(ScoringTenants::TenantId).eq(tenant))
        .to_owned();
    match one(db, &q).await? {
        Some(r) => r.try_get("", "version"),
        None => Ok(0),
    }
}

/// Bumps the tenant's definitions version in `txn`.
async fn bump(txn: &DatabaseTransaction, tenant: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    let q = Query::insert()
        .into_table(ScoringTenants::Table)
        .columns([
            ScoringTenants::TenantId,
            ScoringTenants::Version,
            ScoringTenants::UpdatedAt,
        ])
        .values_panic([tenant.into(), 1i64.into(), now.into()])
        .on_conflict(
            OnConflict::column(ScoringTenants::TenantId)
                .value(
                    ScoringTenants::Version,
                    Expr::col((ScoringTenants::Table, ScoringTenants::Version)).add(1),
                )
                .value(ScoringTenants::UpdatedAt, now)
                .to_owned(),
        )
        .to_owned();
    exec(txn, &q).await.map(drop)
}

fn model_view(r: &QueryResult) -> Result<ModelView, DbErr> {
    let decay: String = r.try_get("", "decay")?;
    Ok(ModelView {
        id: r.try_get("", "id")?,
        tenant_id: r.try_get("", "tenant_id")?,
        spec: ModelSpec {
            key: r.try_get("", "key")?,
            name: r.try_get("", "name")?,
            description: r.try_get("", "description")?,
            decay: parse::<Decay>(&decay, "decay")?,
        },
        status: r.try_get("", "status")?,
        created_by: r.try_get("", "created_by")?,
        updated_by: r.try_get("", "updated_by")?,
        created_at: r.try_get("", "created_at")?,
        updated_at: r.try_get("", "updated_at")?,
        rules: None,
    })
}

fn rule_view(r: &QueryResult) -> Result<RuleView, DbErr> {
    let spec: String = r.try_get("", "spec")?;
    Ok(RuleView {
        id: r.try_get("", "id")?,
        tenant_id: r.try_get("", "tenant_id")?,
        model_id: r.try_get("", "model_id")?,
        spec: parse(&spec, "rule")?,
        status: r.try_get("", "status")?,
        created_by: r.try_get("", "created_by")?,
        updated_by: r.try_get("", "updated_by")?,
        created_at: r.try_get("", "created_at")?,
        updated_at: r.try_get("", "updated_at")?,
    })
}

fn trigger_view(r: &QueryResult) -> Result<TriggerView, DbErr> {
    let spec: String = r.try_get("", "spec")?;
    Ok(TriggerView {
        id: r.try_get("", "id")?,
        tenant_id: r.try_get("", "tenant_id")?,
        spec: parse(&spec, "trigger")?,
        status: r.try_get("", "status")?,
        created_by: r.try_get("", "created_by")?,
        updated_by: r.try_get("", "updated_by")?,
        created_at: r.try_get("", "created_at")?,
        updated_at: r.try_get("", "updated_at")?,
    })
}

async fn model_row<C: sea_orm::ConnectionTrait>(
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
    one(db, &q).await?.as_ref().map(model_view).transpose()
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
    rows(db, &q).await?.iter().map(model_view).collect()
}

/// The keys of `tenant`'s active models.
async fn active_model_keys(db: &DatabaseConnection, tenant: &str) -> Result<Vec<String>, DbErr> {
    let q = Query::select()
        .column(ScoreModels::Key)
        .from(ScoreModels::Table)
        .and_where(Expr::col(ScoreModels::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreModels::Status).eq(ACTIVE))
        .to_owned();
    rows(db, &q)
        .await?
        .iter()
        .map(|r| r.try_get("", "key"))
        .collect()
}

fn no_model(id: &str) -> DefsError {
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
        rows(db, &q)
            .await?
            .iter()
            .map(rule_view)
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
    Ok(rows(db, &q)
        .await?
        .iter()
        .map(rule_view)
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

/// A change to a model: its key stays.
#[derive(Debug, Clone, Default)]
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
            .and_where(Expr::col(Leads::Status).eq(super::leads::ACTIVE))
            .to_owned();
        exec(&txn, &q).await?;
    }
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
    model(db, tenant, id).await
}

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
    one(db, &q).await?.as_ref().map(rule_view).transpose()
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
    let txn = platform::db::begin_write(db).await?;
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
    exec(&txn, &q).await?;
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
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
    let txn = platform::db::begin_write(db).await?;
    let q = Query::update()
        .table(ScoreRules::Table)
        .value(ScoreRules::Status, DELETED)
        .value(ScoreRules::UpdatedBy, actor)
        .value(ScoreRules::UpdatedAt, now)
        .and_where(Expr::col(ScoreRules::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreRules::Id).eq(id))
        .to_owned();
    exec(&txn, &q).await?;
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
    Ok(())
}

/// The tenant's stage machine (the default one when none was saved).
pub async fn machine<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<MachineView, DbErr> {
    let q = Query::select()
        .columns([
            StageMachines::Spec,
            StageMachines::UpdatedBy,
            StageMachines::UpdatedAt,
        ])
        .from(StageMachines::Table)
        .and_where(Expr::col(StageMachines::TenantId).eq(tenant))
        .to_owned();
    Ok(match one(db, &q).await? {
        Some(r) => {
            let spec: String = r.try_get("", "spec")?;
            MachineView {
                tenant_id: tenant.to_string(),
                spec: parse(&spec, "stage machine")?,
                is_default: false,
                updated_by: Some(r.try_get("", "updated_by")?),
                updated_at: Some(r.try_get("", "updated_at")?),
            }
        }
        None => MachineView {
            tenant_id: tenant.to_string(),
            spec: MachineSpec::default_machine(),
            is_default: true,
            updated_by: None,
            updated_at: None,
        },
    })
}

/// Saves the tenant's stage machine.
pub async fn put_machine(
    db: &DatabaseConnection,
    tenant: &str,
    spec: MachineSpec,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<MachineView, DefsError> {
    spec.check().map_err(DefsError::Invalid)?;
    let txn = platform::db::begin_write(db).await?;
    let q = Query::insert()
        .into_table(StageMachines::Table)
        .columns([
            StageMachines::TenantId,
            StageMachines::Spec,
            StageMachines::UpdatedBy,
            StageMachines::UpdatedAt,
        ])
        .values_panic([tenant.into(), json(&spec)?.into(), actor.into(), now.into()])
        .on_conflict(
            OnConflict::column(StageMachines::TenantId)
                .update_columns([
                    StageMachines::Spec,
                    StageMachines::UpdatedBy,
                    StageMachines::UpdatedAt,
                ])
                .to_owned(),
        )
        .to_owned();
    exec(&txn, &q).await?;
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
    Ok(machine(db, tenant).await?)
}

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
    one(db, &q).await?.as_ref().map(trigger_view).transpose()
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
    rows(db, &q).await?.iter().map(trigger_view).collect()
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
    let txn = platform::db::begin_write(db).await?;
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
    exec(&txn, &q).await?;
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
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
    let txn = platform::db::begin_write(db).await?;
    let q = Query::update()
        .table(ScoreTriggers::Table)
        .value(ScoreTriggers::Status, DELETED)
        .value(ScoreTriggers::UpdatedBy, actor)
        .value(ScoreTriggers::UpdatedAt, now)
        .and_where(Expr::col(ScoreTriggers::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreTriggers::Id).eq(id))
        .to_owned();
    exec(&txn, &q).await?;
    bump(&txn, tenant, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Everything a tenant's definitions compile from, with the version they are at.
pub struct TenantDefs {
    pub version: i64,
    pub models: Vec<ModelDef>,
    pub rules: Vec<RuleDef>,
    pub machine: Option<MachineSpec>,
    pub triggers: Vec<TriggerDef>,
}

/// Loads a tenant's definitions in one read transaction (a consistent set).
pub async fn load(db: &DatabaseConnection, tenant: &str) -> Result<TenantDefs, DbErr> {
    let txn = db.begin().await?;
    let version = version(&txn, tenant).await?;
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreModels::Table)
        .and_where(Expr::col(ScoreModels::TenantId).eq(tenant))
        .order_by(ScoreModels::CreatedAt, Order::Asc)
        .order_by(ScoreModels::Id, Order::Asc)
        .to_owned();
    let models = rows(&txn, &q)
        .await?
        .iter()
        .map(|r| {
            let v = model_view(r)?;
            Ok(ModelDef {
                epoch: r.try_get("", "epoch")?,
                active: v.status == ACTIVE,
                id: v.id,
                spec: v.spec,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreRules::Table)
        .and_where(Expr::col(ScoreRules::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreRules::Status).eq(ACTIVE))
        .order_by(ScoreRules::CreatedAt, Order::Asc)
        .order_by(ScoreRules::Id, Order::Asc)
        .to_owned();
    let rules = rows(&txn, &q)
        .await?
        .iter()
        .map(|r| {
            let v = rule_view(r)?;
            Ok(RuleDef {
                id: v.id,
                model_id: v.model_id,
                spec: v.spec,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    let m = machine(&txn, tenant).await?;
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(ScoreTriggers::Table)
        .and_where(Expr::col(ScoreTriggers::TenantId).eq(tenant))
        .and_where(Expr::col(ScoreTriggers::Status).eq(ACTIVE))
        .order_by(ScoreTriggers::CreatedAt, Order::Asc)
        .order_by(ScoreTriggers::Id, Order::Asc)
        .to_owned();
    let triggers = rows(&txn, &q)
        .await?
        .iter()
        .map(|r| {
            let v = trigger_view(r)?;
            Ok(TriggerDef {
                id: v.id,
                spec: v.spec,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    txn.commit().await?;
    Ok(TenantDefs {
        version,
        models,
        rules,
        machine: (!m.is_default).then_some(m.spec),
        triggers,
    })
}

/// A JSON body's typed spec, or the errors naming the bad field.
pub fn spec_of<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, DefsError> {
    crate::domain::defs::from_json(v, "").map_err(DefsError::Invalid)
}
