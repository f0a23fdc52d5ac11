//! RabbitMQ bus over lapin.
//!
//! Topology per consumer group `g` on exchange `x`:
//! - `x` — durable topic exchange every event is published to (routing key = event type);
//! - `x.g` — durable queue bound with the group's patterns (quorum when configured);
//! - `x.g.retry.<ms>` — one durable queue per retry delay with `x-message-ttl = ms` that
//!   dead-letters (default exchange, routing key `x.g`) back into the group's queue (at least
//!   once, when the queues are quorum queues);
//! - `x.g.parking` — messages whose attempts are used up, kept until replayed.
//!
//! Publishing uses a confirm-mode channel on its own connection; consuming uses a second connection.
//! Both reconnect with back-off when the broker goes away; a subscription's supervisor re-declares
//! and re-consumes, so the subscriber's stream simply continues.
//!
//! Here: the connections and the [`Bus`] the services use. `topology` declares exchanges and
//! queues, `publish` publishes with confirms, `consume` keeps subscribers consuming and settles
//! their deliveries, `headers` reads and writes the attempt and error headers.

mod consume;
mod headers;
mod publish;
mod topology;

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::LongString;
use lapin::{Channel, Connection, ConnectionProperties};
use proto::Envelope;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::{Bus, BusError, GroupPolicy, GroupSpec, Parked, Subscription};
use crate::config::BusConfig;

use consume::supervise;
use headers::{parked_of, properties};
use topology::parking_queue;

const ATTEMPT_HEADER: &str = "x-scrm-attempt";
const ERROR_HEADER: &str = "x-scrm-error";
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

fn err(e: lapin::Error) -> BusError {
    match e {
        lapin::Error::ProtocolError(p) => BusError::Protocol(p.to_string()),
        other => BusError::Unavailable(other.to_string()),
    }
}

/// A lazily (re)established connection.
struct ConnSlot {
    url: String,
    name: String,
    conn: Mutex<Option<Arc<Connection>>>,
}

impl ConnSlot {
    async fn get(&self) -> Result<Arc<Connection>, BusError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.status().connected() {
                return Ok(c.clone());
            }
        }
        let props = ConnectionProperties::default()
            .with_connection_name(LongString::from(self.name.clone()))
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let conn = Connection::connect(&self.url, props).await.map_err(err)?;
        tracing::info!(connection = %self.name, "Connected to RabbitMQ");
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn channel(&self) -> Result<Channel, BusError> {
        let conn = self.get().await?;
        conn.create_channel().await.map_err(err)
    }
}

struct Inner {
    exchange: String,
    publish_timeout: Duration,
    quorum: bool,
    policy: GroupPolicy,
    publisher: ConnSlot,
    consumer: ConnSlot,
    /// Confirm-mode channels used round-robin (confirms of one channel are handled in order, so
    /// several spread the work when many requests publish at once).
    publish_channels: Vec<Mutex<Option<Channel>>>,
    next_channel: std::sync::atomic::AtomicUsize,
    exchange_declared: tokio::sync::OnceCell<()>,
    /// Queues this instance declared (for `destroy`).
    declared: StdMutex<HashSet<String>>,
}

/// The RabbitMQ bus.
#[derive(Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

impl AmqpBus {
    /// Connects (both connections) and declares the exchange; fails fast when the broker is down.
    pub async fn connect(cfg: &BusConfig) -> Result<Self, BusError> {
        let url = cfg
            .url
            .as_ref()
            .ok_or_else(|| BusError::Protocol("bus.url is required for amqp".into()))?
            .expose()
            .to_string();
        let process = std::process::id();
        let bus = AmqpBus {
            inner: Arc::new(Inner {
                exchange: cfg.exchange.clone(),
                publish_timeout: Duration::from_millis(cfg.publish_timeout_ms),
                quorum: cfg.quorum_queues,
                policy: GroupPolicy::from_config(cfg),
                publisher: ConnSlot {
                    url: url.clone(),
                    name: format!("scrm-publish-{process}"),
                    conn: Mutex::new(None),
                },
                consumer: ConnSlot {
                    url,
                    name: format!("scrm-consume-{process}"),
                    conn: Mutex::new(None),
                },
                publish_channels: (0..cfg.publisher_channels.max(1))
                    .map(|_| Mutex::new(None))
                    .collect(),
                next_channel: std::sync::atomic::AtomicUsize::new(0),
                exchange_declared: tokio::sync::OnceCell::new(),
                declared: StdMutex::new(HashSet::new()),
            }),
        };
        bus.inner.publisher.get().await?;
        bus.inner.consumer.get().await?;
        let ch = bus.inner.publisher.channel().await?;
        bus.inner.declare_exchange(&ch).await?;
        let _ = ch.close(200, "ok").await;
        Ok(bus)
    }

