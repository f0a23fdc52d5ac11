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

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use proto::Envelope;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::{Bus, BusError, Delivery, GroupPolicy, GroupSpec, Parked, Settle, Subscription};
use crate::config::BusConfig;

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
        for q in queues {
            ch.queue_delete(&q, QueueDeleteOptions::default())
                .await
                .map_err(err)?;
        }
        ch.exchange_delete(&self.inner.exchange, ExchangeDeleteOptions::default())
            .await
            .map_err(err)?;
        let _ = ch.close(200, "ok").await;
        Ok(())
    }

    /// Name of the queue of `group`.
    pub fn queue_name(&self, group: &str) -> String {
        self.inner.queue_name(group)
    }
}

impl Inner {
    fn queue_name(&self, group: &str) -> String {
        format!("{}.{}", self.exchange, group)
    }

    async fn declare_exchange(&self, ch: &Channel) -> Result<(), BusError> {
        ch.exchange_declare(
            &self.exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(err)
    }

    async fn declare_queue(
        &self,
        ch: &Channel,
        name: &str,
        mut args: FieldTable,
    ) -> Result<(), BusError> {
        if self.quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        ch.queue_declare(
            name,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map_err(err)?;
        self.declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        Ok(())
    }

    async fn declare_group(&self, ch: &Channel, spec: &GroupSpec) -> Result<String, BusError> {
        self.declare_exchange(ch).await?;
        let queue = self.queue_name(&spec.group);
        self.declare_queue(ch, &queue, FieldTable::default())
            .await?;
        for pattern in &spec.bindings {
            ch.queue_bind(
                &queue,
                &self.exchange,
                pattern,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err)?;
        }
        let mut delays: Vec<u64> = spec
            .retry
            .delays
            .iter()
            .map(|d| d.as_millis() as u64)
            .collect();
        delays.sort_unstable();
        delays.dedup();
        for ms in delays {
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms as i64));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(queue.clone().into()),
            );
            if self.quorum {
                // A quorum queue dead-letters at most once unless told otherwise: a retry whose
                // hand-back to the group's queue failed would be lost.
                args.insert(
                    "x-dead-letter-strategy".into(),
                    AMQPValue::LongString("at-least-once".into()),
                );
                args.insert(
                    "x-overflow".into(),
                    AMQPValue::LongString("reject-publish".into()),
                );
            }
            self.declare_queue(ch, &retry_queue(&queue, ms), args)
                .await?;
        }
        self.declare_queue(ch, &parking_queue(&queue), FieldTable::default())
            .await?;
        Ok(queue)
    }

    /// Sends a parked delivery back to `queue` with a fresh attempt count, then takes it off the
    /// parking queue (a crash in between leaves it in both: consumers are idempotent).
    async fn replay(&self, queue: &str, d: lapin::message::Delivery) -> Result<(), BusError> {
        let mut props = d.properties.clone();
        let mut headers = props.headers().clone().unwrap_or_default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(1));
        props = props.with_headers(headers);
        self.publish_raw(&[("", queue, d.data.clone(), props)])
            .await?;
        d.acker.ack(BasicAckOptions::default()).await.map_err(err)
    }

    /// Messages ready in `queue` (a passive declare: fails when the queue does not exist).
    async fn message_count(&self, queue: &str) -> Result<u64, BusError> {
        let ch = self.publisher.channel().await?;
        let q = ch
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(err)?;
        let _ = ch.close(200, "ok").await;
        Ok(u64::from(q.message_count()))
    }

    fn channel_slot(&self) -> usize {
        self.next_channel
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.publish_channels.len()
    }

    async fn publish_channel(&self, slot_index: usize) -> Result<Channel, BusError> {
        let mut slot = self.publish_channels[slot_index].lock().await;
        if let Some(ch) = slot.as_ref() {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let ch = self.publisher.channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(err)?;
        if self.exchange_declared.get().is_none() {
            self.declare_exchange(&ch).await?;
            let _ = self.exchange_declared.set(());
        }
        *slot = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes raw bodies and waits for every confirm, reconnecting with back-off until the
    /// publish timeout runs out.
    async fn publish_raw(
        &self,
        items: &[(&str, &str, Vec<u8>, BasicProperties)],
    ) -> Result<(), BusError> {
        let deadline = Instant::now() + self.publish_timeout;
        let mut backoff = BACKOFF_START;
        let slot = self.channel_slot();
        loop {
            let attempt = async {
                let ch = self.publish_channel(slot).await?;
                let mut confirms = Vec::with_capacity(items.len());
                for (exchange, key, body, props) in items {
                    let c = ch
                        .basic_publish(
                            exchange,
                            key,
                            BasicPublishOptions::default(),
                            body,
                            props.clone(),
                        )
                        .await
                        .map_err(err)?;
                    confirms.push(c);
                }
                for c in confirms {
                    match c.await.map_err(err)? {
                        Confirmation::Ack(_) => {}
                        Confirmation::Nack(_) => return Err(BusError::Nacked),
                        Confirmation::NotRequested => {
                            return Err(BusError::Protocol("channel is not in confirm mode".into()))
                        }
                    }
                }
                Ok(())
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = match tokio::time::timeout(remaining, attempt).await {
                Ok(r) => r,
                Err(_) => Err(BusError::Timeout(self.publish_timeout)),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(BusError::Unavailable(reason)) => {
                    *self.publish_channels[slot].lock().await = None;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Err(BusError::Unavailable(reason));
                    }
                    tracing::warn!(error = %reason, "Publish failed; reconnecting");
                    tokio::time::sleep(backoff.min(remaining)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(other) => {
                    *self.publish_channels[slot].lock().await = None;
                    return Err(other);
                }
            }
        }
    }
}

fn retry_queue(queue: &str, ms: u64) -> String {
    format!("{queue}.retry.{ms}")
}

fn parking_queue(queue: &str) -> String {
    format!("{queue}.parking")
}

fn properties(envelope: &Envelope, attempt: u32, error: Option<&str>) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt));
    if let Some(e) = error {
        headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(e.into()));
    }
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(envelope.id.to_string()))
        .with_type(ShortString::from(envelope.kind.clone()))
        .with_timestamp(envelope.occurred_at.timestamp().max(0) as u64)
        .with_headers(headers)
}

