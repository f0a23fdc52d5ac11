//! The 360° read of one customer, composed from the services in parallel: identity's profile
//! (fields with their sources, identifiers masked by the service, relations), tagging's tags
//! with their origin, scoring's scores (each with the top reasons from the ledger) and stage
//! (with the moves allowed and the SLA due), and the last 20 timeline entries.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse, Route};
use platform::http::ApiError;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::routes::AdminRoute;
use crate::access::AdminPrincipal;
use crate::api::GatewayState;
use crate::services::Service;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &AdminRoute, route: Route) -> bool {
    match (r.method, r.path) {
        ("GET", "/admin/v1/customers/{id}") => {
            cfg.route(r.path, route.to(customer));
            true
        }
        _ => false,
    }
}

/// The 360° view of one customer. A part a service could not give is `null` (nothing there)
/// or `{"error": …}` saying why; the rest is still shown.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Customer360 {
    id: String,
    /// identity's profile: fields with their sources, identifiers (masked for analysts),
    /// relations.
    #[schema(value_type = Object)]
    profile: Value,
    /// tagging's tags of the customer with their origin.
    tags: Value,
    /// scoring's scores and stage: each model's score with its top reasons from the ledger,
    /// the stage with the moves allowed from it and the open SLA's due time.
    scores: Value,
    /// The last 20 timeline entries.
    timeline: Value,
}

async fn customer(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: String = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        .then(|| id.into_inner())
        .ok_or_else(|| ApiError::not_found("no such customer"))?;
    let s = &state.services;
    let profile_path = format!("/v1/profiles/{id}");
    // Every tag: a profile holds far fewer than a page's most.
    let tags_path = format!("/v1/profiles/{id}/tags?limit=500");
    let scores_path = format!("/v1/profiles/{id}/scores");
    let timeline_path = format!("/v1/profiles/{id}/timeline?limit=20");
    let ledger_path = format!("/v1/profiles/{id}/ledger?limit=200");
    let (profile, tags, scores, timeline, ledger) = futures_util::join!(
        s.json(Service::Identity, Method::GET, &profile_path, None, &p),
        s.json(Service::Tagging, Method::GET, &tags_path, None, &p),
        s.json(Service::Scoring, Method::GET, &scores_path, None, &p),
        s.json(Service::Identity, Method::GET, &timeline_path, None, &p),
        s.json(Service::Scoring, Method::GET, &ledger_path, None, &p),
    );
    let (status, profile) = profile?;
    if status == StatusCode::NOT_FOUND {
        return Err(ApiError::not_found(format!("no customer `{id}`")));
    }
    if !status.is_success() {
        return Ok(HttpResponse::build(status).json(profile));
    }
    // A part a service could not give is null, with why; the rest is still worth showing.
    let part = |r: Result<(StatusCode, Value), crate::services::CallError>| match r {
        Ok((s, v)) if s.is_success() => v,
        Ok((s, v)) if s == StatusCode::NOT_FOUND => {
            let _ = v;
            Value::Null
        }
        Ok((s, v)) => json!({"error": {"status": s.as_u16(), "body": v}}),
        Err(e) => json!({"error": {"message": e.to_string()}}),
    };
    let mut scores = part(scores);
    let ledger = part(ledger);
    if let Some(models) = scores.get_mut("scores").and_then(Value::as_array_mut) {
        for m in models {
            let reasons = crate::api::sidebar::top_reasons(&m["model_id"], &ledger);
            m["reasons"] = json!(reasons);
        }
    }
    Ok(HttpResponse::Ok().json(Customer360 {
        id,
        profile,
        tags: part(tags),
        scores,
        timeline: part(timeline),
    }))
}
