//! Saved segments (人群包) over HTTP. The tenant is the caller's principal's and the owner and
//! editor recorded its actor; a segment of another tenant is answered 404 like an unknown id.
//! Conditions are checked as a rule's are: 400 `invalid_condition` (or `unknown_tag`) with
//! every error and its node in `details.errors`. Bodies are read as their types: a field the
//! type does not have is refused naming it, a missing required one is 400 `missing_field`.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/saved-segments` `{name, condition, description?, refresh_mode?: scheduled\|manual, interval_minutes?}` | 201 the segment (a scheduled one is counted at the scheduler's next pass) |
//! | `GET /v1/saved-segments?status=active\|archived\|all&cursor=&limit=` | a page of the tenant's segments (active by default), in the order they were created |
//! | `GET /v1/saved-segments/{id}` | the segment |
//! | `PATCH /v1/saved-segments/{id}` `{name?, description?, condition?, refresh_mode?, interval_minutes?, status?, version?}` | the segment (409 `version_conflict` when not at `version`, `duplicate_name`) |
//! | `DELETE /v1/saved-segments/{id}` | the segment, archived |
//! | `POST /v1/saved-segments/{id}/refresh` | `{count, at, took_ms, segment}`: counted now, appended to the history |
//! | `GET /v1/saved-segments/{id}/sizes?cursor=&limit=` | a page of its size history, newest first |
//! | `GET /v1/saved-segments/{id}/members?after=&limit=&fields=&tags=` | `{items: [{profile_id, fields, tags?: [{id, name}]}], next}`: matching profiles after the profile id `after`, in byte order (`limit` 1..=1000, default 100), with the comma-separated `fields` (default name, nickname, city) and, with `tags=true`, the tags each carries |
//! | `POST /v1/saved-segments/{id}/export` `{fields?}` | CSV of every matching profile, streamed as the unsaved export's |
//!
//! Members, refreshes and exports of an archived segment are 409 `segment_archived`; a saved
//! condition that no longer validates (a rule it reads was deleted) is 409
//! `invalid_saved_condition` with the errors, until the segment is edited.

use actix_web::{web, HttpResponse};
use platform::http::body::{Body, RequestBody};
use platform::http::params;
use platform::http::{ApiError, Principal};
use platform::ServiceError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::export::{check_fields, csv_response};
use super::page::{PageQuery, PageReq};
use super::ApiState;
use crate::store::rules as tag_rules;
use crate::store::saved::{
    self, entities::segment, Cause, NewSegment, SavedError, SegmentPatch, SegmentView, ACTIVE,
    ARCHIVED,
};
use crate::store::segments;

/// Members per page when the request gives no `limit`, and the most it may ask for.
const MEMBERS_DEFAULT: u64 = 100;
const MEMBERS_MAX: u64 = 1_000;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/saved-segments", web::post().to(post_segment))
        .route("/v1/saved-segments", web::get().to(list_segments))
        .route("/v1/saved-segments/{id}", web::get().to(get_segment))
        .route("/v1/saved-segments/{id}", web::patch().to(patch_segment))
        .route("/v1/saved-segments/{id}", web::delete().to(delete_segment))
        .route("/v1/saved-segments/{id}/refresh", web::post().to(refresh))
        .route("/v1/saved-segments/{id}/sizes", web::get().to(sizes))
        .route("/v1/saved-segments/{id}/members", web::get().to(members))
        .route("/v1/saved-segments/{id}/export", web::post().to(export));
}

impl From<SavedError> for ServiceError {
    fn from(e: SavedError) -> Self {
        match e {
            SavedError::Condition(e) => e.into(),
            SavedError::Missing(field) => ServiceError::missing(field),
            SavedError::Field { field, message } => {
                ServiceError::invalid("invalid_field", format!("`{field}`: {message}"))
                    .with_details(json!({"field": field}))
            }
            SavedError::NotFound(m) => ServiceError::not_found(m),
            SavedError::Conflict { code, message } => ServiceError::conflict(code, message),
            SavedError::Stale(errors) => ServiceError::conflict(
                "invalid_saved_condition",
                match errors.first() {
                    Some(first) => format!("the saved condition no longer validates: {first}"),
                    None => "the saved condition no longer validates".to_string(),
                },
            )
            .with_details(json!({"field": "condition", "errors": errors})),
            SavedError::Db(e) => ServiceError::Db(e),
        }
    }
}

/// Fields callers typed before the service credential carried the tenant and the actor: dropped
/// unread.
const FROM_CREDENTIAL: &[&str] = &["tenant_id", "operator", "actor"];

impl RequestBody for NewSegment {
    const IGNORED: &'static [&'static str] = FROM_CREDENTIAL;
}

impl RequestBody for SegmentPatch {
    const IGNORED: &'static [&'static str] = FROM_CREDENTIAL;
}

/// What to export of a saved segment: field keys beside `profile_id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    #[serde(default)]
    fields: Vec<String>,
}

impl RequestBody for ExportBody {
    const IGNORED: &'static [&'static str] = FROM_CREDENTIAL;
}

