//! The app registry's handlers: apps listed, registered, read, changed, removed and tested (an
//! access token fetched with the app's secret).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use platform::config::Secret;
use platform::http::ApiError;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::access::AdminPrincipal;
use crate::api::admin::audit;
use crate::api::admin::page::{self, Page, PageQuery};
use crate::api::GatewayState;
use crate::config::AppSeed;
use crate::wechat_api::WechatApi;

use super::checks::check;
use super::{app_key, invalid, no_app, own, path_app, view, AppChange, AppView, NewApp, Values};

pub(super) async fn list(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let w = q.window("apps")?;
    let mut all = state.registry.list(&p.tenant_id).await?;
    all.sort_by_key(app_key);
    let (rows, next_cursor) = page::of_sorted(all, &w, app_key);
    let items: Vec<AppView> = rows.iter().map(|a| view(&state, &req, a)).collect();
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

pub(super) async fn create(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    body: web::Json<NewApp>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    check(&Values {
        kind: b.kind,
        app_id: &b.app_id,
        agent_id: b.agent_id,
        token: b.token.as_deref(),
        aes: b.encoding_aes_key.as_deref(),
        secret: b.secret.as_deref(),
    })?;
    if state.registry.owner_of(b.kind, &b.app_id).await?.is_some() {
        return Err(ApiError::conflict(
            "app_registered",
            format!(
                "`app_id`: {} app `{}` is registered already (PATCH it)",
                b.kind.as_str(),
                b.app_id
            ),
        )
        .with_details(json!({"field": "app_id"})));
    }
    let seed = AppSeed {
        tenant_id: p.tenant_id.clone(),
        kind: b.kind,
        app_id: b.app_id.clone(),
        name: b.name.clone(),
        agent_id: b.agent_id,
        token: b.token.map(Secret::new),
        encoding_aes_key: b.encoding_aes_key.map(Secret::new),
        secret: b.secret.map(Secret::new),
    };
    state.registry.upsert(&seed).await?;
    let a = own(&state, &p.tenant_id, b.kind, &b.app_id).await?;
    let after = view(&state, &req, &a);
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::CREATED,
        json!({"after": after}),
    )
    .await;
    Ok(HttpResponse::Created().json(after))
}

pub(super) async fn get(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, app_id) = path_app(&path)?;
    let a = own(&state, &p.tenant_id, kind, &app_id).await?;
    Ok(HttpResponse::Ok().json(view(&state, &req, &a)))
}

pub(super) async fn update(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    path: web::Path<(String, String)>,
    body: web::Json<AppChange>,
) -> Result<HttpResponse, ApiError> {
    let (kind, app_id) = path_app(&path)?;
    let before = own(&state, &p.tenant_id, kind, &app_id).await?;
    let current = state
        .registry
        .get(kind, &app_id)
        .await?
        .ok_or_else(|| no_app(kind, &app_id))?;
    let b = body.into_inner();
    // The token and secret not given stay as they are. The EncodingAESKey is kept only inside
    // the message crypto, so an app that has one needs it again with any change.
    if current.crypto.is_some() && b.encoding_aes_key.is_none() {
        return Err(invalid(
            "missing_field",
            "encoding_aes_key",
            "must be given again with any change (it is stored sealed and not shown)",
        ));
    }
    let kept_token = Some(current.token.expose().to_string()).filter(|t| !t.is_empty());
    let token = b.token.or(kept_token);
    let secret = b.secret.map(Secret::new).or_else(|| current.secret.clone());
    let agent_id = b.agent_id.or(current.agent_id);
    check(&Values {
        kind,
        app_id: &app_id,
        agent_id: if kind.takes_callbacks() {
            b.agent_id
        } else {
            agent_id
        },
        token: token.as_deref(),
        aes: b.encoding_aes_key.as_deref(),
        secret: secret.as_ref().map(|s| s.expose()),
    })?;
    let seed_aes = b.encoding_aes_key.map(Secret::new);
    let seed = AppSeed {
        tenant_id: p.tenant_id.clone(),
        kind,
        app_id: app_id.clone(),
        name: b.name.or(Some(before.name.clone())),
        agent_id,
        token: token.map(Secret::new),
        encoding_aes_key: seed_aes,
        secret,
    };
    state.registry.upsert(&seed).await?;
    let after = own(&state, &p.tenant_id, kind, &app_id).await?;
    let after = view(&state, &req, &after);
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::OK,
        json!({"before": view(&state, &req, &before), "after": after}),
    )
    .await;
    Ok(HttpResponse::Ok().json(after))
}

pub(super) async fn remove(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, app_id) = path_app(&path)?;
    if !state.registry.remove(&p.tenant_id, kind, &app_id).await? {
        return Err(ApiError::not_found(format!(
            "no {} app `{app_id}`",
            kind.as_str()
        )));
    }
    audit(&state.access, &req, &p, StatusCode::NO_CONTENT, json!({})).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Fetches an access token through the keeper: the secret is right and WeChat answers. The
/// test's outcome is the answer: `ok: false` with WeChat's refusal, or why WeChat could not be
/// reached, is a test that ran (200), not a failure of this API.
pub(super) async fn test(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, app_id) = path_app(&path)?;
    let app = state
        .registry
        .get(kind, &app_id)
        .await?
        .filter(|a| a.tenant_id == p.tenant_id)
        .ok_or_else(|| no_app(kind, &app_id))?;
    let credentials = WechatApi::credentials(&app).ok_or_else(|| {
        ApiError::conflict(
            "app_without_secret",
            format!("`secret`: app `{app_id}` has no API secret"),
        )
    })?;
    let outcome = match state.wechat.kept_token(&credentials, None).await {
        Ok(kept) => AppTest {
            ok: true,
            token_expires_at: Some(kept.expires_at),
            error: None,
        },
        Err(e) => {
            let e = crate::api::internal::token_error(&e);
            AppTest {
                ok: false,
                token_expires_at: None,
                error: Some(TestFailure {
                    code: e.code.to_string(),
                    message: e.message,
                    details: e.details,
                }),
            }
        }
    };
    Ok(HttpResponse::Ok().json(outcome))
}

/// The outcome of an app's test.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api::admin) struct AppTest {
    /// WeChat gave an access token for the app's secret.
    ok: bool,
    /// Unix seconds after which the keeper fetches a new token (when `ok`).
    token_expires_at: Option<i64>,
    /// Why not (when not `ok`): WeChat's refusal (`wechat_refused`, with its errcode) or why
    /// it could not be reached (`wechat_unavailable`, `token_unavailable`).
    error: Option<TestFailure>,
}

/// Why an app's test failed.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api::admin) struct TestFailure {
    code: String,
    message: String,
    /// WeChat's `errcode` and `errmsg` when it answered.
    details: serde_json::Value,
}
