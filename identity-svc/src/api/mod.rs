//! Internal HTTP API of the identity service. Errors are the common JSON body with a stable
//! `code`; phones and e-mails are masked in every response.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/{id}` | the profile with its identifiers |
//! | `GET /v1/profiles/by-identifier?tenant_id=&kind=&namespace=&value=` | the profile holding it |
//! | `GET /v1/profiles/{id}/timeline?cursor=&limit=` | resolved events, newest first, paginated |
//! | `GET /v1/profiles/{id}/merges` | merges the profile took part in, with snapshots |
//! | `GET /v1/merge-refusals?tenant_id=&limit=` | refused merges, newest first |

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Routes};
use proto::identity::IdentifierKind;
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use crate::domain::pii::Pii;
use crate::store::queries::{self, LookupError};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub db: DatabaseConnection,
    pub pii: Option<Pii>,
}

/// Routes of the internal API (health, readiness and metrics are added by the platform).
pub fn routes(db: DatabaseConnection, pii: Option<Pii>) -> Routes {
    let state = ApiState { db, pii };
    Arc::new(move |cfg| {
        cfg.app_data(web::Data::new(state.clone()))
            .route(
                "/v1/profiles/by-identifier",
                web::get().to(profile_by_identifier),
            )
            .route("/v1/profiles/{id}", web::get().to(get_profile))
            .route("/v1/profiles/{id}/timeline", web::get().to(get_timeline))
            .route("/v1/profiles/{id}/merges", web::get().to(get_merges))
            .route("/v1/merge-refusals", web::get().to(get_refusals));
    })
}

fn db_error(e: sea_orm::DbErr) -> ApiError {
    tracing::error!(error = %e, "Identity query failed");
    ApiError::unavailable(
        "database_unavailable",
        "the identity database did not answer",
    )
}

fn limit(v: Option<u64>) -> Result<u64, ApiError> {
    match v {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

async fn get_profile(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match queries::profile(&state.db, &id).await.map_err(db_error)? {
        Some(p) => Ok(HttpResponse::Ok().json(p)),
        None => Err(ApiError::not_found(format!("no profile with id `{id}`"))),
    }
}

#[derive(Debug, Deserialize)]
struct ByIdentifier {
    tenant_id: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    value: Option<String>,
}

fn required(v: Option<String>, field: &'static str) -> Result<String, ApiError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ApiError::bad_request(
            "missing_field",
            format!("query parameter `{field}` is required"),
        )
        .with_details(serde_json::json!({"field": field}))),
    }
}

async fn profile_by_identifier(
    state: web::Data<ApiState>,
    q: web::Query<ByIdentifier>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = required(q.tenant_id, "tenant_id")?;
    let kind_s = required(q.kind, "kind")?;
    let namespace = required(q.namespace, "namespace")?;
    let value = required(q.value, "value")?;
    let kind = IdentifierKind::parse(&kind_s).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_kind",
            format!("`kind`: unknown identifier kind `{kind_s}`"),
        )
        .with_details(serde_json::json!({
            "field": "kind",
            "allowed": IdentifierKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        }))
    })?;
    let found = queries::profile_by_identifier(
        &state.db,
        state.pii.as_ref(),
        &tenant,
        kind,
        &namespace,
        &value,
    )
    .await;
    match found {
        Ok(Some(p)) => Ok(HttpResponse::Ok().json(p)),
        Ok(None) => Err(ApiError::not_found("no profile holds this identifier")),
        Err(LookupError::BadValue(k)) => Err(ApiError::bad_request(
            "invalid_value",
            format!("`value` is not a valid {k}"),
        )
        .with_details(serde_json::json!({"field": "value"}))),
        Err(LookupError::NoKey(k)) => Err(ApiError::unavailable(
            "pii_key_missing",
            format!("{k} identifiers are not stored: identity.pii_key is not configured"),
        )),
        Err(LookupError::Db(e)) => Err(db_error(e)),
    }
}

#[derive(Debug, Deserialize)]
struct Page {
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn get_timeline(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let limit = limit(q.limit)?;
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(queries::parse_cursor(c).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "`cursor` is not a cursor this API returned",
            )
            .with_details(serde_json::json!({"field": "cursor"}))
        })?),
    };
    if queries::profile(&state.db, &id)
        .await
        .map_err(db_error)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no profile with id `{id}`")));
    }
    let page = queries::timeline(&state.db, &id, cursor, limit)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(page))
}

async fn get_merges(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merges = queries::merges(&state.db, &id).await.map_err(db_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": merges})))
}

#[derive(Debug, Deserialize)]
struct Refusals {
    tenant_id: Option<String>,
    limit: Option<u64>,
}

async fn get_refusals(
    state: web::Data<ApiState>,
    q: web::Query<Refusals>,
) -> Result<HttpResponse, ApiError> {
    let limit = limit(q.limit)?;
    let items = queries::refusals(&state.db, q.tenant_id.as_deref(), limit)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items})))
}
