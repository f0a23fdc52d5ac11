//! The channel-event consumer: every event on `channel.#` (group `identity`) is resolved to a
//! profile. Database races are retried inside [`Resolver::resolve`]; contention that outlasts
//! those attempts, and any other database failure, goes back to the bus (`Transient`); a payload
//! that does not decode is parked (`Invalid`). Events carrying no identifier (WeCom group-chat
//! and corp-tag changes, member messages, unmodelled callbacks) are acknowledged without effect.

use std::sync::Arc;

use platform::bus::{run_consumer, subscribe_retrying, Attempt, Bus, GroupSpec, HandlerError};
use platform::db::outbox::OutboxRelay;
use proto::Envelope;
use tokio_util::sync::CancellationToken;

use crate::enrich::WechatLookup;
use crate::store::{Outcome, ResolveError, Resolver};

/// Handles one delivery: asks WeChat about the event's subject when it is worth it (a failing
/// lookup is retried through the bus; on the last attempt the event is resolved without it, as
/// what it carries itself must not wait on WeChat), then resolves it.
pub async fn handle(
    resolver: &Resolver,
    relay: &OutboxRelay,
    lookup: Option<&WechatLookup>,
    env: Envelope,
    attempt: Attempt,
) -> Result<(), HandlerError> {
    let enriched = match lookup {
        None => None,
        Some(l) => match l.for_event(&env).await {
            Ok(e) => e,
            Err(e) if e.is_transient() && !attempt.last => {
                return Err(HandlerError::Transient(format!("WeChat lookup: {e}")));
            }
            Err(e) => {
                metrics::counter!("scrm_identity_enrichment_skipped_total").increment(1);
                tracing::warn!(error = %e, attempt = attempt.number, "Resolving without WeChat's answer");
                None
            }
        },
    };
    match resolver.resolve_enriched(&env, enriched.as_ref()).await {
        Ok(Outcome::Resolved(r)) => {
            relay.wake();
            tracing::debug!(
                profile_id = %r.profile_id,
                created = r.created,
                merged = r.absorbed.len(),
                attached = r.attached,
                refused = r.refused,
                attempts = r.attempts,
                "Event resolved"
            );
            Ok(())
        }
        Ok(Outcome::Duplicate) | Ok(Outcome::NoIdentifiers) => Ok(()),
        Err(ResolveError::Invalid(reason)) => Err(HandlerError::Invalid(reason)),
        Err(e) => Err(HandlerError::Transient(e.to_string())),
    }
}

/// The identity group's spec under `bus`'s policy.
pub fn group_spec(bus: &dyn Bus, concurrency: usize) -> GroupSpec {
    platform::bus::group_spec(bus, proto::routing::IDENTITY, concurrency)
}

/// Subscribes (retrying while the broker is unreachable) and consumes until `shutdown`.
pub async fn run(
    bus: Arc<dyn Bus>,
    resolver: Resolver,
    relay: OutboxRelay,
    lookup: Option<WechatLookup>,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let Some(sub) = subscribe_retrying(&bus, &group_spec(&*bus, concurrency), &shutdown).await
    else {
        return;
    };
    run_consumer(
        crate::ROLE,
        sub,
        concurrency,
        shutdown,
        move |env, attempt| {
            let resolver = resolver.clone();
            let relay = relay.clone();
            let lookup = lookup.clone();
            async move { handle(&resolver, &relay, lookup.as_ref(), env, attempt).await }
        },
    )
    .await;
}
