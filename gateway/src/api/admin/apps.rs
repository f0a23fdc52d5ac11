//! The runtime app registry: a tenant's owners register, update, test and remove Official
//! Accounts, mini-programs, WeCom corps and WeCom agent apps (the self-built app that sends reps
//! app messages: `app_id` the corpid, with its `agent_id`), and their write keys, without a
//! restart. Secrets are sealed at once and never returned; the answer says which are set and the
//! callback URL to paste into WeChat's console (none for an agent app, which takes no callbacks
//! here).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Route};
use platform::config::Secret;
use platform::http::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::page::{self, Page, PageQuery};
use super::routes::AdminRoute;
use super::{audit, redacted};
use crate::access::AdminPrincipal;
use crate::api::GatewayState;
use crate::config::{AppSeed, WriteKeySeed, MAX_AGENT_ID};
use crate::registry::{AppKind, AppSummary, RegistryError};
use crate::wechat_api::WechatApi;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &AdminRoute, route: Route) -> bool {
    let route = match (r.method, r.path) {
        ("GET", "/admin/v1/apps") => route.to(list),
        ("POST", "/admin/v1/apps") => route.to(create),
        ("GET", "/admin/v1/apps/{kind}/{app_id}") => route.to(get),
        ("PATCH", "/admin/v1/apps/{kind}/{app_id}") => route.to(update),
        ("DELETE", "/admin/v1/apps/{kind}/{app_id}") => route.to(remove),
        ("POST", "/admin/v1/apps/{kind}/{app_id}/test") => route.to(test),
        ("GET", "/admin/v1/write-keys") => route.to(list_keys),
        ("POST", "/admin/v1/write-keys") => route.to(create_key),
        ("DELETE", "/admin/v1/write-keys/{id}") => route.to(remove_key),
        _ => return false,
    };
    cfg.route(r.path, route);
    true
}

fn registry_error(e: RegistryError) -> ApiError {
    tracing::error!(error = %e, "App registry failed");
    ApiError::unavailable("registry_unavailable", "the app registry did not answer")
}

fn invalid(code: &'static str, field: &'static str, message: &str) -> ApiError {
    ApiError::bad_request(code, format!("`{field}` {message}"))
        .with_details(json!({"field": field}))
}

/// The app an admin path names, checked for shape (an unknown kind is a 404 like any unknown app).
fn path_app(path: &(String, String)) -> Result<(AppKind, String), ApiError> {
    let kind = AppKind::parse(&path.0).ok_or_else(|| ApiError::not_found("no such app"))?;
    Ok((kind, path.1.clone()))
}

fn no_app(kind: AppKind, app_id: &str) -> ApiError {
    ApiError::not_found(format!("no {} app `{app_id}`", kind.as_str()))
}

/// `tenant`'s app `kind`/`app_id` (a 404 when it has none: another tenant's is not there).
async fn own(
    state: &GatewayState,
    tenant: &str,
    kind: AppKind,
    app_id: &str,
) -> Result<AppSummary, ApiError> {
    state
        .registry
        .summary(tenant, kind, app_id)
        .await
        .map_err(registry_error)?
        .ok_or_else(|| no_app(kind, app_id))
}

/// An app as the admin API shows it: which secrets are set (never their values) and where
/// WeChat must send its callbacks.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AppView {
    #[serde(flatten)]
    app: AppSummary,
    /// The URL to paste into WeChat's console; null for an agent app (no callbacks here).
    callback_url: Option<String>,
}

