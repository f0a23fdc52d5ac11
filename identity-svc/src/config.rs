//! Configuration of the identity service (`[identity]` in the config file, `SCRM_IDENTITY__*` in the
//! environment).

use platform::config::{key, ConfigError, DbConfig, HttpConfig, Secret, Validate};
use serde::{Deserialize, Serialize};
use wechat::api::WechatAccessConfig;

use crate::domain::pii::Pii;

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
    /// Key for personal data at rest (phones, e-mails): 32 bytes in standard base64
    /// (`openssl rand -base64 32`). A keyed hash of each value is used for lookup and uniqueness
    /// and the value itself is sealed with AES-256-GCM. When absent with a SQLite database, a key
    /// is generated next to the database file (`<file>.pii.key`); with MySQL it is required.
    #[serde(default)]
    pub pii_key: Option<Secret>,
    /// Channel events handled at once by this process.
    #[serde(default = "default_consumer_concurrency")]
    pub consumer_concurrency: usize,
    /// Waiting channel events one transaction resolves together (in their order).
    #[serde(default = "default_consumer_batch")]
    pub consumer_batch: usize,
    /// How long a transaction waits for more events to share it, in milliseconds.
    #[serde(default)]
    pub consumer_linger_ms: u64,
    /// Attempts of one event's transaction when it meets a unique-key race, a deadlock or a busy
    /// database, before the message goes back to the bus for a later retry.
    #[serde(default = "default_tx_attempts")]
    pub tx_attempts: u32,
    /// Merge rules and guards.
    #[serde(default)]
    pub resolution: ResolutionConfig,
    /// Enrichment of channel events through WeChat's APIs (OA `user/info`, WeCom
    /// `externalcontact/get`) with tokens from the gateway (`[identity.wechat]`).
    #[serde(default)]
    pub wechat: WechatConfig,
}

/// Enrichment through WeChat's APIs. The service never holds an app secret: it asks the
/// gateway's internal token endpoint for access tokens (DESIGN.md §4). The keys every service
/// calling WeChat shares (`enabled`, `gateway_url`, `internal_key`, `oa_base_url`,
/// `wecom_base_url`, `timeout_ms`) are [`WechatAccessConfig`]'s, in this same section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfig {
    /// Look users and external contacts up in WeChat (`enabled`, …): see [`WechatAccessConfig`].
    #[serde(flatten)]
    pub access: WechatAccessConfig,
    /// How long an answer (including "no such user") is reused for the same user, in seconds,
    /// so a burst of events for one person calls WeChat once.
    #[serde(default = "default_cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    /// Answers kept at most in the in-process cache.
    #[serde(default = "default_cache_max_entries")]
    pub cache_max_entries: u64,
    /// Lookups in flight at once in this process (the `identity-enrich` consumer).
    #[serde(default = "default_lookup_concurrency")]
    pub concurrency: usize,
    /// Calls to WeChat per minute per app (Official Account or WeCom corp), shared by every
    /// replica through the cache; lookups beyond it wait for their slot.
    #[serde(default = "default_rate_per_minute")]
    pub rate_per_minute: u32,
    /// Calls one app may make at once after a quiet spell.
    #[serde(default = "default_rate_burst")]
    pub rate_burst: u32,
    /// Deliveries of one lookup request before it is parked (WeChat still failing); parked
    /// requests are replayed with `scrm bus replay identity-enrich`. Default: the bus's.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delays before the retries of a failed lookup, in milliseconds (the last repeats).
    /// Default: the bus's.
    #[serde(default)]
    pub retry_delays_ms: Option<Vec<u64>>,
}

fn default_cache_ttl_secs() -> u64 {
    600
}
fn default_cache_max_entries() -> u64 {
    50_000
}
fn default_lookup_concurrency() -> usize {
    16
}
fn default_rate_per_minute() -> u32 {
    30_000
}
fn default_rate_burst() -> u32 {
    100
}

impl Default for WechatConfig {
    /// Enabled, with WeChat's API hosts; `gateway_url` and `internal_key` still to be set.
    fn default() -> Self {
        WechatConfig {
            access: WechatAccessConfig::default(),
            cache_ttl_secs: default_cache_ttl_secs(),
            cache_max_entries: default_cache_max_entries(),
            concurrency: default_lookup_concurrency(),
            rate_per_minute: default_rate_per_minute(),
            rate_burst: default_rate_burst(),
            max_attempts: None,
            retry_delays_ms: None,
        }
    }
}

