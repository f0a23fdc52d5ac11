//! Tag rules, previews, exports and jobs over HTTP. The tenant is the caller's principal's and
//! the actor recorded its actor; a rule or job of another tenant is answered 404 like an unknown
//! id. A condition that does not validate is answered 400 `invalid_condition` with every error
//! and the node it is in (`details.errors[].path`, e.g. `root.children[2].window.days`); one
//! whose only errors are tags the tenant does not have is 400 `unknown_tag`
//! (`root.children[1].tags[0]`).
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/tag-rules` `{tag_id, name, condition, mode?, enabled?}` | 201 `{rule, job}` (a backfill when enabled) |
//! | `GET /v1/tag-rules?cursor=&limit=` | a page of the live rules, in the order they were created |
//! | `GET /v1/tag-rules/{id}` | the rule |
//! | `PUT /v1/tag-rules/{id}` `{name, condition, mode?, enabled?}` | `{rule, job}`: the profiles brought in line (the tag stays) |
//! | `DELETE /v1/tag-rules/{id}` | `{rule, job}`: what it set is taken back |
//! | `POST /v1/tag-rules/{id}/backfill` | 202 a job |
//! | `POST /v1/conditions/validate` `{condition}` | `{valid, errors[{path, code, message}]}` |
//! | `POST /v1/segments/preview` `{condition, sample?}` | `{count, sample[], took_ms}` for an unsaved condition |
//! | `POST /v1/segments/export` `{condition, fields[]}` | CSV of every matching profile, streamed |
//! | `GET /v1/jobs/{id}` | progress of a job |

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use platform::ServiceError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::page::{PageQuery, PageReq};
use super::{field, ApiState};
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

impl From<RuleError> for ServiceError {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::Invalid(errors) => ServiceError::invalid(
                // Only tags the tenant does not have: a code of its own.
                if !errors.is_empty() && errors.iter().all(|e| e.code == tag_rules::UNKNOWN_TAG) {
                    tag_rules::UNKNOWN_TAG
                } else {
                    "invalid_condition"
                },
                match errors.first() {
                    Some(first) => format!("`condition` is invalid: {first}"),
                    None => "`condition` is invalid".to_string(),
                },
            )
            .with_details(json!({"field": "condition", "errors": errors})),
            RuleError::Field { field, message } => {
                ServiceError::invalid("invalid_field", format!("`{field}`: {message}"))
                    .with_details(json!({"field": field}))
            }
            RuleError::NotFound(m) => ServiceError::not_found(m),
            RuleError::Db(e) => ServiceError::Db(e),
        }
    }
}

/// A rule as written (a `tenant_id` or `operator` still sent by an old caller is ignored).
#[derive(Debug, Deserialize)]
struct RuleBody {
    tag_id: Option<String>,
    name: Option<String>,
    condition: Option<Value>,
    mode: Option<String>,
    enabled: Option<bool>,
}

impl RuleBody {
    /// The input of `p`'s tenant and actor, for the rule's tag `tag` (an existing rule's: its tag
    /// stays), else the body's.
    fn input(self, p: &Principal, tag: Option<String>) -> Result<RuleInput, ApiError> {
        Ok(RuleInput {
            tenant_id: p.tenant.clone(),
            tag_id: match tag {
                Some(t) => t,
                None => field(self.tag_id, "tag_id")?,
            },
            name: field(self.name, "name")?,
            condition: self
                .condition
                .ok_or_else(|| platform::http::params::missing("condition"))?,
            mode: self.mode.unwrap_or_else(|| "add_remove".into()),
            enabled: self.enabled.unwrap_or(true),
            operator: p.actor.clone(),
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
        .map_err(ApiError::from)
}

async fn post_rule(
    state: web::Data<ApiState>,
    p: Principal,
    body: web::Json<RuleBody>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner().input(&p, None)?;
    let r = tag_rules::create(&state.db, input, state.tagger.engine.rules.limits()).await?;
    let job = job_for(&state, &r, &p.actor).await?;
    Ok(HttpResponse::Created().json(json!({"rule": RuleView::from(r), "job": job})))
}

async fn list_rules(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<String> = q.read("tag-rules")?;
    let rows = tag_rules::list(&state.db, &p.tenant, page.after.as_deref(), page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |r| r.id.clone())))
}

async fn get_rule(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = tag_rules::get(&state.db, &p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(RuleView::from(r)))
}

async fn put_rule(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    body: web::Json<RuleBody>,
) -> Result<HttpResponse, ApiError> {
    let existing = tag_rules::get(&state.db, &p.tenant, &id).await?;
    let input = body.into_inner().input(&p, Some(existing.tag_id))?;
    let r = tag_rules::update(&state.db, &id, input, state.tagger.engine.rules.limits()).await?;
    let job = job_for(&state, &r, &p.actor).await?;
    Ok(HttpResponse::Ok().json(json!({"rule": RuleView::from(r), "job": job})))
}

async fn delete_rule(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = tag_rules::delete(&state.db, &p.tenant, &id, &p.actor).await?;
    let job = job_for(&state, &r, &p.actor).await?;
    Ok(HttpResponse::Ok().json(json!({"rule": RuleView::from(r), "job": job})))
}

async fn post_backfill(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = tag_rules::get(&state.db, &p.tenant, &id).await?;
    let job = job_for(&state, &r, &p.actor).await?;
    Ok(HttpResponse::Accepted().json(job))
}

/// An unsaved condition (a `tenant_id` still sent by an old caller is ignored).
#[derive(Debug, Deserialize)]
pub(super) struct ConditionBody {
    pub condition: Option<Value>,
    pub sample: Option<u64>,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// The validated, expanded condition of a request of `tenant` (its tags looked up in the
/// tenant's catalogue).
pub(super) async fn condition_of(
    state: &ApiState,
    tenant: &str,
    b: &ConditionBody,
) -> Result<rules::Expanded, ApiError> {
    let cond = b
        .condition
        .as_ref()
        .ok_or_else(|| platform::http::params::missing("condition"))?;
    let (_, expanded) = tag_rules::check(
        &state.db,
        tenant,
        None,
        cond,
        state.tagger.engine.rules.limits(),
    )
    .await?;
    Ok(expanded)
}

async fn validate(
    state: web::Data<ApiState>,
    p: Principal,
    body: web::Json<ConditionBody>,
) -> Result<HttpResponse, ApiError> {
    match condition_of(&state, &p.tenant, &body).await {
        Ok(_) => Ok(HttpResponse::Ok().json(json!({"valid": true, "errors": []}))),
        Err(e) if e.code == "invalid_condition" || e.code == tag_rules::UNKNOWN_TAG => {
            Ok(HttpResponse::Ok().json(json!({"valid": false, "errors": e.details["errors"]})))
        }
        Err(e) => Err(e),
    }
}

async fn preview(
    state: web::Data<ApiState>,
    p: Principal,
    body: web::Json<ConditionBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant;
    let cond = condition_of(&state, &tenant, &body).await?;
    let sample = body.sample.unwrap_or(20);
    if sample > 100 {
        return Err(
            ApiError::bad_request("invalid_sample", "`sample` must be at most 100")
                .with_details(json!({"field": "sample"})),
        );
    }
    let at = state.tagger.at(&tenant);
    let r = segments::reader(&state.db).await?;
    let p = segments::preview(&r, &tenant, &cond, &at, sample).await?;
    r.commit().await?;
    metrics::histogram!(crate::metrics::PREVIEW_SECONDS).record(p.took_ms as f64 / 1000.0);
    Ok(HttpResponse::Ok().json(p))
}

async fn get_job(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match backfill::get_in(&state.tagger, &p.tenant, &id).await? {
        Some(j) => Ok(HttpResponse::Ok().json(j)),
        None => Err(ApiError::not_found(format!("no job with id `{id}`"))),
    }
}
