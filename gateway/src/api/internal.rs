//! Internal endpoints other roles call (never WeChat, never the public): today the WeChat access
//! token endpoint, through which services use WeChat APIs without holding an app secret
//! (DESIGN.md §4). The contract is `wechat::api::keeper`:
//!
//! `GET /internal/v1/wechat/token?tenant_id=&kind=oa|mp|wecom&app_id=[&agent=][&rejected=]` with
//! `Authorization: Bearer <gateway.internal_key>` → `{access_token, expires_at}` from the token
//! keeper (single-flight across processes through the cache). For WeCom, `agent` names the
//! secret: `contact` (the default) the corp's customer-contact secret, an AgentID the corp's
//! registered agent app. `rejected` drops that token only while it is still the cached one,
//! then answers a fresh one.
//!
//! Errors (common body): 401 `unauthenticated` / `invalid_internal_key`; 400 `invalid_query`;
//! 404 `unknown_app`; 403 `tenant_mismatch` (only the app's registered tenant may ask); 409
//! `app_without_secret`; 502 `wechat_refused` / 503 `wechat_unavailable` with WeChat's
//! `errcode` and `errmsg` in `details`; 503 `token_unavailable`, `registry_unavailable`.
//! The token never reaches a log line or an error.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use platform::http::ApiError;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wechat::api::{AppRef, TokenGrant, TokenQuery, WECOM_CONTACT_AGENT};

use super::GatewayState;
use crate::registry::AppKind;
use crate::wechat_api::WechatApi;

/// Longest `rejected` token accepted (WeChat's tokens are at most 512 characters).
const MAX_TOKEN_LEN: usize = 2048;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(wechat::api::TOKEN_PATH, web::get().to(token));
}

fn count(kind: &str, outcome: &'static str) {
    let kind = match kind {
        "oa" | "mp" | "wecom" => kind.to_owned(),
        _ => "other".to_owned(),
    };
    metrics::counter!(crate::metrics::TOKEN_REQUESTS, "kind" => kind, "outcome" => outcome)
        .increment(1);
}

/// Checks `Authorization: Bearer <internal key>` in constant time (digests of equal length are
/// compared, so neither the key's content nor its length leaks through timing).
pub(super) fn authenticate(state: &GatewayState, req: &HttpRequest) -> Result<(), ApiError> {
    let unauthorized = |code, message: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, message);
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            unauthorized(
                "unauthenticated",
                "Authorization: expected `Bearer <internal key>` (gateway.internal_key)",
            )
        })?;
    let expected = state.cfg.internal_key.expose();
    let same: bool = Sha256::digest(presented.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into();
    if expected.is_empty() || !same {
        return Err(unauthorized(
            "invalid_internal_key",
            "Authorization: the internal key does not match gateway.internal_key",
        ));
    }
    Ok(())
}

/// The registry's kind for a client-side app reference.
fn registry_kind(app: &AppRef) -> AppKind {
    match app.kind() {
        wechat::api::AppKind::OfficialAccount => AppKind::Oa,
        wechat::api::AppKind::MiniProgram => AppKind::Mp,
        wechat::api::AppKind::WeCom => AppKind::Wecom,
    }
}

/// The common body for a failed token fetch: WeChat's own verdict keeps its errcode.
pub(super) fn token_error(e: &wechat::api::ApiError) -> ApiError {
    let message = e.to_string();
    match (e.errcode(), e.is_transient()) {
        (Some(errcode), transient) => {
            let (status, code) = if transient {
                (StatusCode::SERVICE_UNAVAILABLE, "wechat_unavailable")
            } else {
                (StatusCode::BAD_GATEWAY, "wechat_refused")
            };
            ApiError::new(status, code, message).with_details(json!({
                "errcode": errcode,
                "errmsg": e.errmsg().unwrap_or_default(),
            }))
        }
        (None, true) => ApiError::unavailable("token_unavailable", message),
        (None, false) => ApiError::new(StatusCode::BAD_GATEWAY, "token_unavailable", message),
    }
}

async fn token(state: web::Data<GatewayState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // Authenticate before reading anything else: no answer tells a stranger what is registered.
    if let Err(e) = authenticate(&state, &req) {
        count("", "unauthorized");
        return Err(e);
    }
    let q = web::Query::<TokenQuery>::from_query(req.query_string())
        .map_err(|e| {
            count("", "invalid");
            ApiError::bad_request("invalid_query", format!("query string: {e}"))
        })?
        .into_inner();
    let app = q.app().map_err(|field| {
        count(&q.kind, "invalid");
        let why = match field {
            "kind" => "expected `oa`, `mp` or `wecom`",
            "agent" => "only for kind=wecom",
            _ => "must not be empty",
        };
        ApiError::bad_request("invalid_query", format!("{field}: {why}"))
    })?;
    if q.tenant_id.is_empty() {
        count(&q.kind, "invalid");
        return Err(ApiError::bad_request(
            "invalid_query",
            "tenant_id: must not be empty",
        ));
    }
    let rejected = q.rejected.as_ref().map(|r| r.expose());
    if rejected.is_some_and(|r| r.is_empty() || r.len() > MAX_TOKEN_LEN) {
        count(&q.kind, "invalid");
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("rejected: 1–{MAX_TOKEN_LEN} characters"),
        ));
    }
    // A WeCom corp's secrets: the customer-contact one is the `wecom` app, another label is
    // the AgentID of the corp's agent app.
    let (kind, agent) = match app.agent() {
        Some(a) if a != WECOM_CONTACT_AGENT => (AppKind::WecomAgent, Some(a)),
        _ => (registry_kind(&app), None),
    };
    let registered = state
        .registry
        .get(kind, app.id())
        .await
        .map_err(|e| ApiError::unavailable("registry_unavailable", e.to_string()))?
        .filter(|r| agent.is_none_or(|a| r.agent_id.map(|id| id.to_string()).as_deref() == Some(a)))
        .ok_or_else(|| {
            count(&q.kind, "unknown_app");
            let what = match agent {
                Some(a) => format!("agent: corp `{}` has no agent app {a} registered", app.id()),
                None => format!("app_id: no {} app `{}` is registered", q.kind, app.id()),
            };
            ApiError::new(StatusCode::NOT_FOUND, "unknown_app", what)
        })?;
    if registered.tenant_id != q.tenant_id {
        count(&q.kind, "forbidden");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant_mismatch",
            format!(
                "tenant_id: app `{}` is not registered to tenant `{}`",
                app.id(),
                q.tenant_id
            ),
        ));
    }
    let credentials = WechatApi::credentials(&registered).ok_or_else(|| {
        count(&q.kind, "no_secret");
        ApiError::conflict(
            "app_without_secret",
            format!("app_id: app `{}` has no API secret registered", app.id()),
        )
    })?;
    if rejected.is_some() {
        tracing::info!(tenant_id = %q.tenant_id, app = %app.label(), "Caller reports a rejected access token");
    }
    let kept = state
        .wechat
        .kept_token(&credentials, rejected)
        .await
        .map_err(|e| {
            count(&q.kind, "failed");
            tracing::warn!(tenant_id = %q.tenant_id, app = %app.label(), error = %e, "Access token unavailable");
            token_error(&e)
        })?;
    count(
        &q.kind,
        if rejected.is_some() {
            "served_after_rejection"
        } else {
            "served"
        },
    );
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(TokenGrant {
            access_token: platform::config::Secret::new(kept.token.expose()),
            expires_at: kept.expires_at,
        }))
}
