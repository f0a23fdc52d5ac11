//! One consumer loop for every service: receive, handle, settle by what the handler says.

use std::future::Future;
use std::sync::Arc;

use proto::Envelope;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Bus, GroupSpec, RetryOutcome, Subscription};
use crate::config::BusConfig;

/// What a handler tells the loop to do with a message it could not handle.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// May pass later (database busy, deadlock, downstream down): retry with back-off.
    #[error("transient: {0}")]
    Transient(String),
    /// Can never be handled (malformed payload, unknown tenant): park it now.
    #[error("invalid: {0}")]
    Invalid(String),
}

/// Which delivery of a message a handler sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first delivery.
    pub number: u32,
    /// A transient failure now parks the message instead of retrying it: a handler that can
    /// degrade (do without an optional lookup) should do so now.
    pub last: bool,
}

/// Runs `handler` on every delivery of `sub`, up to `concurrency` at once, until `shutdown`.
///
/// `Ok` acks, `Transient` retries (parking after the last attempt), `Invalid` parks. A handler
/// that panics leaves its delivery unsettled, so it is redelivered.
pub async fn run_consumer<H, F>(
    name: &'static str,
    mut sub: Subscription,
    concurrency: usize,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Envelope, Attempt) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            d = sub.recv() => match d {
                Some(d) => d,
                None => break,
            },
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let handler = handler.clone();
        let span = tracing::info_span!(
            "consume",
            consumer = name,
            message_id = %delivery.envelope.id,
            r#type = %delivery.envelope.kind,
            tenant_id = %delivery.envelope.tenant_id,
            trace_id = %delivery.envelope.trace_id,
            attempt = delivery.attempt,
        );
        let task = async move {
            let _permit = permit;
            let attempt = Attempt {
                number: delivery.attempt,
                last: delivery.is_last_attempt(),
            };
            let outcome = handler(delivery.envelope.clone(), attempt).await;
            let settled = match outcome {
                Ok(()) => {
                    metrics::counter!("scrm_consumer_handled_total", "consumer" => name)
                        .increment(1);
                    delivery.ack().await
                }
                Err(HandlerError::Transient(reason)) => {
                    metrics::counter!("scrm_consumer_failed_total", "consumer" => name, "kind" => "transient").increment(1);
                    match delivery.retry(&reason).await {
                        Ok(RetryOutcome::Scheduled(delay)) => {
                            tracing::warn!(error = %reason, retry_in = ?delay, "Handler failed; will retry");
                            Ok(())
                        }
                        Ok(RetryOutcome::Parked) => {
                            tracing::error!(error = %reason, "Handler failed on the last attempt; message parked");
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(HandlerError::Invalid(reason)) => {
                    metrics::counter!("scrm_consumer_failed_total", "consumer" => name, "kind" => "invalid").increment(1);
                    tracing::error!(error = %reason, "Message cannot be handled; parked");
                    delivery.park(&reason).await
                }
            };
            if let Err(e) = settled {
                tracing::warn!(error = %e, "Could not settle message; it will be redelivered");
            }
        };
        tokio::spawn(task.instrument(span));
    }
    // Wait for in-flight handlers so their settlements go out before shutdown completes.
    let _ = permits.acquire_many(concurrency.max(1) as u32).await;
}

/// The spec of a consumer group of `proto::routing` with the bus defaults' retry policy and
/// enough prefetch for `concurrency` handlers.
pub fn group_spec(def: proto::routing::GroupDef, concurrency: usize) -> GroupSpec {
    let mut spec = GroupSpec::new(def.name, def.bindings, &BusConfig::memory());
    let wanted = u16::try_from(concurrency).unwrap_or(u16::MAX);
    spec.prefetch = spec.prefetch.max(wanted);
    spec
}

/// Subscribes, retrying with back-off while the broker is unreachable; `None` once `shutdown`
/// fires first.
pub async fn subscribe_retrying(
    bus: &Arc<dyn Bus>,
    spec: &GroupSpec,
    shutdown: &CancellationToken,
) -> Option<Subscription> {
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        match bus.subscribe(spec).await {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(group = %spec.group, error = %e, retry_in = ?backoff, "Cannot subscribe");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
        }
    }
}
