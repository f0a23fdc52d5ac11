//! One consumer loop for every service: receive, handle, settle by what the handler says.

use std::future::Future;
use std::sync::Arc;

use proto::Envelope;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Bus, Delivery, GroupSpec, RetryOutcome, Subscription};

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

/// A service failure on the bus: the failures of the moment (database, a dependency, throttling)
/// retry; everything else — the message is wrong and always will be — parks.
impl From<crate::ServiceError> for HandlerError {
    fn from(e: crate::ServiceError) -> Self {
        if e.is_transient() {
            HandlerError::Transient(e.to_string())
        } else {
            HandlerError::Invalid(e.to_string())
        }
    }
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
            settle(name, delivery, outcome).await;
        };
        tokio::spawn(task.instrument(span));
    }
    // Wait for in-flight handlers so their settlements go out before shutdown completes.
    let _ = permits.acquire_many(concurrency.max(1) as u32).await;
}

/// Settles `delivery` by its handler's `outcome`: `Ok` acks, `Transient` retries (parking after
/// the last attempt), `Invalid` parks.
async fn settle(name: &'static str, delivery: Delivery, outcome: Result<(), HandlerError>) {
    let settled = match outcome {
        Ok(()) => {
            metrics::counter!(crate::metrics::CONSUMER_HANDLED, "consumer" => name).increment(1);
            delivery.ack().await
        }
        Err(HandlerError::Transient(reason)) => {
            metrics::counter!(crate::metrics::CONSUMER_FAILED, "consumer" => name, "kind" => "transient").increment(1);
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
            metrics::counter!(crate::metrics::CONSUMER_FAILED, "consumer" => name, "kind" => "invalid").increment(1);
            tracing::error!(error = %reason, "Message cannot be handled; parked");
            delivery.park(&reason).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "Could not settle message; it will be redelivered");
    }
}

/// How [`run_batch_consumer`] gathers deliveries into handler calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Handler calls at once.
    pub concurrency: usize,
    /// Most deliveries in one call.
    pub batch: usize,
    /// How long a call may wait, from its first delivery, for more to fill it (zero: it takes
    /// only what is waiting).
    pub linger: std::time::Duration,
}

/// Like [`run_consumer`], but a handler call takes the deliveries waiting at that moment, up to
/// `batch` of them, so a service can apply them in one transaction; with a `linger` it also
/// waits that long after the first for more. Without one an idle queue gives batches of one
/// and a busy one full batches, which is when the saved round trips and commits matter; the
/// linger buys the same savings at moderate load for a few milliseconds of latency. At most
/// `concurrency` batches are handled at once.
///
/// The handler returns one outcome per envelope, in order; each delivery is settled by its own
/// outcome as in [`run_consumer`]. A handler that returns the wrong number of outcomes has its
/// unmatched deliveries redelivered.
pub async fn run_batch_consumer<H, F>(
    name: &'static str,
    mut sub: Subscription,
    batching: Batching,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Vec<(Envelope, Attempt)>) -> F + Send + Sync + 'static,
    F: Future<Output = Vec<Result<(), HandlerError>>> + Send + 'static,
{
    let Batching {
        concurrency,
        batch,
        linger,
    } = batching;
    let handler = Arc::new(handler);
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        // A permit first: deliveries that wait for a free handler keep gathering in the channel
        // and make the next batch.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            d = sub.recv() => match d {
                Some(d) => d,
                None => break,
            },
        };
        let until = tokio::time::Instant::now() + linger;
        let mut deliveries = vec![first];
        while deliveries.len() < batch.max(1) {
            match sub.try_recv() {
                Some(d) => deliveries.push(d),
                None if linger.is_zero() => break,
                None => match tokio::time::timeout_at(until, sub.recv()).await {
                    Ok(Some(d)) => deliveries.push(d),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        let handler = handler.clone();
        let span = tracing::info_span!("consume_batch", consumer = name, size = deliveries.len());
        let task = async move {
            let _permit = permit;
            let input = deliveries
                .iter()
                .map(|d| {
                    (
                        d.envelope.clone(),
                        Attempt {
                            number: d.attempt,
                            last: d.is_last_attempt(),
                        },
                    )
                })
                .collect();
            let outcomes = handler(input).await;
            metrics::histogram!(crate::metrics::CONSUMER_BATCH_SIZE, "consumer" => name)
                .record(deliveries.len() as f64);
            // Settled concurrently: each is a round trip to the broker.
            let settles = deliveries
                .into_iter()
                .zip(outcomes)
                .map(|(d, o)| settle(name, d, o));
            futures_util::future::join_all(settles).await;
        };
        tokio::spawn(task.instrument(span));
    }
    let _ = permits.acquire_many(concurrency.max(1) as u32).await;
}

/// The spec of a consumer group of `proto::routing` under `bus`'s policy (the `bus.*` settings
/// it was connected with), with enough prefetch for `concurrency` handlers.
pub fn group_spec(bus: &dyn Bus, def: proto::routing::GroupDef, concurrency: usize) -> GroupSpec {
    let mut spec = GroupSpec::of(def, &bus.policy());
    let wanted = u16::try_from(concurrency).unwrap_or(u16::MAX);
    spec.prefetch = spec.prefetch.max(wanted);
    spec
}

/// Declares `groups` under `bus`'s policy, as every process does at start so that nothing
/// published before a group's consumer first runs is dropped as unroutable. On failure, the name
/// of the group that could not be declared.
pub async fn declare_groups(
    bus: &dyn Bus,
    groups: &[proto::routing::GroupDef],
) -> Result<(), (&'static str, super::BusError)> {
    let policy = bus.policy();
    for g in groups {
        bus.declare(&GroupSpec::of(*g, &policy))
            .await
            .map_err(|e| (g.name, e))?;
    }
    Ok(())
}

/// A role's consumer for its whole life, as every service runs it: subscribes to `spec`
/// (retrying while the broker is unreachable, [`subscribe_retrying`]) and hands each delivery to
/// `handler` ([`run_consumer`]) until `shutdown`.
pub async fn consume<H, F>(
    name: &'static str,
    bus: Arc<dyn Bus>,
    spec: GroupSpec,
    concurrency: usize,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Envelope, Attempt) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let Some(sub) = subscribe_retrying(&bus, &spec, &shutdown).await else {
        return;
    };
    run_consumer(name, sub, concurrency, shutdown, handler).await;
}

/// [`consume`] in batches ([`run_batch_consumer`]): `spec`'s prefetch is raised to hold
/// `batching.concurrency` full batches, and the handler gets the envelopes waiting together
/// (their attempts are the handler's business only through its outcomes).
pub async fn consume_batches<H, F>(
    name: &'static str,
    bus: Arc<dyn Bus>,
    mut spec: GroupSpec,
    batching: Batching,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Vec<Envelope>) -> F + Send + Sync + 'static,
    F: Future<Output = Vec<Result<(), HandlerError>>> + Send + 'static,
{
    let in_flight = batching.concurrency.max(1) * batching.batch.max(1);
    spec.prefetch = spec
        .prefetch
        .max(u16::try_from(in_flight).unwrap_or(u16::MAX));
    let Some(sub) = subscribe_retrying(&bus, &spec, &shutdown).await else {
        return;
    };
    run_batch_consumer(name, sub, batching, shutdown, move |deliveries| {
        handler(deliveries.into_iter().map(|(env, _)| env).collect())
    })
    .await;
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
