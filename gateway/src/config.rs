//! Configuration of the gateway (`[gateway]` in the config file, `SCRM_GATEWAY__*` in the
//! environment).

use platform::config::{key, ConfigError, DbConfig, HttpConfig, Secret, Validate};
use serde::{Deserialize, Serialize};

use crate::domain::keys::Keys;
use crate::domain::track::TrackLimits;
use crate::registry::AppKind;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Public listener (WeChat callbacks, SDK endpoints, admin API).
    pub http: HttpConfig,
    /// The gateway's own database (app registry).
    pub database: DbConfig,
    /// 32 random bytes in base64: seals app secrets at rest and signs SDK session tokens.
    /// `scrm up` generates one in the data dir; production must set it (keep it stable).
    pub secret_key: Secret,
    /// Shared key of the internal endpoints (the WeChat token endpoint services call instead of
    /// holding app secrets): at least 32 characters, sent as `Authorization: Bearer …`, the same
    /// value as `identity.wechat.internal_key`. `scrm up` generates one in the data dir
    /// (`internal.key`); production must set it.
    #[serde(default)]
    pub internal_key: Secret,
    /// WeChat callback handling.
    #[serde(default)]
    pub callback: CallbackConfig,
    /// Limits of `POST /track`.
    #[serde(default)]
    pub track: TrackLimits,
    /// Lifetime of SDK session tokens issued at mini-program login, in seconds.
    #[serde(default = "default_session_ttl_secs")]
    pub session_ttl_secs: i64,
    /// WeChat API endpoints (point them at `scrm fake-wechat` to develop offline).
    #[serde(default)]
    pub wechat_api: WechatApiConfig,
    /// Apps registered (or updated) at start. Secrets are sealed into the database.
    #[serde(default)]
    pub apps: Vec<AppSeed>,
    /// Tenant write keys registered at start, for `/track` from servers and H5 pages.
    #[serde(default)]
    pub write_keys: Vec<WriteKeySeed>,
    /// Where the services' internal APIs are (`[gateway.services]`): `identity_url`,
    /// `tagging_url`, `scoring_url`, e.g. `http://identity:8081`. Required in production;
    /// `scrm up` finds the roles of its own process.
    #[serde(default)]
    pub services: ServiceUrls,
    /// A tenant, its owner and the owner's API token, made at start when missing (`scrm up`:
    /// tenant `demo`, the token in `<data-dir>/admin.token`).
    #[serde(default)]
    pub bootstrap: Option<Bootstrap>,
}

fn default_session_ttl_secs() -> i64 {
    7 * 24 * 3600
}

/// WeChat callback handling.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Largest callback body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Refuse callbacks whose `timestamp` is further than this from now, in seconds (replay
    /// protection; WeChat retries within seconds). 0 turns the check off (replaying fixtures).
    #[serde(default = "default_timestamp_window_secs")]
    pub timestamp_window_secs: u64,
    /// Time the broker has to confirm a callback before the answer is non-200 (WeChat then
    /// retries). Keep it below WeChat's 5 s.
    #[serde(default = "default_publish_budget_ms")]
    pub publish_budget_ms: u64,
    /// How long a published callback's id is remembered to skip WeChat's retries, in seconds.
    #[serde(default = "default_dedupe_ttl_secs")]
    pub dedupe_ttl_secs: u64,
}

fn default_max_body_bytes() -> usize {
    512 * 1024
}
fn default_timestamp_window_secs() -> u64 {
    600
}
fn default_publish_budget_ms() -> u64 {
    3_500
}
fn default_dedupe_ttl_secs() -> u64 {
    3_600
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            max_body_bytes: default_max_body_bytes(),
            timestamp_window_secs: default_timestamp_window_secs(),
            publish_budget_ms: default_publish_budget_ms(),
            dedupe_ttl_secs: default_dedupe_ttl_secs(),
        }
    }
}

