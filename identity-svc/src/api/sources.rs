//! The source registry: the tenant's tree of sources and the entry keys (OA QR scenes, WeCom
//! contact-me `state`s, UTM campaigns) bound to its nodes. A touch arriving through a bound key
//! is attributed to its node: the profile's `source.first` / `source.latest` carry the node's
//! path as `level1…` and its id as `node`. As every route of the API: the tenant is the service
//! credential's, and its actor the creator.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/sources` | every node, roots first: `{id, parent_id, name, path, depth, bindings: [{kind, value}], created_by, created_at, archived_at}` |
//! | `POST /v1/sources` `{name, parent_id?}` | the node (201); at most 10 levels |
//! | `GET /v1/sources/{id}` | the node |
//! | `PATCH /v1/sources/{id}` `{name?, archived?}` | the node after the change (an archived node attributes nothing and takes no children or keys) |
//! | `POST /v1/sources/{id}/bindings` `{kind, value}` | the node with the key bound (201; bound again to the same node: 200) |
//! | `DELETE /v1/sources/{id}/bindings/{kind}/{value}` | the node without it |
//!
//! `kind` is `oa_scene` (1–64 characters), `wecom_state` (1–30) or `utm_campaign` (1–128). Bad
//! input is 400 `invalid_field` with `details.field`; a sibling of the same name is 409
//! `source_exists`, a key bound to another node 409 `key_taken` (`details.node_id`); a node of
//! another tenant or none is 404 `not_found`, and so is a key not bound to the node.

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use platform::ServiceError;
use serde::Deserialize;
use serde_json::json;

use super::{actor, ApiState};
use crate::store::sources::{self, SourceError};

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/sources", web::get().to(list))
        .route("/v1/sources", web::post().to(create))
        .route("/v1/sources/{id}", web::get().to(get))
        .route("/v1/sources/{id}", web::patch().to(update))
        .route("/v1/sources/{id}/bindings", web::post().to(bind))
        .route(
            "/v1/sources/{id}/bindings/{kind}/{value}",
            web::delete().to(unbind),
        );
}

impl From<SourceError> for ServiceError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Input(i) => ServiceError::invalid("invalid_field", i.to_string())
                .with_details(json!({"field": i.field, "reason": i.reason})),
            e @ SourceError::NoNode(_) => ServiceError::not_found(e.to_string()),
            e @ SourceError::NotBound { .. } => ServiceError::not_found(e.to_string()),
            e @ SourceError::NameTaken(_) => ServiceError::conflict("source_exists", e.to_string())
                .with_details(json!({"field": "name"})),
            SourceError::KeyTaken {
                kind,
                ref value,
                ref node,
            } => ServiceError::conflict("key_taken", e.to_string()).with_details(
                json!({"field": "value", "kind": kind, "value": value, "node_id": node}),
            ),
            SourceError::Db(e) => ServiceError::Db(e),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNode {
    name: String,
    parent_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEdit {
    name: Option<String>,
    archived: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBinding {
    kind: String,
    value: String,
}

async fn list(p: Principal, state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let nodes = sources::list(&state.db, &p.tenant)
        .await
        .map_err(ServiceError::Db)?;
    Ok(HttpResponse::Ok().json(json!({ "sources": nodes })))
}

async fn create(
    p: Principal,
    state: web::Data<ApiState>,
    body: web::Json<NewNode>,
) -> Result<HttpResponse, ApiError> {
    let by = actor(&p)?;
    let n = sources::create(
        &state.db,
        &state.resolver.sources,
        &p.tenant,
        &by,
        body.parent_id.as_deref(),
        &body.name,
    )
    .await
    .map_err(ServiceError::from)?;
    Ok(HttpResponse::Created().json(n))
}

async fn get(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let n = sources::get(&state.db, &p.tenant, &id)
        .await
        .map_err(ServiceError::from)?;
    Ok(HttpResponse::Ok().json(n))
}

async fn update(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<NodeEdit>,
) -> Result<HttpResponse, ApiError> {
    if body.name.is_none() && body.archived.is_none() {
        return Err(ServiceError::invalid(
            "missing_field",
            "`name` or `archived`: nothing to change",
        )
        .with_details(json!({"field": "name|archived"}))
        .into());
    }
    let n = sources::update(
        &state.db,
        &state.resolver.sources,
        &p.tenant,
        &id,
        body.name.as_deref(),
        body.archived,
    )
    .await
    .map_err(ServiceError::from)?;
    Ok(HttpResponse::Ok().json(n))
}

async fn bind(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<NewBinding>,
) -> Result<HttpResponse, ApiError> {
    let by = actor(&p)?;
    let (n, new) = sources::bind(
        &state.db,
        &state.resolver.sources,
        &p.tenant,
        &by,
        &id,
        &body.kind,
        &body.value,
    )
    .await
    .map_err(ServiceError::from)?;
    Ok(if new {
        HttpResponse::Created().json(n)
    } else {
        HttpResponse::Ok().json(n)
    })
}

async fn unbind(
    p: Principal,
    state: web::Data<ApiState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, kind, value) = path.into_inner();
    let n = sources::unbind(
        &state.db,
        &state.resolver.sources,
        &p.tenant,
        &id,
        &kind,
        &value,
    )
    .await
    .map_err(ServiceError::from)?;
    Ok(HttpResponse::Ok().json(n))
}
