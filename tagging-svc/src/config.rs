//! Configuration of the tagging service (`[tagging]` in the config file, `SCRM_TAGGING__*` in the
//! environment).

use platform::clock::{TimeZones, Tz};
use platform::config::{key, ConfigError, DbConfig, HttpConfig, Secret, Validate};
use serde::{Deserialize, Serialize};
use wechat::api::WechatAccessConfig;

use crate::wecom::WecomSyncConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Internal HTTP API listener.
    pub http: HttpConfig,
    /// The service's own database.
    pub database: DbConfig,
    /// The deployment's internal key (the same as `gateway.internal_key`; `scrm` takes that one
    /// when this is not set): every `/v1` request must carry a service credential the gateway
    /// signed with a key derived from it.
    #[serde(default)]
    pub internal_key: Secret,
    /// The tenants' time zones (`[tagging.time_zones]`: `default`, and `tenants.<id>` for those
    /// elsewhere; IANA names): behaviour days, windows and their midnight exits are counted in
    /// them.
    #[serde(default)]
    pub time_zones: TimeZones,
    /// Bus events handled at once by this process.
    #[serde(default = "default_concurrency")]
    pub consumer_concurrency: usize,
    /// Bus events that arrived together and are handled in one transaction (one commit for all);
    /// a quiet queue gives batches of one, so this only matters under load.
    #[serde(default = "default_consumer_batch")]
    pub consumer_batch: usize,
    /// How long a transaction waits, from the first event it takes, for more to share it
    /// (milliseconds; 0 takes only what is waiting).
    #[serde(default = "default_consumer_linger")]
    pub consumer_linger_ms: u64,
    /// Attempts of one event's transaction on a deadlock or busy database before the message
    /// goes back to the bus.
    #[serde(default = "default_tx_attempts")]
    pub tx_attempts: u32,
    /// Raw behaviour events are kept this many days (counts of older days stay in the daily
    /// buckets; filters on event properties see only kept events).
    #[serde(default = "default_retention")]
    pub event_retention_days: u32,
    /// How often the scheduler looks for window exits and midnight roll-overs (milliseconds).
    #[serde(default = "default_tick")]
    pub scheduler_interval_ms: u64,
    /// Profiles per batch of a backfill.
    #[serde(default = "default_batch")]
    pub backfill_batch: u32,
    /// Rounds of chained rules (a rule reading a tag another rule sets) settled per change.
    #[serde(default = "default_chain")]
    pub max_chain_rounds: u32,
    /// WeChat access for the WeCom corp-tag sync, with tokens from the gateway
    /// (`[tagging.wechat]`, the same keys as `[identity.wechat]`'s access keys).
    #[serde(default)]
    pub wechat: WechatAccessConfig,
    /// The corp-tag mirror and write-back (`[tagging.wecom_sync]`).
    #[serde(default)]
    pub wecom_sync: WecomSyncConfig,
}

fn default_concurrency() -> usize {
    // Measured on two cores with MariaDB and RabbitMQ beside it, 1 000 events/s offered, p99
    // over runs of 20 s: 4 transactions at once median 318 ms (228 ms – 1.5 s, 10 runs), 8
    // median 591 ms (5 runs), 16 median 926 ms (8 runs). Fewer handlers take fuller batches
    // (fewer commits and round trips) and contend less.
    4
}
fn default_consumer_batch() -> usize {
    32
}
fn default_consumer_linger() -> u64 {
    // Measured: at 300–500 events/s, 5 ms cut MariaDB's and the service's CPU per event by a
    // fifth and p99 from seconds (500/s falling behind) to ~65 ms; 10–20 ms only added latency.
    5
}
fn default_tx_attempts() -> u32 {
    8
}
fn default_retention() -> u32 {
    400
}
fn default_tick() -> u64 {
    5_000
}
fn default_batch() -> u32 {
    20_000
}
fn default_chain() -> u32 {
    8
}

impl Config {
    /// How the bus consumer gathers events into transactions.
    pub fn batching(&self) -> platform::bus::Batching {
        platform::bus::Batching {
            concurrency: self.consumer_concurrency,
            batch: self.consumer_batch,
            linger: std::time::Duration::from_millis(self.consumer_linger_ms),
        }
    }

    /// A config with defaults for everything but the listener and the database, and WeCom access
    /// off (it needs a gateway).
    pub fn new(http: HttpConfig, database: DbConfig) -> Self {
        Config {
            http,
            database,
            internal_key: Secret::default(),
            time_zones: TimeZones::default(),
            consumer_concurrency: default_concurrency(),
            consumer_batch: default_consumer_batch(),
            consumer_linger_ms: default_consumer_linger(),
            tx_attempts: default_tx_attempts(),
            event_retention_days: default_retention(),
            scheduler_interval_ms: default_tick(),
            backfill_batch: default_batch(),
            max_chain_rounds: default_chain(),
            wechat: WechatAccessConfig::disabled(),
            wecom_sync: WecomSyncConfig::default(),
        }
    }

    /// The time zone of `tenant`.
    pub fn zone_of(&self, tenant: &str) -> Tz {
        self.time_zones.of(tenant)
    }
}

impl Validate for Config {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        self.http.validate(&key(prefix, "http"))?;
        self.database.validate(&key(prefix, "database"))?;
        platform::config::check_internal_key(self.internal_key.expose())
            .map_err(|reason| ConfigError::invalid(key(prefix, "internal_key"), reason))?;
        self.wechat.validate(&key(prefix, "wechat"))?;
        self.wecom_sync.validate(&key(prefix, "wecom_sync"))?;
        self.time_zones.validate(&key(prefix, "time_zones"))?;
        for (name, v, lo, hi) in [
            (
                "consumer_concurrency",
                self.consumer_concurrency as u64,
                1,
                1024,
            ),
            ("consumer_batch", self.consumer_batch as u64, 1, 1000),
            ("consumer_linger_ms", self.consumer_linger_ms, 0, 1000),
            ("tx_attempts", u64::from(self.tx_attempts), 1, 100),
            (
                "event_retention_days",
                u64::from(self.event_retention_days),
                1,
                3660,
            ),
            (
                "scheduler_interval_ms",
                self.scheduler_interval_ms,
                100,
                3_600_000,
            ),
            (
                "backfill_batch",
                u64::from(self.backfill_batch),
                100,
                1_000_000,
            ),
            ("max_chain_rounds", u64::from(self.max_chain_rounds), 1, 64),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(ConfigError::invalid(
                    key(prefix, name),
                    format!("must be between {lo} and {hi}"),
                ));
            }
        }
        Ok(())
    }
}
