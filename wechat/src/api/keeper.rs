//! The central token keeper over HTTP: the contract of the gateway's internal token endpoint and
//! [`KeeperTokenSource`], the [`TokenSource`] services use so they never hold an app secret
//! (DESIGN.md §4: one owner of secrets and tokens).
//!
//! Contract — `GET {gateway}/internal/v1/wechat/token` with `Authorization: Bearer <internal
//! key>` and the query [`TokenQuery`]:
//! - `200` → [`TokenGrant`] `{access_token, expires_at}` (Unix seconds; after it the keeper no
//!   longer hands the token out);
//! - `rejected=<token>`: WeChat refused that token; the keeper drops it if it is still the cached
//!   one and answers a fresh (or already refreshed) token;
//! - errors are the common body `{code, message, details}`; when WeChat itself refused the
//!   refresh, `details` carries its `errcode` and `errmsg`, which this client turns back into the
//!   typed [`ApiError`] so the caller classifies it like any WeChat error.
//!
//! Both the gateway (serving) and the services (calling) depend on this crate, so the contract
//! lives here, next to the keeper it exposes.
//!
//! The source holds each token in process until shortly before `expires_at` and asks the gateway
//! at most once at a time per (tenant, app): concurrent callers wait for that answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::token::unix_now;
use super::{
    redact, transport_message, AccessToken, ApiError, AppKind, AppRef, Secret, TokenSource,
};

/// Path of the token endpoint on the gateway.
pub const TOKEN_PATH: &str = "/internal/v1/wechat/token";

pub use platform::config::{check_internal_key, MIN_INTERNAL_KEY_LEN};

/// Query of the token endpoint. `Debug` hides `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// The tenant asking; must be the tenant the app is registered to.
    pub tenant_id: String,
    /// `oa`, `mp` or `wecom`.
    pub kind: String,
    /// appid (OA, MP) or corpid (WeCom).
    pub app_id: String,
    /// WeCom secret label; only `contact` (the secret the registry keeps) is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A token WeChat rejected (40001 / 40014 / 42001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Secret>,
}

/// Answer of the token endpoint. `Debug` hides the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The access token.
    pub access_token: Secret,
    /// Unix seconds after which the keeper no longer hands this token out.
    pub expires_at: i64,
}

/// Tuning of [`KeeperTokenSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperOptions {
    /// A held token is dropped this long before its `expires_at`.
    pub hold_margin: Duration,
    /// Timeout of one request to the gateway.
    pub request_timeout: Duration,
}