/// What the tooling shows of a parked delivery.
fn parked_of(d: &lapin::message::Delivery) -> Parked {
    let last_error = d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ERROR_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        });
    match Envelope::from_bytes(&d.data) {
        Ok(e) => Parked {
            id: Some(e.id),
            kind: e.kind,
            tenant_id: Some(e.tenant_id),
            attempts: attempt_of(&d.properties),
            last_error,
        },
        Err(_) => Parked {
            id: d
                .properties
                .message_id()
                .as_ref()
                .and_then(|m| uuid::Uuid::parse_str(m.as_str()).ok()),
            kind: d
                .properties
                .kind()
                .as_ref()
                .map(|k| k.to_string())
                .unwrap_or_else(|| "(not an envelope)".into()),
            tenant_id: None,
            attempts: attempt_of(&d.properties),
            last_error,
        },
    }
}

fn attempt_of(props: &BasicProperties) -> u32 {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongUInt(n) => Some(n),
            AMQPValue::LongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(n)),
            _ => None,
        })
        .unwrap_or(1)
        .max(1)
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

/// Keeps one subscriber consuming across broker restarts.
async fn supervise(
    inner: Arc<Inner>,
    spec: GroupSpec,
    tx: mpsc::Sender<Delivery>,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF_START;
    loop {
        if stop.is_cancelled() || tx.is_closed() {
            return;
        }
        // Stop promptly even mid-(re)connect, so a dropped subscription never re-declares its
        // queues after the caller deleted them.
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            r = consume_once(&inner, &spec, &tx, &stop, &mut backoff) => r,
        };
        match attempt {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(group = %spec.group, error = %e, retry_in = ?backoff, "Consumer lost its channel; reconnecting");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Consumes until the channel fails (`Err`) or the subscription stops (`Ok`).
async fn consume_once(
    inner: &Arc<Inner>,
    spec: &GroupSpec,
    tx: &mpsc::Sender<Delivery>,
    stop: &CancellationToken,
    backoff: &mut Duration,
) -> Result<(), BusError> {
    let ch = inner.consumer.channel().await?;
    let queue = inner.declare_group(&ch, spec).await?;
    ch.basic_qos(spec.prefetch, BasicQosOptions::default())
        .await
        .map_err(err)?;
    let mut consumer = ch
        .basic_consume(
            &queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    *backoff = BACKOFF_START;
    let result = loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            _ = tx.closed() => break Ok(()),
            n = consumer.next() => n,
        };
        let d = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => break Err(err(e)),
            None => break Err(BusError::Unavailable("consumer stream ended".into())),
        };
        let attempt = attempt_of(&d.properties);
        let settle = AmqpSettle {
            inner: inner.clone(),
            queue: queue.clone(),
            acker: Some(d.acker.clone()),
        };
        match Envelope::from_bytes(&d.data) {
            Ok(envelope) => {
                let delivery = Delivery::new(
                    envelope,
                    attempt,
                    d.redelivered,
                    spec.retry.clone(),
                    Box::new(settle),
                );
                if tx.send(delivery).await.is_err() {
                    break Ok(());
                }
            }
            Err(e) => {
                // Not an envelope: no consumer can ever handle it. Park the raw bytes.
                tracing::error!(group = %spec.group, error = %e, "Unparseable message parked");
                metrics::counter!(crate::metrics::BUS_PARKED).increment(1);
                let mut headers = FieldTable::default();
                headers.insert(
                    ERROR_HEADER.into(),
                    AMQPValue::LongString(format!("invalid envelope: {e}").into()),
                );
                let props = d.properties.clone().with_headers(headers);
                let parking = parking_queue(&queue);
                inner
                    .publish_raw(&[("", parking.as_str(), d.data.clone(), props)])
                    .await?;
                let mut s = settle;
                if let Some(a) = s.acker.take() {
                    a.ack(BasicAckOptions::default()).await.map_err(err)?;
                }
            }
        }
    };
    let _ = ch.close(200, "bye").await;
    result
}

