//! The channel-event consumer: every event on `channel.#` (group `identity`) is resolved to a
//! profile, the deliveries waiting together in one transaction
//! ([`Resolver::resolve_batch`]). Database races are retried inside it; contention that outlasts
//! those attempts, and any other database failure, goes back to the bus (`Transient`); a payload
//! that does not decode is parked (`Invalid`). Events carrying no identifier (WeCom group-chat
//! and corp-tag changes, member messages, unmodelled callbacks) are acknowledged without effect.
//! An event never waits on WeChat: lookups run beside it ([`enrich`], group `identity-enrich`).

pub mod enrich;

use std::sync::Arc;

use platform::bus::{consume_batches, Batching, Bus, GroupSpec, HandlerError};
use platform::db::outbox::OutboxRelay;
use proto::Envelope;
use tokio_util::sync::CancellationToken;

use crate::store::{Outcome, ResolveError, Resolver};

/// Handles the deliveries that arrived together: resolves them on what they carry, in one
/// transaction (and, when the resolver asks for lookups, requests WeChat's answers in it). One
/// outcome per delivery, in order.
pub async fn handle_batch(
    resolver: &Resolver,
    relay: &OutboxRelay,
    envs: Vec<Envelope>,
) -> Vec<Result<(), HandlerError>> {
    let mut wake = false;
    let out = resolver
        .resolve_batch(&envs)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(Outcome::Resolved(r)) => {
                wake = true;
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
        })
        .collect();
    if wake {
        relay.wake();
    }
    out
}

/// Handles one delivery.
pub async fn handle(
    resolver: &Resolver,
    relay: &OutboxRelay,
    env: Envelope,
) -> Result<(), HandlerError> {
    handle_batch(resolver, relay, vec![env])
        .await
        .pop()
        .unwrap_or_else(|| Err(HandlerError::Transient("no outcome for the event".into())))
}

/// The identity group's spec under `bus`'s policy, with prefetch for `in_flight` deliveries.
pub fn group_spec(bus: &dyn Bus, in_flight: usize) -> GroupSpec {
    platform::bus::group_spec(bus, proto::routing::IDENTITY, in_flight)
}

/// Subscribes (retrying while the broker is unreachable) and consumes until `shutdown`.
pub async fn run(
    bus: Arc<dyn Bus>,
    resolver: Resolver,
    relay: OutboxRelay,
    batching: Batching,
    shutdown: CancellationToken,
) {
    let spec = group_spec(&*bus, 1);
    consume_batches(crate::ROLE, bus, spec, batching, shutdown, move |envs| {
        let resolver = resolver.clone();
        let relay = relay.clone();
        async move { handle_batch(&resolver, &relay, envs).await }
    })
    .await;
}
