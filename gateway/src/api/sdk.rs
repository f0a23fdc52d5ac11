//! The mini-program SDK endpoints: `POST /mp/{appid}/session` exchanges a `wx.login` code for the
//! user's openid/unionid (published as an identity event) and returns a signed SDK session token;
//! `POST /mp/{appid}/phone` exchanges a phone-button code — or, from older clients, the button's
//! `{encrypted_data, iv}`, decrypted with the session key kept at login — for the verified phone
//! number (published as a verified phone identifier). WeChat's session_key never leaves the
//! server.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use platform::http::{ApiError, RequestId};
use proto::sdk::{MpPhoneVerified, MpSessionStarted};
use proto::{Envelope, Event};
use serde::Deserialize;
use serde_json::json;

use super::GatewayState;
use crate::domain::mp_phone;
use crate::domain::sdk_token::{self, Claims, TokenError};
use crate::registry::{App, AppKind};
use crate::wechat_api::WechatCallError;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/mp/{appid}/session", web::post().to(session))
        .route("/mp/{appid}/phone", web::post().to(phone));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

fn check_code(code: &str) -> Result<(), ApiError> {
    if code.is_empty() || code.len() > 256 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_code",
            "code: 1–256 printable characters",
        ));
    }
    Ok(())
}

/// The session token of the request, if it sent one; an invalid token is an error.
pub(crate) fn session_claims(
    state: &GatewayState,
    req: &HttpRequest,
) -> Result<Option<Claims>, ApiError> {
    let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            unauthorized(
                "bad_authorization",
                "Authorization: expected `Bearer <session token>`",
            )
        })?;
    sdk_token::verify(state.keys.sdk_key(), token.trim(), Utc::now().timestamp())
        .map(Some)
        .map_err(|e| match e {
            TokenError::Expired => unauthorized(
                "session_expired",
                "Authorization: session token expired; log in again",
            ),
            other => unauthorized("invalid_session", format!("Authorization: {other}")),
        })
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

async fn mp_app(state: &GatewayState, appid: &str) -> Result<std::sync::Arc<App>, ApiError> {
    state
        .registry
        .get(AppKind::Mp, appid)
        .await
        .map_err(|e| ApiError::unavailable("registry_unavailable", e.to_string()))?
        .ok_or_else(|| {
            ApiError::not_found(format!("appid: no mini-program `{appid}` is registered"))
        })
}

fn wechat_error(e: WechatCallError) -> ApiError {
    match e {
        WechatCallError::InvalidCode(m) => {
            ApiError::bad_request("invalid_code", format!("code: {m}"))
        }
        WechatCallError::RateLimited(m) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "wechat_rate_limited", m)
        }
        WechatCallError::Misconfigured(m) => ApiError::internal(m),
        WechatCallError::Unavailable(m) => ApiError::unavailable("wechat_unavailable", m),
    }
}

/// Publishes one SDK event with a broker confirm; `what` names it in the error.
async fn publish<E: Event>(
    state: &GatewayState,
    tenant: &str,
    event: &E,
    rid: &RequestId,
    what: &str,
) -> Result<(), ApiError> {
    let env = Envelope::of(tenant, event).trace_id(rid.0.clone()).build();
    state
        .publisher
        .publish(std::slice::from_ref(&env), "mp")
        .await
        .map_err(|e| {
            ApiError::unavailable(
                "not_durable",
                format!("{what} was not recorded, retry: {e}"),
            )
        })
}

async fn session(
    state: web::Data<GatewayState>,
    path: web::Path<String>,
    rid: web::ReqData<RequestId>,
    body: web::Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let appid = path.into_inner();
    check_code(&body.code)?;
    let app = mp_app(&state, &appid).await?;
    let login = state
        .wechat
        .code2session(&app, &body.code)
        .await
        .map_err(wechat_error)?;
    // Kept server-side for legacy encryptedData; the client only ever sees the session token.
    let sk_key = session_key_key(&app.tenant_id, &app.app_id, &login.openid);
    let ttl = std::time::Duration::from_secs(state.cfg.session_ttl_secs as u64);
    if let Err(e) = state
        .cache
        .set(&sk_key, login.session_key.expose().as_bytes(), Some(ttl))
        .await
    {
        tracing::warn!(error = %e, "Could not keep the mini-program session key");
    }
    let event = MpSessionStarted {
        app_id: app.app_id.clone(),
        openid: login.openid.clone(),
        unionid: login.unionid.clone(),
    };
    publish(&state, &app.tenant_id, &event, &rid, "login").await?;
    let exp = Utc::now().timestamp() + state.cfg.session_ttl_secs;
    let token = sdk_token::sign(
        state.keys.sdk_key(),
        &Claims {
            tid: app.tenant_id.clone(),
            app: app.app_id.clone(),
            oid: login.openid.clone(),
            uid: login.unionid.clone(),
            exp,
        },
    );
    Ok(HttpResponse::Ok().json(json!({
        "session_token": token,
        "expires_at": exp,
        "openid": login.openid,
        "unionid": login.unionid,
    })))
}

