//! The WeCom sidebar: what a sales rep sees and does next to a chat with a customer.
//!
//! A rep signs in through WeCom's OAuth ([`signin`]) and gets a sidebar session (a cookie for the
//! page, or `Authorization: Bearer` for scripts); every other route takes it. A customer is
//! named by the `external_userid` WeCom's `getCurExternalContact` gives, in the rep's corp. A
//! rep reads and changes only customers they follow in that corp (403 `not_your_customer`,
//! counted); a follow that moves to another rep (a transfer) takes the customer with it, since
//! the follows are read on every request. Admins and owners signed in to the sidebar see the
//! tenant. Reads and writes go to the services with the rep as the actor
//! (`rep:<corp>:<userid>`), and every write lands in the audit log.
//!
//! The page reps open in WeCom ([`page`], `GET /sidebar/`) is served here too, and drives all
//! of it.
//!
//! The bodies of the writes are read as their types, refused naming the field at fault
//! ([`body`]).
//!
//! Every route is in [`ROUTES`] with who may call it; the permission test is generated from it.

mod actions;
mod body;
mod card;
mod page;
mod signin;

pub(crate) use card::top_reasons;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};
use platform::http::ApiError;
use proto::auth::Role;
use serde_json::{json, Value};

use crate::access::{AdminPrincipal, RepRef};
use crate::api::GatewayState;
use crate::services::Service;

/// The cookie a signed-in sidebar page carries.
pub const SESSION_COOKIE: &str = "scrm_sidebar";

/// Who may call a sidebar route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the sign-in's two steps and the page.
    Public,
    /// A signed-in sidebar session.
    Rep,
}

/// One sidebar route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SidebarRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> SidebarRoute {
    SidebarRoute {
        method,
        path,
        access,
    }
}

/// Every sidebar route.
pub const ROUTES: &[SidebarRoute] = &[
    r("GET", "/sidebar/", Access::Public),
    r("GET", "/sidebar/app.js", Access::Public),
    r("GET", "/sidebar/app.css", Access::Public),
    r("GET", "/sidebar/v1/oauth/start", Access::Public),
    r("GET", "/sidebar/v1/oauth/callback", Access::Public),
    r("GET", "/sidebar/v1/me", Access::Rep),
    r("POST", "/sidebar/v1/jssdk", Access::Rep),
    r(
        "GET",
        "/sidebar/v1/customers/{external_userid}",
        Access::Rep,
    ),
    r(
        "POST",
        "/sidebar/v1/customers/{external_userid}/tags",
        Access::Rep,
    ),
    r(
        "POST",
        "/sidebar/v1/customers/{external_userid}/stage",
        Access::Rep,
    ),
    r(
        "POST",
        "/sidebar/v1/customers/{external_userid}/contacted",
        Access::Rep,
    ),
    r(
        "GET",
        "/sidebar/v1/customers/{external_userid}/notes",
        Access::Rep,
    ),
    r(
        "POST",
        "/sidebar/v1/customers/{external_userid}/notes",
        Access::Rep,
    ),
    r("PATCH", "/sidebar/v1/notes/{id}", Access::Rep),
    r("DELETE", "/sidebar/v1/notes/{id}", Access::Rep),
    r("GET", "/sidebar/v1/leads", Access::Rep),
    r("GET", "/sidebar/v1/inbox", Access::Rep),
];

/// The route declared for `method` on `pattern`.
pub fn find(method: &str, pattern: &str) -> Option<&'static SidebarRoute> {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == pattern)
}

/// Registers every sidebar route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for rt in ROUTES {
        let method = Method::from_bytes(rt.method.as_bytes()).unwrap_or(Method::GET);
        let handled = page::register(cfg, rt, web::method(method.clone()))
            || signin::register(cfg, rt, web::method(method.clone()))
            || card::register(cfg, rt, web::method(method.clone()))
            || actions::register(cfg, rt, web::method(method));
        debug_assert!(handled, "no handler for {} {}", rt.method, rt.path);
    }
}

/// A signed-in sidebar session: the principal and the WeCom member it acts as.
#[derive(Debug, Clone)]
pub struct Rep {
    pub p: AdminPrincipal,
    pub member: RepRef,
}