impl WechatConfig {
    /// Enrichment switched off.
    pub fn disabled() -> Self {
        WechatConfig {
            access: WechatAccessConfig::disabled(),
            ..WechatConfig::default()
        }
    }
}

impl Validate for WechatConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        self.access.validate(prefix)?;
        if !self.access.enabled {
            return Ok(());
        }
        if self.cache_ttl_secs == 0 || self.cache_ttl_secs > 86_400 {
            return Err(ConfigError::invalid(
                key(prefix, "cache_ttl_secs"),
                "must be between 1 and 86400",
            ));
        }
        if self.cache_max_entries == 0 {
            return Err(ConfigError::invalid(
                key(prefix, "cache_max_entries"),
                "must be at least 1",
            ));
        }
        let ranges: [(&str, u64, u64, u64); 3] = [
            ("concurrency", self.concurrency as u64, 1, 1_024),
            (
                "rate_per_minute",
                u64::from(self.rate_per_minute),
                1,
                1_000_000,
            ),
            ("rate_burst", u64::from(self.rate_burst), 1, 10_000),
        ];
        for (name, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(ConfigError::invalid(
                    key(prefix, name),
                    format!("must be between {lo} and {hi}"),
                ));
            }
        }
        if self.max_attempts.is_some_and(|n| n == 0 || n > 100) {
            return Err(ConfigError::invalid(
                key(prefix, "max_attempts"),
                "must be between 1 and 100",
            ));
        }
        if let Some(d) = &self.retry_delays_ms {
            if d.is_empty() || d.iter().any(|&ms| ms == 0 || ms > 86_400_000) {
                return Err(ConfigError::invalid(
                    key(prefix, "retry_delays_ms"),
                    "must list at least one delay, each between 1 ms and one day",
                ));
            }
        }
        Ok(())
    }
}

/// Merge rules and guards (DESIGN.md §5). One set for every tenant for now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionConfig {
    /// Merge profiles that share a UnionID of one namespace.
    #[serde(default = "yes")]
    pub merge_on_unionid: bool,
    /// Merge profiles linked by a phone number verified by WeChat (unless they hold different
    /// unionids of one namespace).
    #[serde(default = "yes")]
    pub merge_on_verified_phone: bool,
    /// Merge whoever follows the OA / adds a rep through a personalised binding code
    /// (`pb_<token>` as QR scene or contact-me `state`) into the profile the code was made for.
    #[serde(default = "yes")]
    pub merge_on_binding: bool,
    /// At most this many identifiers of one kind in one profile; a merge or attach beyond it is
    /// refused and recorded.
    #[serde(default = "default_max_per_kind")]
    pub max_identifiers_per_kind: u32,
    /// Values never used as identifiers (exact match after trimming), e.g. test phone numbers.
    /// `""`, `0`, `null`, `undefined` are always blocked.
    #[serde(default = "default_blocked_values")]
    pub blocked_values: Vec<String>,
    /// Value patterns never used as identifiers: `*` any run of characters, `?` one character,
    /// e.g. `+86100000*`.
    #[serde(default)]
    pub blocked_patterns: Vec<String>,
    /// Region (ISO 3166 code) a typed phone number without a country code belongs to; phones
    /// are normalised to E.164 and validated against that region's numbering plan.
    #[serde(default = "default_region")]
    pub default_phone_region: String,
    /// Which WeChat Open Platform account each app (OA / mini-program appid, WeCom corpid) is
    /// bound to: app id → platform id. UnionIDs are unique per Open Platform account, so the
    /// unionids of apps on different accounts live in different namespaces and never merge;
    /// apps not listed share the `default` namespace.
    #[serde(default)]
    pub open_platforms: std::collections::BTreeMap<String, String>,
    /// Per-tenant overrides of the rules above (`[identity.resolution.tenants.<tenant_id>]`).
    #[serde(default)]
    pub tenants: std::collections::BTreeMap<String, TenantResolution>,
}