struct AmqpSettle {
    inner: Arc<Inner>,
    queue: String,
    acker: Option<lapin::acker::Acker>,
}

impl AmqpSettle {
    async fn ack_now(&mut self) -> Result<(), BusError> {
        match self.acker.take() {
            Some(a) => a.ack(BasicAckOptions::default()).await.map_err(err),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Settle for AmqpSettle {
    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        self.ack_now().await
    }

    async fn retry(
        mut self: Box<Self>,
        envelope: &Envelope,
        next_attempt: u32,
        delay: Duration,
        reason: &str,
    ) -> Result<(), BusError> {
        let target = retry_queue(&self.queue, delay.as_millis() as u64);
        let props = properties(envelope, next_attempt, Some(reason));
        // Confirmed copy first, then ack: a crash in between redelivers (at-least-once).
        self.inner
            .publish_raw(&[("", target.as_str(), envelope.to_bytes(), props)])
            .await?;
        self.ack_now().await
    }

    async fn park(
        mut self: Box<Self>,
        envelope: &Envelope,
        attempt: u32,
        reason: &str,
    ) -> Result<(), BusError> {
        let target = parking_queue(&self.queue);
        let props = properties(envelope, attempt, Some(reason));
        self.inner
            .publish_raw(&[("", target.as_str(), envelope.to_bytes(), props)])
            .await?;
        self.ack_now().await
    }

    fn release(mut self: Box<Self>) {
        if let Some(a) = self.acker.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = a
                        .nack(BasicNackOptions {
                            requeue: true,
                            multiple: false,
                        })
                        .await;
                });
            }
        }
    }
}
