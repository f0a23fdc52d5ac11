//! The bus consumer (group `scoring`: `profile.resolved`, `profile.updated`, `tag.changed`,
//! `identity.merged`, `identity.unmerged`). Each message is applied once by [`Scorer::handle`];
//! contention that outlasts its retries, and any other database failure, goes back to the bus
//! (`Transient`); a payload that does not decode, or stored leads no retry can make sense of (a
//! merge chain that does not end), is parked (`Invalid`).
//!
//! The consumer does not wake the outbox relay after each event: the relay publishes what many
//! events wrote in one pass every `scoring.outbox_poll_ms`, which costs the database one claim
//! per pass instead of one per event.

use std::sync::Arc;

use platform::bus::{consume_batches, Batching, Bus, GroupSpec, HandlerError};
use proto::Envelope;
use tokio_util::sync::CancellationToken;

use crate::store::{Outcome, ScoreError, Scorer};

fn settled(r: Result<Outcome, ScoreError>) -> Result<(), HandlerError> {
    match r {
        Ok(Outcome::Applied) | Ok(Outcome::Duplicate) | Ok(Outcome::Ignored) => Ok(()),
        Err(ScoreError::Invalid(reason)) => Err(HandlerError::Invalid(reason)),
        Err(e) if e.is_invalid() => Err(HandlerError::Invalid(e.to_string())),
        Err(e) => Err(HandlerError::Transient(e.to_string())),
    }
}

/// Handles one delivery.
pub async fn handle(scorer: &Scorer, env: Envelope) -> Result<(), HandlerError> {
    settled(scorer.handle(&env).await)
}

/// The group spec: the scoring group's bindings under `bus`'s policy, and enough prefetch for
/// `concurrency` handlers of `batch` deliveries.
pub fn group_spec(bus: &dyn Bus, concurrency: usize, batch: usize) -> GroupSpec {
    platform::bus::group_spec(bus, proto::routing::SCORING, concurrency * batch.max(1))
}

/// Subscribes (retrying while the broker is unreachable) and consumes until `shutdown`: the
/// deliveries waiting together, up to `batch`, in one transaction.
pub async fn run(
    bus: Arc<dyn Bus>,
    scorer: Scorer,
    batching: Batching,
    shutdown: CancellationToken,
) {
    let spec = group_spec(&*bus, batching.concurrency, batching.batch);
    consume_batches(crate::ROLE, bus, spec, batching, shutdown, move |envs| {
        let scorer = scorer.clone();
        async move {
            scorer
                .handle_batch(&envs)
                .await
                .into_iter()
                .map(settled)
                .collect()
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use sea_orm::DbErr;

    use super::*;

    #[test]
    fn stored_leads_no_retry_helps_are_parked_and_database_failures_retried() {
        let r = settled(Err(ScoreError::MergeChain {
            profile: "p1".into(),
        }));
        assert!(
            matches!(&r, Err(HandlerError::Invalid(m)) if m.contains("`p1`")),
            "{r:?}"
        );
        let r = settled(Err(ScoreError::SurvivorNotLocked {
            profile: "p1".into(),
        }));
        assert!(matches!(r, Err(HandlerError::Invalid(_))), "{r:?}");
        let r = settled(Err(ScoreError::Db(DbErr::Custom("gone".into()))));
        assert!(matches!(r, Err(HandlerError::Transient(_))), "{r:?}");
    }
}
