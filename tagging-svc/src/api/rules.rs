//! Tag rules, previews, exports and jobs over HTTP. A condition that does not validate is answered
//! 400 `invalid_condition` with every error and the node it is in (`details.errors[].path`, e.g.
//! `root.children[2].window.days`).
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/tag-rules` `{tenant_id, tag_id, name, condition, mode?, enabled?, operator}` | 201 `{rule, job}` (a backfill when enabled) |
//! | `GET /v1/tag-rules?tenant_id=` / `GET /v1/tag-rules/{id}` | rules |
//! | `PUT /v1/tag-rules/{id}` `{name, condition, mode, enabled, operator}` | `{rule, job}`: the profiles brought in line |
//! | `DELETE /v1/tag-rules/{id}?operator=` | `{rule, job}`: what it set is taken back |
//! | `POST /v1/tag-rules/{id}/backfill` `{operator}` | 202 a job |
//! | `POST /v1/conditions/validate` `{tenant_id, condition}` | `{valid, errors}` |
//! | `POST /v1/segments/preview` `{tenant_id, condition, sample?}` | `{count, sample[], took_ms}` for an unsaved condition |
//! | `POST /v1/segments/export` `{tenant_id, condition, fields[]}` | CSV of every matching profile, streamed |
//! | `GET /v1/jobs/{id}` | progress of a job |

use actix_web::{web, HttpResponse};
use platform::http::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{db_error, field, required, ApiState};
use crate::store::backfill::{self, JobView, BACKFILL, CLEANUP};
use crate::store::rules::{self as tag_rules, RuleError, RuleInput, RuleView};
use crate::store::segments;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/tag-rules", web::post().to(post_rule))
        .route("/v1/tag-rules", web::get().to(list_rules))
        .route("/v1/tag-rules/{id}", web::get().to(get_rule))
        .route("/v1/tag-rules/{id}", web::put().to(put_rule))
        .route("/v1/tag-rules/{id}", web::delete().to(delete_rule))
        .route("/v1/tag-rules/{id}/backfill", web::post().to(post_backfill))
        .route("/v1/conditions/validate", web::post().to(validate))
        .route("/v1/segments/preview", web::post().to(preview))
        .route("/v1/segments/export", web::post().to(super::export::export))
        .route("/v1/jobs/{id}", web::get().to(get_job));
}

pub(super) fn rule_error(e: RuleError) -> ApiError {
    match e {
        RuleError::Invalid(errors) => ApiError::bad_request(
            "invalid_condition",
            match errors.first() {
                Some(first) => format!("`condition` is invalid: {first}"),
                None => "`condition` is invalid".to_string(),
            },
        )
        .with_details(json!({"field": "condition", "errors": errors})),
        RuleError::Field { field, message } => {
            ApiError::bad_request("invalid_field", format!("`{field}`: {message}"))
                .with_details(json!({"field": field}))
        }
        RuleError::NotFound(m) => ApiError::not_found(m),
        RuleError::Db(e) => db_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct RuleBody {
    tenant_id: Option<String>,
    tag_id: Option<String>,
    name: Option<String>,
    condition: Option<Value>,
    mode: Option<String>,
    enabled: Option<bool>,
    operator: Option<String>,
}

impl RuleBody {
    fn input(self, tenant: Option<String>, tag: Option<String>) -> Result<RuleInput, ApiError> {
        Ok(RuleInput {
            tenant_id: field(self.tenant_id.or(tenant), "tenant_id")?,
            tag_id: field(self.tag_id.or(tag), "tag_id")?,
            name: field(self.name, "name")?,
            condition: self
                .condition
                .ok_or_else(|| platform::http::params::missing("condition"))?,
            mode: self.mode.unwrap_or_else(|| "add_remove".into()),
            enabled: self.enabled.unwrap_or(true),
            operator: field(self.operator, "operator")?,
        })
    }
}

async fn job_for(
    state: &ApiState,
    r: &crate::store::entities::rule::Model,
    by: &str,
) -> Result<JobView, ApiError> {
    let kind = if r.enabled && r.deleted_at.is_none() {
        BACKFILL
    } else {
        CLEANUP
    };
    state.tagger.engine.rules.invalidate(&r.tenant_id);
    backfill::start(&state.tagger, &r.tenant_id, kind, &r.id, by)
        .await
        .map(JobView::from)
        .map_err(db_error)
}

async fn post_rule(
    state: web::Data<ApiState>,
    body: web::Json<RuleBody>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner().input(None, None)?;
    let by = input.operator.clone();
    let r = tag_rules::create(&state.db, input, state.tagger.engine.rules.limits())
        .await
        .map_err(rule_error)?;
    let job = job_for(&state, &r, &by).await?;
    Ok(HttpResponse::Created().json(json!({"rule": RuleView::from(r), "job": job})))
}

#[derive(Debug, Deserialize)]
struct TenantQuery {
    tenant_id: Option<String>,
}

async fn list_rules(
    state: web::Data<ApiState>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    let items = tag_rules::list(&state.db, &tenant)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

async fn get_rule(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = tag_rules::get(&state.db, &id).await.map_err(rule_error)?;
    Ok(HttpResponse::Ok().json(RuleView::from(r)))
}

async fn put_rule(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<RuleBody>,
) -> Result<HttpResponse, ApiError> {
    let existing = tag_rules::get(&state.db, &id).await.map_err(rule_error)?;
    let input = body.into_inner().input(
        Some(existing.tenant_id.clone()),
        Some(existing.tag_id.clone()),
    )?;
    let by = input.operator.clone();
    let r = tag_rules::update(&state.db, &id, input, state.tagger.engine.rules.limits())
        .await
        .map_err(rule_error)?;
    let job = job_for(&state, &r, &by).await?;
    Ok(HttpResponse::Ok().json(json!({"rule": RuleView::from(r), "job": job})))
}

#[derive(Debug, Deserialize)]
struct OperatorQuery {
    operator: Option<String>,
}

async fn delete_rule(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<OperatorQuery>,
) -> Result<HttpResponse, ApiError> {
    let by = required(q.into_inner().operator, "operator")?;
    let r = tag_rules::delete(&state.db, &id, &by)
        .await
        .map_err(rule_error)?;
    let job = job_for(&state, &r, &by).await?;
    Ok(HttpResponse::Ok().json(json!({"rule": RuleView::from(r), "job": job})))
}

#[derive(Debug, Deserialize)]
struct OperatorBody {
    operator: Option<String>,
}

async fn post_backfill(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<OperatorBody>,
) -> Result<HttpResponse, ApiError> {
    let by = field(body.into_inner().operator, "operator")?;
    let r = tag_rules::get(&state.db, &id).await.map_err(rule_error)?;
    let job = job_for(&state, &r, &by).await?;
    Ok(HttpResponse::Accepted().json(job))
}

#[derive(Debug, Deserialize)]
pub(super) struct ConditionBody {
    pub tenant_id: Option<String>,
    pub condition: Option<Value>,
    pub sample: Option<u64>,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// The tenant and the validated, expanded condition of a request.
pub(super) async fn condition_of(
    state: &ApiState,
    b: &ConditionBody,
) -> Result<(String, rules::Expanded), ApiError> {
    let tenant = field(b.tenant_id.clone(), "tenant_id")?;
    let cond = b
        .condition
        .as_ref()
        .ok_or_else(|| platform::http::params::missing("condition"))?;
    let (_, expanded) = tag_rules::validate(
        &state.db,
        &tenant,
        None,
        cond,
        state.tagger.engine.rules.limits(),
    )
    .await
    .map_err(rule_error)?;
    Ok((tenant, expanded))
}

async fn validate(
    state: web::Data<ApiState>,
    body: web::Json<ConditionBody>,
) -> Result<HttpResponse, ApiError> {
    match condition_of(&state, &body).await {
        Ok(_) => Ok(HttpResponse::Ok().json(json!({"valid": true, "errors": []}))),
        Err(e) if e.code == "invalid_condition" => {
            Ok(HttpResponse::Ok().json(json!({"valid": false, "errors": e.details["errors"]})))
        }
        Err(e) => Err(e),
    }
}

async fn preview(
    state: web::Data<ApiState>,
    body: web::Json<ConditionBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, cond) = condition_of(&state, &body).await?;
    let sample = body.sample.unwrap_or(20);
    if sample > 100 {
        return Err(
            ApiError::bad_request("invalid_sample", "`sample` must be at most 100")
                .with_details(json!({"field": "sample"})),
        );
    }
    let at = state.tagger.at(&tenant);
    let r = segments::reader(&state.db).await.map_err(db_error)?;
    let p = segments::preview(&r, &tenant, &cond, &at, sample)
        .await
        .map_err(db_error)?;
    r.commit().await.map_err(db_error)?;
    metrics::histogram!("scrm_tagging_preview_seconds").record(p.took_ms as f64 / 1000.0);
    Ok(HttpResponse::Ok().json(p))
}

async fn get_job(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match backfill::get(&state.tagger, &id).await.map_err(db_error)? {
        Some(j) => Ok(HttpResponse::Ok().json(j)),
        None => Err(ApiError::not_found(format!("no job with id `{id}`"))),
    }
}