impl Default for KeeperOptions {
    fn default() -> Self {
        KeeperOptions {
            hold_margin: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A token held in process.
struct Held {
    token: AccessToken,
    expires_at: i64,
}

/// One (tenant, app): its held token behind an async lock, so one request at a time asks.
type Slot = Arc<tokio::sync::Mutex<Option<Held>>>;

struct Inner {
    http: reqwest::Client,
    url: String,
    key: Secret,
    options: KeeperOptions,
    /// One slot per (tenant, app) ever asked for: bounded by the apps registered.
    slots: Mutex<HashMap<(String, AppRef), Slot>>,
}

/// Tokens from the gateway's internal token endpoint. Cheap to clone (clones share the held
/// tokens); use [`tenant`](Self::tenant) to get the [`TokenSource`] of one tenant.
#[derive(Clone)]
pub struct KeeperTokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeeperTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeeperTokenSource")
            .field("url", &self.inner.url)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// The error body of the gateway.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: serde_json::Value,
}

impl KeeperTokenSource {
    /// A source asking the gateway at `gateway_base_url` (e.g. `http://scrm-gateway:8080`) with
    /// the shared `internal_key`.
    pub fn new(
        http: reqwest::Client,
        gateway_base_url: &str,
        internal_key: Secret,
        options: KeeperOptions,
    ) -> Self {
        KeeperTokenSource {
            inner: Arc::new(Inner {
                http,
                url: format!("{}{TOKEN_PATH}", gateway_base_url.trim_end_matches('/')),
                key: internal_key,
                options,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The token source of `tenant_id`: the gateway serves an app's token only to the tenant the
    /// app is registered to.
    pub fn tenant<'a>(&'a self, tenant_id: &'a str) -> TenantTokens<'a> {
        TenantTokens {
            source: self,
            tenant_id,
        }
    }

    fn slot(&self, tenant_id: &str, app: &AppRef) -> Slot {
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(
            slots
                .entry((tenant_id.to_owned(), app.clone()))
                .or_default(),
        )
    }

    /// A held token still good for a while, unless it is the rejected one; else one from the
    /// gateway (passing `rejected` on).
    async fn get(
        &self,
        tenant_id: &str,
        app: &AppRef,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, ApiError> {
        let slot = self.slot(tenant_id, app);
        let mut held = slot.lock().await;
        let margin = i64::try_from(self.inner.options.hold_margin.as_secs()).unwrap_or(i64::MAX);
        let good_until = |h: &Held| h.expires_at.saturating_sub(margin);
        if let Some(h) = held.as_ref() {
            if good_until(h) > unix_now() && rejected.is_none_or(|r| *r != h.token) {
                return Ok(h.token.clone());
            }
        }
        *held = None;
        let grant = self.fetch(tenant_id, app, rejected).await?;
        let token = AccessToken::new(grant.access_token.expose());
        let fresh = Held {
            token: token.clone(),
            expires_at: grant.expires_at,
        };
        if good_until(&fresh) > unix_now() {
            *held = Some(fresh);
        }
        Ok(token)
    }

    /// One request to the token endpoint.
    async fn fetch(
        &self,
        tenant_id: &str,
        app: &AppRef,
        rejected: Option<&AccessToken>,
    ) -> Result<TokenGrant, ApiError> {
        let query = TokenQuery {
            tenant_id: tenant_id.to_owned(),
            kind: app.kind().as_str().to_owned(),
            app_id: app.id().to_owned(),
            agent: app.agent().map(str::to_owned),
            rejected: rejected.map(|r| Secret::new(r.expose())),
        };
        let secrets = [
            self.inner.key.expose(),
            rejected.map_or("", AccessToken::expose),
        ];
        let transport = |e: reqwest::Error| ApiError::Transport {
            endpoint: TOKEN_PATH.to_owned(),
            message: redact(&transport_message(e), &secrets),
        };
        let response = self
            .inner
            .http
            .get(&self.inner.url)
            .query(&query)
            .bearer_auth(self.inner.key.expose())
            .timeout(self.inner.options.request_timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            let invalid = |message: String| ApiError::InvalidResponse {
                endpoint: TOKEN_PATH.to_owned(),
                status: None,
                message,
            };
            let grant: TokenGrant = serde_json::from_slice(&bytes).map_err(|e| {
                invalid(format!(
                    "token answer is not {{access_token, expires_at}}: {e}"
                ))
            })?;
            if grant.access_token.expose().is_empty() {
                return Err(invalid("empty access_token".to_owned()));
            }
            return Ok(grant);
        }
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
            code: String::new(),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            details: serde_json::Value::Null,
        });
        if let Some(errcode) = body
            .details
            .get("errcode")
            .and_then(serde_json::Value::as_i64)
        {
            let errmsg = body
                .details
                .get("errmsg")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            return Err(ApiError::from_errcode(errcode, redact(errmsg, &secrets)));
        }
        Err(ApiError::TokenKeeper {
            status: status.as_u16(),
            code: if body.code.is_empty() {
                "http_error".to_owned()
            } else {
                body.code
            },
            message: redact(&body.message, &secrets),
        })
    }
}

/// The [`TokenSource`] of one tenant over a [`KeeperTokenSource`].
#[derive(Debug, Clone, Copy)]
pub struct TenantTokens<'a> {
    source: &'a KeeperTokenSource,
    tenant_id: &'a str,
}

#[async_trait]
impl TokenSource for TenantTokens<'_> {
    async fn token(&self, app: &AppRef) -> Result<AccessToken, ApiError> {
        self.source.get(self.tenant_id, app, None).await
    }

    async fn refresh(&self, app: &AppRef, rejected: &AccessToken) -> Result<AccessToken, ApiError> {
        self.source.get(self.tenant_id, app, Some(rejected)).await
    }
}

impl TokenQuery {
    /// The app this query names, or the name of the field that is wrong.
    pub fn app(&self) -> Result<AppRef, &'static str> {
        if self.app_id.is_empty() {
            return Err("app_id");
        }
        match (AppKind::parse(&self.kind), &self.agent) {
            (None, _) => Err("kind"),
            (Some(AppKind::WeCom), agent) => Ok(AppRef::wecom(
                &self.app_id,
                agent.as_deref().unwrap_or(super::WECOM_CONTACT_AGENT),
            )),
            (Some(_), Some(_)) => Err("agent"),
            (Some(AppKind::OfficialAccount), None) => Ok(AppRef::official_account(&self.app_id)),
            (Some(AppKind::MiniProgram), None) => Ok(AppRef::mini_program(&self.app_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(kind: &str, agent: Option<&str>) -> TokenQuery {
        TokenQuery {
            tenant_id: "t".into(),
            kind: kind.into(),
            app_id: "wx1".into(),
            agent: agent.map(str::to_owned),
            rejected: Some(Secret::new("TOKEN-VALUE")),
        }
    }

    #[test]
    fn query_names_the_app_or_the_bad_field() {
        assert_eq!(query("oa", None).app(), Ok(AppRef::official_account("wx1")));
        assert_eq!(query("mp", None).app(), Ok(AppRef::mini_program("wx1")));
        assert_eq!(query("wecom", None).app(), Ok(AppRef::wecom_contact("wx1")));
        assert_eq!(
            query("wecom", Some("1000002")).app(),
            Ok(AppRef::wecom("wx1", "1000002"))
        );
        assert_eq!(query("oa", Some("x")).app(), Err("agent"));
        assert_eq!(query("qq", None).app(), Err("kind"));
        let mut q = query("oa", None);
        q.app_id.clear();
        assert_eq!(q.app(), Err("app_id"));
        assert!(!format!("{:?}", query("oa", None)).contains("TOKEN-VALUE"));
    }

    #[test]
    fn internal_keys_are_checked() {
        assert!(check_internal_key("").unwrap_err().contains("required"));
        assert!(check_internal_key("short").is_err());
        assert!(check_internal_key(&"k ".repeat(20)).is_err());
        assert!(check_internal_key(&"k".repeat(32)).is_ok());
    }

    #[test]
    fn grant_round_trips_and_hides_the_token() {
        let grant: TokenGrant =
            serde_json::from_str(r#"{"access_token":"TOKEN-VALUE","expires_at":1700000000}"#)
                .expect("decodes");
        assert_eq!(grant.access_token.expose(), "TOKEN-VALUE");
        assert!(!format!("{grant:?}").contains("TOKEN-VALUE"));
        let json = serde_json::to_string(&grant).expect("encodes");
        assert_eq!(
            json,
            r#"{"access_token":"TOKEN-VALUE","expires_at":1700000000}"#
        );
    }
}
