//! Consuming: a supervisor per subscription that (re)declares the group and consumes across
//! broker restarts, and the settle of each delivery (ack, retry through a delay queue, park).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use proto::Envelope;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus::{BusError, Delivery, GroupSpec, Settle};

use super::headers::{attempt_of, properties};
use super::topology::{parking_queue, retry_queue};
use super::{err, Inner, BACKOFF_MAX, BACKOFF_START, ERROR_HEADER};

/// Keeps one subscriber consuming across broker restarts.
pub(super) async fn supervise(
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
