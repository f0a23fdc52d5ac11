//! Durable publishing for the gateway's endpoints: an accepted request is answered 2xx only after
//! the broker confirmed its event within the time budget. A cache hint (by envelope id) lets
//! WeChat's retries of an already-published callback be answered without publishing again; the hint
//! is written only after the confirm, so a failed publish is never remembered as done.
//!
//! The hint is written beside the answer, not before it: WeChat retries only after five seconds
//! without an answer, long after the write. Hints are written in batches (one writer at a time
//! takes every hint queued meanwhile, one round trip for all of them), so under load the cache
//! sees a write per batch, not per callback. Until a hint lands, its id is known here, so a
//! duplicate sent right after the answer to this instance is still caught. A hint lost (the cache
//! down, the process stopped meanwhile) costs one more publish of the same envelope id, which
//! consumers drop by id.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::bus::{Bus, BusError};
use platform::cache::Cache;
use proto::Envelope;
use uuid::Uuid;

/// Why an event could not be made durable in time.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker did not confirm within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What [`Publisher::publish_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Confirmed by the broker now.
    Now,
    /// Already published earlier (a retry); nothing sent.
    Before,
}

/// The most hints one cache write carries.
const HINT_BATCH: usize = 512;

#[derive(Clone)]
pub struct Publisher {
    bus: Arc<dyn Bus>,
    cache: Arc<dyn Cache>,
    budget: Duration,
    dedupe_ttl: Duration,
    hints: Arc<Mutex<Hints>>,
}

/// Hints of confirmed envelopes not yet in the cache.
#[derive(Default)]
struct Hints {
    /// Every envelope whose hint is queued or being written.
    writing: HashSet<Uuid>,
    /// Queued for the next write: (key, envelope id).
    queued: Vec<(String, Uuid)>,
    /// A writer task is running (it takes what is queued until nothing is).
    writer: bool,
}

impl Publisher {
    pub fn new(
        bus: Arc<dyn Bus>,
        cache: Arc<dyn Cache>,
        budget: Duration,
        dedupe_ttl: Duration,
    ) -> Self {
        Publisher {
            bus,
            cache,
            budget,
            dedupe_ttl,
            hints: Arc::default(),
        }
    }

    fn hint_key(env: &Envelope) -> String {
        format!("{{{}}}:published:{}", env.tenant_id, env.id)
    }

    /// Publishes `env` unless it was published before; returns once confirmed.
    pub async fn publish_once(
        &self,
        env: &Envelope,
        channel: &'static str,
    ) -> Result<Published, PublishError> {
        let key = Self::hint_key(env);
        // The hint is an optimisation: when the cache is down, publish (consumers dedupe by id).
        if self.is_writing(env.id) || matches!(self.cache.get(&key).await, Ok(Some(_))) {
            metrics::counter!(crate::metrics::DUPLICATES, "channel" => channel).increment(1);
            return Ok(Published::Before);
        }
        self.publish(std::slice::from_ref(env), channel).await?;
        let start_writer = {
            let mut hints = lock(&self.hints);
            hints.writing.insert(env.id);
            hints.queued.push((key, env.id));
            !std::mem::replace(&mut hints.writer, true)
        };
        if start_writer {
            tokio::spawn(write_hints(
                self.cache.clone(),
                self.hints.clone(),
                self.dedupe_ttl,
            ));
        }
        Ok(Published::Now)
    }

    fn is_writing(&self, id: Uuid) -> bool {
        lock(&self.hints).writing.contains(&id)
    }

    /// Publishes all of `envs` in order; returns once every one is confirmed.
    pub async fn publish(
        &self,
        envs: &[Envelope],
        channel: &'static str,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.budget, self.bus.publish_batch(envs)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PublishError::Bus(e)),
            Err(_) => Err(PublishError::Timeout(self.budget)),
        };
        metrics::histogram!(crate::metrics::PUBLISH_SECONDS, "channel" => channel)
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!(crate::metrics::PUBLISH_FAILED, "channel" => channel).increment(1);
        }
        result
    }
}

