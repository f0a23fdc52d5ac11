//! Leads over HTTP, in the tenant of the caller's credential: what the sidebar and the console
//! read, and what reps do (as the credential's actor). A profile the tenant has no lead for —
//! unknown, or another tenant's — answers 404 `not_found` naming it, on every route; a manual
//! move, a contact or an adjustment never creates a lead.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/{id}/scores` | stage, owner, activity, every dimension's score exact now, the stages a person may move it to (`allowed_moves`) and the open SLA's `sla_due_at` |
//! | `GET /v1/profiles/{id}/ledger?model=&include_voided=&cursor=&limit=` | ledger entries newest first (rule, event, delta, cap, earned, expiry, worth now) |
//! | `GET /v1/profiles/{id}/stage-history?cursor=&limit=` | `{stage, status, items, next_cursor}`: the moves, oldest first, with who/what moved it, why, and time in stage |
//! | `GET /v1/profiles/{id}/firings?cursor=&limit=` | trigger firings, oldest first, with what each action did |
//! | `GET /v1/profiles/{id}/slas?cursor=&limit=` | SLAs, oldest first: open, met, breached or closed |
//! | `POST /v1/profiles/{id}/stage` `{stage, reason}` | the move, recorded with the actor; 409 `transition_not_allowed` / `guard_failed` / `same_stage` / `profile_merged` with the reason (`details.allowed` lists where it may go), 400 `unknown_stage`, 404 |
//! | `POST /v1/profiles/{id}/contacted` (no body) | the lead's open SLA is met by the actor: `{slas_met}` |
//! | `POST /v1/profiles/{id}/adjustments` `{model, delta, reason}` | a manual ledger entry (`cause_id` the actor); the lead with its scores |
//! | `GET /v1/leaderboard?model=&stage=&owner=&tag=&cursor=&limit=` | `{model, as_of, items, next_cursor}`: top leads of a dimension, by score (to a millionth of a point, descending) then profile id; each page is exact at its own `as_of` |
//!
//! A lead's scores (`GET /v1/profiles/{id}/scores`) are one per model, not a list that pages.

use actix_web::{web, HttpResponse};
use platform::http::params::{field, required};
use platform::http::{ApiError, Principal};
use serde::Deserialize;
use serde_json::json;

use super::body::{self, Body, RequestBody};
use super::page::{PageQuery, PageReq};
use super::{no_lead, ApiState};
use crate::store::browse::Filter;
use crate::store::engine::ManualError;
use crate::store::queries::{self, Board, BoardRow, LedgerQuery};

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

/// 404 unless the tenant has a lead for `profile`.
async fn known_lead(state: &ApiState, tenant: &str, profile: &str) -> Result<(), ApiError> {
    match queries::lead(state.scorer.db(), tenant, profile).await? {
        Some(_) => Ok(()),
        None => Err(no_lead(profile)),
    }
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
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match queries::lead_scores(&state.scorer, &p.tenant, &id).await? {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(no_lead(&id)),
    }
}

#[derive(Debug, Deserialize)]
struct LedgerParams {
    model: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
    include_voided: Option<bool>,
}

async fn get_ledger(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<LedgerParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = p.tenant;
    let page: PageReq<i64> = PageReq::parse("ledger", q.cursor.as_deref(), q.limit)?;
    let model_id = match q.model {
        None => None,
        Some(m) => {
            let defs = state.scorer.compiled(&tenant).await?;
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
        cursor: page.after,
        limit: page.limit,
        include_voided: q.include_voided.unwrap_or(false),
    };
    known_lead(&state, &tenant, &id).await?;
    let entries = queries::ledger(&state.scorer, &tenant, &id, &lq).await?;
    Ok(HttpResponse::Ok().json(page.with_next(entries.items, entries.next_cursor)))
}

async fn get_history(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<i64> = q.read("stage-history")?;
    let tenant = p.tenant;
    let s = &state.scorer;
    let Some(lead) = queries::lead(s.db(), &tenant, &id).await? else {
        return Err(no_lead(&id));
    };
    let rows = queries::history(
        s.db(),
        &tenant,
        &id,
        s.clock().now(),
        page.after,
        page.fetch(),
    )
    .await?;
    let moves = page.page(rows, |h| h.id);
    Ok(HttpResponse::Ok().json(json!({
        "stage": lead.stage,
        "status": lead.status,
        "items": moves.items,
        "next_cursor": moves.next_cursor,
    })))
}

async fn get_firings(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<i64> = q.read("firings")?;
    known_lead(&state, &p.tenant, &id).await?;
    let rows =
        queries::firings(state.scorer.db(), &p.tenant, &id, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |f| f.id)))
}

