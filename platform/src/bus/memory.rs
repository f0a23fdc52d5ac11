//! In-process bus. Each declared group is a queue; a publish copies the message into every group
//! whose bindings match. Subscribers of one group compete; each holds at most `prefetch` unsettled
//! deliveries. Retries wait on a timer, parked messages wait in the group until replayed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use proto::routing::topic_matches;
use proto::Envelope;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{Bus, BusError, Delivery, GroupPolicy, GroupSpec, RetryPolicy, Settle, Subscription};

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
                return m;
            }
            notified.await;
        }
    }
}

/// The in-process bus.
#[derive(Clone, Default)]
pub struct MemoryBus {
    groups: Arc<Mutex<HashMap<String, Arc<Group>>>>,
    policy: GroupPolicy,
}

impl MemoryBus {
    /// A bus whose groups have the default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus whose groups are declared and consumed with `policy`.
    pub fn with_policy(policy: GroupPolicy) -> Self {
        MemoryBus {
            policy,
            ..Self::default()
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
        for g in targets {
            g.push_back(Message {
                envelope: envelope.clone(),
                attempt: 1,
                redelivered: false,
            });
        }
        metrics::counter!("scrm_bus_published_total").increment(1);
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
