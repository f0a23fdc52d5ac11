//! Admin routes served by a service: the path's parameters go into the service's path, the query
//! and the JSON body go along without any key naming the tenant or the actor, the service gets a
//! credential for the principal, and its answer comes back as it is. Writes are audited with
//! the resource before (when the service can show it) and after.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use platform::http::ApiError;
use platform::ServiceError;
use serde_json::{json, Value};

use super::routes::{find, Target};
use super::{audit, redacted, without_principal_keys, PRINCIPAL_KEYS};
use crate::access::AdminPrincipal;
use crate::api::GatewayState;
use crate::services::CallError;

/// The service path of `template` with the request's path parameters, and the request's query
/// without the keys naming the tenant or the actor.
fn service_path(req: &HttpRequest, template: &str) -> String {
    let path: Vec<String> = template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let v = req.match_info().get(name).unwrap_or_default();
                    url_escape(v)
                }
                None => seg.to_string(),
            },
        )
        .collect();
    let query: Vec<&str> = req
        .query_string()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| {
            let k = kv.split('=').next().unwrap_or_default();
            !PRINCIPAL_KEYS.contains(&k)
        })
        .collect();
    if query.is_empty() {
        path.join("/")
    } else {
        format!("{}?{}", path.join("/"), query.join("&"))
    }
}

/// Percent-escapes a path segment.
pub(super) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl From<CallError> for ServiceError {
    fn from(e: CallError) -> Self {
        tracing::error!(error = %e, "Service call failed");
        ServiceError::unavailable("service_unavailable", e.to_string())
    }
}

/// Serves a proxied admin route.
pub(super) async fn forward(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let pattern = req.match_pattern().unwrap_or_default();
    let Some(Target::Proxy(service, template)) =
        find(req.method().as_str(), &pattern).map(|r| r.target)
    else {
        return Err(ApiError::not_found("no such route"));
    };
    let json_body = if body.is_empty() {
        None
    } else {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}"))
        })?;
        Some(without_principal_keys(v))
    };
    if super::triggers::carries_trigger(req.method(), &pattern) {
        if let Some(b) = &json_body {
            super::triggers::check_tags(&state.services, &p, b).await?;
        }
    }
    let path = service_path(&req, template);
    let write = super::routes::writes(req.method().as_str(), &pattern);
    // The resource before a change of it, where the service shows it at the same path.
    let before = if write && matches!(*req.method(), Method::PUT | Method::PATCH | Method::DELETE) {
        state
            .services
            .json(service, Method::GET, &path, None, &p)
            .await
            .ok()
            .filter(|(s, _)| s.is_success())
            .map(|(_, v)| v)
    } else {
        None
    };
    let answer = state
        .services
        .call(service, req.method().clone(), &path, json_body.as_ref(), &p)
        .await?;
    if write {
        let after: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let summary = json!({
            "request": json_body.as_ref().map(redacted),
            "before": before.as_ref().map(redacted),
            "after": redacted(&after),
        });
        audit(&state.access, &req, &p, answer.status, summary).await;
    }
    let mut out = HttpResponse::build(answer.status);
    if let Some(ct) = &answer.content_type {
        out.insert_header((actix_web::http::header::CONTENT_TYPE, ct.as_str()));
    }
    if answer.status == StatusCode::NO_CONTENT {
        return Ok(out.finish());
    }
    Ok(out.body(answer.body))
}
