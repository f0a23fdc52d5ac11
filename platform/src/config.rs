//! Typed configuration: a TOML file merged with `SCRM_*` environment overrides (`__` separates
//! nesting: `SCRM_BUS__URL` sets `bus.url`), validated at start with errors that name the key.
//!
//! The shared parts (`DbConfig`, `BusConfig`, `CacheConfig`, `HttpConfig`, `TelemetryConfig`) live
//! here; each role nests them in its own config struct.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "SCRM_";

/// A configuration problem, naming the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, environment or merged values could not be read into the typed config.
    #[error("configuration error: {0}")]
    Load(String),
    /// A value was read but is not acceptable.
    #[error("configuration key `{key}` is invalid: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        ConfigError::from_figment(err, "")
    }
}

impl ConfigError {
    /// Names the key (`section` + the error's path) and the source of each problem.
    fn from_figment(err: figment::Error, section: &str) -> Self {
        let all: Vec<String> = err
            .into_iter()
            .map(|e| {
                let mut msg = String::new();
                let mut path: Vec<&str> = Vec::new();
                if !section.is_empty() {
                    path.push(section);
                }
                path.extend(e.path.iter().map(String::as_str));
                if !path.is_empty() {
                    msg.push_str(&format!("key `{}`: ", path.join(".")));
                }
                msg.push_str(&e.kind.to_string());
                if let Some(md) = &e.metadata {
                    match &md.source {
                        Some(source) => msg.push_str(&format!(" (from {} {source})", md.name)),
                        None => msg.push_str(&format!(" (from {})", md.name)),
                    }
                }
                msg
            })
            .collect();
        ConfigError::Load(all.join("; "))
    }
}

/// Builds the figment for a config: `defaults` < optional TOML `file` < `SCRM_*` environment.
///
/// Only variables with a `__` (a section and a key) are config keys; single-word variables such as
/// `SCRM_CONFIG`, `SCRM_DATA_DIR`, `SCRM_LOG` or `SCRM_TEST_MYSQL_URL` are flags of their own.
pub fn figment(defaults: impl Serialize, file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(defaults));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::Load(format!(
                "config file {} does not exist or is not a file",
                path.display()
            )));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    let env = Env::prefixed(ENV_PREFIX)
        .filter(|key| key.as_str().contains("__"))
        .split("__");
    Ok(fig.merge(env))
}

/// Extracts one top-level section (`bus`, `identity`, …) and validates it; errors name the full key.
pub fn extract_section<T: for<'de> Deserialize<'de> + Validate>(
    fig: &Figment,
    section: &str,
) -> Result<T, ConfigError> {
    let cfg: T = fig
        .focus(section)
        .extract()
        .map_err(|e| ConfigError::from_figment(e, section))?;
    cfg.validate(section)?;
    Ok(cfg)
}

/// Extracts and validates a typed config from a figment.
pub fn extract<T: for<'de> Deserialize<'de> + Validate>(fig: &Figment) -> Result<T, ConfigError> {
    let cfg: T = fig.extract()?;
    cfg.validate("")?;
    Ok(cfg)
}

/// Validation after deserialisation; `prefix` is the key path of `self` (`""` at the root).
pub trait Validate {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError>;
}

/// Joins a key path.
pub fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Shortest internal key accepted (`gateway.internal_key` and every role's copy).
pub const MIN_INTERNAL_KEY_LEN: usize = 32;

/// Checks a shared internal key (the gateway's and each role's copy): present, at least
/// [`MIN_INTERNAL_KEY_LEN`] characters, printable ASCII without spaces (it travels in an HTTP
/// header). The error says what is wrong, for a config message that names the key.
pub fn check_internal_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err(
            "is required: the deployment's shared internal key, at least 32 characters \
                    (e.g. `openssl rand -base64 32`), the same as `gateway.internal_key`",
        );
    }
    if key.len() < MIN_INTERNAL_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be at least 32 printable ASCII characters without spaces");
    }
    Ok(())
}

/// A value that must never be printed (URLs with passwords, secrets, keys).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// HTTP listener of a role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Worker threads for this listener (0 = one per core).
    #[serde(default)]
    pub workers: usize,
}

