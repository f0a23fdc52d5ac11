//! The tag catalogue over HTTP. The tenant is the caller's principal's, and so is the creator
//! recorded; a group or tag of another tenant is answered 404 like an unknown id.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/tag-groups` `{name, selection?: single\|multi, sync_wecom?, corp_id?}` | 201 the group |
//! | `GET /v1/tag-groups?cursor=&limit=` | a page of the tenant's groups (by name) with their tags |
//! | `GET /v1/tag-groups/{id}` | the group with its tags |
//! | `POST /v1/tags` `{group_id, name, description?}` | 201 the tag (400 `invalid_field` naming `group_id` when the tenant has no such group) |
//! | `GET /v1/tags?group_id=&cursor=&limit=` | a page of the tenant's tags (of one group when given), in the order they were created |
//! | `GET /v1/tags/{id}` | the tag |
//! | `PATCH /v1/tags/{id}` `{name?, description?, status?: active\|retired}` | the tag |

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use platform::ServiceError;
use serde::Deserialize;
use serde_json::json;

use super::page::{PageQuery, PageReq};
use super::{field, ApiState};
use crate::store::catalog::{self, CatalogError, GroupView, NewGroup, NewTag, TagPatch, TagRow};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/tag-groups", web::post().to(post_group))
        .route("/v1/tag-groups", web::get().to(get_groups))
        .route("/v1/tag-groups/{id}", web::get().to(get_group))
        .route("/v1/tags", web::post().to(post_tag))
        .route("/v1/tags", web::get().to(get_tags))
        .route("/v1/tags/{id}", web::get().to(get_tag))
        .route("/v1/tags/{id}", web::patch().to(patch_tag));
}

impl From<CatalogError> for ServiceError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid { field, message } => {
                ServiceError::invalid("invalid_field", format!("`{field}`: {message}"))
                    .with_details(json!({"field": field}))
            }
            CatalogError::NotFound(m) => ServiceError::not_found(m),
            CatalogError::Conflict { code, message } => ServiceError::conflict(code, message),
            CatalogError::Db(e) => ServiceError::Db(e),
        }
    }
}

/// A new group (a `tenant_id` or `operator` still sent by an old caller is ignored).
#[derive(Debug, Deserialize)]
struct GroupBody {
    name: Option<String>,
    selection: Option<String>,
    sync_wecom: Option<bool>,
    corp_id: Option<String>,
}

async fn post_group(
    state: web::Data<ApiState>,
    p: Principal,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let g = NewGroup {
        tenant_id: p.tenant,
        name: field(b.name, "name")?,
        selection: b.selection.unwrap_or_else(|| catalog::MULTI.into()),
        sync_wecom: b.sync_wecom.unwrap_or(false),
        corp_id: b.corp_id.filter(|c| !c.trim().is_empty()),
        created_by: p.actor,
    };
    let g = catalog::create_group(&state.db, g).await?;
    Ok(HttpResponse::Created().json(g))
}

async fn get_groups(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<(String, String)> = q.read("tag-groups")?;
    let rows = catalog::groups(&state.db, &p.tenant, page.after.as_ref(), page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, GroupView::key)))
}

async fn get_group(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let g = catalog::group_view(&state.db, &p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(g))
}

/// A new tag (a `tenant_id` or `operator` still sent by an old caller is ignored).
#[derive(Debug, Deserialize)]
struct TagBody {
    group_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

async fn post_tag(
    state: web::Data<ApiState>,
    p: Principal,
    body: web::Json<TagBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let t = NewTag {
        tenant_id: p.tenant,
        group_id: field(b.group_id, "group_id")?,
        name: field(b.name, "name")?,
        description: b.description.unwrap_or_default(),
        created_by: p.actor,
    };
    let t = catalog::create_tag(&state.db, t).await?;
    Ok(HttpResponse::Created().json(t))
}

/// `?group_id=&cursor=&limit=` of the tag list.
#[derive(Debug, Deserialize)]
struct TagsQuery {
    group_id: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn get_tags(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<TagsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page: PageReq<String> = PageReq::parse("tags", q.cursor.as_deref(), q.limit)?;
    let group = q.group_id.filter(|g| !g.trim().is_empty());
    let rows = catalog::tags(
        &state.db,
        &p.tenant,
        group.as_deref(),
        page.after.as_deref(),
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |t| t.id.clone())))
}

async fn get_tag(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let t = catalog::tag_in(&state.db, &p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(TagRow::from(t)))
}

#[derive(Debug, Deserialize)]
struct TagPatchBody {
    name: Option<String>,
    description: Option<String>,
    status: Option<String>,
}

async fn patch_tag(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    body: web::Json<TagPatchBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let t = catalog::update_tag_in(
        &state.db,
        &p.tenant,
        &id,
        TagPatch {
            name: b.name,
            description: b.description,
            status: b.status,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(t))
}
