//! The composed configuration: shared sections (`telemetry`, `bus`, `cache`) and one section per
//! role (`gateway`, `identity`, `tagging`, `scoring`), with embedded or production defaults.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use platform::config::{
    self, BusConfig, BusKind, CacheConfig, CacheKind, ConfigError, TelemetryConfig, Validate,
};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;

use crate::roles::Role;

/// Which defaults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `scrm up`: SQLite files in the data dir, in-process bus and cache.
    Embedded,
    /// One role per process: MySQL, RabbitMQ and Redis must be configured.
    Production,
}

/// Top-level keys a config may have; anything else is a typo and stops the process.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Sections {
    telemetry: Option<IgnoredAny>,
    bus: Option<IgnoredAny>,
    cache: Option<IgnoredAny>,
    gateway: Option<IgnoredAny>,
    identity: Option<IgnoredAny>,
    tagging: Option<IgnoredAny>,
    scoring: Option<IgnoredAny>,
}

/// Loaded configuration: shared sections typed, role sections extracted on demand.
#[derive(Clone)]
pub struct Settings {
    pub mode: Mode,
    pub telemetry: TelemetryConfig,
    pub bus: BusConfig,
    pub cache: CacheConfig,
    figment: Figment,
}

impl Settings {
    /// Loads defaults < `file` < `SCRM_*` env (< `extra`, e.g. command-line flags) and validates the
    /// shared sections.
    pub fn load(
        mode: Mode,
        file: Option<&Path>,
        defaults: serde_json::Value,
        extra: Option<serde_json::Value>,
    ) -> Result<Self, ConfigError> {
        let mut fig = config::figment(defaults, file)?;
        if let Some(extra) = extra {
            fig = fig.merge(figment::providers::Serialized::defaults(extra));
        }
        fig.extract::<Sections>()?;
        let telemetry: TelemetryConfig = config::extract_section(&fig, "telemetry")?;
        let bus: BusConfig = config::extract_section(&fig, "bus")?;
        let cache: CacheConfig = config::extract_section(&fig, "cache")?;
        if mode == Mode::Production {
            if bus.kind != BusKind::Amqp {
                return Err(ConfigError::invalid(
                    "bus.kind",
                    "production roles need \"amqp\" (the in-process bus cannot reach other processes)",
                ));
            }
            if cache.kind != CacheKind::Redis {
                return Err(ConfigError::invalid(
                    "cache.kind",
                    "production roles need \"redis\" (the in-process cache is not shared)",
                ));
            }
        }
        let mut s = Settings {
            mode,
            telemetry,
            bus,
            cache,
            figment: fig,
        };
        s.share_internal_key();
        Ok(s)
    }

    /// Whether `key` (dotted, e.g. `identity.wechat.gateway_url`) has a value from any source.
    pub fn is_set(&self, key: &str) -> bool {
        self.figment.find_value(key).is_ok()
    }

    /// The value of `key`, if any.
    pub fn value(&self, key: &str) -> Option<serde_json::Value> {
        self.figment.extract_inner(key).ok()
    }

    /// Sets `key` over every other source (used by `scrm up` to link roles of one process).
    pub fn set(&mut self, key: &str, value: serde_json::Value) {
        self.figment = std::mem::take(&mut self.figment)
            .merge(figment::providers::Serialized::default(key, value));
    }

    /// Gives each service the deployment's internal key (`gateway.internal_key`) unless its
    /// own section names one: with it they verify the credentials the gateway signs.
    fn share_internal_key(&mut self) {
        let Some(k) = self.value("gateway.internal_key") else {
            return;
        };
        for role in ["identity", "tagging", "scoring"] {
            let target = format!("{role}.internal_key");
            if !self.is_set(&target) {
                self.set(&target, k.clone());
            }
        }
    }

    /// The typed, validated section of one role.
    pub fn role<T>(&self, role: Role) -> Result<T, ConfigError>
    where
        T: for<'de> Deserialize<'de> + Validate,
    {
        config::extract_section(&self.figment, role.name())
    }
}

/// Development apps `scrm up` registers, so a callback can be tried without any set-up (see the
/// README). Tenant `demo`; the EncodingAESKey is the one of WeChat's official sample.
pub const DEV_TENANT: &str = "demo";
pub const DEV_OA_APPID: &str = "wx00000000000dev0a";
pub const DEV_MP_APPID: &str = "wx00000000000dev0b";
pub const DEV_WECOM_CORPID: &str = "ww00000000000dev0c";
pub const DEV_TOKEN: &str = "scrm-dev-token";
pub const DEV_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn dev_apps() -> serde_json::Value {
    let app = |kind: &str, id: &str| {
        json!({
            "tenant_id": DEV_TENANT, "kind": kind, "app_id": id, "name": format!("dev {kind}"),
            "token": DEV_TOKEN, "encoding_aes_key": DEV_AES_KEY, "secret": "scrm-dev-secret",
        })
    };
    json!([
        app("oa", DEV_OA_APPID),
        app("mp", DEV_MP_APPID),
        app("wecom", DEV_WECOM_CORPID)
    ])
}

