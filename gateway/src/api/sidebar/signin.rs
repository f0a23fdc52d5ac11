//! Signing a rep in to the sidebar, and the JS-SDK signatures its page needs.
//!
//! 1. `GET /sidebar/v1/oauth/start?corp_id=&agent_id=&redirect=` → 302 to WeCom's authorize page
//!    for the corp's registered agent app, with a signed `state` (tenant, corp, agent, where to
//!    go back to, a nonce, ten minutes) and the nonce in a cookie of this browser: a `state`
//!    from another browser is refused (CSRF). `redirect` is a path under `/sidebar/`.
//! 2. `GET /sidebar/v1/oauth/callback?code=&state=` → `auth/getuserinfo` with the agent app's
//!    token → the member's userid → their sidebar session (the user mapped to the member, made a
//!    `rep` on their first sign-in when the tenant allows; 403 otherwise) in an `HttpOnly`
//!    cookie, and 302 back to `redirect`. A non-member (a customer opening the link) is 403.
//! 3. `POST /sidebar/v1/jssdk` `{url}` → the `wx.config` (corp ticket) and `wx.agentConfig`
//!    (agent ticket) signatures for the page at `url` (§E: sha1 of the ticket, nonce, timestamp
//!    and the URL without its fragment), tickets from the one keeper.
//! 4. `GET /sidebar/v1/me` → who the session is.

use actix_web::http::header::{LOCATION, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Route};
use platform::http::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use wechat::api::{OAuthUser, TicketKind};

use super::{Rep, SidebarRoute, SESSION_COOKIE};
use crate::access::{RepRefusal, SIDEBAR_TTL};
use crate::api::GatewayState;
use crate::domain::sdk_token;
use crate::registry::{App, AppKind};
use crate::wechat_api::WechatApi;

/// The cookie holding the sign-in's nonce between its two steps.
pub const STATE_COOKIE: &str = "scrm_sidebar_state";
/// How long a sign-in may take between its two steps.
pub const STATE_TTL_SECS: i64 = 600;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &SidebarRoute, route: Route) -> bool {
    match (r.method, r.path) {
        ("GET", "/sidebar/v1/oauth/start") => cfg.route(r.path, route.to(start)),
        ("GET", "/sidebar/v1/oauth/callback") => cfg.route(r.path, route.to(callback)),
        ("POST", "/sidebar/v1/jssdk") => cfg.route(r.path, route.to(jssdk)),
        ("GET", "/sidebar/v1/me") => cfg.route(r.path, route.to(me)),
        _ => return false,
    };
    true
}

/// What the signed `state` carries from the start to the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthState {
    /// Tenant.
    pub t: String,
    /// Corp.
    pub c: String,
    /// AgentID.
    pub a: i64,
    /// Where to go back to.
    pub r: String,
    /// The nonce in the browser's cookie.
    pub n: String,
    /// Expiry, Unix seconds.
    pub e: i64,
}

/// A path under `/sidebar/` to go back to (never another site), or the page itself.
pub fn safe_redirect(r: Option<&str>) -> Result<String, ApiError> {
    let r = r
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("/sidebar/");
    let ok = r.starts_with("/sidebar/")
        && !r.contains("//")
        && !r.contains('\\')
        && r.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(r.to_string())
    } else {
        Err(
            ApiError::bad_request("invalid_field", "`redirect`: a path under /sidebar/")
                .with_details(json!({"field": "redirect"})),
        )
    }
}

/// The gateway's address as a browser reaches it: the configured public base, else the
/// address of this request.
fn base_url(state: &GatewayState, req: &HttpRequest) -> String {
    match &state.cfg.public_base_url {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => {
            let ci = req.connection_info();
            format!("{}://{}", ci.scheme(), ci.host())
        }
    }
}

fn unknown_app(corp_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no WeCom agent app registered for corp `{corp_id}`"
    ))
    .with_details(json!({"field": "corp_id"}))
}

