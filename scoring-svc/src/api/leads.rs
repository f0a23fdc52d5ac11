//! Leads over HTTP: what the sidebar and the console read, and what reps do.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/{id}/scores?tenant_id=` | stage, owner, activity and every dimension's score, exact now |
//! | `GET /v1/profiles/{id}/ledger?tenant_id=&model=&cursor=&limit=&include_voided=` | ledger entries newest first (rule, event, delta, cap, earned, expiry, worth now), `next_cursor` |
//! | `GET /v1/profiles/{id}/stage-history?tenant_id=` | every move with who/what moved it, why, and time in stage |
//! | `GET /v1/profiles/{id}/firings?tenant_id=` | trigger firings with what each action did |
//! | `GET /v1/profiles/{id}/slas?tenant_id=` | SLAs: open, met, breached or closed |
//! | `POST /v1/profiles/{id}/stage` `{tenant_id, stage, actor, reason}` | the move; 409 `transition_not_allowed` / `guard_failed` / `same_stage` / `profile_merged` with the reason (`details.allowed` lists where it may go), 400 `unknown_stage`, 404 |
//! | `POST /v1/profiles/{id}/contacted` `{tenant_id, actor}` | the lead's open SLA is met |
//! | `POST /v1/profiles/{id}/adjustments` `{tenant_id, model, delta, actor, reason}` | a manual ledger entry |
//! | `GET /v1/leaderboard?tenant_id=&model=&stage=&owner=&tag=&limit=` | top leads of a dimension |

use actix_web::{web, HttpResponse};
use platform::http::params::{field, required};
use platform::http::ApiError;
use serde::Deserialize;
use serde_json::json;

use super::{db_error, limit, ApiState};
use crate::store::engine::ManualError;
use crate::store::queries::{self, Board, LedgerQuery};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/profiles/{id}/scores", web::get().to(get_scores))
        .route("/v1/profiles/{id}/ledger", web::get().to(get_ledger))
        .route(
            "/v1/profiles/{id}/stage-history",
            web::get().to(get_history),
        )
        .route("/v1/profiles/{id}/firings", web::get().to(get_firings))
        .route("/v1/profiles/{id}/slas", web::get().to(get_slas))
        .route("/v1/profiles/{id}/stage", web::post().to(post_stage))
        .route(
            "/v1/profiles/{id}/contacted",
            web::post().to(post_contacted),
        )
        .route(
            "/v1/profiles/{id}/adjustments",
            web::post().to(post_adjustment),
        )
        .route("/v1/leaderboard", web::get().to(get_leaderboard));
}

#[derive(Debug, Deserialize)]
struct TenantQuery {
    tenant_id: Option<String>,
}

fn no_lead(profile: &str) -> ApiError {
    ApiError::not_found(format!("no lead for profile `{profile}`"))
}

fn manual_error(e: ManualError, allowed: Option<Vec<String>>) -> ApiError {
    match e {
        ManualError::NotFound(p) => no_lead(&p),
        ManualError::Merged { profile, survivor } => ApiError::conflict(
            "profile_merged",
            format!("profile `{profile}` was merged into `{survivor}`; act on the survivor"),
        )
        .with_details(json!({"survivor": survivor})),
        ManualError::Refused(r) if r.code == "unknown_stage" => {
            ApiError::bad_request("unknown_stage", r.message)
                .with_details(json!({"field": "stage"}))
        }
        ManualError::Refused(r) => ApiError::conflict(r.code, r.message.clone())
            .with_details(json!({"reason": r.message, "allowed": allowed.unwrap_or_default()})),
        ManualError::Score(e) => {
            tracing::error!(error = %e, "Manual change failed");
            ApiError::unavailable(
                "database_unavailable",
                "the scoring database did not answer",
            )
        }
    }
}

async fn get_scores(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    match queries::lead_scores(&state.scorer, &tenant, &id)
        .await
        .map_err(db_error)?
    {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(no_lead(&id)),
    }
}

#[derive(Debug, Deserialize)]
struct LedgerParams {
    tenant_id: Option<String>,
    model: Option<String>,
    cursor: Option<i64>,
    limit: Option<u64>,
    include_voided: Option<bool>,
}

async fn get_ledger(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<LedgerParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = required(q.tenant_id, "tenant_id")?;
    let model_id = match q.model {
        None => None,
        Some(m) => {
            let defs = state.scorer.compiled(&tenant).await.map_err(db_error)?;
            let i = defs
                .model_by_key(&m)
                .or_else(|| defs.model_by_id(&m))
                .ok_or_else(|| {
                    ApiError::bad_request("unknown_model", format!("`model`: no model `{m}`"))
                        .with_details(json!({"field": "model"}))
                })?;
            Some(defs.models[i].id.clone())
        }
    };
    let lq = LedgerQuery {
        model_id,
        cursor: q.cursor,
        limit: limit(q.limit)?,
        include_voided: q.include_voided.unwrap_or(false),
    };
    let page = queries::ledger(&state.scorer, &tenant, &id, &lq)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(page))
}

