//! Personas: a saved segment described by the traits its members are expected to share, its
//! report against the whole tenant, and the validation of its expected response to a campaign
//! (see [`crate::domain::persona`]).
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/personas` `{name, segment_id, description?, traits?: [{label?, dimension, values}], expected_response_rate?}` | 201 the persona |
//! | `GET /v1/personas?cursor=&limit=` | the tenant's personas, in the order they were created |
//! | `GET` / `PATCH` / `DELETE /v1/personas/{id}` | the persona; `PATCH` replaces the fields given (`expected_response_rate: null` clears it); `DELETE` 204 |
//! | `GET /v1/personas/{id}/report?min_count=` | `{persona, segment: {id, name, members, as_of}, tenant: {profiles}, expected: [...], strongest: [...], dimensions: [{kind, key?, buckets: [{key, label?, segment: {count, share}, tenant, lift, tgi}]}], took_ms}` |
//! | `POST /v1/personas/{id}/validate` `{response: {event?, content_tag?, from, days}, expected_rate?}` | `{response, segment, rest, tenant: {members, responders, rate, ci95}, lift, z, above_rest, expected_rate?, difference?, expected_within_ci?}` |
//!
//! A trait's `dimension` is an analytics dimension (`{kind: "property", key: "contact.city"}`,
//! `{kind: "stage"}`, `{kind: "content_tags", window}`, `{kind: "tags"}`, `{kind: "bands", key,
//! bounds}` …) and its `values` the bucket keys that make the trait. The persona's segment is
//! read live (what matches now); an archived segment is 409 `segment_archived`. A validation's
//! expected rate defaults to the persona's.

use actix_web::{web, HttpResponse};
use platform::http::body::{Body, RequestBody};
use platform::http::{ApiError, Principal};
use platform::ServiceError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::page::PageReq;
use super::saved_segments::live_condition;
use super::ApiState;
use crate::domain::persona::{
    compare, expected, position, report_dimensions, strongest, validate, Compared, Response,
    DEFAULT_MIN_COUNT,
};
use crate::store::personas::{self, NewPersona, PersonaError, PersonaPatch, PersonaView};
use crate::store::{analytics, rules as tag_rules, saved, segments};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/personas", web::post().to(post_persona))
        .route("/v1/personas", web::get().to(list_personas))
        .route("/v1/personas/{id}", web::get().to(get_persona))
        .route("/v1/personas/{id}", web::patch().to(patch_persona))
        .route("/v1/personas/{id}", web::delete().to(delete_persona))
        .route("/v1/personas/{id}/report", web::get().to(report))
        .route("/v1/personas/{id}/validate", web::post().to(post_validate));
}

impl From<PersonaError> for ServiceError {
    fn from(e: PersonaError) -> Self {
        match e {
            PersonaError::Missing(f) => ServiceError::missing(f),
            PersonaError::Field { field, message } => {
                ServiceError::invalid("invalid_field", format!("`{field}`: {message}"))
                    .with_details(json!({"field": field}))
            }
            PersonaError::NotFound(m) => ServiceError::not_found(m),
            PersonaError::Duplicate => {
                ServiceError::conflict("duplicate_name", "a persona with this name exists already")
            }
            PersonaError::Db(e) => ServiceError::Db(e),
        }
    }
}

/// Fields callers typed before the service credential carried the tenant and the actor.
const FROM_CREDENTIAL: &[&str] = &["tenant_id", "operator", "actor"];

impl RequestBody for NewPersona {
    const IGNORED: &'static [&'static str] = FROM_CREDENTIAL;
}

impl RequestBody for PersonaPatch {
    const IGNORED: &'static [&'static str] = FROM_CREDENTIAL;
}

async fn post_persona(
    state: web::Data<ApiState>,
    p: Principal,
    Body(n): Body<NewPersona>,
) -> Result<HttpResponse, ApiError> {
    let now = state.tagger.clock.now();
    let m = personas::create(&state.db, &p.tenant, &p.actor, n, now).await?;
    Ok(HttpResponse::Created().json(PersonaView::from(m)))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn list_personas(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<String> = PageReq::parse("personas", q.cursor.as_deref(), q.limit)?;
    let rows = personas::list(&state.db, &p.tenant, page.after.as_deref(), page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |v| v.id.clone())))
}

