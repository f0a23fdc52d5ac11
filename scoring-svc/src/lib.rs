//! Scoring service: lead scores per dimension (points, caps, decay), an explainable ledger, the
//! lead-stage machine with guards, history and SLAs, and threshold triggers.
//!
//! Owns: score models, rules, the stage machine and triggers of each tenant; per profile the
//! ledger, the score folds, the lead (stage, owner, activity), stage history, SLAs, trigger
//! states and firings; its own facts projection (its own database). Must not touch: identity or
//! tagging tables (it keeps the facts it needs from bus events), WeChat secrets.
//!
//! Inner shape (shared by every service): `api/` internal HTTP handlers, `consume/` the bus
//! consumer, `domain/` pure logic (decay, definitions, caps, stages, triggers, replay),
//! `store/` tables, migrations and the transactional engine, plus the scheduler ([`scheduler`])
//! and the clock every time-dependent decision reads ([`clock`]).

pub mod api;
pub mod clock;
pub mod config;
pub mod consume;
pub mod domain;
pub mod metrics;
pub mod store;

pub use config::Config;

use std::sync::Arc;
use std::time::Duration;

use platform::db::outbox::OutboxRelay;
use platform::role::{self, RoleError};
use platform::Deps;

use crate::clock::{SharedClock, SystemClock};
use crate::store::cache::DefsCache;
use crate::store::engine::EngineConfig;
use crate::store::schedule::Scheduler;
use crate::store::Scorer;

/// Role name in logs, readiness output and `scrm scoring`.
pub const ROLE: &str = "scoring";

/// A scheduler pass (decay folds, crossings, time-driven moves, recompute jobs) that takes
/// longer than this is stalled.
const SCHEDULER_DEADLINE: Duration = Duration::from_secs(300);

/// Runs the service until `deps.shutdown`: database (migrated in embedded mode), outbox relay,
/// the bus consumer, the scheduler, internal HTTP API with `/healthz`, `/readyz`, `/metrics`
/// (every `/v1` route refused with 401 without a service credential signed under a key derived
/// from `cfg.internal_key`).
pub async fn run(cfg: Config, deps: Deps) -> Result<(), RoleError> {
    run_with_clock(cfg, deps, Arc::new(SystemClock)).await
}

/// [`run`] reading time from `clock`.
pub async fn run_with_clock(cfg: Config, deps: Deps, clock: SharedClock) -> Result<(), RoleError> {
    crate::metrics::describe();
    let db = role::open_db::<store::Migrator>(ROLE, &cfg.database, &deps).await?;
    // The zones tenants' operators set, over the configured ones.
    facts::announce_at_start(ROLE, &db, &cfg.time_zones).await?;
    let relay = OutboxRelay::new(db.clone(), deps.bus.clone())
        .with_batch(500, Duration::from_millis(cfg.outbox_poll_ms));
    let mut background = vec![relay.spawn(&deps.tasks, ROLE, &deps.shutdown)];
    let scorer = Scorer::new(
        db.clone(),
        clock,
        DefsCache::new(),
        EngineConfig::from_config(&cfg),
    );
    let (bus, s, batching, shutdown) = (
        deps.bus.clone(),
        scorer.clone(),
        cfg.batching(),
        deps.shutdown.clone(),
    );
    background.push(deps.tasks.spawn(
        ROLE,
        "scoring.consumer",
        None,
        deps.shutdown.clone(),
        move |_| consume::run(bus.clone(), s.clone(), batching, shutdown.clone()),
    ));
    let scheduler = Arc::new(Scheduler::new(
        scorer.clone(),
        cfg.scheduler_batch,
        cfg.recompute_batch,
        Some(relay.clone()),
    ));
    let every = Duration::from_millis(cfg.scheduler_interval_ms);
    let shutdown = deps.shutdown.clone();
    background.push(deps.tasks.spawn(
        ROLE,
        "scoring.scheduler",
        Some(SCHEDULER_DEADLINE.max(every * 4)),
        deps.shutdown.clone(),
        move |beat| scheduler.clone().run(every, shutdown.clone(), beat),
    ));
    let health = deps.health(ROLE, Some(&db));
    // Every `/v1` route needs the gateway's service credential (DESIGN.md §10).
    let guard = Some(platform::http::ServiceKey::derive(
        cfg.internal_key.expose(),
    ));
    let state = api::ApiState {
        scorer,
        relay: Some(relay),
        dry_run_max_sample: cfg.dry_run_max_sample,
    };
    let served =
        role::serve_until_shutdown(ROLE, &cfg.http, health, api::routes(state), guard, &deps).await;
    platform::tasks::drain(background, role::DRAIN).await;
    served
}

/// Creates the service's database if needed and applies its migrations.
pub async fn migrate(cfg: &Config) -> Result<(), RoleError> {
    role::migrate::<store::Migrator>(ROLE, &cfg.database).await
}