/// The agent app of `corp_id` and its credentials.
async fn agent_app(
    state: &GatewayState,
    corp_id: &str,
) -> Result<(std::sync::Arc<App>, wechat::api::AppCredentials), ApiError> {
    let app = state
        .registry
        .get(AppKind::WecomAgent, corp_id)
        .await
        .map_err(|e| ApiError::unavailable("registry_unavailable", e.to_string()))?
        .ok_or_else(|| unknown_app(corp_id))?;
    let creds = WechatApi::credentials(&app).ok_or_else(|| {
        ApiError::unavailable(
            "app_misconfigured",
            format!("the agent app of `{corp_id}` has no secret"),
        )
    })?;
    Ok((app, creds))
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[derive(Debug, Deserialize)]
struct StartParams {
    corp_id: Option<String>,
    agent_id: Option<String>,
    redirect: Option<String>,
}

async fn start(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    q: web::Query<StartParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let corp_id = platform::http::params::field(q.corp_id, "corp_id")?;
    let agent_id: i64 = platform::http::params::field(q.agent_id, "agent_id")?
        .parse()
        .map_err(|_| {
            ApiError::bad_request("invalid_field", "`agent_id`: a number")
                .with_details(json!({"field": "agent_id"}))
        })?;
    let redirect = safe_redirect(q.redirect.as_deref())?;
    let (app, _) = agent_app(&state, &corp_id).await?;
    if app.agent_id != Some(agent_id) {
        return Err(unknown_app(&corp_id).with_details(json!({"field": "agent_id"})));
    }
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let st = OAuthState {
        t: app.tenant_id.clone(),
        c: corp_id.clone(),
        a: agent_id,
        r: redirect,
        n: nonce.clone(),
        e: now_unix() + STATE_TTL_SECS,
    };
    let signed = sdk_token::sign_json(state.keys.sidebar_key(), &st);
    let callback = format!("{}/sidebar/v1/oauth/callback", base_url(&state, &req));
    let to = state
        .wechat
        .oauth_url(&corp_id, agent_id, &callback, &signed);
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, to))
        .insert_header((
            SET_COOKIE,
            format!(
                "{STATE_COOKIE}={nonce}; Path=/sidebar/; Max-Age={STATE_TTL_SECS}; HttpOnly; SameSite=Lax"
            ),
        ))
        .finish())
}

#[derive(Debug, Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
}

fn refused(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

async fn callback(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    q: web::Query<CallbackParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let code = platform::http::params::field(q.code, "code")?;
    let signed = platform::http::params::field(q.state, "state")?;
    let bad_state = || {
        ApiError::bad_request(
            "invalid_state",
            "`state`: not a sign-in this browser started here, or it took too long; start again",
        )
        .with_details(json!({"field": "state"}))
    };
    let st: OAuthState =
        sdk_token::verify_json(state.keys.sidebar_key(), &signed).map_err(|_| bad_state())?;
    let nonce = super::cookie(&req, STATE_COOKIE);
    if st.e <= now_unix() || nonce.as_deref() != Some(st.n.as_str()) {
        return Err(bad_state());
    }
    let (app, creds) = agent_app(&state, &st.c).await?;
    if app.tenant_id != st.t || app.agent_id != Some(st.a) {
        return Err(bad_state());
    }
    let who = state.wechat.oauth_user(&creds, &code).await.map_err(|e| {
        if matches!(e, wechat::api::ApiError::InvalidCode { .. }) {
            ApiError::bad_request(
                "invalid_code",
                "WeCom did not accept the sign-in code (used, or older than 5 minutes): start again",
            )
            .with_details(json!({"field": "code"}))
        } else {
            ApiError::unavailable("wechat_unavailable", e.to_string())
        }
    })?;
    let OAuthUser::Member { userid, .. } = who else {
        return Err(refused(
            "not_a_member",
            "the sidebar is for the corp's members",
        ));
    };
    let issued = state
        .access
        .rep_sign_in(&st.t, &st.c, &userid)
        .await?
        .map_err(|r| match r {
            RepRefusal::NotAMember => refused(
                "not_a_rep",
                format!("`{userid}` is not a user of this tenant; an owner adds reps"),
            ),
            RepRefusal::Disabled => refused("disabled", format!("`{userid}` is disabled")),
            RepRefusal::NoTenant => refused("tenant_unavailable", "the tenant is not active"),
        })?;
    metrics::counter!(crate::metrics::SIDEBAR_SIGN_INS).increment(1);
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, st.r))
        .append_header((
            SET_COOKIE,
            format!(
                "{SESSION_COOKIE}={}; Path=/sidebar/; Max-Age={}; HttpOnly; SameSite=Lax",
                issued.token,
                SIDEBAR_TTL.as_secs()
            ),
        ))
        .append_header((
            SET_COOKIE,
            format!("{STATE_COOKIE}=; Path=/sidebar/; Max-Age=0; HttpOnly; SameSite=Lax"),
        ))
        .finish())
}

