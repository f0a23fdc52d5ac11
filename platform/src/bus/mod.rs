//! The event bus: one trait, two implementations with the same semantics.
//!
//! - [`AmqpBus`]: RabbitMQ through lapin — a durable topic exchange, one durable queue per consumer
//!   group, persistent messages, publisher confirms, manual ack, bounded prefetch, retry with growing
//!   delay through per-delay queues that dead-letter back into the group's queue, a parking queue
//!   after the last attempt, and reconnection with back-off for publishers and consumers.
//! - [`MemoryBus`]: in-process, for embedded mode and tests: the same topic patterns (`*`, `#`),
//!   at-least-once delivery, redelivery of unacked messages, the same retry and parking policy.
//!
//! Delivery contract (both): a [`Delivery`] must be settled with [`Delivery::ack`],
//! [`Delivery::retry`] or [`Delivery::park`]; one dropped unsettled (a consumer that died
//! mid-message) is redelivered.

mod amqp;
mod consumer;
mod memory;

use std::time::Duration;

use async_trait::async_trait;
use proto::Envelope;

pub use amqp::AmqpBus;
pub use consumer::{
    consume, consume_batches, declare_groups, group_spec, run_batch_consumer, run_consumer,
    subscribe_retrying, Attempt, Batching, HandlerError,
};
pub use memory::MemoryBus;

use crate::config::{BusConfig, BusKind};

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker could not be reached (or the connection dropped and did not come back in time).
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message (publisher confirm nack).
    #[error("message broker refused the message (nack)")]
    Nacked,
    /// The operation did not finish within its time budget.
    #[error("bus operation timed out after {0:?}")]
    Timeout(Duration),
    /// A protocol or topology error (bad queue arguments, unknown group, …).
    #[error("bus error: {0}")]
    Protocol(String),
}

impl BusError {
    /// Worth retrying later (the broker may come back).
    pub fn is_transient(&self) -> bool {
        !matches!(self, BusError::Protocol(_))
    }
}

/// A parked message as the tooling shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parked {
    /// The envelope's id (`None` for bytes that were not an envelope).
    pub id: Option<uuid::Uuid>,
    /// Its type (routing key).
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant_id: Option<String>,
    /// Deliveries it had before it was parked.
    pub attempts: u32,
    /// Why the last one failed.
    pub last_error: Option<String>,
}

/// Retry policy of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries before a message is parked, the first one included.
    pub max_attempts: u32,
    /// Delay before the n-th retry (index n-1); the last one repeats.
    pub delays: Vec<Duration>,
}

impl RetryPolicy {
    /// Delay before retrying a message whose `attempt`-th delivery failed, or `None` to park it.
    pub fn next_delay(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let idx = (attempt.saturating_sub(1) as usize).min(self.delays.len().saturating_sub(1));
        Some(
            self.delays
                .get(idx)
                .copied()
                .unwrap_or(Duration::from_secs(1)),
        )
    }
}

/// What every consumer group of a bus is declared and consumed with: the `bus.prefetch`,
/// `bus.max_attempts` and `bus.retry_delays_ms` settings. A bus carries the one it was connected
/// with ([`Bus::policy`]), so the queues a process declares and the subscriptions its consumers
/// open cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPolicy {
    /// Unacknowledged deliveries a subscriber holds at once (at least).
    pub prefetch: u16,
    /// Retry and parking.
    pub retry: RetryPolicy,
}

impl GroupPolicy {
    /// The policy the settings in `cfg` describe.
    pub fn from_config(cfg: &BusConfig) -> Self {
        GroupPolicy {
            prefetch: cfg.prefetch,
            retry: RetryPolicy {
                max_attempts: cfg.max_attempts,
                delays: cfg.retry_delays(),
            },
        }
    }
}

impl Default for GroupPolicy {
    /// The defaults of `bus.*`.
    fn default() -> Self {
        GroupPolicy::from_config(&BusConfig::memory())
    }
}

/// A consumer group: one durable queue that every subscriber of the group competes on.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// Group name, e.g. `identity`. The queue is named `<exchange>.<group>`.
    pub group: String,
    /// Routing-key patterns (`*` one word, `#` any number of words).
    pub bindings: Vec<String>,
    /// Unacknowledged deliveries a subscriber holds at once.
    pub prefetch: u16,
    /// Retry and parking.
    pub retry: RetryPolicy,
}