impl Validate for HttpConfig {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// A relational database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    /// `mysql://user:pass@host:3306/db` or `sqlite:///path/file.db` (created if missing).
    pub url: Secret,
    /// Pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long to wait for a connection, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_max_connections() -> u32 {
    10
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}

impl DbConfig {
    pub fn new(url: impl Into<String>) -> Self {
        DbConfig {
            url: Secret::new(url),
            max_connections: default_max_connections(),
            connect_timeout_ms: default_connect_timeout_ms(),
        }
    }
}

impl Validate for DbConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let url = self.url.expose();
        if !(url.starts_with("mysql://") || url.starts_with("sqlite:")) {
            return Err(ConfigError::invalid(
                key(prefix, "url"),
                "must start with mysql:// or sqlite:",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                key(prefix, "max_connections"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Which bus implementation a process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// RabbitMQ (production).
    Amqp,
    /// In-process (embedded mode, tests).
    Memory,
}

/// The event bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// `amqp` or `memory`.
    pub kind: BusKind,
    /// AMQP URL, required when kind = amqp, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    #[serde(default)]
    pub url: Option<Secret>,
    /// Topic exchange all events are published to.
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// Unacknowledged messages a consumer holds at once.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Deliveries of a message before it is parked (first try included).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before each retry, in milliseconds; the last one repeats.
    #[serde(default = "default_retry_delays_ms")]
    pub retry_delays_ms: Vec<u64>,
    /// How long a publish may take, confirm included, before it fails.
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
    /// Declare queues as quorum queues (RabbitMQ 3.10 or later; for a cluster). An existing queue
    /// keeps its type: choose before the first start.
    #[serde(default)]
    pub quorum_queues: bool,
    /// Confirm-mode channels a process publishes on, round-robin.
    #[serde(default = "default_publisher_channels")]
    pub publisher_channels: usize,
    /// In-process bus (`kind = "memory"`): messages a group's queue holds before a publish waits
    /// (at most `publish_timeout_ms`, then fails, so callbacks get a 503 and WeChat retries) for
    /// its consumer to catch up.
    #[serde(default = "default_memory_capacity")]
    pub memory_capacity: usize,
    /// Consumer groups declared for readers outside this system (a CRM connector, a data
    /// warehouse loader), e.g. `[{name = "crm", bindings = ["lead.#"]}]`. Their queues keep
    /// every matching event until read: declare one only for a reader that runs.
    #[serde(default)]
    pub outlets: Vec<Outlet>,
}

/// A consumer group for a reader outside this system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outlet {
    /// `[a-z0-9_-]+`; the queue is `<exchange>.<name>`.
    pub name: String,
    /// Routing-key patterns, e.g. `lead.#`.
    pub bindings: Vec<String>,
}

fn default_memory_capacity() -> usize {
    100_000
}

fn default_publisher_channels() -> usize {
    4
}

fn default_exchange() -> String {
    "scrm.events".into()
}
fn default_prefetch() -> u16 {
    64
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_delays_ms() -> Vec<u64> {
    vec![1_000, 5_000, 30_000, 120_000]
}
fn default_publish_timeout_ms() -> u64 {
    3_000
}

impl BusConfig {
    /// In-process bus with default retry policy.
    pub fn memory() -> Self {
        BusConfig {
            kind: BusKind::Memory,
            url: None,
            exchange: default_exchange(),
            prefetch: default_prefetch(),
            max_attempts: default_max_attempts(),
            retry_delays_ms: default_retry_delays_ms(),
            publish_timeout_ms: default_publish_timeout_ms(),
            quorum_queues: false,
            publisher_channels: default_publisher_channels(),
            memory_capacity: default_memory_capacity(),
            outlets: Vec::new(),
        }
    }

    /// RabbitMQ at `url` with default settings.
    pub fn amqp(url: impl Into<String>) -> Self {
        BusConfig {
            kind: BusKind::Amqp,
            url: Some(Secret::new(url)),
            ..Self::memory()
        }
    }

    pub fn retry_delays(&self) -> Vec<Duration> {
        self.retry_delays_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect()
    }
}

impl Validate for BusConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.kind == BusKind::Amqp {
            match &self.url {
                Some(u)
                    if u.expose().starts_with("amqp://") || u.expose().starts_with("amqps://") => {}
                Some(_) => {
                    return Err(ConfigError::invalid(
                        key(prefix, "url"),
                        "must start with amqp:// or amqps://",
                    ))
                }
                None => {
                    return Err(ConfigError::invalid(
                        key(prefix, "url"),
                        "is required when kind = \"amqp\"",
                    ))
                }
            }
        }
        if self.exchange.is_empty() {
            return Err(ConfigError::invalid(
                key(prefix, "exchange"),
                "must not be empty",
            ));
        }
        if self.prefetch == 0 {
            return Err(ConfigError::invalid(
                key(prefix, "prefetch"),
                "must be at least 1",
            ));
        }
        if self.memory_capacity == 0 {
            return Err(ConfigError::invalid(
                key(prefix, "memory_capacity"),
                "must be at least 1",
            ));
        }
        for (i, o) in self.outlets.iter().enumerate() {
            let at = key(prefix, &format!("outlets[{i}]"));
            let name_ok = !o.name.is_empty()
                && o.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !name_ok {
                return Err(ConfigError::invalid(
                    format!("{at}.name"),
                    "must be [a-z0-9_-]+",
                ));
            }
            if proto::routing::GROUPS.iter().any(|g| g.name == o.name) {
                return Err(ConfigError::invalid(
                    format!("{at}.name"),
                    "is the name of one of the system's consumer groups",
                ));
            }
            if o.bindings.is_empty() || o.bindings.iter().any(|b| b.is_empty()) {
                return Err(ConfigError::invalid(
                    format!("{at}.bindings"),
                    "must list at least one non-empty routing-key pattern",
                ));
            }
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::invalid(
                key(prefix, "max_attempts"),
                "must be at least 1",
            ));
        }
        if self.retry_delays_ms.is_empty() {
            return Err(ConfigError::invalid(
                key(prefix, "retry_delays_ms"),
                "must list at least one delay",
            ));
        }
        if self.publisher_channels == 0 || self.publisher_channels > 64 {
            return Err(ConfigError::invalid(
                key(prefix, "publisher_channels"),
                "must be between 1 and 64",
            ));
        }
        if self.publish_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                key(prefix, "publish_timeout_ms"),
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// Which cache implementation a process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// Redis (production; shared by all processes).
    Redis,
    /// In-process (embedded mode, tests).
    Memory,
}