/// A tenant's own merge rules and guards; anything not given is the global setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantResolution {
    #[serde(default)]
    pub merge_on_unionid: Option<bool>,
    #[serde(default)]
    pub merge_on_verified_phone: Option<bool>,
    #[serde(default)]
    pub merge_on_binding: Option<bool>,
    #[serde(default)]
    pub max_identifiers_per_kind: Option<u32>,
    /// Added to the global blocked values.
    #[serde(default)]
    pub blocked_values: Vec<String>,
    /// Added to the global blocked patterns.
    #[serde(default)]
    pub blocked_patterns: Vec<String>,
    #[serde(default)]
    pub default_phone_region: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_consumer_concurrency() -> usize {
    8
}
fn default_consumer_batch() -> usize {
    32
}
fn default_tx_attempts() -> u32 {
    8
}
fn default_max_per_kind() -> u32 {
    20
}
fn default_region() -> String {
    "CN".into()
}
fn default_blocked_values() -> Vec<String> {
    // Numbers used in WeChat's own samples and developer tools.
    vec!["+8613800138000".into(), "+8613800000000".into()]
}

impl Default for ResolutionConfig {
    fn default() -> Self {
        ResolutionConfig {
            merge_on_unionid: true,
            merge_on_verified_phone: true,
            merge_on_binding: true,
            max_identifiers_per_kind: default_max_per_kind(),
            blocked_values: default_blocked_values(),
            blocked_patterns: Vec::new(),
            default_phone_region: default_region(),
            open_platforms: Default::default(),
            tenants: Default::default(),
        }
    }
}

impl Config {
    /// How the channel-event consumer gathers deliveries into transactions.
    pub fn batching(&self) -> platform::bus::Batching {
        platform::bus::Batching {
            concurrency: self.consumer_concurrency,
            batch: self.consumer_batch,
            linger: std::time::Duration::from_millis(self.consumer_linger_ms),
        }
    }

    /// A config with defaults for everything but the listener and the database, and WeChat
    /// enrichment off (it needs a gateway).
    pub fn new(http: HttpConfig, database: DbConfig) -> Self {
        Config {
            http,
            database,
            internal_key: Secret::default(),
            pii_key: None,
            consumer_concurrency: default_consumer_concurrency(),
            consumer_batch: default_consumer_batch(),
            consumer_linger_ms: 0,
            tx_attempts: default_tx_attempts(),
            resolution: ResolutionConfig::default(),
            wechat: WechatConfig::disabled(),
        }
    }
}

impl Validate for Config {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        self.http.validate(&key(prefix, "http"))?;
        self.database.validate(&key(prefix, "database"))?;
        platform::config::check_internal_key(self.internal_key.expose())
            .map_err(|reason| ConfigError::invalid(key(prefix, "internal_key"), reason))?;
        match &self.pii_key {
            Some(k) => {
                Pii::from_base64(k.expose())
                    .map_err(|e| ConfigError::invalid(key(prefix, "pii_key"), e.to_string()))?;
            }
            None if platform::db::sqlite_path(self.database.url.expose()).is_none() => {
                return Err(ConfigError::invalid(
                    key(prefix, "pii_key"),
                    "is required with a MySQL database: verified phones and e-mails are sealed \
                     with it (32 random bytes in base64, e.g. `openssl rand -base64 32`)",
                ));
            }
            None => {}
        }
        if self.consumer_concurrency == 0 || self.consumer_concurrency > 1024 {
            return Err(ConfigError::invalid(
                key(prefix, "consumer_concurrency"),
                "must be between 1 and 1024",
            ));
        }
        if self.consumer_batch == 0 || self.consumer_batch > 1000 {
            return Err(ConfigError::invalid(
                key(prefix, "consumer_batch"),
                "must be between 1 and 1000",
            ));
        }
        if self.consumer_linger_ms > 10_000 {
            return Err(ConfigError::invalid(
                key(prefix, "consumer_linger_ms"),
                "must be at most 10000",
            ));
        }
        if self.tx_attempts == 0 || self.tx_attempts > 100 {
            return Err(ConfigError::invalid(
                key(prefix, "tx_attempts"),
                "must be between 1 and 100",
            ));
        }
        self.wechat.validate(&key(prefix, "wechat"))?;
        let r = key(prefix, "resolution");
        let res = &self.resolution;
        check_rules(
            &r,
            Some(&res.default_phone_region),
            Some(res.max_identifiers_per_kind),
            &res.blocked_patterns,
        )?;
        for (app, platform) in &res.open_platforms {
            let valid = |s: &str| !s.trim().is_empty() && s.len() <= 64;
            if !valid(app) || !valid(platform) || platform == proto::identity::DEFAULT_NAMESPACE {
                return Err(ConfigError::invalid(
                    key(&key(&r, "open_platforms"), app),
                    "app and platform ids must be 1..=64 characters, the platform not `default`",
                ));
            }
        }
        for (tenant, t) in &res.tenants {
            check_rules(
                &key(&key(&r, "tenants"), tenant),
                t.default_phone_region.as_ref(),
                t.max_identifiers_per_kind,
                &t.blocked_patterns,
            )?;
        }
        Ok(())
    }
}

