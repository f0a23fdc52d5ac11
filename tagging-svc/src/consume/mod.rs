//! The tagging consumer (group `tagging`): resolved events feed behaviour counters and the rules
//! they can change, `profile.updated` the profile facts, merges and un-merges move facts and
//! memberships, tag commands tag. A database that stays busy sends the message back to the bus
//! (`Transient`); a payload that does not decode is parked (`Invalid`).

use std::sync::Arc;

use platform::bus::{consume_batches, Batching, Bus, HandlerError};
use platform::db::outbox::OutboxRelay;
use platform::ServiceError;
use proto::tenant::TenantSettings;
use proto::{Envelope, Event};
use tokio_util::sync::CancellationToken;

use crate::store::tagger::{HandleError, Handled, Tagger};

/// Handles the deliveries that arrived together: tenants' settings and corp-tag changes one by
/// one, everything else in one transaction; one outcome per delivery, in order.
pub async fn handle_batch(
    tagger: &Tagger,
    relay: &OutboxRelay,
    envs: Vec<Envelope>,
) -> Vec<Result<(), HandlerError>> {
    let mut out: Vec<Option<Result<(), HandlerError>>> = Vec::with_capacity(envs.len());
    let mut rest = Vec::new();
    for env in envs {
        if env.kind == TenantSettings::TYPE {
            let done = facts::take_settings(&tagger.db, &tagger.cfg.time_zones, &env).await;
            out.push(Some(done.map_err(|e| ServiceError::from(e).into())));
            continue;
        }
        match crate::wecom::consume::handle(tagger, &env).await {
            Some(done) => out.push(Some(done)),
            None => {
                out.push(None);
                rest.push(env);
            }
        }
    }
    let mut handled = tagger.handle_batch(&rest).await.into_iter();
    let mut wake = false;
    let out = out
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| match handled.next() {
                Some(Ok(Handled::Done(changes))) => {
                    wake |= !changes.is_empty();
                    metrics::counter!(crate::metrics::EVENTS, "outcome" => "done").increment(1);
                    Ok(())
                }
                Some(Ok(Handled::Duplicate)) | Some(Ok(Handled::Ignored)) => Ok(()),
                Some(Err(HandleError::Invalid(reason))) => Err(HandlerError::Invalid(reason)),
                Some(Err(HandleError::Db(e))) => Err(HandlerError::Transient(e.to_string())),
                None => Err(HandlerError::Transient("no outcome for the event".into())),
            })
        })
        .collect();
    if wake {
        relay.wake();
    }
    out
}

/// Handles one delivery.
pub async fn handle(
    tagger: &Tagger,
    relay: &OutboxRelay,
    env: Envelope,
) -> Result<(), HandlerError> {
    handle_batch(tagger, relay, vec![env])
        .await
        .pop()
        .unwrap_or_else(|| Err(HandlerError::Transient("no outcome for the event".into())))
}

/// Subscribes (retrying while the broker is unreachable) and consumes until `shutdown`.
pub async fn run(
    bus: Arc<dyn Bus>,
    tagger: Tagger,
    relay: OutboxRelay,
    batching: Batching,
    shutdown: CancellationToken,
) {
    let spec = platform::bus::group_spec(&*bus, proto::routing::TAGGING, 1);
    consume_batches(crate::ROLE, bus, spec, batching, shutdown, move |envs| {
        let tagger = tagger.clone();
        let relay = relay.clone();
        async move { handle_batch(&tagger, &relay, envs).await }
    })
    .await;
}
