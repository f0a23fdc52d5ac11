//! The cache: Redis (shared by every process of a deployment) and in-process (moka) behind one
//! trait. Used for WeChat access tokens (with a single-flight refresh lock), callback dedupe hints,
//! rate limits and hot read caches — never as the only copy of anything that matters.
//!
//! Keys are plain strings; every implementation prepends the deployment's key prefix.

mod memory;
mod rate;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryCache;
pub use self::rate::RateLimiter;
pub use self::redis::RedisCache;
use crate::config::{CacheConfig, CacheKind};

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache server could not be reached or answered with an error.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// A stored value was not what the operation expected (e.g. `incr` on a non-integer).
    #[error("cache value error: {0}")]
    Value(String),
}

/// The cache every role shares.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Stores `value` under `key`, expiring after `ttl` (never when `None`).
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError>;

    /// Stores `value` under every one of `keys` (each expiring after `ttl`) in one exchange with
    /// the server where it allows: a batch of writes costs one round trip, not one each. Not
    /// atomic: on an error some keys may be stored.
    async fn set_many(
        &self,
        keys: &[&str],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        for key in keys {
            self.set(key, value, ttl).await?;
        }
        Ok(())
    }

    /// Stores `value` only if `key` is absent; `true` when it was stored. The building block of
    /// locks and dedupe hints.
    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError>;

    /// Removes `key`; `true` when it existed.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// Removes `key` only while it still holds `expected` (releasing a lock one owns); `true` when
    /// removed. Atomic.
    async fn delete_if_eq(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError>;

    /// Adds `by` to the integer under `key` (absent = 0) and returns the new value. When the key
    /// is created by this call it expires after `ttl` (fixed-window counters). Atomic.
    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, CacheError>;

    /// Checks the cache is reachable (readiness).
    async fn ping(&self) -> Result<(), CacheError>;

    /// Short name for logs and readiness output.
    fn kind(&self) -> &'static str;
}

/// Builds the cache a config asks for (connecting and pinging Redis).
pub async fn connect(cfg: &CacheConfig) -> Result<Arc<dyn Cache>, CacheError> {
    Ok(match cfg.kind {
        CacheKind::Memory => Arc::new(MemoryCache::new(&cfg.key_prefix, cfg.max_entries)),
        CacheKind::Redis => {
            let url = cfg
                .url
                .as_ref()
                .ok_or_else(|| CacheError::Unavailable("cache.url is required for redis".into()))?;
            Arc::new(RedisCache::connect(url.expose(), &cfg.key_prefix).await?)
        }
    })
}
