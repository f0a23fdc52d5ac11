//! In-process bus. Each declared group is a queue; a publish copies the message into every group
//! whose bindings match. Subscribers of one group compete; each holds at most `prefetch` unsettled
//! deliveries. Retries wait on a timer, parked messages wait in the group until replayed. A
//! group's queue holds at most `bus.memory_capacity` messages: a publish to a full one waits for
//! room up to the publish timeout, then fails (the publisher retries; a callback gets a 503), so
//! a consumer that falls behind slows its producers instead of growing the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::BusConfig;

use async_trait::async_trait;
use proto::routing::topic_matches;
use proto::Envelope;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{
    Bus, BusError, Delivery, GroupPolicy, GroupSpec, Parked, RetryPolicy, Settle, Subscription,
};

#[derive(Clone)]
struct Message {
    envelope: Envelope,
    attempt: u32,
    redelivered: bool,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Message>,
    parked: Vec<(Message, String)>,
}

struct Group {
    bindings: Mutex<Vec<String>>,
    retry: Mutex<RetryPolicy>,
    queue: Mutex<Queue>,
    notify: Notify,
    /// Woken whenever a message leaves the queue.
    room: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the queue data is
    // still consistent (every critical section is a single push/pop).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Group {
    fn push_back(&self, msg: Message) {
        lock(&self.queue).ready.push_back(msg);
        self.notify.notify_one();
    }

    fn push_front(&self, msg: Message) {
        lock(&self.queue).ready.push_front(msg);
        self.notify.notify_one();
    }

    async fn pop(&self) -> Message {
        loop {
            let notified = self.notify.notified();
            if let Some(m) = lock(&self.queue).ready.pop_front() {
                self.room.notify_waiters();
                return m;
            }
            notified.await;
        }
    }

    /// Waits until the queue holds fewer than `capacity` messages, at most until `deadline`.
    async fn room_for_one(
        &self,
        capacity: usize,
        deadline: tokio::time::Instant,
    ) -> Result<(), ()> {
        loop {
            let freed = self.room.notified();
            if lock(&self.queue).ready.len() < capacity {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(());
            }
        }
    }
}

/// The in-process bus.
#[derive(Clone)]
pub struct MemoryBus {
    groups: Arc<Mutex<HashMap<String, Arc<Group>>>>,
    policy: GroupPolicy,
    capacity: usize,
    publish_timeout: Duration,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::with_config(&BusConfig::memory())
    }
}

impl MemoryBus {
    /// A bus with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus with the policy, queue capacity and publish timeout of `cfg`.
    pub fn with_config(cfg: &BusConfig) -> Self {
        MemoryBus {
            groups: Arc::default(),
            policy: GroupPolicy::from_config(cfg),
            capacity: cfg.memory_capacity.max(1),
            publish_timeout: Duration::from_millis(cfg.publish_timeout_ms),
        }
    }

    fn group(&self, spec: &GroupSpec) -> Arc<Group> {
        let mut groups = lock(&self.groups);
        let g = groups
            .entry(spec.group.clone())
            .or_insert_with(|| {
                Arc::new(Group {
                    bindings: Mutex::new(Vec::new()),
                    retry: Mutex::new(spec.retry.clone()),
                    queue: Mutex::new(Queue::default()),
                    notify: Notify::new(),
                    room: Notify::new(),
                })
            })
            .clone();
        let mut b = lock(&g.bindings);
        for pattern in &spec.bindings {
            if !b.contains(pattern) {
                b.push(pattern.clone());
            }
        }
        *lock(&g.retry) = spec.retry.clone();
        drop(b);
        g
    }

    fn existing(&self, group: &str) -> Result<Arc<Group>, BusError> {
        lock(&self.groups)
            .get(group)
            .cloned()
            .ok_or_else(|| BusError::Protocol(format!("unknown consumer group `{group}`")))
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let targets: Vec<Arc<Group>> = lock(&self.groups)
            .values()
            .filter(|g| {
                lock(&g.bindings)
                    .iter()
                    .any(|p| topic_matches(p, &envelope.kind))
            })
            .cloned()
            .collect();
        let deadline = tokio::time::Instant::now() + self.publish_timeout;
        for g in &targets {
            if g.room_for_one(self.capacity, deadline).await.is_err() {
                metrics::counter!(crate::metrics::BUS_PUBLISH_FAILED).increment(1);
                return Err(BusError::Timeout(self.publish_timeout));
            }
        }
        for g in targets {
            g.push_back(Message {
                envelope: envelope.clone(),
                attempt: 1,
                redelivered: false,
            });
        }
        metrics::counter!(crate::metrics::BUS_PUBLISHED).increment(1);
        Ok(())
    }