/// Writes the queued hints in batches until none is left.
async fn write_hints(cache: Arc<dyn Cache>, hints: Arc<Mutex<Hints>>, ttl: Duration) {
    // A writer that ends early (its runtime shutting down) lets the next publish start another.
    struct Running {
        hints: Arc<Mutex<Hints>>,
        armed: bool,
    }
    impl Drop for Running {
        fn drop(&mut self) {
            if self.armed {
                lock(&self.hints).writer = false;
            }
        }
    }
    let mut running = Running { hints, armed: true };
    loop {
        let batch: Vec<(String, Uuid)> = {
            let mut h = lock(&running.hints);
            if h.queued.is_empty() {
                // Cleared with the queue seen empty, under the lock: a publish after this starts
                // a writer of its own.
                h.writer = false;
                running.armed = false;
                return;
            }
            let n = h.queued.len().min(HINT_BATCH);
            h.queued.drain(..n).collect()
        };
        let keys: Vec<&str> = batch.iter().map(|(k, _)| k.as_str()).collect();
        if let Err(e) = cache.set_many(&keys, b"1", Some(ttl)).await {
            tracing::warn!(error = %e, hints = batch.len(), "Could not record publish hints; retries of these callbacks will publish again");
        }
        let mut h = lock(&running.hints);
        for (_, id) in &batch {
            h.writing.remove(id);
        }
    }
}