async fn get_persona(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let m = personas::get(&state.db, &p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(PersonaView::from(m)))
}

async fn patch_persona(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(patch): Body<PersonaPatch>,
) -> Result<HttpResponse, ApiError> {
    let now = state.tagger.clock.now();
    let m = personas::update(&state.db, &p.tenant, &p.actor, &id, patch, now).await?;
    Ok(HttpResponse::Ok().json(PersonaView::from(m)))
}

async fn delete_persona(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    personas::delete(&state.db, &p.tenant, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    min_count: Option<u64>,
}

async fn report(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let tenant = p.tenant;
    let persona = PersonaView::from(personas::get(&state.db, &tenant, &id).await?);
    let s = saved::get(&state.db, &tenant, &persona.segment_id).await?;
    let cond = live_condition(&state, &s).await?;
    let dims = report_dimensions(&persona.traits);
    let at = state.tagger.at(&tenant);
    let r = segments::reader(&state.db).await?;
    // The segment as of its last scheduled refresh when that kept every dimension; the tenant
    // now (its breakdowns read counters and indexes).
    let seg = match saved::rollup::kept(&r, &s, &dims).await? {
        Some(kept) => kept,
        None => analytics::breakdown(&r, &tenant, Some(&cond), &dims, &at).await?,
    };
    let ten = analytics::breakdown(&r, &tenant, None, &dims, &at).await?;
    r.commit().await?;
    let compared: Vec<Compared> = seg
        .dimensions
        .iter()
        .zip(&ten.dimensions)
        .map(|(a, b)| compare(a, b))
        .collect();
    let traits: Vec<_> = persona
        .traits
        .iter()
        .filter_map(|t| {
            let i = position(&dims, t)?;
            Some(expected(t, &compared[i], seg.total, ten.total))
        })
        .collect();
    let min_count = q.min_count.unwrap_or(DEFAULT_MIN_COUNT);
    Ok(HttpResponse::Ok().json(json!({
        "segment": {"id": s.id, "name": s.name, "members": seg.total, "as_of": seg.as_of},
        "tenant": {"profiles": ten.total},
        "expected": traits,
        "strongest": strongest(&compared, min_count),
        "dimensions": compared,
        "persona": persona,
        "took_ms": started.elapsed().as_millis() as u64,
    })))
}

/// A campaign's response to validate the persona against.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    response: Response,
    expected_rate: Option<f64>,
}

impl RequestBody for ValidateBody {
    const IGNORED: &'static [&'static str] = FROM_CREDENTIAL;
}

fn bad(field: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_field", message).with_details(json!({ "field": field }))
}

async fn post_validate(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    Body(b): Body<ValidateBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant;
    b.response
        .check()
        .map_err(|e| bad(&e.field, format!("`{}`: {}", e.field, e.message)))?;
    if b.expected_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
        return Err(bad("expected_rate", "`expected_rate` must be 0..=1".into()));
    }
    let persona = PersonaView::from(personas::get(&state.db, &tenant, &id).await?);
    let s = saved::get(&state.db, &tenant, &persona.segment_id).await?;
    let segment = live_condition(&state, &s).await?;
    let doc: Value = serde_json::from_str(&s.condition).unwrap_or(Value::Null);
    let leaf = b.response.leaf();
    let limits = state.tagger.engine.rules.limits();
    let responded = tag_rules::check(
        &state.db,
        &tenant,
        None,
        &json!({"version": 1, "root": leaf}),
        limits,
    )
    .await?
    .1;
    let both = tag_rules::check(
        &state.db,
        &tenant,
        None,
        &json!({"version": 1, "root": {"type": "and", "children": [doc["root"], leaf]}}),
        limits,
    )
    .await?
    .1;
    let at = state.tagger.at(&tenant);
    let r = segments::reader(&state.db).await?;
    let count = |c| segments::preview(&r, &tenant, c, &at, 0);
    let seg_members = count(&segment).await?.count;
    let seg_responders = count(&both).await?.count;
    let ten_responders = count(&responded).await?.count;
    let ten_members = segments::profile_count(&r, &tenant).await?;
    r.commit().await?;
    let v = validate(
        b.response,
        (seg_members, seg_responders),
        (ten_members, ten_responders),
        b.expected_rate.or(persona.expected_response_rate),
    );
    Ok(HttpResponse::Ok().json(v))
}
