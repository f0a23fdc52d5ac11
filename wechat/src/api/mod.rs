//! The WeChat / WeCom server API client: access tokens kept in the shared [`Cache`] and refreshed
//! by one caller at a time across every process, typed requests and answers, typed errors.
//!
//! - **Credentials** come from the caller ([`AppCredentials`]: appid/corpid plus a [`Secret`] that
//!   never prints); the gateway's app registry owns them, and the gateway is the token keeper.
//! - **Without credentials** ([`Auth::Delegated`]): services that must never hold a secret call
//!   the same endpoint methods with an [`AppRef`] and a [`TokenSource`] — in practice a
//!   [`KeeperTokenSource`] asking the gateway's internal token endpoint — on a client built with
//!   [`ApiClient::without_keeper`]. Requests, answers, errors, redaction and the retry are the
//!   same code for both. [`WechatAccessConfig`] / [`WechatAccess`] are the config keys and the
//!   construction every such service shares.
//! - **Tokens**: OA and mini-program tokens come from `GET /cgi-bin/token` (not `stable_token`:
//!   the refresh here is already single-flight across processes, and `stable_token`'s forced
//!   refresh is capped per day); WeCom tokens from `GET /cgi-bin/gettoken`, one per secret. A token
//!   is cached under [`ApiClient::token_cache_key`] for `expires_in` minus a safety margin. When
//!   it is missing, the caller that wins a `set_nx` lock (random owner value, TTL) fetches it and
//!   releases the lock with `delete_if_eq`; every other caller polls the cache with short sleeps,
//!   bounded, instead of fetching its own — WeChat invalidates the previous token on every fetch,
//!   so uncoordinated refreshes would break each other.
//! - **Retry**: an answer of 40001 / 40014 / 42001 deletes the cached token only while it is still
//!   the one that failed, fetches a new one (single-flight again) and retries the call once; a
//!   delegated call asks its source for a token other than the rejected one, then retries once.
//! - **JS-SDK tickets** (WeCom corp and app tickets for the sidebar's `wx.config` /
//!   `wx.agentConfig`) are kept by the same machinery under their own keys, fetched with the
//!   app's token ([`ApiClient::kept_ticket`]).
//! - **The sidebar's sign-in and app messages**: the OAuth authorize URL on WeChat's web host
//!   ([`ClientOptions::open_base_url`]), `auth/getuserinfo`, `message/send`.
//! - **Sends to many**: an Official Account mass send to openids, a WeCom group-send task of a
//!   rep (`sends`).
//! - **Secrets**: the secret and the token travel as query parameters; neither appears in an
//!   error, a log line or a `Debug` output (messages are redacted, URLs dropped).

mod access;
mod agent;
mod app;
mod codes;
mod error;
mod keeper;
mod miniprogram;
mod oa;
mod sends;
mod ticket;
mod token;
mod wecom;

use std::sync::Arc;
use std::time::Duration;

use platform::cache::Cache;
use serde::de::DeserializeOwned;

pub use self::access::{WechatAccess, WechatAccessConfig};
pub use self::agent::{
    wecom_oauth_url, AppMessage, AppMessageBody, OAuthUser, SendOutcome, TextCard, TextContent,
    Unreached, OPEN_BASE_URL,
};
pub use self::app::{AppCredentials, AppKind, AppRef, Auth, TokenSource, WECOM_CONTACT_AGENT};
pub use self::codes::{
    ContactWay, ContactWayAdded, QrCodeCreated, QrScene, MAX_CONTACT_WAY_EXPIRE, MAX_QR_EXPIRE,
    MAX_SCENE_STR, MAX_STATE,
};
pub use self::error::ApiError;
pub use self::keeper::{
    check_internal_key, KeeperOptions, KeeperTokenSource, TenantTokens, TokenGrant, TokenQuery,
    MIN_INTERNAL_KEY_LEN, TOKEN_PATH,
};
pub use self::miniprogram::{MpSession, PhoneInfo, PhoneWatermark};
pub use self::oa::{OaTag, OaUserInfo};
pub use self::sends::{MassSent, MsgTemplateAdded, MAX_RECIPIENTS};
pub use self::ticket::{JsapiTicket, KeptTicket, TicketKind};
pub use self::token::{AccessToken, KeptToken};
pub use self::wecom::{
    CorpTag, CorpTagGroup, CorpTagGroupRef, ExternalContact, ExternalContactDetail, FollowUser,
    FollowUserTag, MarkTagRequest, NewCorpTag,
};
pub use platform::config::Secret;

