//! Tuning of the WeCom corp-tag sync (`[tagging.wecom_sync]`). Where WeChat is and how tokens are
//! obtained is `[tagging.wechat]` ([`wechat::api::WechatAccessConfig`]).

use platform::config::{key, ConfigError, Validate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomSyncConfig {
    /// WeCom API calls (`mark_tag`, `get_corp_tag_list`) per minute per corp, shared by every
    /// replica (counted in the cache, Redis in production). A small fraction of what WeCom
    /// allows a corp, so operators' own tools keep their share.
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// Calls that may go at once after a quiet spell (the bucket's size); 1 spaces every call
    /// evenly.
    #[serde(default = "default_burst")]
    pub rate_burst: u32,
    /// Contacts (rep × customer) one worker pass claims.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// How often an idle worker looks for due items, in milliseconds.
    #[serde(default = "default_poll")]
    pub poll_ms: u64,
    /// Attempts of one item before it is marked `failed` with the last error.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delay before each retry after a transient error, in milliseconds; the last repeats.
    #[serde(default = "default_delays")]
    pub retry_delays_ms: Vec<u64>,
    /// Least delay after WeCom answers "too many calls" (45009, 45011, 45033), in milliseconds.
    #[serde(default = "default_rate_limited_delay")]
    pub rate_limited_delay_ms: u64,
    /// How long a claimed item belongs to the worker that claimed it; a worker that dies
    /// mid-call leaves it to another after this. Longer than two WeChat requests.
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
    /// Items sent or superseded are kept this many hours (failed ones until retried or
    /// removed by hand).
    #[serde(default = "default_retention")]
    pub retention_hours: u64,
    /// Every known corp's tag library is read again this often (seconds) besides on
    /// `change_external_tag` events, at start and on request; `0` turns the refresh off.
    #[serde(default = "default_refresh")]
    pub mirror_refresh_secs: u64,
}

fn default_rate() -> u32 {
    300
}
fn default_burst() -> u32 {
    5
}
fn default_batch() -> u32 {
    50
}
fn default_poll() -> u64 {
    1_000
}
fn default_attempts() -> u32 {
    8
}
fn default_delays() -> Vec<u64> {
    vec![5_000, 30_000, 120_000, 600_000]
}
fn default_rate_limited_delay() -> u64 {
    60_000
}
fn default_lease() -> u64 {
    120
}
fn default_retention() -> u64 {
    168
}
fn default_refresh() -> u64 {
    21_600
}

impl Default for WecomSyncConfig {
    fn default() -> Self {
        WecomSyncConfig {
            rate_per_minute: default_rate(),
            rate_burst: default_burst(),
            batch: default_batch(),
            poll_ms: default_poll(),
            max_attempts: default_attempts(),
            retry_delays_ms: default_delays(),
            rate_limited_delay_ms: default_rate_limited_delay(),
            lease_secs: default_lease(),
            retention_hours: default_retention(),
            mirror_refresh_secs: default_refresh(),
        }
    }
}

impl WecomSyncConfig {
    /// The delay before the next try after `attempts` tries.
    pub fn retry_delay(&self, attempts: u32, rate_limited: bool) -> std::time::Duration {
        let i = (attempts.max(1) as usize - 1).min(self.retry_delays_ms.len().saturating_sub(1));
        let mut ms = self.retry_delays_ms.get(i).copied().unwrap_or(1_000);
        if rate_limited {
            ms = ms.max(self.rate_limited_delay_ms);
        }
        std::time::Duration::from_millis(ms)
    }
}

impl Validate for WecomSyncConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        for (name, v, lo, hi) in [
            (
                "rate_per_minute",
                u64::from(self.rate_per_minute),
                1,
                60_000,
            ),
            ("rate_burst", u64::from(self.rate_burst), 1, 1_000),
            ("batch", u64::from(self.batch), 1, 1_000),
            ("poll_ms", self.poll_ms, 50, 60_000),
            ("max_attempts", u64::from(self.max_attempts), 1, 100),
            (
                "rate_limited_delay_ms",
                self.rate_limited_delay_ms,
                0,
                86_400_000,
            ),
            ("lease_secs", self.lease_secs, 10, 3_600),
            ("retention_hours", self.retention_hours, 1, 24 * 366),
            (
                "mirror_refresh_secs",
                self.mirror_refresh_secs,
                0,
                7 * 86_400,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(ConfigError::invalid(
                    key(prefix, name),
                    format!("must be between {lo} and {hi}"),
                ));
            }
        }
        if self.retry_delays_ms.is_empty() || self.retry_delays_ms.iter().any(|d| *d > 86_400_000) {
            return Err(ConfigError::invalid(
                key(prefix, "retry_delays_ms"),
                "must list at least one delay, each at most 86400000",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_the_last_repeats() {
        let c = WecomSyncConfig {
            retry_delays_ms: vec![10, 20],
            rate_limited_delay_ms: 15,
            ..WecomSyncConfig::default()
        };
        let ms = |a, r| c.retry_delay(a, r).as_millis();
        assert_eq!((ms(1, false), ms(2, false), ms(9, false)), (10, 20, 20));
        assert_eq!((ms(1, true), ms(2, true)), (15, 20));
        c.validate("tagging.wecom_sync").unwrap();
        let bad = WecomSyncConfig {
            lease_secs: 1,
            ..c.clone()
        };
        let e = bad.validate("tagging.wecom_sync").unwrap_err().to_string();
        assert!(e.contains("tagging.wecom_sync.lease_secs"), "{e}");
        let bad = WecomSyncConfig {
            retry_delays_ms: vec![],
            ..c
        };
        let e = bad.validate("tagging.wecom_sync").unwrap_err().to_string();
        assert!(e.contains("tagging.wecom_sync.retry_delays_ms"), "{e}");
    }
}
