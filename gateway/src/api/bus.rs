//! Internal endpoints for operators' tooling on the bus (`scrm bus parked|replay` in embedded
//! mode, where the in-process bus lives in the `scrm up` process): what waits and what is parked
//! per consumer group, and sending parked messages back. Same credential as every internal
//! endpoint (`Authorization: Bearer <gateway.internal_key>`); never on the public listener's
//! load balancer.
//!
//! - `GET /internal/v1/bus/parked?group=&limit=` → `{groups: [{group, queued, parked_count,
//!   parked: [{id, type, tenant_id, attempts, last_error}]}]}` (every system group without
//!   `group`; `limit` parked messages per group, default 50, at most 1 000).
//! - `POST /internal/v1/bus/replay` `{group, id}` or `{group, all: true}` → `{replayed}`; 404
//!   `not_parked` for an id that is not parked.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use platform::bus::BusError;
use platform::http::ApiError;
use serde::Deserialize;
use serde_json::json;

use super::internal::authenticate;
use super::GatewayState;

/// Paths of the bus tooling endpoints.
pub const PARKED_PATH: &str = "/internal/v1/bus/parked";
pub const REPLAY_PATH: &str = "/internal/v1/bus/replay";

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1_000;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(PARKED_PATH, web::get().to(parked))
        .route(REPLAY_PATH, web::post().to(replay));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParkedQuery {
    group: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    group: String,
    #[serde(default)]
    id: Option<uuid::Uuid>,
    #[serde(default)]
    all: bool,
}

fn bus_error(group: &str, e: BusError) -> ApiError {
    match e {
        BusError::Protocol(m) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_group",
            format!("group: `{group}` has no queue on this bus ({m})"),
        ),
        other => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bus_unavailable",
            other.to_string(),
        ),
    }
}

/// The group names a request names: one, or every system group.
fn groups(group: Option<String>) -> Result<Vec<String>, ApiError> {
    match group {
        Some(g) if g.is_empty() || g.len() > 64 => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "group: must be a consumer group's name",
        )),
        Some(g) => Ok(vec![g]),
        None => Ok(proto::routing::GROUPS
            .iter()
            .map(|g| g.name.to_string())
            .collect()),
    }
}

async fn parked(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    q: web::Query<ParkedQuery>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &req)?;
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let mut out = Vec::new();
    for g in groups(q.group)? {
        let bus = &state.bus;
        let queued = bus.queue_depth(&g).await.map_err(|e| bus_error(&g, e))?;
        let count = bus.parked_count(&g).await.map_err(|e| bus_error(&g, e))?;
        let items = bus.parked(&g, limit).await.map_err(|e| bus_error(&g, e))?;
        out.push(json!({"group": g, "queued": queued, "parked_count": count, "parked": items}));
    }
    Ok(HttpResponse::Ok().json(json!({ "groups": out })))
}

async fn replay(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    body: web::Json<ReplayBody>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &req)?;
    let b = body.into_inner();
    let g = groups(Some(b.group))?.remove(0);
    let bus = &state.bus;
    let replayed = match (b.id, b.all) {
        (Some(id), false) => {
            if !bus
                .replay_parked_one(&g, id)
                .await
                .map_err(|e| bus_error(&g, e))?
            {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_parked",
                    format!("id: no parked message {id} in group `{g}`"),
                ));
            }
            1
        }
        (None, true) => bus.replay_parked(&g).await.map_err(|e| bus_error(&g, e))?,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "id, all: give either `id` (one message) or `all: true`",
            ))
        }
    };
    tracing::info!(group = %g, replayed, "Parked messages sent back");
    Ok(HttpResponse::Ok().json(json!({ "replayed": replayed })))
}