/// The hints being written (a panic elsewhere while it was held leaves them usable).
fn lock(hints: &Mutex<Hints>) -> std::sync::MutexGuard<'_, Hints> {
    hints.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use platform::bus::{GroupSpec, Subscription};
    use platform::cache::{CacheError, MemoryCache};

    use super::*;

    /// Counts publishes; refuses the first `fail` of them.
    #[derive(Default)]
    struct CountingBus {
        published: AtomicUsize,
        fail: AtomicUsize,
    }

    #[async_trait]
    impl Bus for CountingBus {
        async fn publish(&self, _e: &Envelope) -> Result<(), BusError> {
            if self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(BusError::Unavailable("broker down".into()));
            }
            self.published.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn declare(&self, _s: &GroupSpec) -> Result<(), BusError> {
            Ok(())
        }
        async fn subscribe(&self, _s: &GroupSpec) -> Result<Subscription, BusError> {
            Err(BusError::Protocol("no subscribers here".into()))
        }
        async fn parked_count(&self, _g: &str) -> Result<u64, BusError> {
            Ok(0)
        }
        async fn replay_parked(&self, _g: &str) -> Result<u64, BusError> {
            Ok(0)
        }
        async fn ping(&self) -> Result<(), BusError> {
            Ok(())
        }
        fn kind(&self) -> &'static str {
            "counting"
        }
    }

    /// A cache whose writes take a while to land; counts the writes (a batch is one).
    struct SlowWrites(MemoryCache, AtomicUsize);

    fn slow_writes() -> Arc<SlowWrites> {
        Arc::new(SlowWrites(
            MemoryCache::new("t:", 1_000),
            AtomicUsize::new(0),
        ))
    }

    #[async_trait]
    impl Cache for SlowWrites {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
            self.0.get(key).await
        }
        async fn set(&self, key: &str, v: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
            self.set_many(&[key], v, ttl).await
        }
        async fn set_many(
            &self,
            keys: &[&str],
            v: &[u8],
            ttl: Option<Duration>,
        ) -> Result<(), CacheError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.0.set_many(keys, v, ttl).await
        }
        async fn set_nx(&self, key: &str, v: &[u8], ttl: Duration) -> Result<bool, CacheError> {
            self.0.set_nx(key, v, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<bool, CacheError> {
            self.0.delete(key).await
        }
        async fn delete_if_eq(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
            self.0.delete_if_eq(key, expected).await
        }
        async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, CacheError> {
            self.0.incr(key, by, ttl).await
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Ok(())
        }
        fn kind(&self) -> &'static str {
            "slow"
        }
    }

    /// A publisher with a 1 s budget and hints kept a minute.
    fn publisher_on(bus: Arc<CountingBus>, cache: Arc<dyn Cache>) -> Publisher {
        Publisher::new(bus, cache, Duration::from_secs(1), Duration::from_secs(60))
    }

    fn envelope(n: u32) -> Envelope {
        Envelope::builder(
            "channel.oa.message.text",
            "t1",
            serde_json::json!({ "n": n }),
        )
        .dedupe_key(format!("wx_app|msg-{n}"))
        .build()
    }

    #[tokio::test]
    async fn a_callback_is_published_once_also_while_its_hint_is_being_written() {
        let bus = Arc::new(CountingBus::default());
        let cache = slow_writes();
        let publisher = publisher_on(bus.clone(), cache.clone());
        let env = envelope(1);
        let once = |p: &Publisher| {
            let (p, env) = (p.clone(), env.clone());
            async move { p.publish_once(&env, "oa").await.expect("published") }
        };
        assert_eq!(once(&publisher).await, Published::Now);
        // Answered before the hint landed: the duplicate right behind is still caught.
        assert_eq!(once(&publisher).await, Published::Before);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(cache
            .get(&Publisher::hint_key(&env))
            .await
            .unwrap()
            .is_some());
        assert!(
            !publisher.is_writing(env.id),
            "written, then forgotten here"
        );
        // Another instance (same cache, nothing in flight) sees the hint.
        let other = publisher_on(bus.clone(), cache);
        assert_eq!(once(&other).await, Published::Before);
        assert_eq!(bus.published.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_publish_is_not_remembered() {
        let bus = Arc::new(CountingBus::default());
        bus.fail.store(1, Ordering::SeqCst);
        let cache = Arc::new(MemoryCache::new("t:", 1_000));
        let publisher = publisher_on(bus.clone(), cache);
        let env = envelope(2);
        assert!(publisher.publish_once(&env, "oa").await.is_err());
        assert!(!publisher.is_writing(env.id));
        assert_eq!(
            publisher.publish_once(&env, "oa").await.unwrap(),
            Published::Now,
            "WeChat's retry is published"
        );
        assert_eq!(bus.published.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn hints_of_callbacks_answered_together_are_written_together() {
        let bus = Arc::new(CountingBus::default());
        let cache = slow_writes();
        let publisher = publisher_on(bus.clone(), cache.clone());
        let envs: Vec<Envelope> = (100..400).map(envelope).collect();
        let all = |p: &Publisher| {
            let p = p.clone();
            let envs = envs.clone();
            async move {
                futures_util::future::join_all(envs.iter().map(|e| p.publish_once(e, "oa"))).await
            }
        };
        let first = all(&publisher).await;
        assert!(first.iter().all(|r| matches!(r, Ok(Published::Now))));
        // While written, every one is known here.
        assert!(all(&publisher)
            .await
            .iter()
            .all(|r| matches!(r, Ok(Published::Before))));
        tokio::time::sleep(Duration::from_millis(800)).await;
        let writes = cache.1.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&writes),
            "300 hints in {writes} writes, not one each"
        );
        for e in &envs {
            assert!(
                cache.get(&Publisher::hint_key(e)).await.unwrap().is_some(),
                "hint of {} written",
                e.id
            );
            assert!(!publisher.is_writing(e.id));
        }
        assert!(!lock(&publisher.hints).writer, "the writer stopped");
        // A later callback starts a writer again.
        assert_eq!(
            publisher
                .publish_once(&envelope(1_000), "oa")
                .await
                .unwrap(),
            Published::Now
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(cache.1.load(Ordering::SeqCst), writes + 1);
        assert_eq!(bus.published.load(Ordering::SeqCst), 301);
    }
}
