//! How a service that holds no secret reaches WeChat: the config keys every such service shares
//! (`[identity.wechat]`, `[tagging.wechat]`: the gateway's token endpoint, its internal key, the
//! API hosts, a timeout) and the client and token source built from them, written once.
//!
//! A service nests [`WechatAccessConfig`] as its own section, or flattens it into a section with
//! keys of its own (`#[serde(flatten)]`), and builds a [`WechatAccess`] from it at start.

use std::time::Duration;

use platform::config::{key, ConfigError, Secret, Validate};
use serde::{Deserialize, Serialize};

use super::{ApiBaseUrls, ApiClient, ClientOptions, KeeperOptions, KeeperTokenSource};

/// WeChat access without secrets: access tokens come from the gateway's internal token endpoint
/// (DESIGN.md §4), the calls go to WeChat's API hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatAccessConfig {
    /// Call WeChat's APIs. When on, `gateway_url` and `internal_key` are required; `false` runs
    /// the service without them.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Base URL of the gateway serving `/internal/v1/wechat/token`, e.g.
    /// `http://scrm-gateway:8080`. `scrm up` sets its own gateway's URL.
    #[serde(default)]
    pub gateway_url: String,
    /// The gateway's `internal_key` (at least 32 characters). `scrm up` sets it.
    #[serde(default)]
    pub internal_key: Secret,
    /// Official Account API base URL (point it at the `fake-wechat` binary to develop offline).
    #[serde(default = "default_oa_base_url")]
    pub oa_base_url: String,
    /// WeCom API base URL.
    #[serde(default = "default_wecom_base_url")]
    pub wecom_base_url: String,
    /// Timeout of one HTTP request (to WeChat or to the gateway), in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_oa_base_url() -> String {
    ApiBaseUrls::default().weixin
}
fn default_wecom_base_url() -> String {
    ApiBaseUrls::default().wecom
}
fn default_timeout_ms() -> u64 {
    5_000
}

impl Default for WechatAccessConfig {
    /// Enabled, with WeChat's API hosts; `gateway_url` and `internal_key` still to be set.
    fn default() -> Self {
        WechatAccessConfig {
            enabled: true,
            gateway_url: String::new(),
            internal_key: Secret::default(),
            oa_base_url: default_oa_base_url(),
            wecom_base_url: default_wecom_base_url(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

impl WechatAccessConfig {
    /// Access switched off.
    pub fn disabled() -> Self {
        WechatAccessConfig {
            enabled: false,
            ..WechatAccessConfig::default()
        }
    }
}

fn http_url(value: &str) -> bool {
    (value.starts_with("http://") || value.starts_with("https://"))
        && value.len() > "https://".len()
}

impl Validate for WechatAccessConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if !http_url(&self.gateway_url) {
            return Err(ConfigError::invalid(
                key(prefix, "gateway_url"),
                "is required while enabled: the gateway's base URL (http:// or https://), e.g. \
                 http://scrm-gateway:8080; or set enabled = false",
            ));
        }
        super::check_internal_key(self.internal_key.expose())
            .map_err(|reason| ConfigError::invalid(key(prefix, "internal_key"), reason))?;
        for (name, value) in [
            ("oa_base_url", &self.oa_base_url),
            ("wecom_base_url", &self.wecom_base_url),
        ] {
            if !http_url(value) {
                return Err(ConfigError::invalid(
                    key(prefix, name),
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(ConfigError::invalid(
                key(prefix, "timeout_ms"),
                "must be between 1 and 60000",
            ));
        }
        Ok(())
    }
}

/// A client that makes only delegated calls and the token source it asks: everything a service
/// needs to call WeChat. Cheap to clone (clones share the HTTP pool and the held tokens).
#[derive(Debug, Clone)]
pub struct WechatAccess {
    /// The API client (no token cache of its own; every call is [`super::Auth::Delegated`]).
    pub client: ApiClient,
    /// Tokens from the gateway; [`KeeperTokenSource::tenant`] gives one tenant's source.
    pub tokens: KeeperTokenSource,
}

impl WechatAccess {
    /// The access `cfg` describes, or `None` when it is switched off. Connects nothing (the
    /// gateway and WeChat are asked on the first call). Fails only when the HTTP client cannot
    /// be built.
    pub fn from_config(cfg: &WechatAccessConfig) -> Result<Option<Self>, String> {
        if !cfg.enabled {
            return Ok(None);
        }
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let client = ApiClient::without_keeper(
            http.clone(),
            ClientOptions {
                base_urls: ApiBaseUrls {
                    weixin: cfg.oa_base_url.trim_end_matches('/').to_owned(),
                    wecom: cfg.wecom_base_url.trim_end_matches('/').to_owned(),
                },
                request_timeout: timeout,
                ..ClientOptions::default()
            },
        );
        let tokens = KeeperTokenSource::new(
            http,
            &cfg.gateway_url,
            cfg.internal_key.clone(),
            KeeperOptions {
                request_timeout: timeout,
                ..KeeperOptions::default()
            },
        );
        Ok(Some(WechatAccess { client, tokens }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_gateway_and_its_key_while_enabled() {
        let mut c = WechatAccessConfig::default();
        let e = c.validate("svc.wechat").unwrap_err().to_string();
        assert!(e.contains("svc.wechat.gateway_url"), "{e}");
        c.gateway_url = "http://127.0.0.1:8080".into();
        let e = c.validate("svc.wechat").unwrap_err().to_string();
        assert!(e.contains("svc.wechat.internal_key"), "{e}");
        c.internal_key = Secret::new("k".repeat(32));
        c.validate("svc.wechat").unwrap();
        c.timeout_ms = 0;
        let e = c.validate("svc.wechat").unwrap_err().to_string();
        assert!(e.contains("svc.wechat.timeout_ms"), "{e}");
        c.timeout_ms = 100;
        c.wecom_base_url = "qyapi.weixin.qq.com".into();
        let e = c.validate("svc.wechat").unwrap_err().to_string();
        assert!(e.contains("svc.wechat.wecom_base_url"), "{e}");
        assert!(
            !format!("{c:?}").contains(&"k".repeat(32)),
            "the key never prints"
        );
        WechatAccessConfig::disabled()
            .validate("svc.wechat")
            .unwrap();
        assert!(WechatAccess::from_config(&WechatAccessConfig::disabled())
            .unwrap()
            .is_none());
        c.wecom_base_url = "http://127.0.0.1:9/".into();
        let access = WechatAccess::from_config(&c).unwrap().expect("enabled");
        assert_eq!(
            access.client.options().base_urls.wecom,
            "http://127.0.0.1:9"
        );
    }
}
