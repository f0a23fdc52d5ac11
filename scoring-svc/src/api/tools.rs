//! Dry runs and recompute jobs over HTTP, in the tenant of the caller's credential (a model,
//! profile or job of another tenant answers 404 like an unknown id).
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/dry-run` `{model: {key, name, decay?}, rules: [...], profile_id?, sample?}` | for `profile_id` (404 when the tenant has no lead for it): its score under the rule set, the entries it would get and its current score; for `sample` (1..=`dry_run_max_sample`, default 1000): the distribution over the most recently active leads. Nothing is written. |
//! | `POST /v1/models/{id}/recompute` `{fire_triggers?}` (the body may be absent) | 202 the job (`created_by` the actor): every lead's entries of the model rebuilt from its events under the current rules |
//! | `GET /v1/jobs/{id}` | the job with its progress |

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{self, Body, RequestBody};
use super::{no_lead, ApiState};
use crate::domain::defs::{ModelSpec, RuleSpec};
use crate::store::defs::DefsError;
use crate::store::jobs::{self, DryRun};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/dry-run", web::post().to(post_dry_run))
        .route("/v1/models/{id}/recompute", web::post().to(post_recompute))
        .route("/v1/jobs/{id}", web::get().to(get_job));
}

/// The body of a dry run; a shape error is a definition's (`model.key`, `rules[0].points`).
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

body::definition_bodies!(DryBody);

async fn post_dry_run(
    state: web::Data<ApiState>,
    p: Principal,
    Body(d): Body<DryBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant;
    let s = &state.scorer;
    let run = DryRun {
        tenant: tenant.clone(),
        model: d.model,
        rules: d.rules,
    };
    let compiled = run
        .compile(s.clock().now())
        .map_err(|e| ApiError::from(DefsError::Invalid(e)))?;
    if let Some(p) = d.profile_id.filter(|p| !p.trim().is_empty()) {
        if crate::store::queries::lead(s.db(), &tenant, &p)
            .await?
            .is_none()
        {
            return Err(no_lead(&p));
        }
        let r = run.profile(s, &compiled, &p, true).await?;
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
    let ids = jobs::sample(s.db(), &tenant, n).await?;
    let mut profiles = Vec::with_capacity(ids.len());
    for p in &ids {
        profiles.push(run.profile(s, &compiled, p, false).await?);
    }
    let dist = jobs::distribution(&profiles);
    profiles.sort_by(|a, b| b.score.total_cmp(&a.score));
    profiles.truncate(20);
    Ok(HttpResponse::Ok().json(json!({"distribution": dist, "top": profiles})))
}

/// The options of a recompute (other fields are not read).
#[derive(Debug, Default, Deserialize)]
struct RecomputeBody {
    #[serde(default)]
    fire_triggers: Option<bool>,
}

impl RequestBody for RecomputeBody {
    const IGNORED: &'static [&'static str] = body::FROM_CREDENTIAL;

    fn refused(path: &str, message: &str) -> ApiError {
        ApiError::bad_request("invalid_field", format!("`{path}`: {message}"))
            .with_details(json!({"field": path}))
    }
}

/// The options of a recompute; the body may be absent (`{}`).
fn recompute_options(body: &[u8]) -> Result<RecomputeBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RecomputeBody::default());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    body::read(v)
}

async fn post_recompute(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let fire = recompute_options(&body)?.fire_triggers.unwrap_or(false);
    let job = jobs::create_recompute(&state.scorer, &p.tenant, &id, &p.actor, fire).await?;
    Ok(HttpResponse::Accepted().json(job))
}

async fn get_job(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match jobs::job(state.scorer.db(), &p.tenant, &id).await? {
        Some(j) => Ok(HttpResponse::Ok().json(j)),
        None => Err(ApiError::not_found(format!("no job with id `{id}`"))),
    }
}
