//! Dry runs and recompute jobs over HTTP.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/dry-run` `{tenant_id, model: {key, name, decay?}, rules: [...], profile_id?, sample?}` | for `profile_id`: its score under the rule set, the entries it would get and its current score; for `sample` (1..=`dry_run_max_sample`, default 1000): the distribution over the most recently active leads. Nothing is written. |
//! | `POST /v1/models/{id}/recompute` `{operator, fire_triggers?}` | 202 the job: every lead's entries of the model rebuilt from its events under the current rules |
//! | `GET /v1/jobs/{id}` | the job with its progress |

use actix_web::{web, HttpResponse};
use platform::http::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{db_error, defs_error, object, take, ApiState};
use crate::domain::defs::{ModelSpec, RuleSpec};
use crate::store::defs::{spec_of, DefsError};
use crate::store::jobs::{self, DryRun};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/dry-run", web::post().to(post_dry_run))
        .route("/v1/models/{id}/recompute", web::post().to(post_recompute))
        .route("/v1/jobs/{id}", web::get().to(get_job));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DryBody {
    model: ModelSpec,
    rules: Vec<RuleSpec>,
    #[serde(default)]
    profile_id: Option<String>,
    #[serde(default)]
    sample: Option<u32>,
}

async fn post_dry_run(
    state: web::Data<ApiState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut b = object(body.into_inner())?;
    let tenant = take(&mut b, "tenant_id")?;
    let d: DryBody = spec_of(&b).map_err(defs_error)?;
    let s = &state.scorer;
    let run = DryRun {
        tenant: tenant.clone(),
        model: d.model,
        rules: d.rules,
    };
    let compiled = run
        .compile(s.clock().now())
        .map_err(|e| defs_error(DefsError::Invalid(e)))?;
    if let Some(p) = d.profile_id.filter(|p| !p.trim().is_empty()) {
        let r = run
            .profile(s, &compiled, &p, true)
            .await
            .map_err(db_error)?;
        return Ok(HttpResponse::Ok().json(r));
    }
    let n = d.sample.unwrap_or(state.dry_run_max_sample);
    if n == 0 || n > state.dry_run_max_sample {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("`sample` must be 1..={}", state.dry_run_max_sample),
        )
        .with_details(json!({"field": "sample"})));
    }
    let ids = jobs::sample(s.db(), &tenant, n).await.map_err(db_error)?;
    let mut profiles = Vec::with_capacity(ids.len());
    for p in &ids {
        profiles.push(
            run.profile(s, &compiled, p, false)
                .await
                .map_err(db_error)?,
        );
    }
    let dist = jobs::distribution(&profiles);
    profiles.sort_by(|a, b| b.score.total_cmp(&a.score));
    profiles.truncate(20);
    Ok(HttpResponse::Ok().json(json!({"distribution": dist, "top": profiles})))
}

async fn post_recompute(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut b = object(body.into_inner())?;
    let operator = take(&mut b, "operator")?;
    let fire = b
        .get("fire_triggers")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let job = jobs::create_recompute(&state.scorer, &id, &operator, fire)
        .await
        .map_err(defs_error)?;
    Ok(HttpResponse::Accepted().json(job))
}

async fn get_job(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match jobs::job(state.scorer.db(), &id).await.map_err(db_error)? {
        Some(j) => Ok(HttpResponse::Ok().json(j)),
        None => Err(ApiError::not_found(format!("no job with id `{id}`"))),
    }
}
