//! The bus consumer (group `scoring`: `profile.resolved`, `profile.updated`, `tag.changed`,
//! `identity.merged`, `identity.unmerged`). Each message is applied once by [`Scorer::handle`];
//! contention that outlasts its retries, and any other database failure, goes back to the bus
//! (`Transient`); a payload that does not decode is parked (`Invalid`).
//!
//! The consumer does not wake the outbox relay after each event: the relay publishes what many
//! events wrote in one pass every `scoring.outbox_poll_ms`, which costs the database one claim
//! per pass instead of one per event.

use std::sync::Arc;
use std::time::Duration;

use platform::bus::{run_consumer, Bus, GroupSpec, HandlerError};
use platform::config::BusConfig;
use proto::Envelope;
use tokio_util::sync::CancellationToken;

use crate::store::{Outcome, ScoreError, Scorer};

/// Handles one delivery.
pub async fn handle(scorer: &Scorer, env: Envelope) -> Result<(), HandlerError> {
    match scorer.handle(&env).await {
        Ok(Outcome::Applied) | Ok(Outcome::Duplicate) | Ok(Outcome::Ignored) => Ok(()),
        Err(ScoreError::Invalid(reason)) => Err(HandlerError::Invalid(reason)),
        Err(e) => Err(HandlerError::Transient(e.to_string())),
    }
}

/// The group spec: the scoring group's bindings with the bus defaults' retry policy, and enough
/// prefetch for `concurrency` handlers.
pub fn group_spec(concurrency: usize) -> GroupSpec {
    let g = proto::routing::SCORING;
    let cfg = BusConfig::memory();
    let mut spec = GroupSpec::new(g.name, g.bindings, &cfg);
    let wanted = u16::try_from(concurrency).unwrap_or(u16::MAX);
    spec.prefetch = spec.prefetch.max(wanted);
    spec
}

/// Subscribes (retrying while the broker is unreachable) and consumes until `shutdown`.
pub async fn run(
    bus: Arc<dyn Bus>,
    scorer: Scorer,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let spec = group_spec(concurrency);
    let mut backoff = Duration::from_millis(200);
    let sub = loop {
        match bus.subscribe(&spec).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "Cannot subscribe to scoring events");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    };
    run_consumer(
        crate::ROLE,
        sub,
        concurrency,
        shutdown,
        move |env, _attempt| {
            let scorer = scorer.clone();
            async move { handle(&scorer, env).await }
        },
    )
    .await;
}
