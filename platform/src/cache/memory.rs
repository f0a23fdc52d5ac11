//! The in-process cache (moka) for single-process deployments and tests. Each entry carries its
//! own optional deadline, which moka's per-entry expiry enforces; reads also check the deadline
//! themselves, so an entry past it reads as absent even before moka evicts it. The read-modify-
//! write operations (`set_nx`, `delete_if_eq`, `incr`) run through moka's per-key compute, so they
//! are atomic under concurrency. Counters are stored as decimal ASCII, as Redis stores them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::future::Cache as MokaCache;
use moka::ops::compute::{CompResult, Op};
use moka::Expiry;

use super::{Cache, CacheError};

/// One stored value and the instant it stops existing (`None` = never).
#[derive(Clone, Debug)]
struct Stored {
    data: Arc<[u8]>,
    deadline: Option<Instant>,
}

impl Stored {
    fn new(data: &[u8], ttl: Option<Duration>, now: Instant) -> Self {
        Self {
            data: Arc::from(data),
            deadline: ttl.and_then(|ttl| deadline(now, ttl)),
        }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.deadline.is_none_or(|d| now < d)
    }

    fn remaining(&self, now: Instant) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(now))
    }
}

/// `now + ttl`; a TTL too large to represent means "never expires".
fn deadline(now: Instant, ttl: Duration) -> Option<Instant> {
    now.checked_add(ttl)
}

/// Tells moka to expire each entry at the deadline it carries, on insert and on every update.
struct PerEntryDeadline;

impl Expiry<String, Stored> for PerEntryDeadline {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Stored,
        created_at: Instant,
    ) -> Option<Duration> {
        value.remaining(created_at)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Stored,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.remaining(updated_at)
    }
}

/// The cache of one process.
#[derive(Clone)]
pub struct MemoryCache {
    cache: MokaCache<String, Stored>,
    prefix: String,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("prefix", &self.prefix)
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl MemoryCache {
    /// An empty cache holding at most `max_entries` entries, every key prefixed with
    /// `key_prefix`.
    pub fn new(key_prefix: &str, max_entries: u64) -> Self {
        let cache = MokaCache::builder()
            .max_capacity(max_entries)
            .expire_after(PerEntryDeadline)
            .build();
        Self {
            cache,
            prefix: key_prefix.to_string(),
        }
    }

    /// The key prefix every key of this cache carries.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let now = Instant::now();
        Ok(self
            .cache
            .get(self.key(key).as_str())
            .await
            .filter(|v| v.is_live(now))
            .map(|v| v.data.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let stored = Stored::new(value, ttl, Instant::now());
        self.cache.insert(self.key(key), stored).await;
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let result = self
            .cache
            .entry(self.key(key))
            .and_compute_with(|current| {
                let now = Instant::now();
                let op = match current {
                    Some(entry) if entry.value().is_live(now) => Op::Nop,
                    _ => Op::Put(Stored::new(value, Some(ttl), now)),
                };
                std::future::ready(op)
            })
            .await;
        Ok(matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        ))
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let now = Instant::now();
        Ok(self
            .cache
            .remove(self.key(key).as_str())
            .await
            .is_some_and(|v| v.is_live(now)))
    }

    async fn delete_if_eq(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
        let result = self
            .cache
            .entry(self.key(key))
            .and_compute_with(|current| {
                let now = Instant::now();
                let op = match current {
                    Some(entry)
                        if entry.value().is_live(now) && *entry.value().data == *expected =>
                    {
                        Op::Remove
                    }
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        Ok(matches!(result, CompResult::Removed(_)))
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, CacheError> {
        let mut new_value: i64 = 0;
        self.cache
            .entry(self.key(key))
            .and_try_compute_with(|current| {
                let now = Instant::now();
                let computed = match current.map(|e| e.into_value()) {
                    Some(old) if old.is_live(now) => {
                        match parse_integer(&old.data).map(|n| n.checked_add(by)) {
                            None => Err(CacheError::Value(format!(
                                "incr on {key}: value is not an integer or out of range"
                            ))),
                            Some(None) => Err(CacheError::Value(format!(
                                "incr on {key}: increment or decrement would overflow"
                            ))),
                            // An existing counter keeps the deadline it was created with.
                            Some(Some(n)) => Ok((
                                n,
                                Stored {
                                    data: Arc::from(n.to_string().as_bytes()),
                                    deadline: old.deadline,
                                },
                            )),
                        }
                    }
                    _ => Ok((by, Stored::new(by.to_string().as_bytes(), Some(ttl), now))),
                };
                std::future::ready(computed.map(|(n, stored)| {
                    new_value = n;
                    Op::Put(stored)
                }))
            })
            .await?;
        Ok(new_value)
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// Parses a stored counter the way Redis does: optional `-`, then decimal digits without leading
/// zeros (a lone `0` aside), no sign on zero, no surrounding spaces, within `i64`.
fn parse_integer(data: &[u8]) -> Option<i64> {
    let digits = data.strip_prefix(b"-").unwrap_or(data);
    let well_formed = match digits {
        [] => false,
        [b'0'] => digits.len() == data.len(),
        [first, rest @ ..] => {
            first.is_ascii_digit() && *first != b'0' && rest.iter().all(u8::is_ascii_digit)
        }
    };
    if !well_formed {
        return None;
    }
    std::str::from_utf8(data).ok()?.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"42"), Some(42));
        assert_eq!(parse_integer(b"-7"), Some(-7));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"007",
            b"+5",
            b" 5",
            b"5 ",
            b"abc",
            b"1.5",
            b"9223372036854775808",
        ] {
            assert!(parse_integer(bad).is_none(), "{bad:?} parsed");
        }
    }
}