impl GroupSpec {
    /// A group with the retry policy and prefetch from `cfg`.
    pub fn new(group: impl Into<String>, bindings: &[&str], cfg: &BusConfig) -> Self {
        Self::with_policy(group, bindings, &GroupPolicy::from_config(cfg))
    }

    /// A group with `policy`.
    pub fn with_policy(group: impl Into<String>, bindings: &[&str], policy: &GroupPolicy) -> Self {
        GroupSpec {
            group: group.into(),
            bindings: bindings.iter().map(|b| b.to_string()).collect(),
            prefetch: policy.prefetch,
            retry: policy.retry.clone(),
        }
    }

    /// One of the system's groups (`proto::routing`) under `policy`.
    pub fn of(def: proto::routing::GroupDef, policy: &GroupPolicy) -> Self {
        Self::with_policy(def.name, def.bindings, policy)
    }

    /// The group with a role's own retries where its config sets them: at most `max_attempts`
    /// deliveries, and `delays_ms` between them.
    pub fn with_retries(mut self, max_attempts: Option<u32>, delays_ms: Option<&[u64]>) -> Self {
        if let Some(n) = max_attempts {
            self.retry.max_attempts = n;
        }
        if let Some(d) = delays_ms {
            self.retry.delays = d.iter().map(|&ms| Duration::from_millis(ms)).collect();
        }
        self
    }
}

/// The bus every role publishes to and consumes from.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes under the envelope's type; returns once the broker has confirmed it durable.
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError>;

    /// Publishes several envelopes in order; returns once all are confirmed. On error some may
    /// have been confirmed (publish again: consumers are idempotent).
    async fn publish_batch(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        for e in envelopes {
            self.publish(e).await?;
        }
        Ok(())
    }

    /// Declares a group's queues and bindings (idempotent). Messages published after this are kept
    /// for the group even while no subscriber is connected.
    async fn declare(&self, spec: &GroupSpec) -> Result<(), BusError>;

    /// Declares the group and starts receiving its messages.
    async fn subscribe(&self, spec: &GroupSpec) -> Result<Subscription, BusError>;

    /// Messages parked for a group (failed every attempt).
    async fn parked_count(&self, group: &str) -> Result<u64, BusError>;

    /// Messages waiting in a group's queue for a consumer (not counting those delivered and
    /// not yet settled, retries waiting out their delay, or parked ones).
    async fn queue_depth(&self, group: &str) -> Result<u64, BusError> {
        let _ = group;
        Err(unsupported(self.kind()))
    }

    /// Moves every parked message of a group back to its queue with a fresh attempt count.
    async fn replay_parked(&self, group: &str) -> Result<u64, BusError>;

    /// Up to `limit` of a group's parked messages, oldest first, without taking them out.
    async fn parked(&self, group: &str, limit: usize) -> Result<Vec<Parked>, BusError> {
        let _ = (group, limit);
        Err(unsupported(self.kind()))
    }

    /// Moves the parked message with envelope id `id` back to the group's queue with a fresh
    /// attempt count; `false` when no parked message has that id.
    async fn replay_parked_one(&self, group: &str, id: uuid::Uuid) -> Result<bool, BusError> {
        let _ = (group, id);
        Err(unsupported(self.kind()))
    }

    /// Checks the broker is reachable (readiness).
    async fn ping(&self) -> Result<(), BusError>;

    /// The retry policy and prefetch every group of this bus is declared and consumed with
    /// (from the config it was connected with; the defaults for a bus built without one).
    fn policy(&self) -> GroupPolicy {
        GroupPolicy::default()
    }

    /// Short name for logs and readiness output.
    fn kind(&self) -> &'static str;
}

/// What a bus without queues (a test double, a benchmark's sink) answers about them.
fn unsupported(kind: &str) -> BusError {
    BusError::Protocol(format!("the {kind} bus keeps no queues"))
}

/// Builds the bus a config asks for.
pub async fn connect(cfg: &BusConfig) -> Result<std::sync::Arc<dyn Bus>, BusError> {
    Ok(match cfg.kind {
        BusKind::Memory => std::sync::Arc::new(MemoryBus::with_config(cfg)),
        BusKind::Amqp => std::sync::Arc::new(AmqpBus::connect(cfg).await?),
    })
}

