//! Definitions in the database: models, rules, the stage machine and triggers. Every write
//! validates (errors name the field or node), runs in one transaction and bumps the tenant's
//! definitions version, which every instance checks before using its compiled copy.
//!
//! Every function that reads or writes a definition by id takes the tenant and filters by it: a
//! definition of another tenant is not found, exactly like an unknown id.
//!
//! Here: the statuses, errors and views every part shares, and the version. Each kind of
//! definition has its own part (`model`, `rule`, `machine`, `trigger`); `load` reads
//! everything a tenant's definitions compile from.

mod load;
mod machine;
mod model;
mod rule;
mod trigger;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{DatabaseTransaction, DbErr, FromQueryResult};
use serde::Serialize;

use super::migrations::ScoringTenants;
use super::{exec, fetch_one};
use crate::domain::decay::Decay;
use crate::domain::defs::{MachineSpec, ModelSpec, RuleSpec, TriggerSpec};
use crate::domain::DefError;

pub use load::{load, TenantDefs};
pub use machine::{machine, put_machine};
pub use model::{create_model, model, model_rules, models, update_model, ModelPatch};
pub use rule::{create_rule_in, delete_rule, replace_rule, rule};
pub use trigger::{create_trigger, delete_trigger, replace_trigger, trigger, triggers};

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
    #[derive(FromQueryResult)]
    struct Row {
        version: i64,
    }
    Ok(fetch_one::<Row, _>(db, &q).await?.map_or(0, |r| r.version))
}

/// Bumps the tenant's definitions version in `txn`.
/// Applies one statement to `tenant`'s definitions and moves their version, in one transaction.
async fn write_one<S: sea_orm::StatementBuilder>(
    db: &sea_orm::DatabaseConnection,
    tenant: &str,
    stmt: &S,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = platform::db::begin_write(db).await?;
    exec(&txn, stmt).await?;
    bump(&txn, tenant, now).await?;
    txn.commit().await
}

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

/// A model's row (`SELECT *`).
#[derive(FromQueryResult)]
struct ModelRow {
    id: String,
    tenant_id: String,
    key: String,
    name: String,
    description: String,
    decay: String,
    /// The reference instant of the leaderboard's sort key.
    epoch: DateTime<Utc>,
    status: String,
    created_by: String,
    updated_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ModelRow {
    fn view(self) -> Result<ModelView, DbErr> {
        Ok(ModelView {
            id: self.id,
            tenant_id: self.tenant_id,
            spec: ModelSpec {
                key: self.key,
                name: self.name,
                description: self.description,
                decay: parse::<Decay>(&self.decay, "decay")?,
            },
            status: self.status,
            created_by: self.created_by,
            updated_by: self.updated_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            rules: None,
        })
    }
}

/// A rule's row (`SELECT *`).
#[derive(FromQueryResult)]
struct RuleRow {
    id: String,
    tenant_id: String,
    model_id: String,
    spec: String,
    status: String,
    created_by: String,
    updated_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl RuleRow {
    fn view(self) -> Result<RuleView, DbErr> {
        Ok(RuleView {
            id: self.id,
            tenant_id: self.tenant_id,
            model_id: self.model_id,
            spec: parse(&self.spec, "rule")?,
            status: self.status,
            created_by: self.created_by,
            updated_by: self.updated_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A trigger's row (`SELECT *`).
#[derive(FromQueryResult)]
struct TriggerRow {
    id: String,
    tenant_id: String,
    spec: String,
    status: String,
    created_by: String,
    updated_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TriggerRow {
    fn view(self) -> Result<TriggerView, DbErr> {
        Ok(TriggerView {
            id: self.id,
            tenant_id: self.tenant_id,
            spec: parse(&self.spec, "trigger")?,
            status: self.status,
            created_by: self.created_by,
            updated_by: self.updated_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
