//! Notes (follow-up records) on customers: reps write them from the WeCom sidebar, operators
//! from the admin API, both through the gateway. As every route of the API: the tenant is the
//! service credential's and its actor the author (see the parent module).
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/profiles/{id}/notes` `{type, text, next_follow_up_at?}` | the note (201), written by the credential's actor |
//! | `GET /v1/profiles/{id}/notes?cursor=&limit=` | the profile's notes and those of profiles merged into it, newest first |
//! | `PATCH /v1/notes/{id}` `{text?, type?, next_follow_up_at?}` | the note after the edit (`next_follow_up_at: null` clears it) |
//! | `DELETE /v1/notes/{id}` | 204 |
//!
//! A note is `{id, profile_id, author, type, text, next_follow_up_at, created_at, updated_at}`;
//! `type` is `call`, `visit`, `wechat`, `meeting`, `email` or `other`, `text` 1..=2000
//! characters (trimmed), `next_follow_up_at` RFC 3339 (stored in UTC whole seconds) or null.
//! Only a note's author may edit or delete it — or an admin or owner (403 `not_your_note`). A
//! profile or note of another tenant, an unknown one and a deleted note answer 404
//! `not_found`. A merged profile's id is a profile like any other here, as for
//! `GET /v1/profiles/{id}`: a note written through it is kept on it and listed under its
//! survivor until an un-merge makes it the restored profile's again.
//!
//! Bad input is 400 naming the field in `details.field`: `missing_field` (for an edit naming no
//! field, `text|type|next_follow_up_at`), or `invalid_field` with `details.reason`
//! (`wrong_type`, `empty`, `too_long`, `unknown_type`, `invalid_date`, `out_of_range`, and
//! `unknown_field` for a field notes do not have — the author, tenant or profile are never taken
//! from a body); a body that is not a JSON object is `invalid_json`.

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use platform::ServiceError;
use serde_json::{json, Map, Value};

use super::page::{PageQuery, PageReq};
use super::{actor, profile_not_found, ApiState};
use crate::domain::notes::{self, FieldError, NoteType};
use crate::store::notes::{NoteError, NoteView};

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/profiles/{id}/notes", web::post().to(post_note))
        .route("/v1/profiles/{id}/notes", web::get().to(list_notes))
        .route("/v1/notes/{id}", web::patch().to(patch_note))
        .route("/v1/notes/{id}", web::delete().to(delete_note));
}

impl From<NoteError> for ServiceError {
    fn from(e: NoteError) -> Self {
        match e {
            NoteError::NoProfile(id) => profile_not_found(&id),
            NoteError::NoNote(id) => ServiceError::not_found(format!("no note with id `{id}`")),
            e @ NoteError::NotYours(_) => ServiceError::forbidden("not_your_note", e.to_string()),
            NoteError::Db(e) => ServiceError::Db(e),
        }
    }
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        match e {
            FieldError::Missing(f) => ServiceError::missing(f),
            e @ FieldError::NothingToChange => {
                ServiceError::invalid("missing_field", e.to_string())
                    .with_details(json!({"field": "text|type|next_follow_up_at"}))
            }
            FieldError::Invalid { field, reason } => {
                let mut details = json!({"field": field, "reason": reason});
                if field == "type" {
                    details["allowed"] = json!(NoteType::ALL.map(NoteType::as_str));
                }
                ServiceError::invalid("invalid_field", format!("`{field}`: {reason}"))
                    .with_details(details)
            }
        }
    }
}

/// The request body as a JSON object.
fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_json",
            "request body: a JSON object is expected",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_json",
            format!("request body: {e}"),
        )),
    }
}

async fn post_note(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let c = notes::read_new(&object(&body)?)?;
    let author = actor(&p)?;
    let n = state.resolver.add_note(&p.tenant, &id, &author, &c).await?;
    Ok(HttpResponse::Created().json(n))
}

async fn list_notes(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<(i64, String)> = q.read("notes")?;
    state.require_profile(&p.tenant, &id).await?;
    let rows =
        crate::store::notes::notes(&state.db, &p.tenant, &id, page.after.clone(), page.fetch())
            .await?;
    Ok(HttpResponse::Ok().json(page.page(rows, NoteView::key)))
}

async fn patch_note(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let edit = notes::read_edit(&object(&body)?)?;
    let by = actor(&p)?;
    let n = state
        .resolver
        .edit_note(&p.tenant, &id, &by, p.role, &edit)
        .await?;
    Ok(HttpResponse::Ok().json(n))
}

async fn delete_note(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let by = actor(&p)?;
    state
        .resolver
        .delete_note(&p.tenant, &id, &by, p.role)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
