//! `POST /track`: batches of behaviour events from mini-program / H5 pages and tenant servers.
//! Authenticated by an SDK session token (`Authorization: Bearer …`) or a tenant write key
//! (`X-Write-Key`); each event is validated on its own; accepted events are published with a
//! broker confirm before the answer; requests are rate-limited per token or key.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use platform::http::{ApiError, RequestId};
use proto::sdk::Subject;
use proto::Envelope;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::sdk::session_claims;
use super::GatewayState;
use crate::domain::track::{self, EventError};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/track", web::post().to(track));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    events: Vec<Value>,
    /// Who the events are about (write-key requests only; session tokens name the user).
    #[serde(default)]
    subject: Option<Subject>,
}

/// Who is calling: the tenant, the subject of its events and a rate-limit identity.
struct Caller {
    tenant_id: String,
    subject: Subject,
    principal: String,
}

async fn caller(
    state: &GatewayState,
    req: &HttpRequest,
    batch_subject: Option<Subject>,
) -> Result<Caller, ApiError> {
    if let Some(claims) = session_claims(state, req)? {
        if batch_subject.is_some() {
            return Err(ApiError::bad_request(
                "invalid_subject",
                "subject: not allowed with a session token (the token names the user)",
            ));
        }
        return Ok(Caller {
            principal: format!("mp:{}:{}", claims.app, claims.oid),
            subject: Subject {
                mp_app_id: Some(claims.app),
                openid: Some(claims.oid),
                unionid: claims.uid,
                anonymous_id: None,
            },
            tenant_id: claims.tid,
        });
    }
    let key = req
        .headers()
        .get("x-write-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send an SDK session token (Authorization: Bearer …) or a write key (X-Write-Key)",
            )
        })?;
    let tenant = state
        .registry
        .tenant_of_write_key(key)
        .await
        .map_err(|e| ApiError::unavailable("registry_unavailable", e.to_string()))?
        .ok_or_else(|| {
            ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "unknown_write_key",
                "X-Write-Key: unknown key",
            )
        })?;
    let subject = batch_subject.unwrap_or_default();
    // A write key is public by design (it sits in H5 pages): its events may name an anonymous
    // visitor, never a WeChat identity — those come only from signed callbacks and SDK sessions,
    // or anyone could attach their cookie, phone and city to a victim's profile.
    for (field, named) in [
        ("subject.openid", subject.openid.is_some()),
        ("subject.unionid", subject.unionid.is_some()),
        ("subject.mp_app_id", subject.mp_app_id.is_some()),
    ] {
        if named {
            metrics::counter!(crate::metrics::TRACK_REFUSED, "reason" => "wechat_subject")
                .increment(1);
            return Err(ApiError::bad_request(
                "invalid_subject",
                format!(
                    "{field}: a write key may name only anonymous visitors (`anonymous_id`); \
                     WeChat identities come from an SDK session token"
                ),
            )
            .with_details(serde_json::json!({"field": field})));
        }
    }
    let digest = Sha256::digest(key.as_bytes());
    Ok(Caller {
        tenant_id: tenant,
        subject,
        principal: format!("wk:{:x}", digest)[..19].to_string(),
    })
}

async fn rate_limit(state: &GatewayState, caller: &Caller) -> Result<(), ApiError> {
    let minute = Utc::now().timestamp() / 60;
    let key = format!(
        "{{{}}}:rl:track:{}:{minute}",
        caller.tenant_id, caller.principal
    );
    match state
        .cache
        .incr(&key, 1, std::time::Duration::from_secs(61))
        .await
    {
        Ok(n) if n > i64::from(state.cfg.track.rate_per_minute) => Err(ApiError::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "at most {} requests per minute",
                state.cfg.track.rate_per_minute
            ),
        )),
        Ok(_) => Ok(()),
        // A cache outage must not stop tracking; the limit is protection, not accounting.
        Err(e) => {
            tracing::warn!(error = %e, "Rate limit unavailable");
            Ok(())
        }
    }
}

async fn track(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rid: web::ReqData<RequestId>,
    body: web::Json<Batch>,
) -> Result<HttpResponse, ApiError> {
    let batch = body.into_inner();
    let limits = state.cfg.track;
    if batch.events.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "events: must hold at least one event",
        ));
    }
    if batch.events.len() > limits.max_events {
        return Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "events: {} events, at most {}",
                batch.events.len(),
                limits.max_events
            ),
        ));
    }
    let caller = caller(&state, &req, batch.subject).await?;
    rate_limit(&state, &caller).await?;
    let now = Utc::now();
    let mut envelopes = Vec::with_capacity(batch.events.len());
    let mut rejected: Vec<EventError> = Vec::new();
    for (i, raw) in batch.events.iter().enumerate() {
        match track::validate(i, raw, &caller.subject, &limits, now) {
            Ok(accepted) => {
                let kind = accepted.event.kind;
                let mut b =
                    Envelope::builder(kind.routing_key(), &caller.tenant_id, json!(accepted.event))
                        .occurred_at(accepted.occurred_at)
                        .received_at(now)
                        .trace_id(rid.0.clone());
                if let Some(id) = &accepted.event.event_id {
                    b = b.dedupe_key(format!("{}|{id}", caller.principal));
                }
                envelopes.push(b.build());
            }
            Err(e) => {
                metrics::counter!(crate::metrics::TRACK_REJECTED, "reason" => e.code).increment(1);
                rejected.push(e);
            }
        }
    }
    if envelopes.is_empty() {
        return Err(
            ApiError::bad_request("no_valid_events", "events: every event was refused")
                .with_details(json!({ "rejected": rejected })),
        );
    }
    state
        .publisher
        .publish(&envelopes, "track")
        .await
        .map_err(|e| {
            ApiError::unavailable("not_durable", format!("events were not stored, retry: {e}"))
        })?;
    metrics::counter!(crate::metrics::TRACK_ACCEPTED).increment(envelopes.len() as u64);
    Ok(HttpResponse::Ok().json(json!({
        "accepted": envelopes.len(),
        "rejected": rejected,
    })))
}
