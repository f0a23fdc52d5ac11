//! Channel codes (渠道活码) of the admin API: WeCom contact-me codes and Official Account
//! parametric QR codes, made at WeChat with the tenant's registered app and kept here.
//!
//! | route | answer |
//! |---|---|
//! | `POST /admin/v1/channel-codes` `{kind, app_id, name, source_id?, key?, reps?, skip_verify?, temporary?, expires_in?, tags?}` | the code (201) with its `image_url` |
//! | `GET /admin/v1/channel-codes`, `/admin/v1/channel-codes/{id}` | the tenant's codes (paged), one code |
//! | `PATCH /admin/v1/channel-codes/{id}` `{name?, reps?, skip_verify?}` | the code changed (a contact-me code's reps, verification and remark at WeChat too; a single-rep code keeps one rep); a retired one is 409 `code_retired` |
//! | `POST /admin/v1/channel-codes/{id}/retire` | the code, retired |
//!
//! A code's entry key (the contact-me `state`, the QR scene; generated when not given) is bound
//! in the source registry to `source_id` before WeChat is asked, so a customer arriving through
//! it is attributed to that source from the first callback; a key bound elsewhere is identity's
//! 409 `key_taken`, an unknown source its 404. Each default tag is kept by an `add_only` tag rule
//! on "first or latest touch through the key" (an unknown tag is tagging's refusal). WeChat's
//! refusal is 422 `wechat_refused` with its
//! `errcode` (the binding is undone); WeChat unreachable, 503. Retiring deletes a contact-me
//! code at WeChat (WeChat cannot delete a QR code: it keeps working, unattributed) and unbinds
//! its key. Every write is in the audit log; another tenant's code is 404.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Route};
use chrono::Utc;
use platform::http::ApiError;
use serde_json::json;

use super::audit;
use super::page::{Page, PageQuery};
use super::proxy::url_escape;
use super::routes::AdminRoute;
use crate::access::AdminPrincipal;
use crate::api::GatewayState;
use crate::domain::channel_code::{self, CodeChange, CodeKind, NewChannelCode};
use crate::registry::AppKind;
use crate::services::Service;
use crate::store::channel_codes::{self as store, code, CodeView};
use crate::wechat_api::WechatApi;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &AdminRoute, route: Route) -> bool {
    match (r.method, r.path) {
        ("POST", "/admin/v1/channel-codes") => {
            cfg.route(r.path, route.to(create));
            true
        }
        ("GET", "/admin/v1/channel-codes") => {
            cfg.route(r.path, route.to(list));
            true
        }
        ("GET", "/admin/v1/channel-codes/{id}") => {
            cfg.route(r.path, route.to(get));
            true
        }
        ("PATCH", "/admin/v1/channel-codes/{id}") => {
            cfg.route(r.path, route.to(update));
            true
        }
        ("POST", "/admin/v1/channel-codes/{id}/retire") => {
            cfg.route(r.path, route.to(retire));
            true
        }
        _ => false,
    }
}

fn storage(e: sea_orm::DbErr) -> ApiError {
    ApiError::internal(e.to_string())
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no channel code with id `{id}`"),
    )
}

fn app_kind(kind: CodeKind) -> AppKind {
    match kind {
        CodeKind::WecomContactWay => AppKind::Wecom,
        CodeKind::OaQrcode => AppKind::Oa,
    }
}

fn wechat_error(e: wechat::api::ApiError) -> ApiError {
    match e.errcode() {
        Some(code) if !e.is_transient() => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wechat_refused",
            format!("WeChat refused the code: {e}"),
        )
        .with_details(json!({ "errcode": code })),
        _ => ApiError::unavailable("wechat_unavailable", e.to_string()),
    }
}

/// `{source_id}/bindings` of identity's registry, for `p`: `Err` with identity's answer when
/// it refused.
async fn binding(
    state: &GatewayState,
    p: &AdminPrincipal,
    method: Method,
    source: &str,
    kind: CodeKind,
    key: &str,
) -> Result<Result<(), HttpResponse>, ApiError> {
    let base = format!("/v1/sources/{}/bindings", url_escape(source));
    let (path, body) = if method == Method::POST {
        (
            base,
            Some(json!({"kind": kind.binding_kind(), "value": key})),
        )
    } else {
        (
            format!("{base}/{}/{}", kind.binding_kind(), url_escape(key)),
            None,
        )
    };
    let (status, v) = state
        .services
        .json(Service::Identity, method, &path, body.as_ref(), p)
        .await
        .map_err(platform::ServiceError::from)?;
    Ok(if status.is_success() {
        Ok(())
    } else {
        Err(HttpResponse::build(status).json(v))
    })
}