fn check_rules(
    prefix: &str,
    region: Option<&String>,
    max_per_kind: Option<u32>,
    patterns: &[String],
) -> Result<(), ConfigError> {
    if region.is_some_and(|r| r.parse::<phonenumber::country::Id>().is_err()) {
        return Err(ConfigError::invalid(
            key(prefix, "default_phone_region"),
            "must be an ISO 3166 region code such as `CN`",
        ));
    }
    if max_per_kind == Some(0) {
        return Err(ConfigError::invalid(
            key(prefix, "max_identifiers_per_kind"),
            "must be at least 1",
        ));
    }
    for (i, p) in patterns.iter().enumerate() {
        if p.trim().is_empty() || p.chars().all(|c| c == '*') {
            return Err(ConfigError::invalid(
                format!("{}[{i}]", key(prefix, "blocked_patterns")),
                "a pattern must not be empty or match every value",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-internal-key-0123456789abcdef0123";

    fn cfg() -> Config {
        serde_json::from_value(serde_json::json!({
            "http": {"bind": "127.0.0.1:0"},
            "database": {"url": "sqlite:///tmp/x.db"},
            "internal_key": KEY,
            "wechat": {"enabled": false},
        }))
        .unwrap()
    }

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        let c = cfg();
        c.validate("identity").unwrap();
        // The API serves nobody without the deployment's internal key.
        let mut bad = c.clone();
        bad.internal_key = Secret::default();
        let e = bad.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.internal_key"), "{e}");
        assert_eq!(c.resolution.max_identifiers_per_kind, 20);
        let mut bad = c.clone();
        bad.pii_key = Some(Secret::new("c2hvcnQ="));
        let e = bad.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.pii_key"), "{e}");
        let mut bad = c.clone();
        bad.resolution.blocked_patterns = vec!["*".into()];
        let e = bad.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.resolution.blocked_patterns[0]"), "{e}");
        let mut bad = c;
        bad.consumer_concurrency = 0;
        let e = bad.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.consumer_concurrency"), "{e}");
    }

    #[test]
    fn wechat_enrichment_needs_a_gateway_and_its_key() {
        let mut c: Config = serde_json::from_value(serde_json::json!({
            "http": {"bind": "127.0.0.1:0"},
            "database": {"url": "sqlite:///tmp/x.db"},
            "internal_key": KEY,
        }))
        .unwrap();
        assert!(c.wechat.access.enabled, "on unless switched off");
        assert_eq!(c.wechat.cache_ttl_secs, 600);
        let e = c.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.wechat.gateway_url"), "{e}");
        c.wechat.access.gateway_url = "http://127.0.0.1:8080".into();
        let e = c.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.wechat.internal_key"), "{e}");
        c.wechat.access.internal_key = Secret::new("k".repeat(32));
        c.validate("identity").unwrap();
        c.wechat.access.timeout_ms = 0;
        let e = c.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.wechat.timeout_ms"), "{e}");
        c.wechat.access.timeout_ms = 100;
        c.wechat.access.oa_base_url = "api.weixin.qq.com".into();
        let e = c.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.wechat.oa_base_url"), "{e}");
        assert!(
            !format!("{c:?}").contains(&"k".repeat(32)),
            "the key never prints"
        );
        // The shared keys sit in this section next to identity's own; a typo is still refused.
        let typo = serde_json::from_value::<Config>(serde_json::json!({
            "http": {"bind": "127.0.0.1:0"},
            "database": {"url": "sqlite:///tmp/x.db"},
            "wechat": {"gateway_ur": "http://127.0.0.1:8080", "cache_ttl_secs": 5},
        }))
        .unwrap_err()
        .to_string();
        assert!(typo.contains("unknown field `gateway_ur`"), "{typo}");
        assert!(
            !Config::new(c.http.clone(), c.database.clone())
                .wechat
                .access
                .enabled
        );
    }
}