/// Where the APIs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBaseUrls {
    /// Official Account and mini-program APIs (`https://api.weixin.qq.com`).
    pub weixin: String,
    /// WeCom APIs (`https://qyapi.weixin.qq.com`).
    pub wecom: String,
}

impl Default for ApiBaseUrls {
    fn default() -> Self {
        ApiBaseUrls {
            weixin: "https://api.weixin.qq.com".to_owned(),
            wecom: "https://qyapi.weixin.qq.com".to_owned(),
        }
    }
}

impl ApiBaseUrls {
    /// Both API families on one base URL (a fake server, a forwarding proxy).
    pub fn single(base: impl Into<String>) -> Self {
        let base = base.into();
        ApiBaseUrls {
            weixin: base.clone(),
            wecom: base,
        }
    }
}

/// Tuning of the client; [`Default`] suits production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// API base URLs.
    pub base_urls: ApiBaseUrls,
    /// WeChat's web host, where the OAuth authorize page lives ([`OPEN_BASE_URL`]; the fake
    /// server serves a stand-in). Kept apart from [`ApiBaseUrls`], which callers build field by
    /// field: it is not an API host.
    pub open_base_url: String,
    /// Prefix of the token cache keys (the cache adds the deployment prefix in front).
    pub key_prefix: String,
    /// A token is cached for `expires_in` minus this margin (half of `expires_in` when the
    /// lifetime is shorter than two margins).
    pub safety_margin: Duration,
    /// Lifetime of the refresh lock; longer than one token request may take.
    pub lock_ttl: Duration,
    /// How long a caller waits for another caller's refresh before giving up with
    /// [`ApiError::TokenUnavailable`].
    pub wait_timeout: Duration,
    /// Sleep between two looks at the cache while waiting.
    pub poll_interval: Duration,
    /// How long a failed refresh is remembered, so the callers waiting on it fail with the same
    /// error instead of each trying again.
    pub failure_ttl: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            base_urls: ApiBaseUrls::default(),
            open_base_url: OPEN_BASE_URL.to_owned(),
            key_prefix: "wechat:token:".to_owned(),
            safety_margin: Duration::from_secs(300),
            lock_ttl: Duration::from_secs(15),
            wait_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(50),
            failure_ttl: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The API client. Cheap to clone; every clone shares the HTTP connection pool and the cache.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// The token keeper's cache; `None` for a client that only makes delegated calls.
    cache: Option<Arc<dyn Cache>>,
    options: ClientOptions,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("cache", &self.cache.as_ref().map(|c| c.kind()))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// HTTP method of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// Which base URL an endpoint lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Weixin,
    WeCom,
}

/// One API request, without the access token.
#[derive(Debug)]
struct Request {
    family: Family,
    method: Method,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
}

impl Request {
    fn get(family: Family, path: &'static str) -> Self {
        Request {
            family,
            method: Method::Get,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    fn post(family: Family, path: &'static str, body: serde_json::Value) -> Self {
        Request {
            family,
            method: Method::Post,
            path,
            query: Vec::new(),
            body: Some(body),
        }
    }

    fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }
}

/// Replaces every occurrence of a non-empty secret in `text` with `***`.
fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "***");
    }
    out
}