/// The cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `redis` or `memory`.
    pub kind: CacheKind,
    /// Redis URL, required when kind = redis, e.g. `redis://127.0.0.1:6379/0`.
    #[serde(default)]
    pub url: Option<Secret>,
    /// Prefix of every key this deployment writes (several deployments may share one Redis).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Entries the in-process cache holds at most.
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
}

fn default_key_prefix() -> String {
    "scrm:".into()
}
fn default_max_entries() -> u64 {
    100_000
}

impl CacheConfig {
    pub fn memory() -> Self {
        CacheConfig {
            kind: CacheKind::Memory,
            url: None,
            key_prefix: default_key_prefix(),
            max_entries: default_max_entries(),
        }
    }

    pub fn redis(url: impl Into<String>, key_prefix: impl Into<String>) -> Self {
        CacheConfig {
            kind: CacheKind::Redis,
            url: Some(Secret::new(url)),
            key_prefix: key_prefix.into(),
            max_entries: default_max_entries(),
        }
    }
}

impl Validate for CacheConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.kind == CacheKind::Redis {
            match &self.url {
                Some(u)
                    if u.expose().starts_with("redis://")
                        || u.expose().starts_with("rediss://") => {}
                Some(_) => {
                    return Err(ConfigError::invalid(
                        key(prefix, "url"),
                        "must start with redis:// or rediss://",
                    ))
                }
                None => {
                    return Err(ConfigError::invalid(
                        key(prefix, "url"),
                        "is required when kind = \"redis\"",
                    ))
                }
            }
        }
        if self.max_entries == 0 {
            return Err(ConfigError::invalid(
                key(prefix, "max_entries"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    #[default]
    Auto,
    Pretty,
    Json,
}

/// Logging and metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `auto`, `pretty` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Filter in `tracing` syntax, e.g. `info` or `info,platform::bus=debug`; `SCRM_LOG` overrides.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Auto,
            log_level: default_log_level(),
        }
    }
}

impl Validate for TelemetryConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| ConfigError::invalid(key(prefix, "log_level"), e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
