//! Sign-in, the caller, their API tokens, the tenant's users and the audit log.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Route};
use platform::http::ApiError;
use proto::auth::Role;
use serde::Deserialize;
use serde_json::json;

use super::routes::AdminRoute;
use super::{audit, redacted};
use crate::access::{AccessError, AdminPrincipal, API};
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
        ("GET", "/admin/v1/users") => route.to(list_users),
        ("POST", "/admin/v1/users") => route.to(create_user),
        ("GET", "/admin/v1/audit") => route.to(list_audit),
        _ => return false,
    };
    cfg.route(r.path, route);
    true
}

/// The common answer to an access error.
pub(super) fn access_error(e: AccessError) -> ApiError {
    match e {
        AccessError::Invalid {
            code,
            field,
            message,
        } => ApiError::bad_request(code, format!("`{field}` {message}"))
            .with_details(json!({"field": field})),
        AccessError::BadLogin => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong e-mail or password",
        ),
        AccessError::Throttled(d) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed sign-ins; try again in {} s", d.as_secs()),
        )
        .with_details(json!({"retry_after": d.as_secs()})),
        AccessError::NotFound(m) => ApiError::not_found(m),
        AccessError::Conflict(m) => ApiError::conflict("conflict", m),
        AccessError::Db(e) => platform::http::params::db_error("gateway", e),
        AccessError::Cache(m) => ApiError::unavailable("cache_unavailable", m),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
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
        .map_err(access_error);
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
    state
        .access
        .revoke(&p, &p.token_id)
        .await
        .map_err(|e| platform::http::params::db_error("gateway", e))?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(state: web::Data<GatewayState>, p: AdminPrincipal) -> Result<HttpResponse, ApiError> {
    let tenant = state
        .access
        .tenant(&p.tenant_id)
        .await
        .map_err(access_error)?;
    Ok(HttpResponse::Ok().json(json!({
        "user_id": p.user_id, "email": p.email, "role": p.role, "credential": p.kind,
        "tenant": tenant.map(|t| json!({"id": t.id, "name": t.name, "time_zone": t.time_zone})),
    })))
}

async fn list_tokens(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
) -> Result<HttpResponse, ApiError> {
    let items = state
        .access
        .tokens(&p)
        .await
        .map_err(|e| platform::http::params::db_error("gateway", e))?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    /// At most the caller's role (default: the caller's).
    #[serde(default)]
    role: Option<Role>,
    /// Days until it expires (default: never).
    #[serde(default)]
    expires_in_days: Option<u32>,
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
        .await
        .map_err(access_error)?;
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::CREATED,
        json!({"request": {"name": name, "role": role}, "after": {"id": issued.id}}),
    )
    .await;
    Ok(HttpResponse::Created().json(json!({
        "id": issued.id, "token": issued.token, "role": issued.role,
        "expires_at": issued.expires_at, "name": name,
        "note": "the token is shown only now",
    })))
}

async fn delete_token(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let gone = state
        .access
        .revoke(&p, &id)
        .await
        .map_err(|e| platform::http::params::db_error("gateway", e))?;
    if !gone {
        return Err(ApiError::not_found(format!("no token `{id}`")));
    }
    audit(&state.access, &req, &p, StatusCode::NO_CONTENT, json!({})).await;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_users(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
) -> Result<HttpResponse, ApiError> {
    let items = state
        .access
        .members(&p.tenant_id)
        .await
        .map_err(access_error)?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    #[serde(default)]
    name: String,
    password: String,
    role: Role,
}

async fn create_user(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let u = state
        .access
        .put_user(&p.tenant_id, &b.email, &b.name, Some(&b.password), b.role)
        .await
        .map_err(access_error)?;
    let after = json!({"id": u.id, "email": u.email, "name": u.name, "role": b.role});
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::CREATED,
        json!({"request": redacted(&json!({"email": b.email, "role": b.role, "password": "x"})), "after": after}),
    )
    .await;
    Ok(HttpResponse::Created().json(after))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    target: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

async fn list_audit(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = platform::http::params::limit(q.limit, 50, 500)?;
    let cursor = match q.cursor.as_deref() {
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
            limit,
        )
        .await
        .map_err(|e| platform::http::params::db_error("gateway", e))?;
    Ok(
        HttpResponse::Ok()
            .json(json!({"items": items, "next_cursor": next.map(|n| n.to_string())})),
    )
}