async fn me(rep: Rep) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({
        "tenant_id": rep.p.tenant_id,
        "user_id": rep.p.user_id,
        "role": rep.p.role,
        "corp_id": rep.member.corp_id,
        "userid": rep.member.userid,
        "sees_tenant": rep.sees_tenant(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JssdkBody {
    url: Option<String>,
}

/// The page URL signed for: on this gateway's address, under `/sidebar/`.
fn check_page_url(url: &str, base: &str) -> Result<(), ApiError> {
    let ok = url.starts_with(&format!("{base}/sidebar/")) && !url.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            format!("`url`: a sidebar page of this gateway ({base}/sidebar/…)"),
        )
        .with_details(json!({"field": "url"})))
    }
}

async fn jssdk(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    body: web::Json<JssdkBody>,
) -> Result<HttpResponse, ApiError> {
    let url = platform::http::params::field(body.into_inner().url, "url")?;
    check_page_url(&url, &base_url(&state, &req))?;
    let (app, creds) = agent_app(&state, &rep.member.corp_id).await?;
    let timestamp = now_unix();
    let unavailable =
        |e: wechat::api::ApiError| ApiError::unavailable("wechat_unavailable", e.to_string());
    let corp_ticket = state
        .wechat
        .jsapi_ticket(&creds, TicketKind::Corp)
        .await
        .map_err(unavailable)?;
    let agent_ticket = state
        .wechat
        .jsapi_ticket(&creds, TicketKind::Agent)
        .await
        .map_err(unavailable)?;
    let sign = |ticket: &str| {
        let nonce = hex::encode(rand::random::<[u8; 8]>());
        let sig = wechat::signature::jsapi_signature(ticket, &nonce, &timestamp.to_string(), &url);
        (nonce, sig)
    };
    let (corp_nonce, corp_sig) = sign(corp_ticket.expose());
    let (agent_nonce, agent_sig) = sign(agent_ticket.expose());
    Ok(HttpResponse::Ok().json(json!({
        "corp": {"appId": rep.member.corp_id, "timestamp": timestamp, "nonceStr": corp_nonce,
                 "signature": corp_sig},
        "agent": {"corpid": rep.member.corp_id, "agentid": app.agent_id, "timestamp": timestamp,
                  "nonceStr": agent_nonce, "signature": agent_sig},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sidebar_paths_are_redirected_to() {
        assert_eq!(safe_redirect(None).unwrap(), "/sidebar/");
        assert_eq!(
            safe_redirect(Some("/sidebar/?external_userid=wm1")).unwrap(),
            "/sidebar/?external_userid=wm1"
        );
        for bad in [
            "https://evil.example/sidebar/",
            "//evil.example/sidebar/",
            "/sidebar//evil.example",
            "/admin/v1/users",
            "/sidebar/\\evil",
            "/sidebar/ x",
        ] {
            assert!(safe_redirect(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_of_other_sites_are_not_signed() {
        let base = "https://crm.example.com";
        assert!(check_page_url("https://crm.example.com/sidebar/?a=1#x", base).is_ok());
        assert!(check_page_url("https://crm.example.com.evil/sidebar/", base).is_err());
        assert!(check_page_url("https://crm.example.com/admin/", base).is_err());
    }
}
