//! Tagging service: tag groups, tags, visual tag rules evaluated in real time and in bulk (preview, backfill, export), behaviour counters, WeCom corp-tag sync.
//!
//! Owns: tags, tag groups, tag rules, the profile-facts projection, behaviour counters, segment jobs (its own database). Must not touch: identity tables (it keeps a projection fed by bus events), score logic, WeChat secrets.
//!
//! Inner shape (shared by every service): `api/` internal HTTP handlers, `store/` tables and
//! migrations; `consume/` (bus consumers) and `domain/` (pure logic) arrive with the service's
//! own features.

pub mod api;
pub mod config;
pub mod store;

pub use config::Config;

use platform::db::outbox::OutboxRelay;
use platform::role::{self, RoleError};
use platform::Deps;

/// Role name in logs, readiness output and `scrm tagging`.
pub const ROLE: &str = "tagging";

/// Runs the service until `deps.shutdown`: database (migrated in embedded mode), outbox relay,
/// internal HTTP API with `/healthz`, `/readyz`, `/metrics`.
pub async fn run(cfg: Config, deps: Deps) -> Result<(), RoleError> {
    let db = role::open_db::<store::Migrator>(ROLE, &cfg.database, &deps).await?;
    let relay = OutboxRelay::new(db.clone(), deps.bus.clone());
    tokio::spawn(relay.run(deps.shutdown.clone()));
    let health = deps.health(ROLE, Some(&db));
    role::serve_until_shutdown(ROLE, &cfg.http, health, api::routes(db), &deps).await
}

/// Creates the service's database if needed and applies its migrations.
pub async fn migrate(cfg: &Config) -> Result<(), RoleError> {
    role::migrate::<store::Migrator>(ROLE, &cfg.database).await
}
