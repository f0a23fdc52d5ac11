//! Access tokens, and the machinery the keeper shares with JS-SDK tickets (`super::ticket`):
//! cached in the shared cache, refreshed by one caller at a time across every process of a
//! deployment.
//!
//! Keys (after the cache's own deployment prefix):
//! - `{key_prefix}{label}` — the token, expiring `expires_in − margin` after the fetch;
//! - `{key_prefix}{label}:expires_at` — when that entry expires (Unix seconds), written just
//!   before the token with the same TTL, so the token endpoint can tell its callers how long
//!   they may hold the token;
//! - `{key_prefix}{label}:lock` — the refresh lock, a random owner value with a TTL;
//! - `{key_prefix}{label}:error` — the last failed refresh (`errcode`, `errmsg` and a 48-bit
//!   fingerprint of the secret used), kept for a moment so the callers that waited on it, with
//!   the same secret, fail with the same error instead of each asking WeChat again.
//!
//! where `label` is `oa:{appid}`, `mp:{appid}` or `wecom:{corpid}:{agent}`. A ticket lives under
//! `{key_prefix}{label}:ticket:{jsapi|agent_config}` with the same three companions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use platform::cache::Cache;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{redact, ApiClient, ApiError, AppCredentials, AppKind, Family, Request, TicketKind};

/// An access token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        AccessToken(value.into())
    }

    /// The token; use it only to send it to WeChat.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

/// A token as the keeper holds it: the value and when it leaves the shared cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptToken {
    /// The token.
    pub token: AccessToken,
    /// Unix seconds after which the keeper no longer hands it out (WeChat's expiry minus the
    /// safety margin). Holders should drop it a little before.
    pub expires_at: i64,
}

/// How long a token of unknown expiry (its `:expires_at` entry missing) may be held.
const UNKNOWN_EXPIRY_HOLD: Duration = Duration::from_secs(60);

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn unix_after(d: Duration) -> i64 {
    unix_now().saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Answer of `/cgi-bin/token` and `/cgi-bin/gettoken`.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// A failed refresh as remembered in the cache. It applies only to callers holding the same
/// secret (a corrected secret must not meet the old failure).
#[derive(Serialize, Deserialize)]
struct RememberedFailure {
    errcode: i64,
    errmsg: String,
    secret: String,
}

/// A short fingerprint of a secret: 48 bits of its SHA-1, enough to tell two secrets apart and
/// useless for recovering one.
fn secret_fingerprint(secret: &str) -> String {
    use sha1::{Digest, Sha1};
    hex::encode(&Sha1::digest(secret.as_bytes())[..6])
}

/// Random lock owner value: 128 bits as hex.
fn lock_owner() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// What the keeper keeps for an app: its access token, or one of its JS-SDK tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// The access token (`/cgi-bin/token`, `/cgi-bin/gettoken`).
    Token,
    /// A JS-SDK ticket, fetched with the access token.
    Ticket(TicketKind),
}

impl Kept {
    /// What it is, in log lines.
    fn noun(self) -> &'static str {
        match self {
            Kept::Token => "Access token",
            Kept::Ticket(TicketKind::Corp) => "JS-SDK corp ticket",
            Kept::Ticket(TicketKind::Agent) => "JS-SDK agent ticket",
        }
    }
}

/// A fetch of a kept value (the value and its `expires_in`), boxed with a declared `Send`.
type BoxedFetch<'a> = Pin<Box<dyn Future<Output = Result<(String, u64), ApiError>> + Send + 'a>>;

/// A value the keeper holds and when it leaves the cache (Unix seconds).
pub(crate) struct KeptValue {
    pub(crate) value: String,
    pub(crate) expires_at: i64,
}

impl ApiClient {
    /// The cache key of an app's token (before the cache's deployment prefix). A service that
    /// only reads tokens (and never holds the secret) reads this key.
    pub fn token_cache_key(&self, app: &AppCredentials) -> String {
        format!("{}{}", self.options.key_prefix, app.label())
    }

    /// How long a token that WeChat says lives `expires_in` seconds is cached.
    fn cache_ttl(&self, expires_in: u64) -> Duration {
        let lifetime = Duration::from_secs(expires_in);
        let margin = self.options.safety_margin;
        let ttl = if lifetime > margin * 2 {
            lifetime - margin
        } else {
            lifetime / 2
        };
        ttl.max(Duration::from_millis(1))
    }

    /// The shared cache, which a client built [`ApiClient::without_keeper`] does not have.
    fn keeper_cache(&self) -> Result<&Arc<dyn Cache>, ApiError> {
        self.cache.as_ref().ok_or_else(|| {
            ApiError::Cache(
                "this client keeps no tokens (built without a cache): call with a token source"
                    .to_owned(),
            )
        })
    }

