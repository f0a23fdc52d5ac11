//! Publishing: round-robin confirm-mode channels, every confirm awaited with back-off until the
//! publish timeout, and the replay of a parked delivery to its queue.

use std::time::Instant;

use lapin::options::{BasicAckOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel};

use crate::bus::BusError;

use super::{err, Inner, ATTEMPT_HEADER, BACKOFF_MAX, BACKOFF_START};

impl Inner {
    /// Sends a parked delivery back to `queue` with a fresh attempt count, then takes it off the
    /// parking queue (a crash in between leaves it in both: consumers are idempotent).
    pub(super) async fn replay(
        &self,
        queue: &str,
        d: lapin::message::Delivery,
    ) -> Result<(), BusError> {
        let mut props = d.properties.clone();
        let mut headers = props.headers().clone().unwrap_or_default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(1));
        props = props.with_headers(headers);
        self.publish_raw(&[("", queue, d.data.clone(), props)])
            .await?;
        d.acker.ack(BasicAckOptions::default()).await.map_err(err)
    }

    fn channel_slot(&self) -> usize {
        self.next_channel
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.publish_channels.len()
    }

    pub(super) async fn publish_channel(&self, slot_index: usize) -> Result<Channel, BusError> {
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
    pub(super) async fn publish_raw(
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
