//! Configuration of the scoring service (`[scoring]` in the config file, `SCRM_SCORING__*` in the
//! environment).

use platform::clock::{TimeZones, Tz};
use platform::config::{key, ConfigError, DbConfig, HttpConfig, Secret, Validate};
use serde::{Deserialize, Serialize};

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
    /// The tenants' time zones (`[scoring.time_zones]`: `default`, and `tenants.<id>` for those
    /// elsewhere; IANA names): per-day caps, behaviour days and windows are counted in them.
    #[serde(default)]
    pub time_zones: TimeZones,
    /// Bus events handled at once by this process.
    #[serde(default = "default_concurrency")]
    pub consumer_concurrency: usize,
    /// Bus events that arrived together and are applied in one transaction (one commit for all);
    /// a quiet queue gives batches of one, so this only matters under load.
    #[serde(default = "default_consumer_batch")]
    pub consumer_batch: usize,
    /// How long a transaction waits, from the first event it takes, for more to share it
    /// (milliseconds; 0 takes only what is waiting).
    #[serde(default = "default_consumer_linger")]
    pub consumer_linger_ms: u64,
    /// Attempts of one event's transaction on a deadlock, lock timeout or busy database before
    /// the message goes back to the bus.
    #[serde(default = "default_tx_attempts")]
    pub tx_attempts: u32,
    /// How often the scheduler looks for due work: decay folds and crossings, SLA breaches,
    /// inactivity and other time-driven stage transitions, recompute jobs (milliseconds).
    #[serde(default = "default_tick")]
    pub scheduler_interval_ms: u64,
    /// Leads (and SLA checks) handled per scheduler pass.
    #[serde(default = "default_batch")]
    pub scheduler_batch: u32,
    /// Profiles rebuilt per step of a recompute job.
    #[serde(default = "default_recompute_batch")]
    pub recompute_batch: u32,
    /// Rounds of consequences settled per change (a trigger moving a stage whose entry fires
    /// another trigger, …); a longer chain stops there and is logged.
    #[serde(default = "default_rounds")]
    pub max_settle_rounds: u32,
    /// Largest sample of a dry run.
    #[serde(default = "default_sample")]
    pub dry_run_max_sample: u32,
    /// How often the outbox relay publishes what scoring wrote (milliseconds); events written
    /// meanwhile go out together in one pass.
    #[serde(default = "default_outbox_poll")]
    pub outbox_poll_ms: u64,
}

fn default_concurrency() -> usize {
    8
}
fn default_consumer_batch() -> usize {
    32
}
fn default_consumer_linger() -> u64 {
    // Most of an event's statements are its own here (the facts are not written per batch),
    // so waiting to fill a batch saves little and adds latency: measured, it did not help.
    0
}
fn default_tx_attempts() -> u32 {
    8
}
fn default_tick() -> u64 {
    1_000
}
fn default_batch() -> u32 {
    500
}
fn default_recompute_batch() -> u32 {
    200
}
fn default_rounds() -> u32 {
    8
}
fn default_sample() -> u32 {
    1_000
}
fn default_outbox_poll() -> u64 {
    20
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

    /// A config with defaults for everything but the listener and the database.
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
            scheduler_interval_ms: default_tick(),
            scheduler_batch: default_batch(),
            recompute_batch: default_recompute_batch(),
            max_settle_rounds: default_rounds(),
            dry_run_max_sample: default_sample(),
            outbox_poll_ms: default_outbox_poll(),
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
                "scheduler_interval_ms",
                self.scheduler_interval_ms,
                50,
                3_600_000,
            ),
            (
                "scheduler_batch",
                u64::from(self.scheduler_batch),
                1,
                100_000,
            ),
            (
                "recompute_batch",
                u64::from(self.recompute_batch),
                1,
                100_000,
            ),
            (
                "max_settle_rounds",
                u64::from(self.max_settle_rounds),
                1,
                64,
            ),
            ("outbox_poll_ms", self.outbox_poll_ms, 1, 10_000),
            (
                "dry_run_max_sample",
                u64::from(self.dry_run_max_sample),
                1,
                100_000,
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        let c: Config = serde_json::from_value(serde_json::json!({
            "http": {"bind": "127.0.0.1:0"},
            "database": {"url": "sqlite:///tmp/x.db"},
            "internal_key": "scoring-test-internal-key-0123456789",
            "time_zones": {"tenants": {"t-eu": "Europe/Berlin"}},
        }))
        .unwrap();
        c.validate("scoring").unwrap();
        for key in ["", "too-short"] {
            let mut bad = c.clone();
            bad.internal_key = serde_json::from_value(serde_json::json!(key)).unwrap();
            let e = bad.validate("scoring").unwrap_err().to_string();
            assert!(e.contains("scoring.internal_key"), "{e}");
        }
        assert_eq!(c.zone_of("t-eu"), chrono_tz::Europe::Berlin);
        assert_eq!(c.zone_of("other"), chrono_tz::Asia::Shanghai);
        let mut bad = c.clone();
        bad.scheduler_interval_ms = 0;
        let e = bad.validate("scoring").unwrap_err().to_string();
        assert!(e.contains("scoring.scheduler_interval_ms"), "{e}");
        let mut bad = c;
        bad.time_zones.tenants.insert("t-x".into(), "+08:00".into());
        let e = bad.validate("scoring").unwrap_err().to_string();
        assert!(e.contains("scoring.time_zones.tenants.t-x"), "{e}");
    }
}
