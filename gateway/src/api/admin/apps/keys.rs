//! Write keys: listed (never the key), created (the key shown once) and removed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use platform::config::Secret;
use platform::http::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::access::AdminPrincipal;
use crate::api::admin::page::{self, Page, PageQuery};
use crate::api::admin::{audit, redacted};
use crate::api::GatewayState;
use crate::config::WriteKeySeed;

use super::invalid;

/// A write key as lists show it (never the key).
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api::admin) struct WriteKeyView {
    /// The first 16 hex digits of the key's hash.
    id: String,
    name: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

pub(super) async fn list_keys(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let w = q.window("write_keys")?;
    let mut all: Vec<WriteKeyView> = state
        .registry
        .write_keys(&p.tenant_id)
        .await?
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
pub(in crate::api::admin) struct NewKey {
    /// 1–64 characters.
    name: String,
}

/// A new write key: the key is shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api::admin) struct NewKeyAnswer {
    id: Option<String>,
    name: String,
    key: String,
    note: String,
}

pub(super) async fn create_key(
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
        .await?;
    let id = state
        .registry
        .write_keys(&p.tenant_id)
        .await?
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

pub(super) async fn remove_key(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !state.registry.remove_write_key(&p.tenant_id, &id).await? {
        return Err(ApiError::not_found(format!("no write key `{id}`")));
    }
    audit(&state.access, &req, &p, StatusCode::NO_CONTENT, json!({})).await;
    Ok(HttpResponse::NoContent().finish())
}
