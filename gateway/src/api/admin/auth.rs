//! Sign-in, the caller, their API tokens and the audit log.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Route};
use platform::http::ApiError;
use platform::ServiceError;
use proto::auth::Role;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::audit;
use super::page::{self, Page, PageQuery};
use super::routes::AdminRoute;
use crate::access::{AccessError, AdminPrincipal, TenantView, TokenView, API};
use crate::api::GatewayState;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &AdminRoute, route: Route) -> bool {
    let route = match (r.method, r.path) {
        ("POST", "/admin/v1/login") => route.to(login),
        ("POST", "/admin/v1/logout") => route.to(logout),
        ("GET", "/admin/v1/me") => route.to(me),
        ("GET", "/admin/v1/tokens") => route.to(list_tokens),
        ("POST", "/admin/v1/tokens") => route.to(create_token),
        ("DELETE", "/admin/v1/tokens/{id}") => route.to(delete_token),
        ("GET", "/admin/v1/audit") => route.to(list_audit),
        _ => return false,
    };
    cfg.route(r.path, route);
    true
}

/// The common answer to an access error.
impl From<AccessError> for ServiceError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Invalid {
                code,
                field,
                message,
            } => ServiceError::invalid(code, format!("`{field}` {message}"))
                .with_details(json!({"field": field})),
            AccessError::BadLogin => {
                ServiceError::unauthenticated("invalid_credentials", "wrong e-mail or password")
            }
            AccessError::Throttled(d) => ServiceError::Throttled {
                code: "too_many_attempts",
                message: format!("too many failed sign-ins; try again in {} s", d.as_secs()),
                retry_after: d,
            },
            AccessError::NotFound(m) => ServiceError::not_found(m),
            AccessError::Conflict(m) => ServiceError::conflict("conflict", m),
            AccessError::LastOwner(m) => ServiceError::conflict("last_owner", m),
            AccessError::MemberExists(m) => {
                ServiceError::conflict("member_exists", m).with_details(json!({"field": "email"}))
            }
            AccessError::Db(e) => ServiceError::Db(e),
            AccessError::Cache(m) => ServiceError::unavailable("cache_unavailable", m),
        }
    }
}

/// `POST /admin/v1/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    email: String,
    password: String,
    /// The tenant to sign in to; needed when the user belongs to several.
    #[serde(default)]
    tenant_id: Option<String>,
}

/// The client's address (for limiting failed sign-ins).
fn client(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

async fn login(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    body: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let issued = state
        .access
        .login(&b.email, &b.password, b.tenant_id.as_deref(), &client(&req))
        .await
        .map_err(ApiError::from);
    match issued {
        Ok(i) => Ok(HttpResponse::Ok().json(i)),
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            let retry = e.details["retry_after"].as_u64().unwrap_or(900);
            Ok(HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", retry.to_string()))
                .json(&e))
        }
        Err(e) => Err(e),
    }
}

async fn logout(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
) -> Result<HttpResponse, ApiError> {
    state.access.revoke(&p, &p.token_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /admin/v1/me`: who the credential acts for.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Me {
    user_id: String,
    email: String,
    #[schema(schema_with = super::openapi::role_schema)]
    role: Role,
    /// `session` or `api`.
    credential: String,
    tenant: Option<TenantView>,
}

async fn me(state: web::Data<GatewayState>, p: AdminPrincipal) -> Result<HttpResponse, ApiError> {
    let tenant = state.access.tenant(&p.tenant_id).await?;
    Ok(HttpResponse::Ok().json(Me {
        user_id: p.user_id,
        email: p.email,
        role: p.role,
        credential: p.kind,
        tenant: tenant.map(TenantView::from),
    }))
}

async fn list_tokens(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let w = q.window("tokens")?;
    let rows = state.access.tokens(&p, w.after.as_deref(), w.limit).await?;
    let (items, next_cursor) = page::cut(rows, &w, |t: &TokenView| t.id.clone());
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// `POST /admin/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    /// 1–128 characters.
    name: String,
    /// At most the caller's role (default: the caller's).
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_role_schema)]
    role: Option<Role>,
    /// Days until it expires, 1–3650 (default: never).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<u32>,
}

/// A new API token: the token is shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NewTokenAnswer {
    id: String,
    token: String,
    #[schema(schema_with = super::openapi::role_schema)]
    role: Role,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    name: String,
    note: String,
}

async fn create_token(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(
            ApiError::bad_request("invalid_name", "`name` must be 1–128 characters")
                .with_details(json!({"field": "name"})),
        );
    }
    let role = b.role.unwrap_or(p.role);
    if !p.role.covers(role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("`role`: a token cannot have more than your `{}`", p.role),
        )
        .with_details(json!({"field": "role"})));
    }
    let ttl = match b.expires_in_days {
        Some(0) | Some(3651..) => {
            return Err(ApiError::bad_request(
                "invalid_expiry",
                "`expires_in_days` must be between 1 and 3650",
            )
            .with_details(json!({"field": "expires_in_days"})))
        }
        Some(d) => Some(std::time::Duration::from_secs(u64::from(d) * 86_400)),
        None => None,
    };
    let issued = state
        .access
        .issue(&p.user_id, &p.tenant_id, role, API, name, ttl)
        .await?;
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::CREATED,
        json!({"request": {"name": name, "role": role}, "after": {"id": issued.id}}),
    )
    .await;
    Ok(HttpResponse::Created().json(NewTokenAnswer {
        id: issued.id,
        token: issued.token,
        role: issued.role,
        expires_at: issued.expires_at,
        name: name.to_string(),
        note: "the token is shown only now".into(),
    }))
}

async fn delete_token(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let gone = state.access.revoke(&p, &id).await?;
    if !gone {
        return Err(ApiError::not_found(format!("no token `{id}`")));
    }
    audit(&state.access, &req, &p, StatusCode::NO_CONTENT, json!({})).await;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /admin/v1/audit`'s filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only entries of this actor (`user:<id>`).
    #[serde(default)]
    actor: Option<String>,
    /// Only entries whose target path starts with this.
    #[serde(default)]
    target: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[serde(default)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
    /// Items per page, 1–500 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
}

/// One write through the admin API.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AuditEntry {
    id: i64,
    /// `user:<id>`.
    actor: String,
    /// `<METHOD> <route pattern>`.
    action: String,
    /// The request path.
    target: String,
    /// The answer's HTTP status.
    status: i32,
    at: chrono::DateTime<chrono::Utc>,
    request_id: Option<String>,
    /// `{request, before, after}` with secrets removed.
    #[schema(value_type = Object)]
    summary: Value,
}

async fn list_audit(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let w = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    }
    .window("audit")?;
    let cursor = match w.after.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::bad_request("invalid_cursor", "`cursor` is not one this API gave")
                .with_details(json!({"field": "cursor"}))
        })?),
    };
    let (items, next) = state
        .access
        .audit(
            &p.tenant_id,
            q.actor.as_deref(),
            q.target.as_deref(),
            q.since.map(|s| s.naive_utc()),
            cursor,
            w.limit,
        )
        .await?;
    let items: Vec<AuditEntry> = items
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            status: r.status,
            at: r.at.and_utc(),
            request_id: r.request_id,
            summary: serde_json::from_str(&r.summary).unwrap_or_default(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: next.map(|n| w.cursor(&n.to_string())),
    }))
}
