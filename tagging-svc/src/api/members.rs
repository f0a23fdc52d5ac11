//! A profile's tags by hand. The tenant is the caller's principal's and the actor recorded its
//! actor; a profile tagging's projection does not hold for the tenant (unknown, or another
//! tenant's) is 404, and so is a tag the tenant does not have.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/{id}/tags?cursor=&limit=` | the tags the profile holds and why (source, rule, who, since), in the order they were given |
//! | `POST /v1/profiles/{id}/tags` `{tag_id}` | the tag-set changes (a single-select group drops its other tag; chained rules settle); 409 `tag_retired` |
//! | `DELETE /v1/profiles/{id}/tags/{tag_id}` | takes back the manual tag (a rule's tag stays while its rule holds) |

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use platform::ServiceError;
use serde::Deserialize;
use serde_json::json;

use super::page::{PageQuery, PageReq};
use super::{field, ApiState};
use crate::store::members::{self, MemberError};
use crate::store::segments;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/profiles/{id}/tags", web::get().to(get_tags))
        .route("/v1/profiles/{id}/tags", web::post().to(post_tag))
        .route(
            "/v1/profiles/{id}/tags/{tag_id}",
            web::delete().to(delete_tag),
        );
}

fn unknown_profile(id: &str) -> ServiceError {
    ServiceError::not_found(format!("no profile with id `{id}`"))
}

impl From<MemberError> for ServiceError {
    fn from(e: MemberError) -> Self {
        match e {
            MemberError::UnknownTag(t) => {
                ServiceError::not_found(format!("`tag_id`: no tag `{t}` in this tenant"))
                    .with_details(json!({"field": "tag_id"}))
            }
            MemberError::UnknownProfile(p) => unknown_profile(&p),
            MemberError::Retired(t) => {
                ServiceError::conflict("tag_retired", format!("tag `{t}` is retired"))
            }
            MemberError::Db(e) => ServiceError::Db(e),
        }
    }
}

async fn get_tags(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<i64> = q.read("profile-tags")?;
    if !segments::has_profile(&state.db, &p.tenant, &id).await? {
        return Err(unknown_profile(&id).into());
    }
    let rows = members::of_profile(&state.db, &p.tenant, &id, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |h| h.row)))
}

/// A tag by hand (a `tenant_id` or `operator` still sent by an old caller is ignored).
#[derive(Debug, Deserialize)]
struct TagBody {
    tag_id: Option<String>,
}

async fn post_tag(
    state: web::Data<ApiState>,
    p: Principal,
    id: web::Path<String>,
    body: web::Json<TagBody>,
) -> Result<HttpResponse, ApiError> {
    let tag = field(body.into_inner().tag_id, "tag_id")?;
    let changes = state
        .tagger
        .manual_known(&p.tenant, &id, &tag, true, &p.actor)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"changes": changes})))
}

async fn delete_tag(
    state: web::Data<ApiState>,
    p: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, tag) = path.into_inner();
    let changes = state
        .tagger
        .manual_known(&p.tenant, &id, &tag, false, &p.actor)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"changes": changes})))
}