/// A stream of deliveries for one subscriber of a group. Dropping it stops delivery; unsettled
/// messages go back to the queue.
pub struct Subscription {
    rx: tokio::sync::mpsc::Receiver<Delivery>,
    _stop: tokio_util::sync::DropGuard,
}

impl Subscription {
    pub(crate) fn new(
        rx: tokio::sync::mpsc::Receiver<Delivery>,
        stop: tokio_util::sync::CancellationToken,
    ) -> Self {
        Subscription {
            rx,
            _stop: stop.drop_guard(),
        }
    }

    /// The next delivery; `None` once the bus has shut the subscription down.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// A delivery that has already arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }
}

/// How a delivery is settled with the implementation it came from.
#[async_trait]
pub(crate) trait Settle: Send {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    /// Schedules another attempt after `delay`.
    async fn retry(
        self: Box<Self>,
        envelope: &Envelope,
        next_attempt: u32,
        delay: Duration,
        reason: &str,
    ) -> Result<(), BusError>;
    async fn park(
        self: Box<Self>,
        envelope: &Envelope,
        attempt: u32,
        reason: &str,
    ) -> Result<(), BusError>;
    /// Unsettled drop: put the message back for immediate redelivery.
    fn release(self: Box<Self>);
}

/// One message handed to a consumer.
pub struct Delivery {
    /// The message.
    pub envelope: Envelope,
    /// Which delivery attempt this is (1 for the first).
    pub attempt: u32,
    /// The broker delivered this message before without it being settled.
    pub redelivered: bool,
    retry: RetryPolicy,
    settle: Option<Box<dyn Settle>>,
}

/// What [`Delivery::retry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Will be delivered again after this delay.
    Scheduled(Duration),
    /// Attempts are used up; the message is in the parking queue.
    Parked,
}

impl Delivery {
    pub(crate) fn new(
        envelope: Envelope,
        attempt: u32,
        redelivered: bool,
        retry: RetryPolicy,
        settle: Box<dyn Settle>,
    ) -> Self {
        Delivery {
            envelope,
            attempt,
            redelivered,
            retry,
            settle: Some(settle),
        }
    }

    /// Is this the last attempt the retry policy allows (a transient failure now parks it)?
    pub fn is_last_attempt(&self) -> bool {
        self.retry.next_delay(self.attempt).is_none()
    }

    fn take(&mut self) -> Box<dyn Settle> {
        // Every settling method consumes `self`, so the settle handle is always present here.
        self.settle.take().expect("delivery settled twice")
    }

    /// The message is handled; remove it from the queue.
    pub async fn ack(mut self) -> Result<(), BusError> {
        self.take().ack().await
    }

    /// Handling failed for a reason that may pass: deliver again after the policy's delay, or
    /// park the message when its attempts are used up.
    pub async fn retry(mut self, reason: &str) -> Result<RetryOutcome, BusError> {
        let settle = self.take();
        match self.retry.next_delay(self.attempt) {
            Some(delay) => {
                settle
                    .retry(&self.envelope, self.attempt + 1, delay, reason)
                    .await?;
                metrics::counter!(crate::metrics::BUS_RETRIED).increment(1);
                Ok(RetryOutcome::Scheduled(delay))
            }
            None => {
                settle.park(&self.envelope, self.attempt, reason).await?;
                metrics::counter!(crate::metrics::BUS_PARKED).increment(1);
                Ok(RetryOutcome::Parked)
            }
        }
    }

    /// The message can never be handled (invalid): park it now.
    pub async fn park(mut self, reason: &str) -> Result<(), BusError> {
        let settle = self.take();
        settle.park(&self.envelope, self.attempt, reason).await?;
        metrics::counter!(crate::metrics::BUS_PARKED).increment(1);
        Ok(())
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(settle) = self.settle.take() {
            settle.release();
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.envelope.id)
            .field("type", &self.envelope.kind)
            .field("attempt", &self.attempt)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy_grows_then_parks() {
        let p = RetryPolicy {
            max_attempts: 4,
            delays: vec![Duration::from_millis(10), Duration::from_millis(50)],
        };
        assert_eq!(p.next_delay(1), Some(Duration::from_millis(10)));
        assert_eq!(p.next_delay(2), Some(Duration::from_millis(50)));
        assert_eq!(p.next_delay(3), Some(Duration::from_millis(50)));
        assert_eq!(p.next_delay(4), None);
    }
}
