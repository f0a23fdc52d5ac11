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
    /// WeChat API endpoints (point them at the `fake-wechat` binary to develop offline).
    #[serde(default)]
    pub wechat_api: WechatApiConfig,
    /// The gateway's address as WeChat and reps' phones reach it, e.g. `https://crm.example.com`
    /// (a path prefix allowed): the callback URLs the admin API shows and the links of reps'
    /// notifications start with it. Unset: the admin API uses the address a request came to,
    /// notifications `http://<gateway.http.bind>` (right for `scrm up` on this machine only).
    #[serde(default)]
    pub public_base_url: Option<String>,
    /// Apps registered (or updated) at start. Secrets are sealed into the database.
    #[serde(default)]
    pub apps: Vec<AppSeed>,
    /// Tenant write keys registered at start, for `/track` from servers and H5 pages.
    #[serde(default)]
    pub write_keys: Vec<WriteKeySeed>,
    /// Lead notifications to reps (`lead.notify` delivered as WeCom app messages).
    #[serde(default)]
    pub notify: NotifyConfig,
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
    /// WeChat's web host, where the WeCom OAuth sign-in page lives (not an API host).
    #[serde(default = "default_open_base")]
    pub open_base_url: String,
}

fn default_oa_base() -> String {
    "https://api.weixin.qq.com".into()
}
fn default_wecom_base() -> String {
    "https://qyapi.weixin.qq.com".into()
}
fn default_open_base() -> String {
    wechat::api::OPEN_BASE_URL.into()
}

impl Default for WechatApiConfig {
    fn default() -> Self {
        WechatApiConfig {
            oa_base_url: default_oa_base(),
            wecom_base_url: default_wecom_base(),
            open_base_url: default_open_base(),
        }
    }
}

/// Lead notifications to reps: every `lead.notify` is sent to the owning rep as a WeCom app
/// message from the corp's agent app (`[gateway.notify]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Notifications handled at once by this process.
    #[serde(default = "default_notify_concurrency")]
    pub concurrency: usize,
    /// `message/send` calls per minute per corp, every gateway replica together (counted in the
    /// cache); notifications beyond it wait for their slot.
    #[serde(default = "default_notify_rate_per_minute")]
    pub rate_per_minute: u32,
    /// Calls one corp may make at once after a quiet spell.
    #[serde(default = "default_notify_rate_burst")]
    pub rate_burst: u32,
    /// Tries of one notification while WeCom answers busy or rate-limited (or cannot be
    /// reached) before it is recorded as failed. Default: the bus's (`bus.max_attempts`).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delays before the retries, in milliseconds (the last repeats); the bus holds the
    /// notification meanwhile. Default: the bus's (`bus.retry_delays_ms`).
    #[serde(default)]
    pub retry_delays_ms: Option<Vec<u64>>,
    /// How long a card waits for identity-svc to name the customer (the rep's remark, else the
    /// contact's name); `0` never asks, and the card names the customer by id.
    #[serde(default = "default_notify_name_lookup_ms")]
    pub name_lookup_ms: u64,
}

fn default_notify_concurrency() -> usize {
    4
}
fn default_notify_rate_per_minute() -> u32 {
    600
}
fn default_notify_rate_burst() -> u32 {
    10
}
fn default_notify_name_lookup_ms() -> u64 {
    2_000
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            concurrency: default_notify_concurrency(),
            rate_per_minute: default_notify_rate_per_minute(),
            rate_burst: default_notify_rate_burst(),
            max_attempts: None,
            retry_delays_ms: None,
            name_lookup_ms: default_notify_name_lookup_ms(),
        }
    }
}

impl Validate for NotifyConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let ranges: [(&str, u64, u64, u64); 4] = [
            ("concurrency", self.concurrency as u64, 1, 256),
            (
                "rate_per_minute",
                u64::from(self.rate_per_minute),
                1,
                1_000_000,
            ),
            ("rate_burst", u64::from(self.rate_burst), 1, 10_000),
            ("name_lookup_ms", self.name_lookup_ms, 0, 30_000),
        ];
        for (field, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return Err(ConfigError::invalid(
                    key(prefix, field),
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
                    "must list delays between 1 and 86400000 ms",
                ));
            }
        }
        Ok(())
    }
}

