//! `POST /v1/analytics`: the caller's tenant — or the profiles matching a condition, or a saved
//! segment's — broken down by the dimensions asked (see [`crate::domain::analytics`] and
//! [`crate::domain::analytics_time`]), as JSON shaped for charts: `{total, dimensions: [{kind,
//! key?, buckets: [{key, label?, group_id?, count, share}], with_value?, missing?, events?}],
//! took_ms, as_of?}`. A saved segment is answered as of its last scheduled refresh (`as_of`)
//! when that refresh kept every dimension asked ([`crate::store::saved::rollup`]).

use actix_web::{web, HttpResponse};
use platform::http::body::{Body, RequestBody};
use platform::http::{ApiError, Principal};
use serde::Deserialize;
use serde_json::{json, Value};

use super::saved_segments::live_condition;
use super::ApiState;
use crate::domain::analytics::{Dimension, MAX_DIMENSIONS};
use crate::store::{analytics, catalog, rules as tag_rules, saved, segments};

/// The request: the population — a condition, a saved segment, or (neither) the whole
/// tenant — and the dimensions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnalyticsBody {
    #[serde(default)]
    condition: Option<Value>,
    #[serde(default)]
    segment_id: Option<String>,
    dimensions: Vec<Dimension>,
}

impl RequestBody for AnalyticsBody {
    const IGNORED: &'static [&'static str] = &["tenant_id"];
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/analytics", web::post().to(post_analytics));
}

async fn post_analytics(
    state: web::Data<ApiState>,
    p: Principal,
    Body(b): Body<AnalyticsBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant;
    if b.dimensions.is_empty() || b.dimensions.len() > MAX_DIMENSIONS {
        return Err(ApiError::bad_request(
            "invalid_dimensions",
            format!("`dimensions`: 1..={MAX_DIMENSIONS} dimensions"),
        )
        .with_details(json!({"field": "dimensions"})));
    }
    let at = state.tagger.at(&tenant);
    for (i, d) in b.dimensions.iter().enumerate() {
        if let Err(e) = d.check_on(i, at.today) {
            return Err(ApiError::bad_request(
                "invalid_dimension",
                format!("`{}`: {}", e.field, e.message),
            )
            .with_details(json!({"field": e.field})));
        }
        if let Dimension::Tags { group_id: Some(g) } = d {
            catalog::group(&state.db, &tenant, g).await?;
        }
    }
    let cond = match (&b.condition, &b.segment_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_population",
                "`segment_id`: give a condition or a saved segment, not both",
            )
            .with_details(json!({"field": "segment_id"})))
        }
        (Some(c), None) => {
            let limits = state.tagger.engine.rules.limits();
            Some(
                tag_rules::check(&state.db, &tenant, None, c, limits)
                    .await?
                    .1,
            )
        }
        (None, Some(id)) => {
            let s = saved::get(&state.db, &tenant, id).await?;
            let cond = live_condition(&state, &s).await?;
            // As of its last scheduled refresh, when that kept what is asked.
            if let Some(out) = saved::rollup::kept(&state.db, &s, &b.dimensions).await? {
                metrics::histogram!(crate::metrics::ANALYTICS_SECONDS)
                    .record(out.took_ms as f64 / 1000.0);
                return Ok(HttpResponse::Ok().json(out));
            }
            Some(cond)
        }
        (None, None) => None,
    };
    let r = segments::reader(&state.db).await?;
    let out = analytics::breakdown(&r, &tenant, cond.as_ref(), &b.dimensions, &at).await?;
    r.commit().await?;
    metrics::histogram!(crate::metrics::ANALYTICS_SECONDS).record(out.took_ms as f64 / 1000.0);
    Ok(HttpResponse::Ok().json(out))
}