async fn get_history(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    let s = &state.scorer;
    let Some(lead) = queries::lead(s.db(), &tenant, &id)
        .await
        .map_err(db_error)?
    else {
        return Err(no_lead(&id));
    };
    let items = queries::history(s.db(), &tenant, &id, s.clock().now())
        .await
        .map_err(db_error)?;
    Ok(
        HttpResponse::Ok()
            .json(json!({"stage": lead.stage, "status": lead.status, "items": items})),
    )
}

async fn get_firings(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    let items = queries::firings(state.scorer.db(), &tenant, &id)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

async fn get_slas(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    let items = queries::slas(state.scorer.db(), &tenant, &id)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

#[derive(Debug, Deserialize)]
struct MoveBody {
    tenant_id: Option<String>,
    stage: Option<String>,
    actor: Option<String>,
    reason: Option<String>,
}

async fn post_stage(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<MoveBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let tenant = field(b.tenant_id, "tenant_id")?;
    let stage = field(b.stage, "stage")?;
    let actor = field(b.actor, "actor")?;
    let reason = field(b.reason, "reason")?;
    let s = &state.scorer;
    match s.move_stage(&tenant, &id, &stage, &actor, &reason).await {
        Ok(m) => {
            state.wake();
            Ok(HttpResponse::Ok().json(json!({
                "profile_id": m.lead.profile,
                "stage": m.lead.stage,
                "history_id": m.history_id,
                "stage_entered_at": m.lead.stage_entered_at,
            })))
        }
        Err(e) => {
            let allowed = match &e {
                ManualError::Refused(_) => {
                    let defs = s.compiled(&tenant).await.map_err(db_error)?;
                    let lead = queries::lead(s.db(), &tenant, &id)
                        .await
                        .map_err(db_error)?;
                    lead.map(|l| defs.machine.manual_targets(&l.stage))
                }
                _ => None,
            };
            Err(manual_error(e, allowed))
        }
    }
}

#[derive(Debug, Deserialize)]
struct ContactBody {
    tenant_id: Option<String>,
    actor: Option<String>,
}

async fn post_contacted(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ContactBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let tenant = field(b.tenant_id, "tenant_id")?;
    let actor = field(b.actor, "actor")?;
    let n = state
        .scorer
        .mark_contacted(&tenant, &id, &actor)
        .await
        .map_err(|e| manual_error(e, None))?;
    Ok(HttpResponse::Ok().json(json!({"slas_met": n})))
}

#[derive(Debug, Deserialize)]
struct AdjustBody {
    tenant_id: Option<String>,
    model: Option<String>,
    delta: Option<f64>,
    actor: Option<String>,
    reason: Option<String>,
}

async fn post_adjustment(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<AdjustBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let tenant = field(b.tenant_id, "tenant_id")?;
    let model = field(b.model, "model")?;
    let actor = field(b.actor, "actor")?;
    let reason = field(b.reason, "reason")?;
    let delta = b
        .delta
        .filter(|d| d.is_finite() && *d != 0.0 && d.abs() <= 1e6)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_field",
                "`delta` must be a non-zero number of at most 1 000 000 in absolute value",
            )
            .with_details(json!({"field": "delta"}))
        })?;
    let s = &state.scorer;
    let defs = s.compiled(&tenant).await.map_err(db_error)?;
    let m = defs
        .model_by_key(&model)
        .or_else(|| defs.model_by_id(&model))
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_model",
                format!("`model`: no active model `{model}`"),
            )
            .with_details(json!({"field": "model"}))
        })?;
    let model_id = defs.models[m].id.clone();
    s.adjust(&tenant, &id, &model_id, delta, &actor, &reason)
        .await
        .map_err(|e| manual_error(e, None))?;
    state.wake();
    match queries::lead_scores(s, &tenant, &id)
        .await
        .map_err(db_error)?
    {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(no_lead(&id)),
    }
}

#[derive(Debug, Deserialize)]
struct BoardParams {
    tenant_id: Option<String>,
    model: Option<String>,
    stage: Option<String>,
    owner: Option<String>,
    tag: Option<String>,
    limit: Option<u64>,
}

async fn get_leaderboard(
    state: web::Data<ApiState>,
    q: web::Query<BoardParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = required(q.tenant_id, "tenant_id")?;
    let model = required(q.model, "model")?;
    let s = &state.scorer;
    let defs = s.compiled(&tenant).await.map_err(db_error)?;
    let m = defs
        .model_by_key(&model)
        .or_else(|| defs.model_by_id(&model))
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_model",
                format!("`model`: no active model `{model}`"),
            )
            .with_details(json!({"field": "model"}))
        })?;
    let board = Board {
        stage: q.stage.filter(|v| !v.is_empty()),
        owner: q.owner.filter(|v| !v.is_empty()),
        tag: q.tag.filter(|v| !v.is_empty()),
        limit: limit(q.limit)?,
    };
    let items = queries::leaderboard(s, &tenant, &defs, m, &board)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok()
        .json(json!({"model": defs.models[m].key, "as_of": s.clock().now(), "items": items})))
}
