//! The runtime app registry: a tenant's owners register, update, test and remove Official
//! Accounts, mini-programs, WeCom corps and WeCom agent apps (the self-built app that sends reps
//! app messages: `app_id` the corpid, with its `agent_id`), and their write keys, without a
//! restart. Secrets are sealed at once and never returned; the answer says which are set and the
//! callback URL to paste into WeChat's console (none for an agent app, which takes no callbacks
//! here).
//!
//! Here: the routes, the bodies and what they share. `handlers` registers, lists, changes, tests
//! and removes apps, `checks` checks an app's values as WeChat defines them, `keys` handles the
//! write keys.

mod checks;
mod handlers;
mod keys;

use actix_web::{web, HttpRequest, Route};
use platform::http::ApiError;
use platform::ServiceError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::routes::AdminRoute;
use crate::api::GatewayState;
use crate::registry::{AppKind, AppSummary, RegistryError};

use handlers::{create, get, list, remove, test, update};
use keys::{create_key, list_keys, remove_key};

pub(super) use handlers::{AppTest, TestFailure};
pub(super) use keys::{NewKey, NewKeyAnswer, WriteKeyView};

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

impl From<RegistryError> for ServiceError {
    fn from(e: RegistryError) -> Self {
        if let RegistryError::KeptChanging(_) = e {
            return ServiceError::conflict("concurrent_change", format!("{e}; try again"));
        }
        tracing::error!(error = %e, "App registry failed");
        ServiceError::unavailable("registry_unavailable", "the app registry did not answer")
    }
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
        .await?
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

/// The sort key of an app in lists and cursors.
fn app_key(a: &AppSummary) -> String {
    format!("{}/{}", a.kind.as_str(), a.app_id)
}