    /// Deletes every queue this instance declared and the exchange (tests clean up with it).
    pub async fn destroy(&self) -> Result<(), BusError> {
        let ch = self.inner.publisher.channel().await?;
        let queues: Vec<String> = self
            .inner
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        // Every queue and the exchange are tried, also after one fails; the first failure is
        // the answer.
        let mut first = Ok(());
        for q in queues {
            if let Err(e) = ch.queue_delete(&q, QueueDeleteOptions::default()).await {
                first = first.and(Err(err(e)));
            }
        }
        if let Err(e) = ch
            .exchange_delete(&self.inner.exchange, ExchangeDeleteOptions::default())
            .await
        {
            first = first.and(Err(err(e)));
        }
        let _ = ch.close(200, "ok").await;
        first
    }

    /// Name of the queue of `group`.
    pub fn queue_name(&self, group: &str) -> String {
        self.inner.queue_name(group)
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let started = Instant::now();
        let body = envelope.to_bytes();
        let props = properties(envelope, 1, None);
        let result = self
            .inner
            .publish_raw(&[(&self.inner.exchange, envelope.routing_key(), body, props)])
            .await;
        metrics::histogram!(crate::metrics::BUS_PUBLISH_SECONDS)
            .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => metrics::counter!(crate::metrics::BUS_PUBLISHED).increment(1),
            Err(_) => metrics::counter!(crate::metrics::BUS_PUBLISH_FAILED).increment(1),
        }
        result
    }

    async fn publish_batch(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        let items: Vec<_> = envelopes
            .iter()
            .map(|e| {
                (
                    self.inner.exchange.as_str(),
                    e.routing_key(),
                    e.to_bytes(),
                    properties(e, 1, None),
                )
            })
            .collect();
        let result = self.inner.publish_raw(&items).await;
        if result.is_ok() {
            metrics::counter!(crate::metrics::BUS_PUBLISHED).increment(envelopes.len() as u64);
        }
        result
    }

    async fn declare(&self, spec: &GroupSpec) -> Result<(), BusError> {
        let ch = self.inner.publisher.channel().await?;
        self.inner.declare_group(&ch, spec).await?;
        let _ = ch.close(200, "ok").await;
        Ok(())
    }

    async fn subscribe(&self, spec: &GroupSpec) -> Result<Subscription, BusError> {
        // Declare once up front so a bad topology fails the caller, not the supervisor.
        self.declare(spec).await?;
        let (tx, rx) = mpsc::channel(usize::from(spec.prefetch.max(1)));
        let stop = CancellationToken::new();
        tokio::spawn(supervise(
            self.inner.clone(),
            spec.clone(),
            tx,
            stop.clone(),
        ));
        Ok(Subscription::new(rx, stop))
    }

    async fn parked_count(&self, group: &str) -> Result<u64, BusError> {
        self.inner
            .message_count(&parking_queue(&self.inner.queue_name(group)))
            .await
    }

    async fn queue_depth(&self, group: &str) -> Result<u64, BusError> {
        self.inner
            .message_count(&self.inner.queue_name(group))
            .await
    }

    async fn replay_parked(&self, group: &str) -> Result<u64, BusError> {
        let queue = self.inner.queue_name(group);
        let parking = parking_queue(&queue);
        let ch = self.inner.publisher.channel().await?;
        let mut moved = 0;
        while let Some(msg) = ch
            .basic_get(&parking, BasicGetOptions::default())
            .await
            .map_err(err)?
        {
            self.inner.replay(&queue, msg.delivery).await?;
            moved += 1;
        }
        let _ = ch.close(200, "ok").await;
        Ok(moved)
    }

    async fn parked(&self, group: &str, limit: usize) -> Result<Vec<Parked>, BusError> {
        let parking = parking_queue(&self.inner.queue_name(group));
        let ch = self.inner.publisher.channel().await?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(msg) = ch
                .basic_get(&parking, BasicGetOptions::default())
                .await
                .map_err(err)?
            else {
                break;
            };
            out.push(parked_of(&msg.delivery));
        }
        // Never acknowledged: closing the channel puts every one back where it was.
        let _ = ch.close(200, "ok").await;
        Ok(out)
    }

    async fn replay_parked_one(&self, group: &str, id: uuid::Uuid) -> Result<bool, BusError> {
        let queue = self.inner.queue_name(group);
        let parking = parking_queue(&queue);
        let ch = self.inner.publisher.channel().await?;
        let mut found = false;
        // The others stay unacknowledged until the channel closes, so each is looked at once.
        while let Some(msg) = ch
            .basic_get(&parking, BasicGetOptions::default())
            .await
            .map_err(err)?
        {
            if parked_of(&msg.delivery).id == Some(id) {
                self.inner.replay(&queue, msg.delivery).await?;
                found = true;
                break;
            }
        }
        let _ = ch.close(200, "ok").await;
        Ok(found)
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.inner.publish_channel(0).await.map(|_| ())
    }

    fn policy(&self) -> GroupPolicy {
        self.inner.policy.clone()
    }

    fn kind(&self) -> &'static str {
        "amqp"
    }
}