/// The answer for an app: what is set, where WeChat must send its callbacks
/// (`gateway.public_base_url`, else the address the request came to).
fn view(state: &GatewayState, req: &HttpRequest, a: &AppSummary) -> AppView {
    let base = match &state.cfg.public_base_url {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    let callback_url = a
        .kind
        .takes_callbacks()
        .then(|| format!("{base}/wechat/{}/{}", a.kind.as_str(), a.app_id));
    AppView {
        app: a.clone(),
        callback_url,
    }
}

/// `POST /admin/v1/apps`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewApp {
    kind: AppKind,
    /// The appid / corpid (the corp's for a `wecom_agent` app).
    app_id: String,
    #[serde(default)]
    name: Option<String>,
    /// The AgentID of a `wecom_agent` app (required for it; not for the other kinds).
    #[serde(default)]
    agent_id: Option<i64>,
    /// WeChat's callback Token: 3–32 letters and digits. Required except for `wecom_agent`
    /// (which takes no callbacks here, so has none).
    #[serde(default)]
    token: Option<String>,
    /// 43 characters; required for a WeCom corp, not for a `wecom_agent` app.
    #[serde(default)]
    encoding_aes_key: Option<String>,
    /// The API secret (AppSecret / corpsecret; a `wecom_agent` app's own secret, required).
    #[serde(default)]
    secret: Option<String>,
}

/// `PATCH /admin/v1/apps/{kind}/{app_id}`: what is given changes (an app with an
/// EncodingAESKey needs it again with any change).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AppChange {
    #[serde(default)]
    name: Option<String>,
    /// A `wecom_agent` app's AgentID.
    #[serde(default)]
    agent_id: Option<i64>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    encoding_aes_key: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

/// What an app is registered with, to check.
struct Values<'a> {
    kind: AppKind,
    app_id: &'a str,
    agent_id: Option<i64>,
    token: Option<&'a str>,
    aes: Option<&'a str>,
    secret: Option<&'a str>,
}

/// Checks an app's values as WeChat defines them; the message names the field.
fn check(v: &Values<'_>) -> Result<(), ApiError> {
    let id_ok = (3..=64).contains(&v.app_id.len())
        && v.app_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(invalid(
            "invalid_app_id",
            "app_id",
            "must be the appid / corpid (3–64 letters and digits)",
        ));
    }
    if !v.kind.takes_callbacks() {
        return check_agent(v);
    }
    if v.agent_id.is_some() {
        return Err(invalid(
            "invalid_agent_id",
            "agent_id",
            "is only for kind `wecom_agent`",
        ));
    }
    let token = v.token.ok_or_else(|| {
        invalid(
            "missing_field",
            "token",
            "is required (WeChat's callback Token)",
        )
    })?;
    // WeChat: the callback Token is 3–32 letters and digits.
    if !(3..=32).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "invalid_token",
            "token",
            "must be 3–32 letters and digits (WeChat's Token)",
        ));
    }
    match v.aes {
        Some(k) => {
            wechat::crypto::MsgCrypto::new(token.to_string(), k, v.app_id.to_string()).map_err(
                |e| {
                    invalid(
                        "invalid_encoding_aes_key",
                        "encoding_aes_key",
                        &format!("is not a valid EncodingAESKey ({e})"),
                    )
                },
            )?;
        }
        None if v.kind == AppKind::Wecom => {
            return Err(invalid(
                "missing_field",
                "encoding_aes_key",
                "is required for a WeCom corp (callbacks are always encrypted)",
            ));
        }
        None => {}
    }
    Ok(())
}

/// A `wecom_agent` app: its AgentID and own secret, no callback token or key.
fn check_agent(v: &Values<'_>) -> Result<(), ApiError> {
    match v.agent_id {
        None => {
            return Err(invalid(
                "missing_field",
                "agent_id",
                "is required for a `wecom_agent` app (its AgentID)",
            ))
        }
        Some(id) if !(1..=MAX_AGENT_ID).contains(&id) => {
            return Err(invalid(
                "invalid_agent_id",
                "agent_id",
                &format!("must be an AgentID between 1 and {MAX_AGENT_ID}"),
            ))
        }
        Some(_) => {}
    }
    if v.token.is_some() {
        return Err(invalid(
            "invalid_token",
            "token",
            "is not for a `wecom_agent` app (it takes no callbacks here)",
        ));
    }
    if v.aes.is_some() {
        return Err(invalid(
            "invalid_encoding_aes_key",
            "encoding_aes_key",
            "is not for a `wecom_agent` app (it takes no callbacks here)",
        ));
    }
    let secret_ok = v
        .secret
        .is_some_and(|s| (1..=128).contains(&s.len()) && !s.chars().any(char::is_whitespace));
    if !secret_ok {
        return Err(invalid(
            "missing_field",
            "secret",
            "is required for a `wecom_agent` app (its own Secret, 1–128 characters)",
        ));
    }
    Ok(())
}