async fn get_slas(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<i64> = q.read("slas")?;
    known_lead(&state, &p.tenant, &id).await?;
    let rows = queries::slas(state.scorer.db(), &p.tenant, &id, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |a| a.history_id)))
}

/// A manual move (other fields, such as a `tenant_id` or `actor` a caller still sends, are
/// ignored).
#[derive(Debug, Deserialize)]
struct MoveBody {
    stage: Option<String>,
    reason: Option<String>,
}

impl RequestBody for MoveBody {
    const IGNORED: &'static [&'static str] = body::FROM_CREDENTIAL;
}

async fn post_stage(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(b): Body<MoveBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant;
    let stage = field(b.stage, "stage")?;
    let reason = field(b.reason, "reason")?;
    let s = &state.scorer;
    match s.move_stage(&tenant, &id, &stage, &p.actor, &reason).await {
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
                    let defs = s.compiled(&tenant).await?;
                    let lead = queries::lead(s.db(), &tenant, &id).await?;
                    lead.map(|l| defs.machine.manual_targets(&l.stage))
                }
                _ => None,
            };
            Err(manual_error(e, allowed))
        }
    }
}

/// Takes no body: who contacted the lead is the credential's actor (a body a caller still sends
/// is not read).
async fn post_contacted(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let n = state
        .scorer
        .mark_contacted(&p.tenant, &id, &p.actor)
        .await
        .map_err(|e| manual_error(e, None))?;
    Ok(HttpResponse::Ok().json(json!({"slas_met": n})))
}

/// A manual adjustment (other fields, such as a `tenant_id` or `actor` a caller still sends, are
/// ignored).
#[derive(Debug, Deserialize)]
struct AdjustBody {
    model: Option<String>,
    delta: Option<f64>,
    reason: Option<String>,
}

impl RequestBody for AdjustBody {
    const IGNORED: &'static [&'static str] = body::FROM_CREDENTIAL;
}

async fn post_adjustment(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(b): Body<AdjustBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant;
    let model = field(b.model, "model")?;
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
    let defs = s.compiled(&tenant).await?;
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
    s.adjust(&tenant, &id, &model_id, delta, &p.actor, &reason)
        .await
        .map_err(|e| manual_error(e, None))?;
    state.wake();
    match queries::lead_scores(s, &tenant, &id).await? {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(no_lead(&id)),
    }
}

#[derive(Debug, Deserialize)]
struct BoardParams {
    model: Option<String>,
    stage: Option<String>,
    owner: Option<String>,
    tag: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn get_leaderboard(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<BoardParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = p.tenant;
    let page: PageReq<(i64, String)> = PageReq::parse("leaderboard", q.cursor.as_deref(), q.limit)?;
    let model = required(q.model, "model")?;
    let s = &state.scorer;
    let defs = s.compiled(&tenant).await?;
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
        filter: Filter {
            stage: q.stage.filter(|v| !v.is_empty()),
            owner: q.owner.filter(|v| !v.is_empty()),
            tags: q.tag.filter(|v| !v.is_empty()).into_iter().collect(),
            ..Filter::default()
        },
        after: page.after.clone(),
        limit: page.fetch(),
    };
    let as_of = s.clock().now();
    let rows = queries::leaderboard(s, &tenant, &defs, m, &board).await?;
    let board = page.page(rows, BoardRow::key);
    Ok(HttpResponse::Ok().json(json!({
        "model": defs.models[m].key,
        "as_of": as_of,
        "items": board.items,
        "next_cursor": board.next_cursor,
    })))
}
