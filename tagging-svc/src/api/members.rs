//! A profile's tags by hand.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/{id}/tags?tenant_id=` | every tag the profile holds and why (source, rule, who, since) |
//! | `POST /v1/profiles/{id}/tags` `{tenant_id, tag_id, operator}` | the tag-set changes (a single-select group drops its other tag; chained rules settle) |
//! | `DELETE /v1/profiles/{id}/tags/{tag_id}?tenant_id=&operator=` | takes back the operator's tag (a rule's tag stays while its rule holds) |

use actix_web::{web, HttpResponse};
use platform::http::ApiError;
use serde::Deserialize;
use serde_json::json;

use super::{db_error, field, required, ApiState};
use crate::store::members::{self, MemberError};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/profiles/{id}/tags", web::get().to(get_tags))
        .route("/v1/profiles/{id}/tags", web::post().to(post_tag))
        .route(
            "/v1/profiles/{id}/tags/{tag_id}",
            web::delete().to(delete_tag),
        );
}

fn member_error(e: MemberError) -> ApiError {
    match e {
        MemberError::UnknownTag(t) => ApiError::bad_request(
            "unknown_tag",
            format!("`tag_id`: no tag `{t}` in this tenant"),
        )
        .with_details(json!({"field": "tag_id"})),
        MemberError::Retired(t) => {
            ApiError::conflict("tag_retired", format!("tag `{t}` is retired"))
        }
        MemberError::Db(e) => db_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct TenantQuery {
    tenant_id: Option<String>,
    operator: Option<String>,
}

async fn get_tags(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    let items = members::of_profile(&state.db, &tenant, &id)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

#[derive(Debug, Deserialize)]
struct TagBody {
    tenant_id: Option<String>,
    tag_id: Option<String>,
    operator: Option<String>,
}

async fn post_tag(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<TagBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let tenant = field(b.tenant_id, "tenant_id")?;
    let tag = field(b.tag_id, "tag_id")?;
    let by = field(b.operator, "operator")?;
    let changes = state
        .tagger
        .manual(&tenant, &id, &tag, true, &by)
        .await
        .map_err(member_error)?;
    Ok(HttpResponse::Ok().json(json!({"changes": changes})))
}

async fn delete_tag(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, tag) = path.into_inner();
    let q = q.into_inner();
    let tenant = required(q.tenant_id, "tenant_id")?;
    let by = required(q.operator, "operator")?;
    let changes = state
        .tagger
        .manual(&tenant, &id, &tag, false, &by)
        .await
        .map_err(member_error)?;
    Ok(HttpResponse::Ok().json(json!({"changes": changes})))
}