/// The sort key of an app in lists and cursors.
fn app_key(a: &AppSummary) -> String {
    format!("{}/{}", a.kind.as_str(), a.app_id)
}

async fn list(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let w = q.window("apps")?;
    let mut all = state
        .registry
        .list(&p.tenant_id)
        .await
        .map_err(registry_error)?;
    all.sort_by_key(app_key);
    let (rows, next_cursor) = page::of_sorted(all, &w, app_key);
    let items: Vec<AppView> = rows.iter().map(|a| view(&state, &req, a)).collect();
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

async fn create(
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
    if state
        .registry
        .owner_of(b.kind, &b.app_id)
        .await
        .map_err(registry_error)?
        .is_some()
    {
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
    state.registry.upsert(&seed).await.map_err(registry_error)?;
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

async fn get(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, app_id) = path_app(&path)?;
    let a = own(&state, &p.tenant_id, kind, &app_id).await?;
    Ok(HttpResponse::Ok().json(view(&state, &req, &a)))
}

async fn update(
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
        .await
        .map_err(registry_error)?
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
    state.registry.upsert(&seed).await.map_err(registry_error)?;
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

async fn remove(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, app_id) = path_app(&path)?;
    if !state
        .registry
        .remove(&p.tenant_id, kind, &app_id)
        .await
        .map_err(registry_error)?
    {
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
async fn test(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, app_id) = path_app(&path)?;
    let app = state
        .registry
        .get(kind, &app_id)
        .await
        .map_err(registry_error)?
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
pub(super) struct AppTest {
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
pub(super) struct TestFailure {
    code: String,
    message: String,
    /// WeChat's `errcode` and `errmsg` when it answered.
    details: serde_json::Value,
}

/// A write key as lists show it (never the key).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WriteKeyView {
    /// The first 16 hex digits of the key's hash.
    id: String,
    name: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

async fn list_keys(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let w = q.window("write_keys")?;
    let mut all: Vec<WriteKeyView> = state
        .registry
        .write_keys(&p.tenant_id)
        .await
        .map_err(registry_error)?
        .into_iter()
        .map(|(id, name, created_at)| WriteKeyView {
            id,
            name,
            created_at,
        })
        .collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let (items, next_cursor) = page::of_sorted(all, &w, |k| k.id.clone());
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// `POST /admin/v1/write-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    /// 1–64 characters.
    name: String,
}

/// A new write key: the key is shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NewKeyAnswer {
    id: Option<String>,
    name: String,
    key: String,
    note: String,
}

async fn create_key(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    body: web::Json<NewKey>,
) -> Result<HttpResponse, ApiError> {
    let name = body.into_inner().name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(invalid("invalid_name", "name", "must be 1–64 characters"));
    }
    use base64::Engine;
    let key = format!(
        "wk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    );
    state
        .registry
        .add_write_key(&WriteKeySeed {
            tenant_id: p.tenant_id.clone(),
            name: name.clone(),
            key: Secret::new(key.clone()),
        })
        .await
        .map_err(registry_error)?;
    let id = state
        .registry
        .write_keys(&p.tenant_id)
        .await
        .map_err(registry_error)?
        .into_iter()
        .find(|(_, n, _)| *n == name)
        .map(|(id, _, _)| id);
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::CREATED,
        json!({"request": redacted(&json!({"name": name})), "after": {"id": id}}),
    )
    .await;
    Ok(HttpResponse::Created().json(NewKeyAnswer {
        id,
        name,
        key,
        note: "the key is shown only now".into(),
    }))
}

async fn remove_key(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !state
        .registry
        .remove_write_key(&p.tenant_id, &id)
        .await
        .map_err(registry_error)?
    {
        return Err(ApiError::not_found(format!("no write key `{id}`")));
    }
    audit(&state.access, &req, &p, StatusCode::NO_CONTENT, json!({})).await;
    Ok(HttpResponse::NoContent().finish())
}
