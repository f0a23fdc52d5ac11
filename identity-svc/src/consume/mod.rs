//! The channel-event consumer: every event on `channel.#` (group `identity`) is resolved to a
//! profile. Database races are retried inside [`Resolver::resolve`]; contention that outlasts
//! those attempts, and any other database failure, goes back to the bus (`Transient`); a payload
//! that does not decode is parked (`Invalid`). Events carrying no identifier (WeCom group-chat
//! and corp-tag changes, member messages, unmodelled callbacks) are acknowledged without effect.
//! An event never waits on WeChat: lookups run beside it ([`enrich`], group `identity-enrich`).

pub mod enrich;

use std::sync::Arc;

use platform::bus::{run_consumer, subscribe_retrying, Bus, GroupSpec, HandlerError};
use platform::db::outbox::OutboxRelay;
use proto::Envelope;
use tokio_util::sync::CancellationToken;

use crate::store::{Outcome, ResolveError, Resolver};

/// Handles one delivery: resolves the event on what it carries (and, when the resolver asks for
/// lookups, requests WeChat's answer in the same transaction).
pub async fn handle(
    resolver: &Resolver,
    relay: &OutboxRelay,
    env: Envelope,
) -> Result<(), HandlerError> {
    match resolver.resolve(&env).await {
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
        move |env, _attempt| {
            let resolver = resolver.clone();
            let relay = relay.clone();
            async move { handle(&resolver, &relay, env).await }
        },
    )
    .await;
}
