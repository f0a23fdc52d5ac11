//! `scrm tenant add` and `scrm user add`: tenants and their people, written to the gateway's
//! database (production: the configured one, migrated by `scrm migrate`; embedded: the data
//! dir's, migrated here). The same as owners do through `/admin/v1/users`.

use std::path::Path;

use anyhow::{anyhow, Context};
use proto::auth::Role;

use crate::settings::{self, Mode, Settings};

/// The gateway's access store for the deployment `config` (production) or `data_dir`.
async fn access(config: Option<&Path>, data_dir: &Path) -> anyhow::Result<gateway::access::Access> {
    let (settings, migrate) = match config {
        Some(_) => (
            Settings::load(
                Mode::Production,
                config,
                settings::production_defaults(),
                None,
            )?,
            false,
        ),
        None => {
            crate::up::prepare_data_dir(data_dir)?;
            let defaults =
                settings::embedded_defaults(data_dir, crate::up::DEFAULT_BIND.parse()?, "", "");
            (Settings::load(Mode::Embedded, None, defaults, None)?, true)
        }
    };
    let db: platform::config::DbConfig = settings
        .value("gateway.database")
        .map(serde_json::from_value)
        .transpose()?
        .ok_or_else(|| anyhow!("gateway.database.url is not configured"))?;
    let conn = platform::db::connect(&db, migrate)
        .await
        .context("cannot open the gateway's database")?;
    if migrate {
        platform::db::migrate::<gateway::store::Migrator>(&conn).await?;
    }
    let cache = std::sync::Arc::new(platform::cache::MemoryCache::new("cli:", 100));
    Ok(gateway::access::Access::new(conn, cache))
}

/// Adds (or renames) a tenant.
pub async fn add_tenant(
    config: Option<&Path>,
    data_dir: &Path,
    id: &str,
    name: &str,
    time_zone: &str,
) -> anyhow::Result<()> {
    let a = access(config, data_dir).await?;
    let t = a.put_tenant(id, name, time_zone).await?;
    println!("tenant {} ({}, {})", t.id, t.name, t.time_zone);
    Ok(())
}

/// Adds a user to a tenant with a role (a password read from `SCRM_USER_PASSWORD` if set);
/// with `token`, prints a new API token for them.
pub async fn add_user(
    config: Option<&Path>,
    data_dir: &Path,
    tenant: &str,
    email: &str,
    role: Role,
    token: bool,
) -> anyhow::Result<()> {
    let a = access(config, data_dir).await?;
    let password = std::env::var("SCRM_USER_PASSWORD").ok();
    let u = a
        .put_user(tenant, email, "", password.as_deref(), role)
        .await?;
    println!("user {} ({}) is {role} of {tenant}", u.email, u.id);
    if token {
        let issued = a
            .issue(
                &u.id,
                tenant,
                role,
                gateway::access::API,
                "scrm user add",
                None,
            )
            .await?;
        println!("API token (shown only now): {}", issued.token);
    }
    Ok(())
}
