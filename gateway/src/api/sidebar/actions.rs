//! What a rep does from the sidebar, each as the rep (`rep:<corp>:<userid>`) and in the audit
//! log: tag and untag the customer (tagging writes a tag of a WeCom-synced group back to WeCom),
//! move the stage (the stage machine's allowed moves and guards: 409 with the reason), mark the
//! customer contacted (meets the stage's SLA), write, list, edit and delete notes (identity keeps
//! them in the customer's timeline; only their author or an admin edits one), and list the rep's
//! own customers by score, stage or last activity, and the notifications sent to them (newest
//! first, every status: a card WeCom did not deliver is still news).

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Route};
use platform::http::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{Body, MoveBody, NewNote, NoteEdit, TagsBody};
use super::{audit, customer, profile_id, Rep, SidebarRoute};
use crate::api::GatewayState;
use crate::services::Service;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &SidebarRoute, route: Route) -> bool {
    let path = r.path;
    match (r.method, path) {
        ("POST", "/sidebar/v1/customers/{external_userid}/tags") => {
            cfg.route(path, route.to(post_tags));
        }
        ("POST", "/sidebar/v1/customers/{external_userid}/stage") => {
            cfg.route(path, route.to(post_stage));
        }
        ("POST", "/sidebar/v1/customers/{external_userid}/contacted") => {
            cfg.route(path, route.to(post_contacted));
        }
        ("GET", "/sidebar/v1/customers/{external_userid}/notes") => {
            cfg.route(path, route.to(get_notes));
        }
        ("POST", "/sidebar/v1/customers/{external_userid}/notes") => {
            cfg.route(path, route.to(post_note));
        }
        ("PATCH", "/sidebar/v1/notes/{id}") => {
            cfg.route(path, route.to(patch_note));
        }
        ("DELETE", "/sidebar/v1/notes/{id}") => {
            cfg.route(path, route.to(delete_note));
        }
        ("GET", "/sidebar/v1/leads") => {
            cfg.route(path, route.to(get_leads));
        }
        ("GET", "/sidebar/v1/inbox") => {
            cfg.route(path, route.to(get_inbox));
        }
        _ => return false,
    }
    true
}

/// A service's answer passed on as it is.
fn passed(status: StatusCode, body: Value) -> HttpResponse {
    if status == StatusCode::NO_CONTENT {
        return HttpResponse::NoContent().finish();
    }
    HttpResponse::build(status).json(body)
}

/// Calls `service` as the rep and, for a write, records it in the audit log.
#[allow(clippy::too_many_arguments)]
async fn act(
    state: &GatewayState,
    req: &HttpRequest,
    rep: &Rep,
    service: Service,
    method: Method,
    path: &str,
    body: Option<&Value>,
    target: &str,
) -> Result<(StatusCode, Value), ApiError> {
    let (status, answer) = state
        .services
        .json(service, method.clone(), path, body, &rep.p)
        .await?;
    if method != Method::GET {
        audit(
            state,
            req,
            rep,
            status,
            target,
            json!({"request": body, "after": crate::api::admin::redacted(&answer)}),
        )
        .await;
    }
    Ok((status, answer))
}

async fn post_tags(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    ext: web::Path<String>,
    Body(b): Body<TagsBody>,
) -> Result<HttpResponse, ApiError> {
    if b.add.is_empty() && b.remove.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            "give tag ids in `add` and/or `remove`",
        )
        .with_details(json!({"field": "add"})));
    }
    if b.add.len() + b.remove.len() > 50 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "`add`: at most 50 tags in one request",
        )
        .with_details(json!({"field": "add"})));
    }
    let profile = customer(&state, &rep, &ext).await?;
    let id = profile_id(&profile)?;
    let target = format!("customer:{id}");
    let mut changes = Vec::new();
    for (i, t) in b.add.iter().enumerate() {
        let (status, answer) = act(
            &state,
            &req,
            &rep,
            Service::Tagging,
            Method::POST,
            &format!("/v1/profiles/{id}/tags"),
            Some(&json!({"tag_id": t})),
            &target,
        )
        .await?;
        if !status.is_success() {
            return Ok(passed(status, named(answer, &format!("add[{i}]"))));
        }
        changes.push(json!({"tag_id": t, "added": true, "changes": answer["changes"]}));
    }
    for (i, t) in b.remove.iter().enumerate() {
        let t_enc: String = serde_urlencoded::to_string([("", t.as_str())])
            .unwrap_or_default()
            .trim_start_matches('=')
            .to_string();
        let (status, answer) = act(
            &state,
            &req,
            &rep,
            Service::Tagging,
            Method::DELETE,
            &format!("/v1/profiles/{id}/tags/{t_enc}"),
            None,
            &target,
        )
        .await?;
        if !status.is_success() {
            return Ok(passed(status, named(answer, &format!("remove[{i}]"))));
        }
        changes.push(json!({"tag_id": t, "added": false, "changes": answer["changes"]}));
    }
    Ok(HttpResponse::Ok().json(json!({"profile_id": id, "changes": changes})))
}

/// A service's error answer with `details.field` naming the request's field.
fn named(mut answer: Value, field: &str) -> Value {
    if let Some(o) = answer.as_object_mut() {
        let details = o.entry("details").or_insert_with(|| json!({}));
        if let Some(d) = details.as_object_mut() {
            d.insert("field".into(), json!(field));
        }
    }
    answer
}

