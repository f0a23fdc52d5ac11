//! Tagging service: tag groups, tags, visual tag rules evaluated in real time and in bulk (preview, backfill, export), analytics breakdowns of the tenant or a segment, personas with their reports and campaign validations, behaviour counters, WeCom corp-tag sync (mirror, write-back, reps' own tagging in WeCom).
//!
//! Owns: tags, tag groups, tag rules, the profile-facts projection, behaviour counters, segment jobs, saved segments and their size history, personas (its own database). Must not touch: identity tables (it keeps a projection fed by bus events), score logic, WeChat secrets.
//!
//! Inner shape (shared by every service): `api/` internal HTTP handlers, `consume/` the bus
//! consumer, `domain/` pure decisions (rule settling: which rules match, what each does to its
//! membership, when to look again, chained rules up to a bound), `store/` tables, migrations and
//! the transactions (catalogue, memberships, rules and their cache, the evaluation engine that
//! loads, lets the domain decide and writes, the tagger tying them to events and the
//! scheduler); the pure condition logic is the `rules` crate and the facts projection the
//! `facts` crate; `wecom/` the corp-tag mirror and the write-back worker; `refresher` the
//! scheduled refresh of saved segments.

pub mod api;
pub mod clock;
pub mod config;
pub mod consume;
pub mod domain;
pub mod metrics;
pub mod refresher;
pub mod store;
pub mod wecom;

pub use config::Config;

use std::sync::Arc;
use std::time::Duration;

use platform::db::outbox::OutboxRelay;
use platform::role::{self, RoleError};
use platform::Deps;

use crate::clock::{Clock, SystemClock};
use crate::store::engine::Engine;
use crate::store::rules::RuleCache;
use crate::store::tagger::Tagger;

/// Role name in logs, readiness output and `scrm tagging`.
pub const ROLE: &str = "tagging";

/// How long a process serves a tenant's rule set before reloading it (rules changed through
/// another replica take effect within this).
const RULE_CACHE_TTL: Duration = Duration::from_secs(5);

/// Runs the service until `deps.shutdown`: database (migrated in embedded mode), outbox relay,
/// the consumer, the scheduler (window exits, counter rolls), the scheduled refresh of saved
/// segments ([`refresher`]), the WeCom corp-tag mirror and write-back worker
/// ([`wecom::start`]), internal HTTP API (every `/v1` route requires the gateway's service
/// credential, signed under a key derived from `internal_key`) with `/healthz`, `/readyz`,
/// `/metrics`.
pub async fn run(cfg: Config, deps: Deps) -> Result<(), RoleError> {
    run_with_clock(cfg, deps, Arc::new(SystemClock)).await
}

/// [`run`] on a given clock (tests move time by hand).
pub async fn run_with_clock(
    cfg: Config,
    deps: Deps,
    clock: Arc<dyn Clock>,
) -> Result<(), RoleError> {
    crate::metrics::describe();
    let db = role::open_db::<store::Migrator>(ROLE, &cfg.database, &deps).await?;
    // The zones tenants' operators set, over the configured ones.
    facts::announce_at_start(ROLE, &db, &cfg.time_zones).await?;
    let (wecom, mut background) = wecom::start(&cfg, &db, &deps)?;
    let relay = OutboxRelay::new(db.clone(), deps.bus.clone());
    background.push(relay.spawn(&deps.tasks, ROLE, &deps.shutdown));
    let mut tagger = tagger(db.clone(), cfg.clone(), clock);
    tagger.jobs = store::backfill::Jobs::new(deps.tasks.clone(), deps.shutdown.clone());
    let resumed = store::backfill::resume(&tagger)
        .await
        .map_err(|e| RoleError::Other {
            role: ROLE,
            message: format!("cannot read unfinished jobs: {e}"),
        })?;
    if resumed > 0 {
        tracing::info!(jobs = resumed, "Resuming unfinished tagging jobs");
    }
    let (bus, t, r, batching, shutdown) = (
        deps.bus.clone(),
        tagger.clone(),
        relay.clone(),
        cfg.batching(),
        deps.shutdown.clone(),
    );
    background.push(deps.tasks.spawn(
        ROLE,
        "tagging.consumer",
        None,
        deps.shutdown.clone(),
        move |_| {
            consume::run(
                bus.clone(),
                t.clone(),
                r.clone(),
                batching,
                shutdown.clone(),
            )
        },
    ));
    let every = Duration::from_millis(cfg.scheduler_interval_ms);
    let (t, shutdown) = (tagger.clone(), deps.shutdown.clone());
    background.push(deps.tasks.spawn(
        ROLE,
        "tagging.scheduler",
        Some(SCHEDULER_DEADLINE.max(every * 4)),
        deps.shutdown.clone(),
        move |beat| scheduler(t.clone(), relay.clone(), every, shutdown.clone(), beat),
    ));
    let (t, shutdown) = (tagger.clone(), deps.shutdown.clone());
    background.push(deps.tasks.spawn(
        ROLE,
        "tagging.saved_segments",
        Some(refresher::DEADLINE),
        deps.shutdown.clone(),
        move |beat| refresher::run(t.clone(), shutdown.clone(), beat),
    ));
    let health = deps.health(ROLE, Some(&db));
    let routes = api::wecom::routes(api::routes(tagger), db.clone(), wecom);
    // Every `/v1` request must carry a service credential the gateway signed.
    let guard = Some(platform::http::ServiceKey::derive(
        cfg.internal_key.expose(),
    ));
    let served = role::serve_until_shutdown(ROLE, &cfg.http, health, routes, guard, &deps).await;
    platform::tasks::drain(background, role::DRAIN).await;
    served
}

/// The service's transactions over `db`.
pub fn tagger(db: sea_orm::DatabaseConnection, cfg: Config, clock: Arc<dyn Clock>) -> Tagger {
    Tagger {
        engine: Engine {
            rules: RuleCache::new(db.clone(), rules::Limits::default(), RULE_CACHE_TTL),
            max_rounds: cfg.max_chain_rounds,
        },
        db,
        cfg: Arc::new(cfg),
        clock,
        rolled: Arc::default(),
        jobs: Default::default(),
    }
}

/// A scheduler pass (counter rolls, window exits) that takes longer than this is stalled.
const SCHEDULER_DEADLINE: Duration = Duration::from_secs(300);

/// Every `every`: roll counters, evaluate due window exits.
async fn scheduler(
    tagger: Tagger,
    relay: OutboxRelay,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
    beat: platform::tasks::Beat,
) {
    loop {
        beat.beat();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match tagger.tick().await {
            Ok(n) if n > 0 => relay.wake(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Scheduler pass failed; next pass retries"),
        }
    }
}

/// Creates the service's database if needed and applies its migrations.
pub async fn migrate(cfg: &Config) -> Result<(), RoleError> {
    role::migrate::<store::Migrator>(ROLE, &cfg.database).await
}
