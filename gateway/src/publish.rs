//! Durable publishing for the gateway's endpoints: an accepted request is answered 2xx only after
//! the broker confirmed its event within the time budget. A cache hint (by envelope id) lets
//! WeChat's retries of an already-published callback be answered without publishing again; the hint
//! is written only after the confirm, so a failed publish is never remembered as done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::bus::{Bus, BusError};
use platform::cache::Cache;
use proto::Envelope;

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
        if let Ok(Some(_)) = self.cache.get(&key).await {
            metrics::counter!("scrm_gateway_duplicates_total", "channel" => channel).increment(1);
            return Ok(Published::Before);
        }
        self.publish(std::slice::from_ref(env), channel).await?;
        if let Err(e) = self.cache.set(&key, b"1", Some(self.dedupe_ttl)).await {
            tracing::warn!(error = %e, "Could not record the publish hint; a retry will publish again");
        }
        Ok(Published::Now)
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
