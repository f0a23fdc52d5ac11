//! The operators' front door, `/admin/v1`: sign-in and credentials, the tenant's people and the
//! audit log, and every operator feature of the services, called for the authenticated principal.
//!
//! Every handler but the public ones (the sign-in, the OpenAPI description at
//! `/admin/v1/openapi.json` and its viewer at `/admin/v1/docs`) takes an [`AdminPrincipal`],
//! checked against the route table
//! ([`routes::ROUTES`]): a bearer
//! credential (a login session or a personal API token) gives the tenant, the user and the role —
//! never the request; 401 without a valid one, 403 naming the role a route needs, 403
//! `undeclared_route` for a route missing from the table. A service's answer (a resource of
//! another tenant is a 404 there) is passed on as it is. Every write is recorded in the audit log
//! with the user, the route, the target, the request (secrets removed) and the resource before
//! and after where a service can show it.

pub mod openapi;
pub mod page;
pub mod routes;

mod apps;
mod audience;
mod auth;
pub mod channel_codes;
mod customers;
pub mod export_jobs;
mod people;
mod proxy;
mod triggers;

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use platform::http::ApiError;
use serde_json::Value;

use crate::access::{Access, AdminPrincipal};
use crate::api::GatewayState;
use routes::{Target, ROUTES};

/// Body keys a caller may not set: the tenant and the actor come from the credential.
const PRINCIPAL_KEYS: [&str; 5] = ["tenant_id", "operator", "actor", "created_by", "updated_by"];
/// Body keys never written to the audit log.
const SECRET_KEYS: [&str; 6] = [
    "password",
    "secret",
    "token",
    "encoding_aes_key",
    "key",
    "access_token",
];

/// Registers every admin route: the gateway's own handlers and the proxied ones.
pub(crate) fn register(cfg: &mut web::ServiceConfig) {
    // Static paths before parametrised ones of the same shape (`customers/search` before
    // `customers/{id}`).
    let mut order: Vec<&routes::AdminRoute> = ROUTES.iter().collect();
    order.sort_by_key(|r| r.path.matches('{').count());
    for r in order {
        let method = actix_web::http::Method::from_bytes(r.method.as_bytes())
            .unwrap_or(actix_web::http::Method::GET);
        match r.target {
            Target::Proxy(..) => {
                cfg.route(r.path, web::method(method).to(proxy::forward));
            }
            Target::Local => {
                let handled = auth::register(cfg, r, web::method(method.clone()))
                    || people::register(cfg, r, web::method(method.clone()))
                    || apps::register(cfg, r, web::method(method.clone()))
                    || openapi::register(cfg, r, web::method(method.clone()))
                    || audience::register(cfg, r, web::method(method.clone()))
                    || export_jobs::register(cfg, r, web::method(method.clone()))
                    || channel_codes::register(cfg, r, web::method(method.clone()))
                    || customers::register(cfg, r, web::method(method));
                debug_assert!(handled, "no handler for {} {}", r.method, r.path);
            }
        }
    }
}

/// The principal of an admin request, authenticated and authorised by the route table: every
/// admin handler but the sign-in takes it, so none runs for a caller who may not call it.
async fn decide(req: &HttpRequest) -> Result<AdminPrincipal, ApiError> {
    let pattern = req.match_pattern().unwrap_or_default();
    let route = routes::find(req.method().as_str(), &pattern).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "undeclared_route",
            format!("{} {pattern} has no declared permission", req.method()),
        )
    })?;
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authorization: expected `Bearer <token>` (POST /admin/v1/login, or an API token)",
            )
        })?;
    let state = req
        .app_data::<web::Data<GatewayState>>()
        .ok_or_else(|| ApiError::internal("the admin API has no state"))?;
    let p = state.access.authenticate(presented).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Authorization: the token is unknown, expired or revoked",
        )
    })?;
    let Some(needed) = route.role else {
        return Ok(p);
    };
    if !p.role.covers(needed) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} {} needs the `{needed}` role or higher; this credential has `{}`",
                route.method, route.path, p.role
            ),
        )
        .with_details(serde_json::json!({"needed": needed, "role": p.role})));
    }
    Ok(p)
}

impl FromRequest for AdminPrincipal {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { decide(&req).await })
    }
}

/// A JSON body without the keys a caller may not set.
fn without_principal_keys(mut body: Value) -> Value {
    if let Some(o) = body.as_object_mut() {
        for k in PRINCIPAL_KEYS {
            o.remove(k);
        }
    }
    body
}

/// A copy of `v` fit for the audit log: secrets and passwords replaced, long strings cut.
pub(crate) fn redacted(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let secret = SECRET_KEYS.iter().any(|s| k.to_lowercase().contains(s));
                    let v = if secret {
                        Value::String("***".into())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().take(50).map(redacted).collect()),
        Value::String(s) if s.chars().count() > 512 => {
            Value::String(s.chars().take(512).collect::<String>() + "…")
        }
        other => other.clone(),
    }
}

/// Records a write in the audit log (a failure to record is logged, not the caller's).
async fn audit(
    access: &Access,
    req: &HttpRequest,
    p: &AdminPrincipal,
    status: StatusCode,
    summary: Value,
) {
    let action = format!(
        "{} {}",
        req.method(),
        req.match_pattern()
            .unwrap_or_else(|| req.path().to_string())
    );
    let request_id = req
        .headers()
        .get(platform::http::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Err(e) = access
        .record(p, &action, req.path(), status.as_u16(), summary, request_id)
        .await
    {
        tracing::error!(error = %e, %action, "Audit record not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_audit_log() {
        let v = serde_json::json!({"name": "acme", "secret": "s3cret", "password": "pw",
            "nested": {"encoding_aes_key": "k"}, "tenant_id": "x"});
        let r = redacted(&without_principal_keys(v));
        assert_eq!(r["secret"], "***");
        assert_eq!(r["password"], "***");
        assert_eq!(r["nested"]["encoding_aes_key"], "***");
        assert_eq!(r["name"], "acme");
        assert!(r.get("tenant_id").is_none());
    }
}