impl Rep {
    /// Does this session see every customer of the tenant (admins and owners)?
    pub fn sees_tenant(&self) -> bool {
        self.p.role.covers(Role::Admin)
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

/// The session token a request presents: `Authorization: Bearer`, else the page's cookie.
fn presented(req: &HttpRequest) -> Option<String> {
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    bearer.or_else(|| cookie(req, SESSION_COOKIE))
}

/// The value of cookie `name` (the session's value is URL-safe base64: no quoting or decoding
/// to do, so the `Cookie` header is split here rather than with actix-web's cookie feature).
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

async fn decide(req: &HttpRequest) -> Result<Rep, ApiError> {
    let pattern = req.match_pattern().unwrap_or_default();
    let route = find(req.method().as_str(), &pattern).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "undeclared_route",
            format!("{} {pattern} has no declared permission", req.method()),
        )
    })?;
    let state = req
        .app_data::<web::Data<GatewayState>>()
        .ok_or_else(|| ApiError::internal("the sidebar has no state"))?;
    let token = presented(req).ok_or_else(|| {
        unauthenticated(
            "sign in through /sidebar/v1/oauth/start (a session cookie or Bearer token)",
        )
    })?;
    let p = state.access.authenticate(&token).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the sidebar session is unknown, expired or revoked: sign in again",
        )
    })?;
    debug_assert_eq!(route.access, Access::Rep);
    let Some(member) = p.rep.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_sidebar_session",
            "the sidebar takes a session from its WeCom sign-in",
        ));
    };
    Ok(Rep { p, member })
}

impl FromRequest for Rep {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { decide(&req).await })
    }
}

/// An `external_userid` as WeCom issues them (letters, digits, `_` and `-`), else 404.
fn check_external_userid(v: &str) -> Result<(), ApiError> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(no_customer(v))
    }
}

fn no_customer(external_userid: &str) -> ApiError {
    ApiError::not_found(format!("no customer `{external_userid}` in this corp"))
        .with_details(json!({"external_userid": external_userid}))
}

/// Is the rep `member` an active follower of the customer whose identity profile is `profile`?
pub fn follows(profile: &Value, member: &RepRef) -> bool {
    profile["relations"]["wecom_follows"]
        .as_array()
        .is_some_and(|fs| {
            fs.iter().any(|f| {
                f["corp_id"] == json!(member.corp_id)
                    && f["user_id"] == json!(member.userid)
                    && f.get("deleted_at").is_none_or(Value::is_null)
            })
        })
}

/// The customer `external_userid` of the rep's corp — their identity profile — when the rep may
/// see them: 404 when unknown, 403 `not_your_customer` when another rep's.
async fn customer(
    state: &GatewayState,
    rep: &Rep,
    external_userid: &str,
) -> Result<Value, ApiError> {
    check_external_userid(external_userid)?;
    let query = serde_urlencoded::to_string([
        ("kind", "wecom_external_userid"),
        ("namespace", rep.member.corp_id.as_str()),
        ("value", external_userid),
    ])
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let path = format!("/v1/profiles/by-identifier?{query}");
    let (status, profile) = state
        .services
        .json(Service::Identity, Method::GET, &path, None, &rep.p)
        .await?;
    if status == StatusCode::NOT_FOUND {
        return Err(no_customer(external_userid));
    }
    if !status.is_success() {
        return Err(ApiError::new(
            status,
            "identity_error",
            format!("identity answered {status}"),
        )
        .with_details(profile));
    }
    if !rep.sees_tenant() && !follows(&profile, &rep.member) {
        metrics::counter!(
            crate::metrics::SIDEBAR_REFUSED,
            "reason" => "not_your_customer"
        )
        .increment(1);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_your_customer",
            format!("`{external_userid}` is not one of your customers in this corp"),
        ));
    }
    Ok(profile)
}

/// The customer's profile id.
fn profile_id(profile: &Value) -> Result<String, ApiError> {
    profile["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ApiError::internal("identity's profile has no id"))
}

/// Records a rep's write in the audit log (a failure to record is logged, not the rep's).
async fn audit(
    state: &GatewayState,
    req: &HttpRequest,
    rep: &Rep,
    status: StatusCode,
    target: &str,
    summary: Value,
) {
    let action = format!(
        "{} {}",
        req.method(),
        req.match_pattern().unwrap_or_default()
    );
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Err(e) = state
        .access
        .record(
            &rep.p,
            &action,
            target,
            status.as_u16(),
            summary,
            request_id,
        )
        .await
    {
        tracing::error!(error = %e, "Audit record failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rep_follows_only_through_an_active_follow_in_their_corp() {
        let me = RepRef {
            corp_id: "ww1".into(),
            userid: "zhang".into(),
        };
        let p = |follows: Value| json!({"relations": {"wecom_follows": follows}});
        assert!(follows(
            &p(json!([{"corp_id": "ww1", "user_id": "zhang", "added_at": "2026-01-01T00:00:00Z"}])),
            &me
        ));
        assert!(!follows(
            &p(
                json!([{"corp_id": "ww1", "user_id": "zhang", "deleted_at": "2026-02-01T00:00:00Z"}])
            ),
            &me
        ));
        assert!(!follows(
            &p(json!([{"corp_id": "ww2", "user_id": "zhang"}])),
            &me
        ));
        assert!(!follows(
            &p(json!([{"corp_id": "ww1", "user_id": "li"}])),
            &me
        ));
        assert!(!follows(&json!({}), &me));
    }

    #[test]
    fn every_route_has_one_declaration() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }
}