/// An app to register at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    pub tenant_id: String,
    /// `oa`, `mp`, `wecom` (a corp: callbacks and the customer-contact secret) or `wecom_agent`
    /// (a corp's self-built app that sends reps app messages).
    pub kind: AppKind,
    /// appid (OA, MP) or corpid (WeCom, WeCom agent).
    pub app_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The AgentID of a `wecom_agent` app (required for it, refused for the other kinds).
    #[serde(default)]
    pub agent_id: Option<i64>,
    /// The callback Token set in the WeChat console (required except for `wecom_agent`, which
    /// takes no callbacks here).
    #[serde(default)]
    pub token: Option<Secret>,
    /// The 43-character EncodingAESKey (required for WeCom and for OA/MP safe mode).
    #[serde(default)]
    pub encoding_aes_key: Option<Secret>,
    /// AppSecret / WeCom secret for API calls (required for `wecom_agent`: its own secret).
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
            if app.kind == AppKind::WecomAgent {
                check_agent_seed(app).map_err(|(f, why)| ConfigError::invalid(k(f), why))?;
                continue;
            }
            if app.agent_id.is_some() {
                return Err(ConfigError::invalid(
                    k("agent_id"),
                    "is only for kind `wecom_agent`",
                ));
            }
            if app.token.as_ref().is_none_or(|t| t.expose().is_empty()) {
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
        self.notify.validate(&key(prefix, "notify"))?;
        if let Some(base) = &self.public_base_url {
            check_public_base_url(base)
                .map_err(|why| ConfigError::invalid(key(prefix, "public_base_url"), why))?;
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

/// The largest AgentID accepted (WeCom's are 7-digit numbers such as 1000002).
pub const MAX_AGENT_ID: i64 = i32::MAX as i64;

/// What a `wecom_agent` app needs: its AgentID and secret, no callback token or key. On failure,
/// the field at fault and why.
fn check_agent_seed(app: &AppSeed) -> Result<(), (&'static str, &'static str)> {
    match app.agent_id {
        None => return Err(("agent_id", "is required for kind `wecom_agent`")),
        Some(id) if !(1..=MAX_AGENT_ID).contains(&id) => {
            return Err(("agent_id", "must be a positive AgentID"))
        }
        Some(_) => {}
    }
    if app.secret.as_ref().is_none_or(|s| s.expose().is_empty()) {
        return Err((
            "secret",
            "is required for kind `wecom_agent` (the app's own secret)",
        ));
    }
    let no_callbacks = "is not for a `wecom_agent` app (it takes no callbacks here)";
    if app.token.is_some() {
        return Err(("token", no_callbacks));
    }
    if app.encoding_aes_key.is_some() {
        return Err(("encoding_aes_key", no_callbacks));
    }
    Ok(())
}

/// `http(s)://host[:port][/prefix]`, no query or fragment.
fn check_public_base_url(base: &str) -> Result<(), &'static str> {
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or("must start with https:// (or http://)")?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || base.contains(['?', '#', ' ']) {
        return Err("must be http(s)://host[:port][/prefix] without query or fragment");
    }
    Ok(())
}

impl Config {
    /// Where links for people outside (reps' notifications) start: `public_base_url`, else
    /// `http://<http.bind>` with an unspecified address taken as loopback. No trailing `/`.
    pub fn public_base(&self) -> String {
        if let Some(b) = &self.public_base_url {
            return b.trim_end_matches('/').to_string();
        }
        let bind = self.http.bind;
        let ip = match bind.ip() {
            ip if !ip.is_unspecified() => ip,
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        format!("http://{}", std::net::SocketAddr::new(ip, bind.port()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(kind: AppKind) -> AppSeed {
        AppSeed {
            tenant_id: "t1".into(),
            kind,
            app_id: "ww1".into(),
            name: None,
            agent_id: Some(1_000_002),
            token: None,
            encoding_aes_key: None,
            secret: Some(Secret::new("s")),
        }
    }

    #[test]
    fn an_agent_app_has_an_agent_id_and_a_secret_and_no_callbacks() {
        assert_eq!(check_agent_seed(&seed(AppKind::WecomAgent)), Ok(()));
        let mut s = seed(AppKind::WecomAgent);
        s.agent_id = None;
        assert_eq!(check_agent_seed(&s).unwrap_err().0, "agent_id");
        s.agent_id = Some(0);
        assert_eq!(check_agent_seed(&s).unwrap_err().0, "agent_id");
        let mut s = seed(AppKind::WecomAgent);
        s.secret = None;
        assert_eq!(check_agent_seed(&s).unwrap_err().0, "secret");
        let mut s = seed(AppKind::WecomAgent);
        s.token = Some(Secret::new("tok"));
        assert_eq!(check_agent_seed(&s).unwrap_err().0, "token");
    }

    #[test]
    fn public_base_urls() {
        assert!(check_public_base_url("https://crm.example.com").is_ok());
        assert!(check_public_base_url("http://127.0.0.1:8080/scrm/").is_ok());
        for bad in ["crm.example.com", "https://", "https://x/?a=1", "ftp://x"] {
            assert!(check_public_base_url(bad).is_err(), "{bad}");
        }
    }
}
