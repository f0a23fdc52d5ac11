//! Gateway: the front door. Receives WeChat OA / WeCom / mini-program callbacks, mini-program
//! login, phone authorisation and behaviour tracking; verifies, decrypts, validates and publishes
//! typed events with broker confirms (never a 200 for something not durable); serves the admin and
//! sidebar APIs by composing reads from the services.
//!
//! Owns: the app registry (tenants' OA/MP apps and WeCom corps with their sealed secrets), tenant
//! write keys, SDK session tokens and the WeChat access-token keeper. Must not touch: services'
//! tables (it calls their internal APIs), business rules (identity, tags, scores).
//!
//! Inner shape: `api/` handlers, `domain/` pure logic (keys, session tokens, tracking validation),
//! `store/` tables and migrations, `registry` (app lookup), `publish` (confirmed publishing with
//! retry dedupe), `wechat_api` (calls to WeChat).

pub mod api;
pub mod config;
pub mod domain;
pub mod publish;
pub mod registry;
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
    let background = vec![relay.spawn(&deps.tasks, ROLE, &deps.shutdown)];
    let http = cfg.http.clone();
    let state = api::GatewayState {
        cfg: Arc::new(cfg),
        registry,
        publisher,
        cache: deps.cache.clone(),
        keys,
        wechat,
        bus: deps.bus.clone(),
    };
    let health = deps.health(ROLE, Some(&db));
    let served = role::serve_until_shutdown(ROLE, &http, health, api::routes(state), None, &deps).await;
    platform::tasks::drain(background, role::DRAIN).await;
    served
}

/// Creates the gateway's database if needed and applies its migrations.
pub async fn migrate(cfg: &Config) -> Result<(), RoleError> {
    role::migrate::<store::Migrator>(ROLE, &cfg.database).await
}
