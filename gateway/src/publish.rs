//! Durable publishing for the gateway's endpoints: an accepted request is answered 2xx only after
//! the broker confirmed its event within the time budget. A cache hint (by envelope id) lets
//! WeChat's retries of an already-published callback be answered without publishing again; the hint
//! is written only after the confirm, so a failed publish is never remembered as done.
//!
//! The hint is written beside the answer, not before it: WeChat retries only after five seconds
//! without an answer, long after the write. Until it lands, the ids being written are known here,
//! so a duplicate sent right after the answer to this instance is still caught. A hint lost (the
//! cache down, the process stopped meanwhile) costs one more publish of the same envelope id,
//! which consumers drop by id.

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

#[derive(Clone)]
pub struct Publisher {
    bus: Arc<dyn Bus>,
    cache: Arc<dyn Cache>,
    budget: Duration,
    dedupe_ttl: Duration,
    /// Envelopes confirmed whose hint is still being written.
    writing: Arc<Mutex<HashSet<Uuid>>>,
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
            writing: Arc::default(),
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
            metrics::counter!("scrm_gateway_duplicates_total", "channel" => channel).increment(1);
            return Ok(Published::Before);
        }
        self.publish(std::slice::from_ref(env), channel).await?;
        self.lock_writing().insert(env.id);
        let (cache, writing, ttl, id) = (
            self.cache.clone(),
            self.writing.clone(),
            self.dedupe_ttl,
            env.id,
        );
        tokio::spawn(async move {
            if let Err(e) = cache.set(&key, b"1", Some(ttl)).await {
                tracing::warn!(error = %e, "Could not record the publish hint; a retry will publish again");
            }
            writing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
        Ok(Published::Now)
    }

    fn lock_writing(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.writing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_writing(&self, id: Uuid) -> bool {
        self.lock_writing().contains(&id)
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
        metrics::histogram!("scrm_gateway_publish_seconds", "channel" => channel)
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("scrm_gateway_publish_failed_total", "channel" => channel)
                .increment(1);
        }
        result
    }
}
