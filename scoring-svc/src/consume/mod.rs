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
use platform::ServiceError;
use proto::tenant::TenantSettings;
use proto::{Envelope, Event};
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
    handle_batch(scorer, vec![env])
        .await
        .pop()
        .unwrap_or_else(|| Err(HandlerError::Transient("no outcome for the event".into())))
}

/// Handles the deliveries that arrived together: tenants' settings one by one, everything else
/// in one transaction ([`Scorer::handle_batch`]); one outcome per delivery, in order.
pub async fn handle_batch(scorer: &Scorer, envs: Vec<Envelope>) -> Vec<Result<(), HandlerError>> {
    let (settings, rest): (Vec<_>, Vec<_>) = envs
        .into_iter()
        .enumerate()
        .partition(|(_, e)| e.kind == TenantSettings::TYPE);
    let mut out: Vec<Option<Result<(), HandlerError>>> =
        (0..settings.len() + rest.len()).map(|_| None).collect();
    for (i, env) in &settings {
        let done = facts::take_settings(scorer.db(), &scorer.cfg.time_zones, env).await;
        out[*i] = Some(done.map_err(|e| ServiceError::from(e).into()));
    }
    let (at, envs): (Vec<usize>, Vec<Envelope>) = rest.into_iter().unzip();
    for (i, r) in at.into_iter().zip(scorer.handle_batch(&envs).await) {
        out[i] = Some(settled(r));
    }
    out.into_iter()
        .map(|o| {
            o.unwrap_or_else(|| Err(HandlerError::Transient("no outcome for the event".into())))
        })
        .collect()
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
        async move { handle_batch(&scorer, envs).await }
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