/// Defaults of `scrm up`: everything under `data_dir`, gateway on `gateway_bind`, the services on
/// the next ports; `secret_key` and `internal_key` are the data dir's gateway keys. (The
/// identity and tagging services' link to the gateway is added by `scrm up` once the gateway
/// listens.)
pub fn embedded_defaults(
    data_dir: &Path,
    gateway_bind: SocketAddr,
    secret_key: &str,
    internal_key: &str,
) -> serde_json::Value {
    let sqlite = |name: &str| format!("sqlite://{}", data_dir.join(format!("{name}.db")).display());
    let next = |n: u16| {
        if gateway_bind.port() == 0 {
            SocketAddr::new(gateway_bind.ip(), 0)
        } else {
            SocketAddr::new(gateway_bind.ip(), gateway_bind.port().saturating_add(n))
        }
    };
    json!({
        "telemetry": TelemetryConfig::default(),
        "bus": BusConfig::memory(),
        "cache": CacheConfig::memory(),
        "gateway": {
            "http": {"bind": gateway_bind},
            "database": {"url": sqlite("gateway"), "max_connections": 4},
            "secret_key": secret_key,
            "internal_key": internal_key,
            "apps": dev_apps(),
            "bootstrap": {
                "tenant_id": DEV_TENANT, "tenant_name": "Demo",
                "owner_email": "owner@demo.local",
                "token_file": data_dir.join("admin.token"),
            },
        },
        "identity": {"http": {"bind": next(1)}, "database": {"url": sqlite("identity"), "max_connections": 4}},
        "tagging": {"http": {"bind": next(2)}, "database": {"url": sqlite("tagging"), "max_connections": 4}},
        "scoring": {"http": {"bind": next(3)}, "database": {"url": sqlite("scoring"), "max_connections": 4}},
    })
}

/// Defaults of production roles: listeners and tuning only — URLs must be configured.
pub fn production_defaults() -> serde_json::Value {
    json!({
        "telemetry": TelemetryConfig::default(),
        "bus": {"kind": "amqp"},
        "cache": {"kind": "redis"},
        "gateway": {"http": {"bind": "0.0.0.0:8080"}},
        "identity": {"http": {"bind": "0.0.0.0:8081"}},
        "tagging": {"http": {"bind": "0.0.0.0:8082"}},
        "scoring": {"http": {"bind": "0.0.0.0:8083"}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const TEST_INTERNAL_KEY: &str = "internal-key-for-tests-0123456789abcdef";

    #[test]
    fn production_requires_urls_and_names_them() {
        let err = Settings::load(Mode::Production, None, production_defaults(), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("bus.url"), "{err}");

        let s = Settings::load(
            Mode::Production,
            None,
            production_defaults(),
            Some(json!({"bus": {"url": "amqp://h"}, "cache": {"url": "redis://h"}})),
        )
        .map_err(|e| e.to_string())
        .unwrap();
        let err = s
            .role::<identity_svc::Config>(Role::Identity)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database") && err.contains("identity"),
            "{err}"
        );
    }

    #[test]
    fn unknown_section_is_refused() {
        let dir = std::env::temp_dir().join(format!("scrm-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[identiy]\nx = 1\n").unwrap();
        let defaults = embedded_defaults(
            &dir,
            "127.0.0.1:0".parse().unwrap(),
            TEST_KEY,
            TEST_INTERNAL_KEY,
        );
        let err = Settings::load(Mode::Embedded, Some(&file), defaults, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("identiy"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn embedded_defaults_are_complete() {
        let dir = std::env::temp_dir();
        let mut s = Settings::load(
            Mode::Embedded,
            None,
            embedded_defaults(
                &dir,
                "127.0.0.1:8080".parse().unwrap(),
                TEST_KEY,
                TEST_INTERNAL_KEY,
            ),
            None,
        )
        .map_err(|e| e.to_string())
        .unwrap();
        // What `scrm up` adds before starting the roles: their WeChat access via this gateway.
        crate::up::link_to_gateway(&mut s, "127.0.0.1:8080".parse().unwrap());
        let g: gateway::Config = s.role(Role::Gateway).map_err(|e| e.to_string()).unwrap();
        assert_eq!(g.apps.len(), 3);
        let t: tagging_svc::Config = s.role(Role::Tagging).map_err(|e| e.to_string()).unwrap();
        assert_eq!(t.http.bind.port(), 8082);
        assert!(t.database.url.expose().ends_with("tagging.db"));
    }
}
