//! Everything a tenant's definitions compile from, read at one version.

use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use crate::domain::compiled::{ModelDef, RuleDef, TriggerDef};
use crate::domain::defs::MachineSpec;
use crate::store::fetch;
use crate::store::migrations::{ScoreModels, ScoreRules, ScoreTriggers};

use super::machine::machine;
use super::{version, ModelRow, RuleRow, TriggerRow, ACTIVE};

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
    let models = fetch::<ModelRow, _>(&txn, &q)
        .await?
        .into_iter()
        .map(|r| {
            let epoch = r.epoch;
            let v = r.view()?;
            Ok(ModelDef {
                epoch,
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
    let rules = fetch::<RuleRow, _>(&txn, &q)
        .await?
        .into_iter()
        .map(|r| {
            let v = r.view()?;
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
    let triggers = fetch::<TriggerRow, _>(&txn, &q)
        .await?
        .into_iter()
        .map(|r| {
            let v = r.view()?;
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
