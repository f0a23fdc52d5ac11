//! A rate limit of calls per key (a WeCom corp, an Official Account) shared by every replica
//! through the cache (Redis in production): a token bucket of `burst` tokens refilled at
//! `rate_per_minute`, built on the cache's atomic `set_nx` alone. Used for calls to WeChat's
//! APIs, whose quotas are per app across every process of a deployment.
//!
//! Time is a row of slots, one every `60 s / rate_per_minute`, numbered from the Unix epoch; a
//! slot is taken by writing its key `<namespace>:rate:<key>:<n>` with `set_nx`, so each slot
//! goes to exactly one caller across all replicas (their clocks kept by NTP). A caller takes the
//! first free slot from `burst − 1` slots before now (the tokens a quiet spell saved) and calls
//! at its start (at once when it is past). So every call starts at most `burst` slots after
//! its slot began, and in any stretch of time `T` at most `burst + rate × T` calls start; with
//! `burst = 1` calls are evenly spaced.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Cache, CacheError};

/// Shared rate limit of calls per key.
#[derive(Clone)]
pub struct RateLimiter {
    cache: Arc<dyn Cache>,
    /// What is limited, the first part of every slot key (e.g. `wecom_sync`).
    namespace: &'static str,
    /// Milliseconds between two slots.
    spacing_ms: f64,
    burst: u32,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl RateLimiter {
    /// `rate_per_minute` calls per minute per key of `namespace`, at most `burst` at once.
    pub fn new(
        cache: Arc<dyn Cache>,
        namespace: &'static str,
        rate_per_minute: u32,
        burst: u32,
    ) -> Self {
        RateLimiter {
            cache,
            namespace,
            spacing_ms: 60_000.0 / f64::from(rate_per_minute.max(1)),
            burst: burst.max(1),
        }
    }

    /// Takes the next call slot of `key` that starts within `horizon`: how long to wait before
    /// calling (zero: call now), or `None` when every slot until then is taken.
    pub async fn reserve(
        &self,
        key: &str,
        horizon: Duration,
    ) -> Result<Option<Duration>, CacheError> {
        let now = unix_ms() as f64;
        let last = now + horizon.as_millis() as f64;
        let saved = f64::from(self.burst - 1) * self.spacing_ms;
        let mut n = ((now - saved) / self.spacing_ms).ceil() as i64;
        loop {
            let start = n as f64 * self.spacing_ms;
            if start > last {
                return Ok(None);
            }
            // The key is looked at until its slot is more than `burst` slots old.
            let ttl = Duration::from_millis(((start - now).max(0.0) + saved + 2_000.0) as u64);
            if self
                .cache
                .set_nx(&format!("{}:rate:{key}:{n}", self.namespace), b"1", ttl)
                .await?
            {
                return Ok(Some(Duration::from_millis(
                    (start - now).max(0.0).ceil() as u64
                )));
            }
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    /// The waits (ms) of `n` reservations in a row for corp `ww1`.
    async fn waits(limiter: &RateLimiter, n: usize) -> Vec<i64> {
        let mut waits = Vec::new();
        for _ in 0..n {
            let w = limiter
                .reserve("ww1", Duration::from_secs(10))
                .await
                .unwrap()
                .expect("a slot");
            waits.push(w.as_millis() as i64);
        }
        waits
    }

    #[tokio::test]
    async fn spaces_calls_after_the_burst() {
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new("t:", 1_000));
        // 600 a minute = one slot every 100 ms; 3 at once after a quiet spell.
        let limiter = RateLimiter::new(cache, "test", 600, 3);
        let waits = waits(&limiter, 7).await;
        // The two saved slots and the current one go at once (the current one may start a
        // little later), then one every 100 ms.
        assert_eq!(&waits[..2], &[0, 0], "{waits:?}");
        assert!(waits[2] <= 100, "{waits:?}");
        for pair in waits[2..].windows(2) {
            assert!((95..=105).contains(&(pair[1] - pair[0])), "{waits:?}");
        }
        // Another corp has its own bucket; a short horizon finds nothing free.
        let other = limiter
            .reserve("ww2", Duration::ZERO)
            .await
            .unwrap()
            .expect("its own slot");
        assert_eq!(other, Duration::ZERO);
        assert_eq!(
            limiter
                .reserve("ww1", Duration::from_millis(50))
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn one_at_a_time_spaces_every_call() {
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new("t:", 1_000));
        let limiter = RateLimiter::new(cache, "test", 1_200, 1);
        let waits = waits(&limiter, 4).await;
        assert!(waits[0] <= 50, "{waits:?}");
        for pair in waits.windows(2) {
            assert!((45..=55).contains(&(pair[1] - pair[0])), "{waits:?}");
        }
    }
}
