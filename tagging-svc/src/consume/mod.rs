//! The tagging consumer (group `tagging`): resolved events feed behaviour counters and the rules
//! they can change, `profile.updated` the profile facts, merges and un-merges move facts and
//! memberships, tag commands tag. A database that stays busy sends the message back to the bus
//! (`Transient`); a payload that does not decode is parked (`Invalid`).

use std::sync::Arc;

use platform::bus::{run_consumer, subscribe_retrying, Bus, HandlerError};
use platform::db::outbox::OutboxRelay;
use proto::Envelope;
use tokio_util::sync::CancellationToken;

use crate::store::tagger::{HandleError, Handled, Tagger};

/// Handles one delivery.
pub async fn handle(
    tagger: &Tagger,
    relay: &OutboxRelay,
    env: Envelope,
) -> Result<(), HandlerError> {
    if let Some(done) = crate::wecom::consume::handle(tagger, &env).await {
        return done;
    }
    match tagger.handle(&env).await {
        Ok(Handled::Done(changes)) => {
            if !changes.is_empty() {
                relay.wake();
            }
            metrics::counter!("scrm_tagging_events_total", "outcome" => "done").increment(1);
            Ok(())
        }
        Ok(Handled::Duplicate) | Ok(Handled::Ignored) => Ok(()),
        Err(HandleError::Invalid(reason)) => Err(HandlerError::Invalid(reason)),
        Err(HandleError::Db(e)) => Err(HandlerError::Transient(e.to_string())),
    }
}

/// Subscribes (retrying while the broker is unreachable) and consumes until `shutdown`.
pub async fn run(
    bus: Arc<dyn Bus>,
    tagger: Tagger,
    relay: OutboxRelay,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let spec = platform::bus::group_spec(proto::routing::TAGGING, concurrency);
    let Some(sub) = subscribe_retrying(&bus, &spec, &shutdown).await else {
        return;
    };
    run_consumer(
        crate::ROLE,
        sub,
        concurrency,
        shutdown,
        move |env, _attempt| {
            let tagger = tagger.clone();
            let relay = relay.clone();
            async move { handle(&tagger, &relay, env).await }
        },
    )
    .await;
}
