//! WeChat lookups beside the event path: every `identity.enrich` request (group
//! `identity-enrich`, enqueued with the resolution of an OA follow / scan or a WeCom customer
//! added or edited) asks WeChat about the event's subject and applies the answer to the profile
//! ([`Resolver::apply_enrichment`]). The event itself was resolved without waiting: a WeChat
//! outage delays only this.
//!
//! Calls are paced per app (Official Account or WeCom corp) by a rate limit every replica shares
//! through the cache, and at most `identity.wechat.concurrency` run at once per process. A lookup
//! WeChat cannot answer for now goes back to the bus under this group's own retry policy
//! (`identity.wechat.retry_delays_ms` / `max_attempts`, default the bus's) and is parked after its
//! last attempt (`scrm bus replay identity-enrich` applies it later); one that cannot succeed as
//! configured (an app without a secret, a quota used up) is dropped and counted. The consumer
//! runs in every deployment, so the group's queue always has a reader: with lookups switched off
//! nothing is requested, and a request left from before is acknowledged and counted.
//!
//! Metrics: `scrm_identity_enrich_requests_total{outcome}` (`applied`, `duplicate`, `no_answer`,
//! `retry`, `parked`, `gave_up`, `disabled`), `scrm_identity_enrich_rate_waits_total`.

use std::sync::Arc;
use std::time::Duration;

use platform::bus::{consume, Attempt, Bus, GroupSpec, HandlerError};
use platform::cache::{Cache, RateLimiter};
use platform::db::outbox::OutboxRelay;
use proto::identity::EnrichRequested;
use proto::Envelope;
use tokio_util::sync::CancellationToken;

use crate::config::WechatConfig;
use crate::domain::observe;
use crate::enrich::WechatLookup;
use crate::store::{Outcome, ResolveError, Resolver};

/// How far ahead a lookup may book its call slot before it goes back to the bus instead.
const PACE_HORIZON: Duration = Duration::from_secs(30);

/// What the enrichment consumer needs. Cheap to clone.
#[derive(Clone)]
pub struct Enricher {
    pub resolver: Resolver,
    pub relay: OutboxRelay,
    /// `None`: lookups are switched off.
    pub lookup: Option<WechatLookup>,
    pub limiter: RateLimiter,
}

impl Enricher {
    /// The enricher of `cfg` (`identity.wechat`), pacing calls through `cache`.
    pub fn new(
        resolver: Resolver,
        relay: OutboxRelay,
        lookup: Option<WechatLookup>,
        cache: Arc<dyn Cache>,
        cfg: &WechatConfig,
    ) -> Self {
        Enricher {
            resolver,
            relay,
            lookup,
            limiter: RateLimiter::new(cache, "wechat_lookup", cfg.rate_per_minute, cfg.rate_burst),
        }
    }

    /// Handles one request: wait for the app's call slot, ask WeChat, apply its answer.
    pub async fn handle(&self, env: Envelope, attempt: Attempt) -> Result<(), HandlerError> {
        let request: EnrichRequested = env
            .decode()
            .map_err(|e| HandlerError::Invalid(e.to_string()))?;
        let event = request.event;
        let Some(lookup) = &self.lookup else {
            count("disabled");
            return Ok(());
        };
        self.pace(&event).await?;
        let answer = match lookup.for_event(&event).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                count("no_answer");
                return Ok(());
            }
            Err(e) if e.is_transient() => {
                count(if attempt.last { "parked" } else { "retry" });
                return Err(HandlerError::Transient(format!("WeChat lookup: {e}")));
            }
            Err(e) => {
                count("gave_up");
                tracing::warn!(error = %e, event_id = %event.id, "WeChat lookup cannot succeed; the profile keeps what the event carried");
                return Ok(());
            }
        };
        match self.resolver.apply_enrichment(&event, &answer).await {
            Ok(Outcome::Resolved(r)) => {
                self.relay.wake();
                count("applied");
                tracing::debug!(
                    profile_id = %r.profile_id,
                    merged = r.absorbed.len(),
                    attached = r.attached,
                    "WeChat's answer applied"
                );
                Ok(())
            }
            Ok(Outcome::Duplicate) => {
                count("duplicate");
                Ok(())
            }
            Ok(Outcome::NoIdentifiers) => Ok(()),
            Err(ResolveError::Invalid(reason)) => Err(HandlerError::Invalid(reason)),
            Err(e) => Err(HandlerError::Transient(e.to_string())),
        }
    }

    /// Waits for the next call slot of the event's app; back to the bus when none is free soon.
    /// A cache that cannot be reached does not hold lookups up (WeChat's own limit answers
    /// 45011, which is retried).
    async fn pace(&self, event: &Envelope) -> Result<(), HandlerError> {
        let app = observe::event_app(event).unwrap_or_default();
        let key = format!("{}:{app}", event.tenant_id);
        match self.limiter.reserve(&key, PACE_HORIZON).await {
            Ok(Some(wait)) => {
                if !wait.is_zero() {
                    metrics::counter!(crate::metrics::ENRICH_RATE_WAITS).increment(1);
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Ok(None) => {
                count("retry");
                Err(HandlerError::Transient(format!(
                    "WeChat call rate of app {app} used up for the next {} s",
                    PACE_HORIZON.as_secs()
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, "Rate limit unavailable; calling WeChat unpaced");
                Ok(())
            }
        }
    }
}

fn count(outcome: &'static str) {
    metrics::counter!(crate::metrics::ENRICH_REQUESTS, "outcome" => outcome).increment(1);
}

/// The enrichment group's spec: the bus's policy, with `cfg`'s retries where set.
pub fn group_spec(bus: &dyn Bus, cfg: &WechatConfig) -> GroupSpec {
    platform::bus::group_spec(bus, proto::routing::IDENTITY_ENRICH, cfg.concurrency)
        .with_retries(cfg.max_attempts, cfg.retry_delays_ms.as_deref())
}

/// Subscribes (retrying while the broker is unreachable) and looks up until `shutdown`.
pub async fn run(
    bus: Arc<dyn Bus>,
    enricher: Enricher,
    cfg: WechatConfig,
    shutdown: CancellationToken,
) {
    let spec = group_spec(&*bus, &cfg);
    consume(
        "identity-enrich",
        bus,
        spec,
        cfg.concurrency,
        shutdown,
        move |env, attempt| {
            let enricher = enricher.clone();
            async move { enricher.handle(env, attempt).await }
        },
    )
    .await;
}