/// Where the session key of a user's latest login is kept (for the legacy phone path).
fn session_key_key(tenant: &str, app: &str, openid: &str) -> String {
    format!("{{{tenant}}}:mp_session_key:{app}:{openid}")
}

/// The phone button's answer: a code, or the legacy `encrypted_data` with its `iv`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhoneBody {
    code: Option<String>,
    encrypted_data: Option<String>,
    iv: Option<String>,
}

/// `+86 138****8000`-style masking for answers (full numbers are never echoed or logged).
pub(crate) fn mask_phone(e164: &str) -> String {
    let n = e164.chars().count();
    if n <= 7 {
        return "*".repeat(n);
    }
    let head: String = e164.chars().take(n - 8).collect();
    let tail: String = e164.chars().skip(n - 4).collect();
    format!("{head}****{tail}")
}

async fn phone(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    path: web::Path<String>,
    rid: web::ReqData<RequestId>,
    body: web::Json<PhoneBody>,
) -> Result<HttpResponse, ApiError> {
    let appid = path.into_inner();
    let claims = session_claims(&state, &req)?.ok_or_else(|| {
        unauthorized(
            "unauthenticated",
            "Authorization: a session token from /mp/{appid}/session is required",
        )
    })?;
    if claims.app != appid {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_app",
            format!("Authorization: the session belongs to another mini-program than `{appid}`"),
        ));
    }
    let body = body.into_inner();
    let app = mp_app(&state, &appid).await?;
    let phone = match (body.code, body.encrypted_data, body.iv) {
        (Some(code), None, None) => {
            check_code(&code)?;
            state
                .wechat
                .phone_number(&app, &code)
                .await
                .map_err(wechat_error)?
        }
        (None, Some(data), Some(iv)) => legacy_phone(&state, &app, &claims, &data, &iv).await?,
        (None, Some(_), None) => {
            return Err(ApiError::bad_request(
                "invalid_iv",
                "iv: required with encrypted_data",
            ))
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "code: send either the phone button's code, or encrypted_data with iv",
            ))
        }
    };
    let event = MpPhoneVerified {
        app_id: app.app_id.clone(),
        openid: claims.oid.clone(),
        unionid: claims.uid.clone(),
        phone_e164: phone.e164.clone(),
        country_code: phone.country_code.clone(),
    };
    publish(&state, &app.tenant_id, &event, &rid, "phone").await?;
    Ok(HttpResponse::Ok().json(json!({
        "verified": true,
        "phone": mask_phone(&phone.e164),
    })))
}

/// The number in a legacy `encrypted_data` answer, decrypted with the session key kept at the
/// session's login.
async fn legacy_phone(
    state: &GatewayState,
    app: &App,
    claims: &Claims,
    data: &str,
    iv: &str,
) -> Result<crate::wechat_api::MpPhone, ApiError> {
    let kept = state
        .cache
        .get(&session_key_key(&app.tenant_id, &app.app_id, &claims.oid))
        .await
        .map_err(|e| ApiError::unavailable("cache_unavailable", e.to_string()))?;
    let session_key = kept
        .and_then(|k| String::from_utf8(k).ok())
        .ok_or_else(|| {
            unauthorized(
                "session_key_gone",
                "Authorization: this session's key is no longer kept; log in again",
            )
        })?;
    let now = Utc::now().timestamp();
    let from = claims.exp - state.cfg.session_ttl_secs;
    mp_phone::decide(&app.app_id, &session_key, iv, data, from, now).map_err(|e| {
        metrics::counter!(crate::metrics::MP_LEGACY_PHONE_REFUSED, "reason" => e.code())
            .increment(1);
        ApiError::bad_request(e.code(), e.to_string())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_phones() {
        assert_eq!(super::mask_phone("+8613800138000"), "+86138****8000");
        assert_eq!(super::mask_phone("+15551234"), "+****1234");
    }
}
