//! Internal HTTP API of the identity service. Errors are the common JSON body with a stable
//! `code`; phones and e-mails are masked in every response.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/{id}` | the profile with its identifiers |
//! | `GET /v1/profiles/by-identifier?tenant_id=&kind=&namespace=&value=` | the profile holding it |
//! | `GET /v1/profiles/{id}/timeline?cursor=&limit=` | resolved events, newest first, paginated |
//! | `GET /v1/profiles/{id}/merges` | merges the profile took part in, with snapshots |
//! | `GET /v1/profiles/{id}/edges` | the edge ledger of its identifiers (live and retracted links, rule, evidence, author) |
//! | `GET /v1/merge-refusals?tenant_id=&limit=` | refused merges, newest first |
//! | `POST /v1/profiles/merge` `{tenant_id, survivor, absorbed, operator, reason}` | manual merge (guards apply: 409 with the reason code) |
//! | `POST /v1/merges/{id}/unmerge` `{operator, reason}` | undo a merge: the absorbed profile is active again |
//! | `POST /v1/profiles/{id}/split` `{identifier: {kind, namespace, value}, operator, reason}` | move one identifier to a new profile |
//!
//! Search, a rep's customers, field edits, custom fields, binding tokens and the data-quality log:
//! see [`directory`].
//!
//! Operator actions answer 400 for bad input (`missing_field`, `invalid_kind`, `invalid_value`,
//! `same_profile`, `invalid_merge_id`; `details.field` names the field), 404 for unknown ids
//! (`not_found`), 409 when not allowed (`profile_not_active`, `already_unmerged`, `not_merged`,
//! `still_linked`, `last_identifier`, or the guard's reason: `conflicting_unionids`,
//! `kind_limit`).

mod directory;

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use platform::http::params::{self, field, missing, required};
use platform::http::{ApiError, Routes};
use proto::identity::IdentifierKind;
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use crate::domain::pii::Pii;
use crate::store::queries::{self, LookupError};
use crate::store::unmerge::{Decision, ManualError};
use crate::store::Resolver;

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;

fn db_error(e: sea_orm::DbErr) -> ApiError {
    params::db_error("identity", e)
}

fn limit(v: Option<u64>) -> Result<u64, ApiError> {
    params::limit(v, DEFAULT_LIMIT, MAX_LIMIT)
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub db: DatabaseConnection,
    pub pii: Option<Pii>,
    pub resolver: Resolver,
}

/// Routes of the internal API (health, readiness and metrics are added by the platform).
pub fn routes(resolver: Resolver) -> Routes {
    let state = ApiState {
        db: resolver.db().clone(),
        pii: resolver.pii().cloned(),
        resolver,
    };
    Arc::new(move |cfg| {
        cfg.app_data(web::Data::new(state.clone()))
            .configure(directory::routes)
            .route("/v1/profiles/merge", web::post().to(post_merge))
            .route("/v1/merges/{id}/unmerge", web::post().to(post_unmerge))
            .route("/v1/profiles/{id}/split", web::post().to(post_split))
            .route(
                "/v1/profiles/by-identifier",
                web::get().to(profile_by_identifier),
            )
            .route("/v1/profiles/{id}", web::get().to(get_profile))
            .route("/v1/profiles/{id}/timeline", web::get().to(get_timeline))
            .route("/v1/profiles/{id}/merges", web::get().to(get_merges))
            .route("/v1/profiles/{id}/edges", web::get().to(get_edges))
            .route("/v1/merge-refusals", web::get().to(get_refusals));
    })
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

async fn get_edges(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let edges = queries::edges(&state.db, &id).await.map_err(db_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": edges})))
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

fn decision(operator: Option<String>, reason: Option<String>) -> Result<Decision, ApiError> {
    let operator = field(operator, "operator")?;
    if operator.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "invalid_operator",
            "`operator` must be at most 64 characters",
        )
        .with_details(serde_json::json!({"field": "operator"})));
    }
    Ok(Decision {
        operator,
        reason: field(reason, "reason")?,
    })
}

fn manual_error(e: ManualError) -> ApiError {
    match e {
        ManualError::Invalid {
            code,
            field,
            message,
        } => ApiError::bad_request(code, message).with_details(serde_json::json!({"field": field})),
        ManualError::NotFound { field, message } => {
            ApiError::not_found(message).with_details(serde_json::json!({"field": field}))
        }
        ManualError::Conflict { code, message } => ApiError::conflict(code, message),
        ManualError::NoKey(k) => ApiError::unavailable(
            "pii_key_missing",
            format!("{k} identifiers are not stored: identity.pii_key is not configured"),
        ),
        ManualError::Db(e) => db_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct MergeBody {
    tenant_id: Option<String>,
    survivor: Option<String>,
    absorbed: Option<String>,
    operator: Option<String>,
    reason: Option<String>,
}

async fn post_merge(
    state: web::Data<ApiState>,
    body: web::Json<MergeBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let tenant = field(b.tenant_id, "tenant_id")?;
    let survivor = field(b.survivor, "survivor")?;
    let absorbed = field(b.absorbed, "absorbed")?;
    let by = decision(b.operator, b.reason)?;
    let m = state
        .resolver
        .manual_merge(&tenant, &survivor, &absorbed, &by)
        .await
        .map_err(manual_error)?;
    Ok(HttpResponse::Ok().json(m))
}

#[derive(Debug, Deserialize)]
struct UnmergeBody {
    operator: Option<String>,
    reason: Option<String>,
}

async fn post_unmerge(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<UnmergeBody>,
) -> Result<HttpResponse, ApiError> {
    let merge_id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request("invalid_merge_id", "`id` must be a merge id (an integer)")
            .with_details(serde_json::json!({"field": "id"}))
    })?;
    let b = body.into_inner();
    let by = decision(b.operator, b.reason)?;
    let u = state
        .resolver
        .unmerge(merge_id, &by)
        .await
        .map_err(manual_error)?;
    Ok(HttpResponse::Ok().json(u))
}

#[derive(Debug, Deserialize)]
struct IdentifierBody {
    kind: Option<String>,
    namespace: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SplitBody {
    identifier: Option<IdentifierBody>,
    operator: Option<String>,
    reason: Option<String>,
}

async fn post_split(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<SplitBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let ident = b.identifier.ok_or_else(|| missing("identifier"))?;
    let kind_s = field(ident.kind, "identifier.kind")?;
    let namespace = field(ident.namespace, "identifier.namespace")?;
    let value = field(ident.value, "identifier.value")?;
    let kind = IdentifierKind::parse(&kind_s).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_kind",
            format!("`identifier.kind`: unknown identifier kind `{kind_s}`"),
        )
        .with_details(serde_json::json!({
            "field": "identifier.kind",
            "allowed": IdentifierKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        }))
    })?;
    let by = decision(b.operator, b.reason)?;
    let u = state
        .resolver
        .split(&id, kind, &namespace, &value, &by)
        .await
        .map_err(manual_error)?;
    Ok(HttpResponse::Ok().json(u))
}
