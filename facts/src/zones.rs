//! The zone each tenant counts its days in, as its operators last set it (`tenant.settings` from
//! the gateway): kept in `facts_tenant_zones` so a service knows it again after a restart, and
//! laid over the configured zones ([`platform::clock::TimeZones::announce`]) while it runs.
//!
//! The row keeps the setting with the latest `changed_at`: an older message arriving late or
//! again changes nothing.

use chrono::{DateTime, Utc};
use platform::clock::{TimeZones, Tz};
use platform::db::schema::{str_col, ts_col};
use proto::tenant::TenantSettings;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ConnectionTrait, DbErr};
use sea_orm_migration::prelude::*;

use super::{exec, rows};

#[derive(DeriveIden)]
pub enum FactsTenantZones {
    Table,
    TenantId,
    TimeZone,
    ChangedAt,
}

/// Creates `facts_tenant_zones`.
pub struct CreateTenantZones;

impl MigrationName for CreateTenantZones {
    fn name(&self) -> &str {
        "m20261207_000000_create_tenant_zones"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTenantZones {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(FactsTenantZones::Table)
                .if_not_exists()
                .col(str_col(FactsTenantZones::TenantId, 64).primary_key())
                .col(str_col(FactsTenantZones::TimeZone, 64))
                .col(ts_col(FactsTenantZones::ChangedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(FactsTenantZones::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

/// Why a tenant's settings were not taken.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The zone is not an IANA name this build knows: the message never will be taken.
    #[error("`time_zone`: `{0}` is not an IANA time zone name")]
    Unknown(String),
    /// The message does not hold tenant settings.
    #[error(transparent)]
    Payload(#[from] proto::event::DecodeError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A wrong message never passes (it parks); the database may.
impl From<ZoneError> for platform::ServiceError {
    fn from(e: ZoneError) -> Self {
        match e {
            ZoneError::Db(e) => platform::ServiceError::Db(e),
            e => platform::ServiceError::invalid("invalid_tenant_settings", e.to_string()),
        }
    }
}

/// Takes a `tenant.settings` message: keeps it ([`record_zone`]) and, when it is the tenant's
/// latest, lays its zone over `zones`. Idempotent: a message taken again changes nothing.
pub async fn take_settings(
    db: &sea_orm::DatabaseConnection,
    zones: &TimeZones,
    env: &proto::Envelope,
) -> Result<(), ZoneError> {
    let settings: TenantSettings = env.decode()?;
    if let Some(zone) = record_zone(db, &env.tenant_id, &settings).await? {
        zones.announce(&env.tenant_id, zone);
        tracing::info!(tenant_id = %env.tenant_id, zone = %zone, "Tenant time zone set");
    }
    Ok(())
}

/// Keeps `settings` for `tenant` unless a setting made later is kept already; `Some(zone)` when
/// it is now the tenant's zone (the caller announces it once its transaction commits).
pub async fn record_zone<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    settings: &TenantSettings,
) -> Result<Option<Tz>, ZoneError> {
    let zone: Tz = settings
        .time_zone
        .parse()
        .map_err(|_| ZoneError::Unknown(settings.time_zone.clone()))?;
    let at = settings.changed_at;
    let current = Query::select()
        .column(FactsTenantZones::ChangedAt)
        .from(FactsTenantZones::Table)
        .and_where(Expr::col(FactsTenantZones::TenantId).eq(tenant))
        .to_owned();
    let kept: Option<DateTime<Utc>> = match rows(conn, &current).await?.first() {
        Some(r) => Some(r.try_get_by_index(0)?),
        None => None,
    };
    match kept {
        Some(k) if k > at => return Ok(None),
        Some(_) => {
            let q = Query::update()
                .table(FactsTenantZones::Table)
                .value(FactsTenantZones::TimeZone, settings.time_zone.clone())
                .value(FactsTenantZones::ChangedAt, at)
                .and_where(Expr::col(FactsTenantZones::TenantId).eq(tenant))
                .to_owned();
            exec(conn, &q).await?;
        }
        None => {
            let q = Query::insert()
                .into_table(FactsTenantZones::Table)
                .columns([
                    FactsTenantZones::TenantId,
                    FactsTenantZones::TimeZone,
                    FactsTenantZones::ChangedAt,
                ])
                .values_panic([tenant.into(), settings.time_zone.clone().into(), at.into()])
                .to_owned();
            exec(conn, &q).await?;
        }
    }
    Ok(Some(zone))
}

/// [`announce_kept`] at `role`'s start, failing the start when the zones cannot be read.
pub async fn announce_at_start(
    role: &'static str,
    conn: &sea_orm::DatabaseConnection,
    zones: &TimeZones,
) -> Result<(), platform::role::RoleError> {
    announce_kept(conn, zones)
        .await
        .map(drop)
        .map_err(|e| platform::role::RoleError::Other {
            role,
            message: format!("cannot read tenants' time zones: {e}"),
        })
}

/// Lays every kept zone over `zones` (at a service's start); returns how many tenants have one.
pub async fn announce_kept<C: ConnectionTrait>(
    conn: &C,
    zones: &TimeZones,
) -> Result<usize, DbErr> {
    let q = Query::select()
        .columns([FactsTenantZones::TenantId, FactsTenantZones::TimeZone])
        .from(FactsTenantZones::Table)
        .to_owned();
    let mut n = 0;
    for r in rows(conn, &q).await? {
        let tenant: String = r.try_get_by_index(0)?;
        let name: String = r.try_get_by_index(1)?;
        // Only names that parsed were kept; one an older build knew and this one does not
        // leaves the configured zone.
        if let Ok(zone) = name.parse::<Tz>() {
            zones.announce(&tenant, zone);
            n += 1;
        }
    }
    Ok(n)
}