/// Creates the `add_only` rule keeping `tag` on customers arriving through the code: its id,
/// or tagging's refusal (an unknown tag).
async fn tag_rule(
    state: &GatewayState,
    p: &AdminPrincipal,
    tag: &str,
    plan: &channel_code::Plan,
) -> Result<Result<String, HttpResponse>, ApiError> {
    let body = json!({
        "tag_id": tag,
        "name": format!("Channel code {}: {}", plan.key, plan.name),
        "condition": channel_code::arrival_condition(&plan.key),
        "mode": "add_only",
    });
    let (status, v) = state
        .services
        .json(
            Service::Tagging,
            Method::POST,
            "/v1/tag-rules",
            Some(&body),
            p,
        )
        .await
        .map_err(platform::ServiceError::from)?;
    if !status.is_success() {
        return Ok(Err(HttpResponse::build(status).json(v)));
    }
    Ok(Ok(v["rule"]["id"].as_str().unwrap_or_default().to_string()))
}

/// Takes back what a code that was not made had set up: its default-tag rules and its key's
/// binding (best effort: what cannot be undone is logged).
async fn undo(
    state: &GatewayState,
    p: &AdminPrincipal,
    b: &NewChannelCode,
    key: &str,
    rules: &[String],
) {
    for id in rules {
        let path = format!("/v1/tag-rules/{}", url_escape(id));
        match state
            .services
            .json(Service::Tagging, Method::DELETE, &path, None, p)
            .await
        {
            Ok((s, _)) if s.is_success() => {}
            _ => tracing::warn!(rule_id = %id, "A code not made keeps its tag rule"),
        }
    }
    if let Some(source) = &b.source_id {
        if !matches!(
            binding(state, p, Method::DELETE, source, b.kind, key).await,
            Ok(Ok(()))
        ) {
            tracing::warn!(source_id = %source, "A code not made keeps its key bound");
        }
    }
}

/// An entry key for a code that names none: `cc_` and 12 random letters and digits.
fn generated_key() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("cc_{}", &id[..12])
}

async fn create(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    body: web::Json<NewChannelCode>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let plan = channel_code::plan(&b, &generated_key()).map_err(|e| {
        ApiError::bad_request("invalid_field", e.to_string())
            .with_details(json!({"field": e.field, "reason": e.reason}))
    })?;
    let app = state
        .registry
        .get(app_kind(b.kind), &b.app_id)
        .await
        .map_err(|e| ApiError::unavailable("registry_unavailable", e.to_string()))?
        .filter(|a| a.tenant_id == p.tenant_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_app",
                format!(
                    "app_id: no {} app `{}` in this tenant",
                    app_kind(b.kind).as_str(),
                    b.app_id
                ),
            )
        })?;
    let credentials = WechatApi::credentials(&app).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "app_without_secret",
            format!("app_id: `{}` has no secret registered", b.app_id),
        )
    })?;
    if store::key_used(&state.db, &b.app_id, b.kind.as_str(), &plan.key)
        .await
        .map_err(storage)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_in_use",
            format!("key: `{}` is the key of another code of this app", plan.key),
        )
        .with_details(json!({"field": "key"})));
    }
    // Bound and tagged first: the first customer through the code is attributed and tagged.
    if let Some(source) = &b.source_id {
        if let Err(refused) = binding(&state, &p, Method::POST, source, b.kind, &plan.key).await? {
            return Ok(refused);
        }
    }
    let mut rules = Vec::new();
    for tag in &b.tags {
        match tag_rule(&state, &p, tag, &plan).await {
            Ok(Ok(id)) => rules.push(id),
            Ok(Err(refused)) => {
                undo(&state, &p, &b, &plan.key, &rules).await;
                return Ok(refused);
            }
            Err(e) => {
                undo(&state, &p, &b, &plan.key, &rules).await;
                return Err(e);
            }
        }
    }
    let made = state
        .wechat
        .create_channel_code(&credentials, &plan.wechat)
        .await;
    let (wechat_ref, image_url) = match made {
        Ok(m) => m,
        Err(e) => {
            undo(&state, &p, &b, &plan.key, &rules).await;
            return Err(wechat_error(e));
        }
    };
    let now = Utc::now();
    let expires = match &plan.wechat {
        channel_code::WechatCode::ContactWay(w) => w.expires_in,
        channel_code::WechatCode::QrCode { expire_seconds, .. } => *expire_seconds,
    };
    let (reps, skip_verify) = match &plan.wechat {
        channel_code::WechatCode::ContactWay(w) => (w.user.clone(), w.skip_verify),
        channel_code::WechatCode::QrCode { .. } => (Vec::new(), false),
    };
    let c = store::insert(
        &state.db,
        code::Model {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: p.tenant_id.clone(),
            kind: b.kind.as_str().to_string(),
            app_id: b.app_id.clone(),
            name: plan.name.clone(),
            source_id: b.source_id.clone(),
            entry_key: plan.key.clone(),
            wechat_ref,
            image_url,
            reps: serde_json::to_string(&reps).unwrap_or_else(|_| "[]".into()),
            skip_verify,
            temporary: b.temporary,
            tags: serde_json::to_string(&b.tags).unwrap_or_else(|_| "[]".into()),
            tag_rules: serde_json::to_string(&rules).unwrap_or_else(|_| "[]".into()),
            expires_at: expires.map(|s| now + chrono::Duration::seconds(i64::from(s))),
            created_by: p.actor(),
            created_at: now,
            retired_at: None,
        },
    )
    .await
    .map_err(storage)?;
    let view = CodeView::from(c);
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::CREATED,
        json!({"id": view.id, "kind": view.kind, "app_id": view.app_id, "key": view.key,
               "source_id": view.source_id, "reps": view.reps}),
    )
    .await;
    Ok(HttpResponse::Created().json(view))
}

