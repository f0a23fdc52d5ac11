//! Gateway: the front door. Receives WeChat OA / WeCom / mini-program callbacks, mini-program
//! login, phone authorisation and behaviour tracking; verifies, decrypts, validates and publishes
//! typed events with broker confirms (never a 200 for something not durable); serves the admin and
//! sidebar APIs by composing reads from the services.
//!
//! Owns: the app registry (tenants' OA/MP apps, WeCom corps and WeCom agent apps with their
//! sealed secrets), tenant write keys, SDK session tokens, the WeChat access-token keeper, and
//! the delivery of lead notifications to reps (`lead.notify` → WeCom app messages, recorded per
//! rep), and export jobs with their files (`exports`). Must not touch: services' tables (it calls their internal APIs), business rules
//! (identity, tags, scores; whom to notify and when is scoring-svc's).
//!
//! Inner shape: `api/` handlers, `domain/` pure logic (keys, session tokens, tracking validation),
//! `store/` tables and migrations, `registry` (app lookup), `publish` (confirmed publishing with
//! retry dedupe), `wechat_api` (calls to WeChat), `notify` (the `lead.notify` consumer: its pure
//! decisions, its table and the reps' inbox reads), `exports` (export jobs run in the background
//! and their files).

pub mod access;
pub mod api;
pub mod config;
pub mod domain;
pub mod exports;
pub mod metrics;
pub mod notify;
pub mod publish;
pub mod registry;
pub mod services;
pub mod store;
pub mod wechat_api;

use std::sync::Arc;
use std::time::Duration;

pub use config::Config;

use platform::db::outbox::OutboxRelay;
use platform::role::{self, RoleError};
use platform::Deps;

use crate::domain::keys::Keys;
use crate::publish::Publisher;
use crate::registry::AppRegistry;

/// Role name in logs, readiness output and `scrm gateway`.
pub const ROLE: &str = "gateway";

fn other(message: impl std::fmt::Display) -> RoleError {
    RoleError::Other {
        role: ROLE,
        message: message.to_string(),
    }
}

/// Runs the gateway until `deps.shutdown`.
pub async fn run(cfg: Config, deps: Deps) -> Result<(), RoleError> {
    let db = role::open_db::<store::Migrator>(ROLE, &cfg.database, &deps).await?;
    let keys = Keys::from_base64(cfg.secret_key.expose()).map_err(other)?;
    let registry = AppRegistry::new(db.clone(), keys.clone());
    for app in &cfg.apps {
        registry.upsert(app).await.map_err(other)?;
    }
    for wk in &cfg.write_keys {
        registry.add_write_key(wk).await.map_err(other)?;
    }
    let publisher = Publisher::new(
        deps.bus.clone(),
        deps.cache.clone(),
        Duration::from_millis(cfg.callback.publish_budget_ms),
        Duration::from_secs(cfg.callback.dedupe_ttl_secs),
    );
    let wechat = wechat_api::WechatApi::new(&cfg.wechat_api, deps.cache.clone()).map_err(other)?;
    let relay = OutboxRelay::new(db.clone(), deps.bus.clone());
    let mut background = vec![relay.spawn(&deps.tasks, ROLE, &deps.shutdown)];
    let http = cfg.http.clone();
    let access = access::Access::new(db.clone(), deps.cache.clone());
    if let Some(b) = &cfg.bootstrap {
        bootstrap(&access, b).await.map_err(other)?;
    }
    let cfg_internal_key = cfg.internal_key.expose().to_string();
    let cfg_services = cfg.services.clone();
    let services =
        services::Services::new(cfg_internal_key.as_str(), cfg_services, deps.peers.clone());
    crate::metrics::describe();
    let notifier = notify::Notifier::new(
        notify::NotifierDeps {
            db: db.clone(),
            registry: registry.clone(),
            wechat: wechat.clone(),
            access: access.clone(),
            services: services.clone(),
            cache: deps.cache.clone(),
            public_base: cfg.public_base(),
        },
        &cfg.notify,
    );
    {
        let (bus, shutdown, ncfg) = (deps.bus.clone(), deps.shutdown.clone(), cfg.notify.clone());
        background.push(deps.tasks.spawn(
            ROLE,
            "gateway.notify",
            None,
            deps.shutdown.clone(),
            move |_| {
                notify::run(
                    bus.clone(),
                    notifier.clone(),
                    ncfg.clone(),
                    shutdown.clone(),
                )
            },
        ));
    }
    let exports = exports::Exports::new(
        db.clone(),
        Arc::new(api::admin::export_jobs::AudienceSource {
            services: services.clone(),
        }),
        exports::Settings::default(),
        deps.tasks.clone(),
        deps.shutdown.clone(),
    );
    {
        // Jobs a stopped process left, and files past their retention, every half minute.
        let exports = exports.clone();
        let shutdown = deps.shutdown.clone();
        background.push(deps.tasks.spawn(
            ROLE,
            "gateway.exports",
            None,
            deps.shutdown.clone(),
            move |beat| {
                let (exports, shutdown) = (exports.clone(), shutdown.clone());
                async move {
                    loop {
                        beat.beat();
                        if let Err(e) = exports.pass().await {
                            tracing::warn!(error = %e, "Export jobs pass failed");
                        }
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                        }
                    }
                }
            },
        ));
    }
    let state = api::GatewayState {
        cfg: Arc::new(cfg),
        registry,
        publisher,
        cache: deps.cache.clone(),
        keys,
        wechat,
        bus: deps.bus.clone(),
        access: access.clone(),
        services,
        exports,
        db: db.clone(),
    };
    let health = deps.health(ROLE, Some(&db));
    let served =
        role::serve_until_shutdown(ROLE, &http, health, api::routes(state), None, &deps).await;
    platform::tasks::drain(background, role::DRAIN).await;
    served
}

/// Creates the gateway's database if needed and applies its migrations.
pub async fn migrate(cfg: &Config) -> Result<(), RoleError> {
    role::migrate::<store::Migrator>(ROLE, &cfg.database).await
}

/// Makes the bootstrap tenant, its owner and the owner's API token when missing; a token file
/// that still signs in is kept.
async fn bootstrap(access: &access::Access, b: &config::Bootstrap) -> Result<(), String> {
    if let Ok(t) = std::fs::read_to_string(&b.token_file) {
        if let Ok(Some(p)) = access.authenticate(t.trim()).await {
            if p.tenant_id == b.tenant_id {
                return Ok(());
            }
        }
    }
    let fail = |e: access::AccessError| format!("bootstrap of tenant `{}`: {e}", b.tenant_id);
    access
        .put_tenant(&b.tenant_id, &b.tenant_name, "Asia/Shanghai")
        .await
        .map_err(fail)?;
    let owner = access
        .put_user(
            &b.tenant_id,
            &b.owner_email,
            "Owner",
            None,
            proto::auth::Role::Owner,
        )
        .await
        .map_err(fail)?;
    let issued = access
        .issue(
            &owner.id,
            &b.tenant_id,
            proto::auth::Role::Owner,
            access::API,
            "scrm up",
            None,
        )
        .await
        .map_err(fail)?;
    write_private(&b.token_file, &issued.token)
        .map_err(|e| format!("cannot write {}: {e}", b.token_file.display()))?;
    tracing::info!(tenant = %b.tenant_id, file = %b.token_file.display(), "Owner API token written");
    Ok(())
}

/// Writes `content` to `path`, readable by its owner only.
fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(content.as_bytes())
}