/// A typed body as the JSON a service is sent.
fn passed_on<T: serde::Serialize>(body: &T) -> Result<Value, ApiError> {
    serde_json::to_value(body)
        .map_err(|e| ApiError::internal(format!("a body did not encode: {e}")))
}

/// Passes a request about the customer `ext` on to `service` at `/v1/profiles/{id}{suffix}`, as
/// the rep and once the rep may see the customer, and answers what the service answered.
#[allow(clippy::too_many_arguments)]
async fn on_customer(
    state: &GatewayState,
    req: &HttpRequest,
    rep: &Rep,
    ext: &str,
    service: Service,
    method: Method,
    suffix: &str,
    body: Option<&Value>,
) -> Result<HttpResponse, ApiError> {
    let profile = customer(state, rep, ext).await?;
    let id = profile_id(&profile)?;
    let path = format!("/v1/profiles/{id}{suffix}");
    let target = format!("customer:{id}");
    let (status, answer) = act(state, req, rep, service, method, &path, body, &target).await?;
    Ok(passed(status, answer))
}

async fn post_stage(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    ext: web::Path<String>,
    Body(b): Body<MoveBody>,
) -> Result<HttpResponse, ApiError> {
    on_customer(
        &state,
        &req,
        &rep,
        &ext,
        Service::Scoring,
        Method::POST,
        "/stage",
        Some(&passed_on(&b)?),
    )
    .await
}

async fn post_contacted(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    ext: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    on_customer(
        &state,
        &req,
        &rep,
        &ext,
        Service::Scoring,
        Method::POST,
        "/contacted",
        None,
    )
    .await
}

/// `?cursor=&limit=` of a list, passed on.
#[derive(Debug, Default, Deserialize)]
struct PageParams {
    cursor: Option<String>,
    limit: Option<u64>,
}

fn page_query(p: &PageParams) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(c) = &p.cursor {
        q.push(("cursor", c.clone()));
    }
    if let Some(l) = p.limit {
        q.push(("limit", l.to_string()));
    }
    serde_urlencoded::to_string(q).unwrap_or_default()
}

async fn get_notes(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    ext: web::Path<String>,
    q: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let suffix = format!("/notes?{}", page_query(&q));
    on_customer(
        &state,
        &req,
        &rep,
        &ext,
        Service::Identity,
        Method::GET,
        &suffix,
        None,
    )
    .await
}

async fn post_note(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    ext: web::Path<String>,
    Body(b): Body<NewNote>,
) -> Result<HttpResponse, ApiError> {
    on_customer(
        &state,
        &req,
        &rep,
        &ext,
        Service::Identity,
        Method::POST,
        "/notes",
        Some(&passed_on(&b)?),
    )
    .await
}

/// Passes a change of note `id` on to identity as the rep (identity lets only the author, or an
/// admin, change it).
async fn on_note(
    state: &GatewayState,
    req: &HttpRequest,
    rep: &Rep,
    id: &str,
    method: Method,
    body: Option<&Value>,
) -> Result<HttpResponse, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(ApiError::not_found(format!("no note `{id}`")));
    }
    let path = format!("/v1/notes/{id}");
    let target = format!("note:{id}");
    let (status, answer) = act(
        state,
        req,
        rep,
        Service::Identity,
        method,
        &path,
        body,
        &target,
    )
    .await?;
    Ok(passed(status, answer))
}

async fn patch_note(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    id: web::Path<String>,
    Body(b): Body<NoteEdit>,
) -> Result<HttpResponse, ApiError> {
    on_note(
        &state,
        &req,
        &rep,
        &id,
        Method::PATCH,
        Some(&passed_on(&b)?),
    )
    .await
}

async fn delete_note(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    on_note(&state, &req, &rep, &id, Method::DELETE, None).await
}

/// `GET /sidebar/v1/leads`: the rep's own customers.
#[derive(Debug, Default, Deserialize)]
struct LeadsParams {
    /// `score` (with `model`), `stage` or `last_active` (default).
    sort: Option<String>,
    model: Option<String>,
    stage: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn get_leads(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    rep: Rep,
    q: web::Query<LeadsParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let mut params: Vec<(&str, String)> = vec![
        ("owner", rep.member.userid.clone()),
        ("owner_corp", rep.member.corp_id.clone()),
    ];
    for (k, v) in [
        ("sort", q.sort),
        ("model", q.model),
        ("stage", q.stage),
        ("cursor", q.cursor),
    ] {
        if let Some(v) = v {
            params.push((k, v));
        }
    }
    if let Some(l) = q.limit {
        params.push(("limit", l.to_string()));
    }
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let (status, answer) = act(
        &state,
        &req,
        &rep,
        Service::Scoring,
        Method::GET,
        &format!("/v1/customers?{query}"),
        None,
        "",
    )
    .await?;
    Ok(passed(status, answer))
}

async fn get_inbox(
    state: web::Data<GatewayState>,
    rep: Rep,
    q: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let req: platform::http::page::PageReq<i64> = platform::http::page::PageReq::parse(
        crate::notify::store::INBOX_LIST,
        q.cursor.as_deref(),
        q.limit,
    )?;
    let page = crate::notify::store::inbox(
        state.access.db(),
        &rep.p.tenant_id,
        &rep.member.corp_id,
        &rep.member.userid,
        &req,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}
