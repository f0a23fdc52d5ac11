//! Definitions over HTTP, in the tenant of the caller's credential. Every write records the
//! credential's actor (`created_by` / `updated_by`) and bumps the tenant's definitions version,
//! so every instance recompiles before its next use. A model, rule or trigger of another tenant
//! answers 404 like an unknown id.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/models` `{key, name, description?, decay?}` | 201 the model |
//! | `GET /v1/models?cursor=&limit=` | a page of the tenant's models, in the order they were created |
//! | `GET /v1/models/{id}` | the model with its rules |
//! | `GET /v1/models/{id}/rules?cursor=&limit=` | a page of the model's live rules, in the order they were created |
//! | `PATCH /v1/models/{id}` `{name?, description?, decay?, status?: active\|archived}` | the model |
//! | `POST /v1/models/{id}/rules` `{kind: event\|state, name, event?, filters?, condition?, points, caps?, enabled?}` | 201 the rule |
//! | `GET /v1/rules/{id}` | the rule |
//! | `PUT /v1/rules/{id}` `{…rule}` | the rule, replaced |
//! | `DELETE /v1/rules/{id}` | 204 |
//! | `GET /v1/stage-machine` | the machine (`is_default` when none was saved) |
//! | `PUT /v1/stage-machine` `{stages, transitions?, forward_only?}` | the machine |
//! | `POST /v1/triggers` `{name, on, actions, condition?, enabled?}` | 201 the trigger |
//! | `GET /v1/triggers?cursor=&limit=` | a page of the tenant's triggers, in the order they were created |
//! | `GET /v1/triggers/{id}`, `PUT /v1/triggers/{id}` `{…trigger}`, `DELETE /v1/triggers/{id}` | the trigger, the trigger replaced, 204 |

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};

use super::body::Body;
use super::page::{PageQuery, PageReq};
use super::ApiState;
use crate::domain::defs::{MachineSpec, ModelSpec, RuleSpec, TriggerSpec};
use crate::store::defs::{self, ModelPatch};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/models", web::post().to(post_model))
        .route("/v1/models", web::get().to(get_models))
        .route("/v1/models/{id}", web::get().to(get_model))
        .route("/v1/models/{id}", web::patch().to(patch_model))
        .route("/v1/models/{id}/rules", web::post().to(post_rule))
        .route("/v1/models/{id}/rules", web::get().to(get_model_rules))
        .route("/v1/rules/{id}", web::get().to(get_rule))
        .route("/v1/rules/{id}", web::put().to(put_rule))
        .route("/v1/rules/{id}", web::delete().to(delete_rule))
        .route("/v1/stage-machine", web::get().to(get_machine))
        .route("/v1/stage-machine", web::put().to(put_machine))
        .route("/v1/triggers", web::post().to(post_trigger))
        .route("/v1/triggers", web::get().to(get_triggers))
        .route("/v1/triggers/{id}", web::get().to(get_trigger))
        .route("/v1/triggers/{id}", web::put().to(put_trigger))
        .route("/v1/triggers/{id}", web::delete().to(delete_trigger));
}

async fn post_model(
    state: web::Data<ApiState>,
    p: Principal,
    Body(spec): Body<ModelSpec>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    let m = defs::create_model(s.db(), &p.tenant, spec, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::Created().json(m))
}

async fn get_models(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<String> = q.read("models")?;
    let rows = defs::models(
        state.scorer.db(),
        &p.tenant,
        page.after.as_deref(),
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |m| m.id.clone())))
}

async fn get_model_rules(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<String> = q.read("model-rules")?;
    let rows = defs::model_rules(
        state.scorer.db(),
        &p.tenant,
        &id,
        page.after.as_deref(),
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |r| r.id.clone())))
}

async fn get_model(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let m = defs::model(state.scorer.db(), &p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(m))
}

async fn patch_model(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(patch): Body<ModelPatch>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    let m = defs::update_model(s.db(), &p.tenant, &id, patch, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::Ok().json(m))
}

async fn post_rule(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(spec): Body<RuleSpec>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    let r = defs::create_rule_in(s.db(), &p.tenant, &id, spec, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::Created().json(r))
}

async fn get_rule(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = defs::rule(state.scorer.db(), &p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(r))
}

async fn put_rule(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(spec): Body<RuleSpec>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    let r = defs::replace_rule(s.db(), &p.tenant, &id, spec, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::Ok().json(r))
}

async fn delete_rule(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    defs::delete_rule(s.db(), &p.tenant, &id, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::NoContent().finish())
}

async fn get_machine(state: web::Data<ApiState>, p: Principal) -> Result<HttpResponse, ApiError> {
    let m = defs::machine(state.scorer.db(), &p.tenant).await?;
    Ok(HttpResponse::Ok().json(m))
}

async fn put_machine(
    state: web::Data<ApiState>,
    p: Principal,
    Body(spec): Body<MachineSpec>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    let m = defs::put_machine(s.db(), &p.tenant, spec, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::Ok().json(m))
}

async fn post_trigger(
    state: web::Data<ApiState>,
    p: Principal,
    Body(spec): Body<TriggerSpec>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    let t = defs::create_trigger(s.db(), &p.tenant, spec, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::Created().json(t))
}

async fn get_triggers(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<String> = q.read("triggers")?;
    let rows = defs::triggers(
        state.scorer.db(),
        &p.tenant,
        page.after.as_deref(),
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |t| t.id.clone())))
}

async fn get_trigger(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let t = defs::trigger(state.scorer.db(), &p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(t))
}

async fn put_trigger(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(spec): Body<TriggerSpec>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    let t = defs::replace_trigger(s.db(), &p.tenant, &id, spec, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::Ok().json(t))
}

async fn delete_trigger(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    defs::delete_trigger(s.db(), &p.tenant, &id, &p.actor, s.clock().now()).await?;
    s.defs().invalidate(&p.tenant);
    Ok(HttpResponse::NoContent().finish())
}