    async fn declare(&self, spec: &GroupSpec) -> Result<(), BusError> {
        self.group(spec);
        Ok(())
    }

    async fn subscribe(&self, spec: &GroupSpec) -> Result<Subscription, BusError> {
        let group = self.group(spec);
        let prefetch = usize::from(spec.prefetch.max(1));
        let permits = Arc::new(Semaphore::new(prefetch));
        let (tx, rx) = mpsc::channel(prefetch);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let retry = spec.retry.clone();
        tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = stopped.cancelled() => return,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                let msg = tokio::select! {
                    _ = stopped.cancelled() => return,
                    m = group.pop() => m,
                };
                let settle = MemorySettle {
                    group: group.clone(),
                    message: Some(msg.clone()),
                    _permit: permit,
                };
                let delivery = Delivery::new(
                    msg.envelope,
                    msg.attempt,
                    msg.redelivered,
                    retry.clone(),
                    Box::new(settle),
                );
                // A closed receiver drops the delivery, which puts the message back.
                if tx.send(delivery).await.is_err() {
                    return;
                }
            }
        });
        Ok(Subscription::new(rx, stop))
    }

    async fn parked_count(&self, group: &str) -> Result<u64, BusError> {
        Ok(lock(&self.existing(group)?.queue).parked.len() as u64)
    }

    async fn parked(&self, group: &str, limit: usize) -> Result<Vec<Parked>, BusError> {
        let g = self.existing(group)?;
        let q = lock(&g.queue);
        Ok(q.parked
            .iter()
            .take(limit)
            .map(|(m, reason)| Parked {
                id: Some(m.envelope.id),
                kind: m.envelope.kind.clone(),
                tenant_id: Some(m.envelope.tenant_id.clone()),
                attempts: m.attempt,
                last_error: Some(reason.clone()),
            })
            .collect())
    }

    async fn replay_parked_one(&self, group: &str, id: uuid::Uuid) -> Result<bool, BusError> {
        let g = self.existing(group)?;
        let found = {
            let mut q = lock(&g.queue);
            let at = q.parked.iter().position(|(m, _)| m.envelope.id == id);
            at.map(|i| q.parked.remove(i))
        };
        match found {
            Some((mut msg, _)) => {
                msg.attempt = 1;
                msg.redelivered = false;
                g.push_back(msg);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn queue_depth(&self, group: &str) -> Result<u64, BusError> {
        Ok(lock(&self.existing(group)?.queue).ready.len() as u64)
    }

    async fn replay_parked(&self, group: &str) -> Result<u64, BusError> {
        let g = self.existing(group)?;
        let parked = std::mem::take(&mut lock(&g.queue).parked);
        let n = parked.len() as u64;
        for (mut msg, _reason) in parked {
            msg.attempt = 1;
            msg.redelivered = false;
            g.push_back(msg);
        }
        Ok(n)
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn policy(&self) -> GroupPolicy {
        self.policy.clone()
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

struct MemorySettle {
    group: Arc<Group>,
    message: Option<Message>,
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl Settle for MemorySettle {
    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        self.message = None;
        Ok(())
    }

    async fn retry(
        mut self: Box<Self>,
        _envelope: &Envelope,
        next_attempt: u32,
        delay: Duration,
        _reason: &str,
    ) -> Result<(), BusError> {
        if let Some(mut msg) = self.message.take() {
            msg.attempt = next_attempt;
            msg.redelivered = false;
            let group = self.group.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                group.push_back(msg);
            });
        }
        Ok(())
    }

    async fn park(
        mut self: Box<Self>,
        _envelope: &Envelope,
        attempt: u32,
        reason: &str,
    ) -> Result<(), BusError> {
        if let Some(mut msg) = self.message.take() {
            msg.attempt = attempt;
            lock(&self.group.queue)
                .parked
                .push((msg, reason.to_string()));
        }
        Ok(())
    }

    fn release(mut self: Box<Self>) {
        if let Some(mut msg) = self.message.take() {
            msg.redelivered = true;
            self.group.push_front(msg);
        }
    }
}
