//! The RabbitMQ topology of a consumer group: the exchange, the group's queue with its bindings,
//! the retry queues that dead-letter back into it and the parking queue, and how many messages
//! a queue holds.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::bus::{BusError, GroupSpec};

use super::{err, Inner};

impl Inner {
    pub(super) fn queue_name(&self, group: &str) -> String {
        format!("{}.{}", self.exchange, group)
    }

    pub(super) async fn declare_exchange(&self, ch: &Channel) -> Result<(), BusError> {
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

    pub(super) async fn declare_group(
        &self,
        ch: &Channel,
        spec: &GroupSpec,
    ) -> Result<String, BusError> {
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

    /// Messages ready in `queue` (a passive declare: fails when the queue does not exist).
    pub(super) async fn message_count(&self, queue: &str) -> Result<u64, BusError> {
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
}

pub(super) fn retry_queue(queue: &str, ms: u64) -> String {
    format!("{queue}.retry.{ms}")
}

pub(super) fn parking_queue(queue: &str) -> String {
    format!("{queue}.parking")
}