async fn post_segment(
    state: web::Data<ApiState>,
    p: Principal,
    Body(n): Body<NewSegment>,
) -> Result<HttpResponse, ApiError> {
    let s = saved::create(&state.tagger, &p.tenant, &p.actor, n).await?;
    Ok(HttpResponse::Created().json(SegmentView::from(s)))
}

/// `?status=&cursor=&limit=` of the list.
#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn list_segments(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let status = match q.status.as_deref().map(str::trim) {
        None | Some("") | Some(ACTIVE) => Some(ACTIVE),
        Some(ARCHIVED) => Some(ARCHIVED),
        Some("all") => None,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "`status` must be `active`, `archived` or `all`",
            )
            .with_details(json!({"field": "status"})))
        }
    };
    // The cursor names the status it was given for: a page of another status is not a cursor.
    let list = match status {
        Some(ACTIVE) => "saved-segments",
        Some(_) => "saved-segments-archived",
        None => "saved-segments-all",
    };
    let page: PageReq<String> = PageReq::parse(list, q.cursor.as_deref(), q.limit)?;
    let rows = saved::list(
        &state.db,
        &p.tenant,
        status,
        page.after.as_deref(),
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |s| s.id.clone())))
}

async fn get_segment(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = saved::get(&state.db, &p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(SegmentView::from(s)))
}

async fn patch_segment(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(patch): Body<SegmentPatch>,
) -> Result<HttpResponse, ApiError> {
    let s = saved::update(&state.tagger, &p.tenant, &p.actor, &id, patch).await?;
    Ok(HttpResponse::Ok().json(SegmentView::from(s)))
}

async fn delete_segment(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = saved::archive(&state.tagger, &p.tenant, &p.actor, &id).await?;
    Ok(HttpResponse::Ok().json(SegmentView::from(s)))
}

async fn refresh(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = saved::get(&state.db, &p.tenant, &id).await?;
    let r = saved::refresh(&state.tagger, &s, Cause::Manual, Some(&p.actor)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "count": r.count,
        "at": r.at,
        "took_ms": r.took_ms,
        "segment": SegmentView::from(r.segment),
    })))
}

async fn sizes(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<i64> = q.read("saved-segment-sizes")?;
    let rows = saved::sizes(&state.db, &p.tenant, &id, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |z| z.id)))
}

/// The expanded condition of an active saved segment, checked again now (a rule it reads may
/// have changed since it was saved).
pub(super) async fn live_condition(
    state: &ApiState,
    s: &segment::Model,
) -> Result<rules::Expanded, ApiError> {
    if s.status != ACTIVE {
        return Err(SavedError::Conflict {
            code: "segment_archived",
            message: format!("the saved segment `{}` is archived", s.id),
        }
        .into());
    }
    let doc: Value = serde_json::from_str(&s.condition).unwrap_or(Value::Null);
    let limits = state.tagger.engine.rules.limits();
    match tag_rules::check(&state.db, &s.tenant_id, None, &doc, limits).await {
        Ok((_, expanded)) => Ok(expanded),
        Err(tag_rules::RuleError::Invalid(errors)) => Err(SavedError::Stale(errors).into()),
        Err(e) => Err(e.into()),
    }
}

/// `?after=&limit=&fields=&tags=` of the members.
#[derive(Debug, Deserialize)]
struct MembersQuery {
    after: Option<String>,
    limit: Option<u64>,
    /// Comma-separated field keys (default: the preview sample's).
    fields: Option<String>,
    tags: Option<bool>,
}

impl MembersQuery {
    fn shown(&self) -> Result<saved::Shown, ApiError> {
        let mut shown = saved::Shown {
            tags: self.tags.unwrap_or(false),
            ..saved::Shown::default()
        };
        if let Some(f) = &self.fields {
            shown.fields = f
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect();
            check_fields(&shown.fields)?;
        }
        Ok(shown)
    }
}

async fn members(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<MembersQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = params::limit(q.limit, MEMBERS_DEFAULT, MEMBERS_MAX)?;
    let shown = q.shown()?;
    let after = q.after.filter(|a| !a.is_empty());
    let s = saved::get(&state.db, &p.tenant, &id).await?;
    let cond = live_condition(&state, &s).await?;
    let at = state.tagger.at(&p.tenant);
    let r = segments::reader(&state.db).await?;
    // A real-time segment's members as the engine keeps them, once built; else evaluated now.
    let page = if saved::kept_members(&s) {
        saved::kept_page(&r, &p.tenant, &s.id, after.as_deref(), limit, &shown).await?
    } else {
        saved::members(&r, &p.tenant, &cond, &at, after.as_deref(), limit, &shown).await?
    };
    r.commit().await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn export(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(b): Body<ExportBody>,
) -> Result<HttpResponse, ApiError> {
    let s = saved::get(&state.db, &p.tenant, &id).await?;
    let cond = live_condition(&state, &s).await?;
    check_fields(&b.fields)?;
    let at = state.tagger.at(&p.tenant);
    let filename = format!("segment-{}.csv", s.id);
    Ok(csv_response(
        state.db.clone(),
        p.tenant,
        cond,
        at,
        b.fields,
        &filename,
    ))
}
