//! The tenant's stage machine: read (the default one when none was saved) and replaced.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{DatabaseConnection, DbErr, FromQueryResult};

use crate::domain::defs::MachineSpec;
use crate::store::migrations::StageMachines;
use crate::store::{exec, fetch_one};

use super::{bump, json, parse, DefsError, MachineView};

/// The tenant's stage machine (the default one when none was saved).
pub async fn machine<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<MachineView, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        spec: String,
        updated_by: String,
        updated_at: DateTime<Utc>,
    }
    let q = Query::select()
        .columns([
            StageMachines::Spec,
            StageMachines::UpdatedBy,
            StageMachines::UpdatedAt,
        ])
        .from(StageMachines::Table)
        .and_where(Expr::col(StageMachines::TenantId).eq(tenant))
        .to_owned();
    Ok(match fetch_one::<Row, _>(db, &q).await? {
        Some(r) => MachineView {
            tenant_id: tenant.to_string(),
            spec: parse(&r.spec, "stage machine")?,
            is_default: false,
            updated_by: Some(r.updated_by),
            updated_at: Some(r.updated_at),
        },
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
