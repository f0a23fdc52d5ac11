//! Identity service: resolves every identifier on channel events (OA/MP openids, WeCom external_userid, UnionID, verified phone) to one customer profile, with an audit trail and reversible merges, and keeps relationship state and the timeline.
//!
//! Owns: identifiers, profiles, merge records, follow relationships, timeline (its own database). Must not touch: other services' tables, WeChat secrets (it asks the token keeper), tag or score logic.
//!
//! Inner shape (shared by every service): `api/` internal HTTP handlers, `consume/` the
//! channel-event consumer, `domain/` pure logic (identifier extraction, guards, the resolution
//! plan, personal-data hashing and sealing), `store/` tables, migrations and the transactional
//! resolution of one event, `enrich/` WeChat lookups (OA user info, WeCom external contacts)
//! with tokens from the gateway.

pub mod api;
pub mod config;
pub mod consume;
pub mod domain;
pub mod enrich;
pub mod metrics;
pub mod store;

pub use config::Config;

use platform::db::outbox::OutboxRelay;
use platform::role::{self, RoleError};
use platform::Deps;

use crate::domain::pii::Pii;
use crate::domain::Policy;

/// Role name in logs, readiness output and `scrm identity`.
pub const ROLE: &str = "identity";

/// Runs the service until `deps.shutdown`: database (migrated in embedded mode), outbox relay,
/// the channel-event consumer, internal HTTP API with `/healthz`, `/readyz`, `/metrics` (every
/// `/v1` route requires a service credential signed under `internal_key`).
pub async fn run(cfg: Config, deps: Deps) -> Result<(), RoleError> {
    crate::metrics::describe();
    let pii = pii_key(&cfg)?;
    let wechat = wechat_lookup(&cfg)?;
    let db = role::open_db::<store::Migrator>(ROLE, &cfg.database, &deps).await?;
    let relay = OutboxRelay::new(db.clone(), deps.bus.clone());
    let resolver = store::Resolver::new(
        db.clone(),
        pii.clone(),
        Policy::from_config(&cfg.resolution),
        cfg.tx_attempts,
    )
    .with_enrichment(wechat.is_some());
    let mut background = vec![relay.spawn(&deps.tasks, ROLE, &deps.shutdown)];
    // Every tenant's source registry in memory before the first event, then kept fresh.
    resolver
        .sources
        .refresh_all(&db)
        .await
        .map_err(|e| RoleError::Other {
            role: ROLE,
            message: format!("cannot read the source registries: {e}"),
        })?;
    {
        let (cache, db, shutdown) = (resolver.sources.clone(), db.clone(), deps.shutdown.clone());
        background.push(deps.tasks.spawn(
            ROLE,
            "identity.sources",
            Some(store::sources::CACHE_TTL * 6),
            deps.shutdown.clone(),
            move |beat| {
                store::sources::keep_fresh(cache.clone(), db.clone(), shutdown.clone(), beat)
            },
        ));
    }
    {
        let enricher = consume::enrich::Enricher::new(
            resolver.clone(),
            relay.clone(),
            wechat,
            deps.cache.clone(),
            &cfg.wechat,
        );
        let (bus, shutdown, wcfg) = (deps.bus.clone(), deps.shutdown.clone(), cfg.wechat.clone());
        background.push(deps.tasks.spawn(
            ROLE,
            "identity.enrich",
            None,
            deps.shutdown.clone(),
            move |_| {
                consume::enrich::run(
                    bus.clone(),
                    enricher.clone(),
                    wcfg.clone(),
                    shutdown.clone(),
                )
            },
        ));
    }
    let (bus, r, shutdown, n) = (
        deps.bus.clone(),
        resolver.clone(),
        deps.shutdown.clone(),
        cfg.batching(),
    );
    background.push(deps.tasks.spawn(
        ROLE,
        "identity.consumer",
        None,
        deps.shutdown.clone(),
        move |_| consume::run(bus.clone(), r.clone(), relay.clone(), n, shutdown.clone()),
    ));
    let health = deps.health(ROLE, Some(&db));
    // Only the gateway calls the API: every `/v1` request carries its signed credential.
    let guard = Some(platform::http::ServiceKey::derive(
        cfg.internal_key.expose(),
    ));
    let served =
        role::serve_until_shutdown(ROLE, &cfg.http, health, api::routes(resolver), guard, &deps)
            .await;
    // The tasks stop on the same shutdown signal; wait for in-flight events.
    platform::tasks::drain(background, role::DRAIN).await;
    served
}

/// Creates the service's database if needed and applies its migrations.
pub async fn migrate(cfg: &Config) -> Result<(), RoleError> {
    role::migrate::<store::Migrator>(ROLE, &cfg.database).await
}

/// The WeChat lookup of `identity.wechat`, `None` when switched off.
pub fn wechat_lookup(cfg: &Config) -> Result<Option<enrich::WechatLookup>, RoleError> {
    let lookup = enrich::WechatLookup::from_config(&cfg.wechat).map_err(|e| RoleError::Other {
        role: ROLE,
        message: e.to_string(),
    })?;
    match &lookup {
        Some(_) => tracing::info!(gateway = %cfg.wechat.access.gateway_url, "WeChat enrichment on"),
        None => tracing::info!("WeChat enrichment off (identity.wechat.enabled = false)"),
    }
    Ok(lookup)
}

/// The personal-data key: configured, or (SQLite only) kept in `<database file>.pii.key`, created
/// on first start. MySQL deployments must configure it.
fn pii_key(cfg: &Config) -> Result<Option<Pii>, RoleError> {
    let other = |message: String| RoleError::Other {
        role: ROLE,
        message,
    };
    if let Some(k) = &cfg.pii_key {
        return Pii::from_base64(k.expose())
            .map(Some)
            .map_err(|e| other(format!("identity.pii_key: {e}")));
    }
    let Some(path) = platform::db::sqlite_path(cfg.database.url.expose()) else {
        // Config validation requires the key for MySQL; this is a second line of defence.
        return Err(other(
            "identity.pii_key is required with a MySQL database".to_string(),
        ));
    };
    let file = std::path::PathBuf::from(format!("{path}.pii.key"));
    let key = match std::fs::read_to_string(&file) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| other(format!("cannot create {}: {e}", dir.display())))?;
            }
            let k = Pii::generate_base64();
            write_private(&file, &k)
                .map_err(|e| other(format!("cannot write {}: {e}", file.display())))?;
            k
        }
        Err(e) => return Err(other(format!("cannot read {}: {e}", file.display()))),
    };
    Pii::from_base64(&k_trim(&key))
        .map(Some)
        .map_err(|e| other(format!("{}: {e}", file.display())))
}

fn k_trim(k: &str) -> String {
    k.trim().to_string()
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(contents.as_bytes())
}