    async fn cached_value(&self, key: &str) -> Result<Option<String>, ApiError> {
        Ok(self
            .keeper_cache()?
            .get(key)
            .await?
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|t| !t.is_empty()))
    }

    /// The app's access token: from the cache, or fetched by exactly one caller across every
    /// process sharing the cache while the others wait for it.
    pub async fn access_token(&self, app: &AppCredentials) -> Result<AccessToken, ApiError> {
        let key = self.token_cache_key(app);
        if let Some(token) = self.cached_value(&key).await? {
            return Ok(AccessToken(token));
        }
        self.refresh_single_flight(app, &key, Kept::Token)
            .await
            .map(|kept| AccessToken(kept.value))
    }

    /// Like [`access_token`](Self::access_token), with the moment the token leaves the cache:
    /// what the gateway's token endpoint hands to services that hold no secret.
    pub async fn kept_token(&self, app: &AppCredentials) -> Result<KeptToken, ApiError> {
        let key = self.token_cache_key(app);
        self.kept(app, &key, Kept::Token)
            .await
            .map(|kept| KeptToken {
                token: AccessToken(kept.value),
                expires_at: kept.expires_at,
            })
    }

    /// The value under `key` with its expiry: cached, or fetched single-flight.
    pub(crate) async fn kept(
        &self,
        app: &AppCredentials,
        key: &str,
        what: Kept,
    ) -> Result<KeptValue, ApiError> {
        if let Some(kept) = self.cached_kept(key).await? {
            return Ok(kept);
        }
        self.refresh_single_flight(app, key, what).await
    }

    /// The cached value with its expiry (a short hold when the expiry entry is missing).
    async fn cached_kept(&self, key: &str) -> Result<Option<KeptValue>, ApiError> {
        let Some(value) = self.cached_value(key).await? else {
            return Ok(None);
        };
        let expires_at = self
            .keeper_cache()?
            .get(&format!("{key}:expires_at"))
            .await?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or_else(|| unix_after(UNKNOWN_EXPIRY_HOLD));
        Ok(Some(KeptValue { value, expires_at }))
    }

    /// Removes the cached token only while it is still `rejected` (another caller may already
    /// have stored a newer one); `true` when removed. Call it when WeChat rejects the token.
    pub async fn invalidate_token(
        &self,
        app: &AppCredentials,
        rejected: &str,
    ) -> Result<bool, ApiError> {
        let key = self.token_cache_key(app);
        self.drop_if_current(&key, rejected).await
    }

    /// Deletes `key` only while it still holds `rejected`.
    pub(crate) async fn drop_if_current(
        &self,
        key: &str,
        rejected: &str,
    ) -> Result<bool, ApiError> {
        Ok(self
            .keeper_cache()?
            .delete_if_eq(key, rejected.as_bytes())
            .await?)
    }

    async fn refresh_single_flight(
        &self,
        app: &AppCredentials,
        key: &str,
        what: Kept,
    ) -> Result<KeptValue, ApiError> {
        let cache = self.keeper_cache()?;
        let lock_key = format!("{key}:lock");
        let error_key = format!("{key}:error");
        let deadline = Instant::now() + self.options.wait_timeout;
        loop {
            let owner = lock_owner();
            if cache
                .set_nx(&lock_key, owner.as_bytes(), self.options.lock_ttl)
                .await?
            {
                let result = self.refresh_locked(app, key, &error_key, what).await;
                if let Err(e) = cache.delete_if_eq(&lock_key, owner.as_bytes()).await {
                    // The lock expires on its own after lock_ttl.
                    tracing::warn!(app = %app.label(), error = %e, "could not release the token refresh lock");
                }
                return result;
            }

            // Someone else is refreshing: wait for the value (or their failure).
            let now = Instant::now();
            if now >= deadline {
                return Err(ApiError::TokenUnavailable { app: app.label() });
            }
            tokio::time::sleep(self.options.poll_interval.min(deadline - now)).await;
            if let Some(kept) = self.cached_kept(key).await? {
                return Ok(kept);
            }
            if let Some(failure) = self.remembered_failure(app, &error_key).await? {
                return Err(failure);
            }
        }
    }

    /// The error of a refresh with the same secret that failed within the last `failure_ttl`.
    async fn remembered_failure(
        &self,
        app: &AppCredentials,
        error_key: &str,
    ) -> Result<Option<ApiError>, ApiError> {
        let fingerprint = secret_fingerprint(app.secret().expose());
        Ok(self
            .keeper_cache()?
            .get(error_key)
            .await?
            .and_then(|bytes| serde_json::from_slice::<RememberedFailure>(&bytes).ok())
            .filter(|f| f.secret == fingerprint)
            .map(|f| ApiError::from_errcode(f.errcode, f.errmsg)))
    }

    /// Runs with the refresh lock held: looks again (the previous holder may just have stored a
    /// value, or just failed), fetches, stores.
    async fn refresh_locked(
        &self,
        app: &AppCredentials,
        key: &str,
        error_key: &str,
        what: Kept,
    ) -> Result<KeptValue, ApiError> {
        let cache = self.keeper_cache()?;
        if let Some(kept) = self.cached_kept(key).await? {
            return Ok(kept);
        }
        if let Some(failure) = self.remembered_failure(app, error_key).await? {
            return Err(failure);
        }
        match self.fetch_kept(app, what).await {
            Ok((value, expires_in)) => {
                let ttl = self.cache_ttl(expires_in);
                let expires_at = unix_after(ttl);
                // The expiry first: whoever sees the value also sees when it leaves.
                cache
                    .set(
                        &format!("{key}:expires_at"),
                        expires_at.to_string().as_bytes(),
                        Some(ttl),
                    )
                    .await?;
                cache.set(key, value.as_bytes(), Some(ttl)).await?;
                // A stale failure must not answer the next waiters.
                cache.delete(error_key).await?;
                tracing::info!(app = %app.label(), expires_in, "{} refreshed", what.noun());
                Ok(KeptValue { value, expires_at })
            }
            Err(e) => {
                tracing::warn!(app = %app.label(), error = %e, "{} refresh failed", what.noun());
                if let (Some(errcode), Some(errmsg)) = (e.errcode(), e.errmsg()) {
                    let failure = RememberedFailure {
                        errcode,
                        errmsg: errmsg.to_owned(),
                        secret: secret_fingerprint(app.secret().expose()),
                    };
                    if let Ok(bytes) = serde_json::to_vec(&failure) {
                        cache
                            .set(error_key, &bytes, Some(self.options.failure_ttl))
                            .await?;
                    }
                }
                Err(e)
            }
        }
    }

    /// One request to WeChat for `what`: the value and its `expires_in`. A ticket is fetched
    /// with the access token, which may itself need a single-flight refresh: the boxed future
    /// with its declared `Send` breaks the async recursion.
    fn fetch_kept<'a>(&'a self, app: &'a AppCredentials, what: Kept) -> BoxedFetch<'a> {
        Box::pin(async move {
            match what {
                Kept::Token => {
                    let answer = self.fetch_token(app).await?;
                    Ok((answer.access_token, answer.expires_in))
                }
                Kept::Ticket(kind) => {
                    let ticket = self.wecom_jsapi_ticket(app, kind).await?;
                    Ok((ticket.ticket.expose().to_owned(), ticket.expires_in))
                }
            }
        })
    }

    /// One token request to WeChat.
    async fn fetch_token(&self, app: &AppCredentials) -> Result<TokenAnswer, ApiError> {
        let secret = app.secret().expose();
        let req = match app.kind() {
            AppKind::OfficialAccount | AppKind::MiniProgram => {
                Request::get(Family::Weixin, "/cgi-bin/token")
                    .query("grant_type", "client_credential")
                    .query("appid", app.id())
                    .query("secret", secret)
            }
            AppKind::WeCom => Request::get(Family::WeCom, "/cgi-bin/gettoken")
                .query("corpid", app.id())
                .query("corpsecret", secret),
        };
        let answer: TokenAnswer = self.send(&req, None, &[secret]).await?;
        if answer.access_token.is_empty() {
            return Err(ApiError::InvalidResponse {
                endpoint: req.path.to_owned(),
                status: None,
                message: redact("empty access_token", &[secret]),
            });
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use platform::cache::MemoryCache;

    use super::*;
    use crate::api::ApiBaseUrls;

    #[test]
    fn ttl_keeps_a_margin() {
        let client = ApiClient::new(
            Arc::new(MemoryCache::new("t:", 100)),
            ApiBaseUrls::default(),
            reqwest::Client::new(),
        );
        assert_eq!(client.cache_ttl(7200), Duration::from_secs(6900));
        assert_eq!(client.cache_ttl(600), Duration::from_secs(300));
        assert_eq!(client.cache_ttl(1), Duration::from_millis(500));
        assert_eq!(client.cache_ttl(0), Duration::from_millis(1));
    }

    #[test]
    fn token_debug_is_redacted() {
        assert_eq!(format!("{:?}", AccessToken::new("abc")), "AccessToken(***)");
    }
}