/// Base URLs of the WeChat server APIs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatApiConfig {
    /// Official Account and mini-program API.
    #[serde(default = "default_oa_base")]
    pub oa_base_url: String,
    /// WeCom API.
    #[serde(default = "default_wecom_base")]
    pub wecom_base_url: String,
}

fn default_oa_base() -> String {
    "https://api.weixin.qq.com".into()
}
fn default_wecom_base() -> String {
    "https://qyapi.weixin.qq.com".into()
}

impl Default for WechatApiConfig {
    fn default() -> Self {
        WechatApiConfig {
            oa_base_url: default_oa_base(),
            wecom_base_url: default_wecom_base(),
        }
    }
}

/// An app to register at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    pub tenant_id: String,
    /// `oa`, `mp` or `wecom`.
    pub kind: AppKind,
    /// appid (OA, MP) or corpid (WeCom).
    pub app_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The callback Token set in the WeChat console.
    pub token: Secret,
    /// The 43-character EncodingAESKey (required for WeCom and for OA/MP safe mode).
    #[serde(default)]
    pub encoding_aes_key: Option<Secret>,
    /// AppSecret / WeCom secret for API calls.
    #[serde(default)]
    pub secret: Option<Secret>,
}

/// A tenant write key to register at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteKeySeed {
    pub tenant_id: String,
    pub name: String,
    pub key: Secret,
}

impl Validate for Config {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        self.http.validate(&key(prefix, "http"))?;
        self.database.validate(&key(prefix, "database"))?;
        Keys::from_base64(self.secret_key.expose())
            .map_err(|e| ConfigError::invalid(key(prefix, "secret_key"), e.to_string()))?;
        wechat::api::check_internal_key(self.internal_key.expose())
            .map_err(|reason| ConfigError::invalid(key(prefix, "internal_key"), reason))?;
        if self.callback.publish_budget_ms == 0 || self.callback.publish_budget_ms >= 5_000 {
            return Err(ConfigError::invalid(
                key(prefix, "callback.publish_budget_ms"),
                "must be between 1 and 4999 (WeChat gives a callback 5 s)",
            ));
        }
        if self.session_ttl_secs <= 0 {
            return Err(ConfigError::invalid(
                key(prefix, "session_ttl_secs"),
                "must be positive",
            ));
        }
        for (i, app) in self.apps.iter().enumerate() {
            let k = |f: &str| key(prefix, &format!("apps[{i}].{f}"));
            if app.tenant_id.is_empty() {
                return Err(ConfigError::invalid(k("tenant_id"), "must not be empty"));
            }
            if app.app_id.is_empty() {
                return Err(ConfigError::invalid(k("app_id"), "must not be empty"));
            }
            if app.token.expose().is_empty() {
                return Err(ConfigError::invalid(k("token"), "must not be empty"));
            }
            match &app.encoding_aes_key {
                Some(aes) => {
                    wechat::crypto::decode_encoding_aes_key(aes.expose())
                        .map_err(|e| ConfigError::invalid(k("encoding_aes_key"), e.to_string()))?;
                }
                None if app.kind == AppKind::Wecom => {
                    return Err(ConfigError::invalid(
                        k("encoding_aes_key"),
                        "is required for WeCom (its callbacks are always encrypted)",
                    ))
                }
                None => {}
            }
        }
        for (i, wk) in self.write_keys.iter().enumerate() {
            if wk.key.expose().len() < 16 {
                return Err(ConfigError::invalid(
                    key(prefix, &format!("write_keys[{i}].key")),
                    "must be at least 16 characters",
                ));
            }
        }
        Ok(())
    }
}

/// Base URLs of the services the admin API composes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUrls {
    #[serde(default)]
    pub identity_url: Option<String>,
    #[serde(default)]
    pub tagging_url: Option<String>,
    #[serde(default)]
    pub scoring_url: Option<String>,
}

/// What `gateway.bootstrap` makes at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    pub tenant_id: String,
    pub tenant_name: String,
    pub owner_email: String,
    /// Where the owner's API token is written (mode 0600); kept while it still signs in.
    pub token_file: std::path::PathBuf,
}
