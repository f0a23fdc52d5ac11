//! `GET /v1/analytics/stages?from=&to=`: the stage funnel of a period (RFC 3339 instants; the
//! last 30 days by default, at most 366): leads entering each stage, the moves between stages,
//! and the conversion from each stage to each stage reached after it.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use platform::http::{ApiError, Principal};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use crate::store::queries;

/// Longest period, in days.
const MAX_DAYS: i64 = 366;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/analytics/stages", web::get().to(get_stages));
}

#[derive(Debug, Deserialize)]
struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
}

fn instant(v: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_period",
                    format!("`{name}` must be an RFC 3339 instant, e.g. 2026-01-01T00:00:00Z"),
                )
                .with_details(json!({"field": name}))
            })
    })
    .transpose()
}

async fn get_stages(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let to = instant(q.to.as_deref(), "to")?.unwrap_or_else(|| state.scorer.clock().now());
    let from = instant(q.from.as_deref(), "from")?.unwrap_or(to - Duration::days(30));
    if from >= to || to - from > Duration::days(MAX_DAYS) {
        return Err(ApiError::bad_request(
            "invalid_period",
            format!("`from` must be before `to`, at most {MAX_DAYS} days before"),
        )
        .with_details(json!({"field": "from"})));
    }
    let f = queries::funnel(state.scorer.db(), &p.tenant, from, to).await?;
    Ok(HttpResponse::Ok().json(f))
}