/// The message of a reqwest error and its sources, without the URL.
fn transport_message(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

impl ApiClient {
    /// A client on `base_urls` with the default options.
    pub fn new(cache: Arc<dyn Cache>, base_urls: ApiBaseUrls, http: reqwest::Client) -> Self {
        Self::with_options(
            cache,
            http,
            ClientOptions {
                base_urls,
                ..ClientOptions::default()
            },
        )
    }

    /// A client with explicit options.
    pub fn with_options(
        cache: Arc<dyn Cache>,
        http: reqwest::Client,
        options: ClientOptions,
    ) -> Self {
        ApiClient {
            http,
            cache: Some(cache),
            options,
        }
    }

    /// A client for a process that holds no secret: every token-bearing call must be
    /// [`Auth::Delegated`] (a call with credentials fails with [`ApiError::Cache`], since there is
    /// no shared cache to keep their token in). `options.base_urls` and `request_timeout` apply.
    pub fn without_keeper(http: reqwest::Client, options: ClientOptions) -> Self {
        ApiClient {
            http,
            cache: None,
            options,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    fn base(&self, family: Family) -> &str {
        match family {
            Family::Weixin => self.options.base_urls.weixin.trim_end_matches('/'),
            Family::WeCom => self.options.base_urls.wecom.trim_end_matches('/'),
        }
    }

    /// Sends one request and decodes the answer: a non-zero `errcode` becomes the typed error,
    /// anything else is decoded into `T` (unknown fields ignored). `token` is added as the
    /// `access_token` query parameter; `secrets` are redacted from every message.
    async fn send<T: DeserializeOwned>(
        &self,
        req: &Request,
        token: Option<&str>,
        secrets: &[&str],
    ) -> Result<T, ApiError> {
        let endpoint = req.path;
        let url = format!("{}{}", self.base(req.family), req.path);
        let mut query: Vec<(&str, &str)> =
            req.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(t) = token {
            query.push(("access_token", t));
        }
        let mut all_secrets: Vec<&str> = secrets.to_vec();
        all_secrets.extend(token);

        let builder = match req.method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
        };
        let mut builder = builder.query(&query).timeout(self.options.request_timeout);
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let transport = |e: reqwest::Error| ApiError::Transport {
            endpoint: endpoint.to_owned(),
            message: redact(&transport_message(e), &all_secrets),
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ApiError::InvalidResponse {
                endpoint: endpoint.to_owned(),
                status: Some(status.as_u16()),
                message: format!("HTTP status {status}"),
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidResponse {
                endpoint: endpoint.to_owned(),
                status: None,
                message: redact(&format!("body is not JSON: {e}"), &all_secrets),
            })?;
        if let Some(errcode) = value.get("errcode").and_then(serde_json::Value::as_i64) {
            if errcode != 0 {
                let errmsg = value
                    .get("errmsg")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                let err = ApiError::from_errcode(errcode, redact(errmsg, &all_secrets));
                tracing::debug!(endpoint, errcode, "WeChat API answered an error");
                return Err(err);
            }
        }
        serde_json::from_value(value).map_err(|e| ApiError::InvalidResponse {
            endpoint: endpoint.to_owned(),
            status: None,
            message: redact(&format!("unexpected JSON shape: {e}"), &all_secrets),
        })
    }

    /// Calls an endpoint that needs the app's access token; on 40001 / 40014 / 42001 a fresh
    /// token is obtained (the keeper drops the rejected one only while it is still current) and
    /// the call retried once. The same path serves credentials and delegated token sources.
    async fn call<T: DeserializeOwned>(&self, auth: Auth<'_>, req: Request) -> Result<T, ApiError> {
        let secrets: Vec<&str> = auth.secret().into_iter().collect();
        let token = self.token_for(auth).await?;
        match self.send(&req, Some(token.expose()), &secrets).await {
            Err(e) if e.is_token_error() => {
                tracing::info!(
                    app = %auth.app().label(),
                    endpoint = req.path,
                    errcode = e.errcode(),
                    "Access token rejected; refreshing and retrying once"
                );
                let fresh = self.token_after_rejection(auth, &token).await?;
                self.send(&req, Some(fresh.expose()), &secrets).await
            }
            other => other,
        }
    }

    /// The token a call starts with.
    async fn token_for(&self, auth: Auth<'_>) -> Result<AccessToken, ApiError> {
        match auth {
            Auth::Credentials(app) => self.access_token(app).await,
            Auth::Delegated { app, source } => source.token(app).await,
        }
    }

    /// A token other than `rejected`, after WeChat refused it.
    async fn token_after_rejection(
        &self,
        auth: Auth<'_>,
        rejected: &AccessToken,
    ) -> Result<AccessToken, ApiError> {
        match auth {
            Auth::Credentials(app) => {
                self.invalidate_token(app, rejected.expose()).await?;
                self.access_token(app).await
            }
            Auth::Delegated { app, source } => source.refresh(app, rejected).await,
        }
    }
}

/// The `{"errcode":0,"errmsg":"ok"}` answer of endpoints that return nothing else.
#[derive(Debug, serde::Deserialize)]
struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_secret() {
        let app = AppCredentials::official_account("wx1", Secret::new("s3cr3t-value"));
        let shown = format!("{app:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("wx1"));
        let wecom = AppCredentials::wecom("ww1", "contact", Secret::new("s3cr3t-value"));
        assert_eq!(wecom.label(), "wecom:ww1:contact");
        assert!(!format!("{wecom:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("a SECRET b TOKEN", &["SECRET", "TOKEN", ""]),
            "a *** b ***"
        );
    }
}