async fn list(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let w = q.window("channel-codes")?;
    let rows = store::list(&state.db, &p.tenant_id, w.after.as_deref(), w.limit + 1)
        .await
        .map_err(storage)?;
    let more = rows.len() as u64 > w.limit;
    let mut items: Vec<CodeView> = rows.into_iter().map(CodeView::from).collect();
    items.truncate(w.limit as usize);
    let next_cursor = if more {
        items.last().map(|c| w.cursor(&c.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

async fn get(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = store::get_in(&state.db, &p.tenant_id, &id)
        .await
        .map_err(storage)?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(CodeView::from(c)))
}

async fn update(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
    body: web::Json<CodeChange>,
) -> Result<HttpResponse, ApiError> {
    let c = store::get_in(&state.db, &p.tenant_id, &id)
        .await
        .map_err(storage)?
        .ok_or_else(|| not_found(&id))?;
    if c.retired_at.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "code_retired",
            format!("the channel code `{id}` is retired"),
        ));
    }
    let kind = CodeKind::parse(&c.kind).ok_or_else(|| not_found(&id))?;
    let view = CodeView::from(c.clone());
    let cur = channel_code::Current {
        kind,
        name: view.name,
        key: view.key,
        reps: view.reps,
        skip_verify: view.skip_verify,
    };
    let changed = channel_code::change(&cur, &body).map_err(|e| {
        ApiError::bad_request("invalid_field", e.to_string())
            .with_details(json!({"field": e.field, "reason": e.reason}))
    })?;
    if let Some(way) = &changed.wechat {
        let app = state
            .registry
            .get(AppKind::Wecom, &c.app_id)
            .await
            .map_err(|e| ApiError::unavailable("registry_unavailable", e.to_string()))?;
        let credentials = app
            .as_deref()
            .and_then(WechatApi::credentials)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "app_without_secret",
                    format!("app_id: `{}` has no secret registered", c.app_id),
                )
            })?;
        state
            .wechat
            .update_contact_way(&credentials, &c.wechat_ref, way)
            .await
            .map_err(wechat_error)?;
    }
    let c = store::update(
        &state.db,
        c,
        changed.name,
        &changed.reps,
        changed.skip_verify,
    )
    .await
    .map_err(storage)?;
    let view = CodeView::from(c);
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::OK,
        json!({"id": view.id, "name": view.name, "reps": view.reps, "skip_verify": view.skip_verify}),
    )
    .await;
    Ok(HttpResponse::Ok().json(view))
}

async fn retire(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = store::get_in(&state.db, &p.tenant_id, &id)
        .await
        .map_err(storage)?
        .ok_or_else(|| not_found(&id))?;
    if c.retired_at.is_some() {
        return Ok(HttpResponse::Ok().json(CodeView::from(c)));
    }
    let kind = CodeKind::parse(&c.kind).ok_or_else(|| not_found(&id))?;
    if kind == CodeKind::WecomContactWay {
        let app = state
            .registry
            .get(AppKind::Wecom, &c.app_id)
            .await
            .map_err(|e| ApiError::unavailable("registry_unavailable", e.to_string()))?;
        if let Some(credentials) = app.as_deref().and_then(WechatApi::credentials) {
            match state
                .wechat
                .retire_contact_way(&credentials, &c.wechat_ref)
                .await
            {
                // Already gone at WeChat (deleted there, or expired).
                Err(e) if e.errcode() == Some(41044) => {}
                Err(e) => return Err(wechat_error(e)),
                Ok(()) => {}
            }
        }
    }
    if let Some(source) = c.source_id.clone() {
        // A key the operator unbound already is fine.
        let _ = binding(&state, &p, Method::DELETE, &source, kind, &c.entry_key).await?;
    }
    let c = store::retire(&state.db, c, Utc::now())
        .await
        .map_err(storage)?;
    let view = CodeView::from(c);
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::OK,
        json!({"id": view.id, "kind": view.kind, "key": view.key}),
    )
    .await;
    Ok(HttpResponse::Ok().json(view))
}
