//! The tenant's people and the tenant itself, for its admins (read) and owners (write): users
//! listed by page, added, changed (role, active/disabled) and removed; the tenant's name and
//! time zone. Every write is audited with the member or tenant before and after.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Route};
use platform::http::ApiError;
use proto::auth::Role;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::page::{self, Page, PageQuery};
use super::routes::AdminRoute;
use super::{audit, redacted};
use crate::access::{AdminPrincipal, MemberChange, MemberStatus, MemberView};
use crate::api::GatewayState;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &AdminRoute, route: Route) -> bool {
    let route = match (r.method, r.path) {
        ("GET", "/admin/v1/users") => route.to(list_users),
        ("POST", "/admin/v1/users") => route.to(create_user),
        ("PATCH", "/admin/v1/users/{id}") => route.to(update_user),
        ("DELETE", "/admin/v1/users/{id}") => route.to(remove_user),
        ("GET", "/admin/v1/tenant") => route.to(get_tenant),
        ("PATCH", "/admin/v1/tenant") => route.to(update_tenant),
        _ => return false,
    };
    cfg.route(r.path, route);
    true
}

async fn list_users(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let w = q.window("users")?;
    let rows = state
        .access
        .members(&p.tenant_id, w.after.as_deref(), w.limit)
        .await?;
    let (items, next_cursor) = page::cut(rows, &w, |m: &MemberView| m.id.clone());
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// `POST /admin/v1/users`: a new member. An existing user (of another tenant) is given the role
/// here and keeps their password; a member already is 409 `member_exists`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    email: String,
    #[serde(default)]
    name: String,
    /// At least 12 characters.
    password: String,
    #[schema(schema_with = super::openapi::role_schema)]
    role: Role,
}

async fn create_user(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let after = state
        .access
        .add_member(&p.tenant_id, &b.email, &b.name, &b.password, b.role)
        .await?;
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

/// `PATCH /admin/v1/users/{id}`: what is given changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserChange {
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_role_schema)]
    role: Option<Role>,
    /// `disabled` revokes every session and API token of the user for this tenant at once.
    #[serde(default)]
    status: Option<MemberStatus>,
}

async fn update_user(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
    body: web::Json<UserChange>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    if b.role.is_none() && b.status.is_none() {
        return Err(ApiError::bad_request(
            "missing_field",
            "give `role` and/or `status` to change",
        )
        .with_details(json!({"field": "role"})));
    }
    let before = state.access.member(&p.tenant_id, &id).await?;
    let change = MemberChange {
        role: b.role,
        status: b.status,
    };
    let after = state
        .access
        .update_member(&p.tenant_id, &id, change)
        .await?;
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::OK,
        json!({"request": {"role": b.role, "status": b.status}, "before": before, "after": after}),
    )
    .await;
    Ok(HttpResponse::Ok().json(after))
}

async fn remove_user(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let before = state.access.remove_member(&p.tenant_id, &id).await?;
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::NO_CONTENT,
        json!({"before": before}),
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_tenant(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
) -> Result<HttpResponse, ApiError> {
    let t = state.access.tenant_view(&p.tenant_id).await?;
    Ok(HttpResponse::Ok().json(t))
}

/// `PATCH /admin/v1/tenant`: what is given changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantChange {
    /// 1–128 characters.
    #[serde(default)]
    name: Option<String>,
    /// An IANA time zone, e.g. `Asia/Shanghai`.
    #[serde(default)]
    time_zone: Option<String>,
    /// Does a WeCom member signing in to the sidebar for the first time become a `rep`?
    #[serde(default)]
    reps_sign_up: Option<bool>,
}

async fn update_tenant(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    body: web::Json<TenantChange>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    if b.name.is_none() && b.time_zone.is_none() && b.reps_sign_up.is_none() {
        return Err(ApiError::bad_request(
            "missing_field",
            "give `name`, `time_zone` and/or `reps_sign_up` to change",
        )
        .with_details(json!({"field": "name"})));
    }
    let before = state.access.tenant_view(&p.tenant_id).await?;
    let after = state
        .access
        .update_tenant(
            &p.tenant_id,
            b.name.as_deref(),
            b.time_zone.as_deref(),
            b.reps_sign_up,
        )
        .await?;
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::OK,
        json!({"request": {"name": b.name, "time_zone": b.time_zone, "reps_sign_up": b.reps_sign_up},
               "before": before, "after": after}),
    )
    .await;
    Ok(HttpResponse::Ok().json(after))
}
