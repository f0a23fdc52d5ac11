//! `POST /v1/profiles/reach` `{profile_ids: [...]}` (1 to [`MAX_IDS`] ids): where each of the
//! tenant's profiles can be reached now — Official Account openids of the accounts the customer
//! follows, mini-program openids, per corp the external_userid with the reps following it, the
//! phone masked (see [`crate::domain::reach`]) — as `{items: [{profile_id, oa[{app_id, openid}],
//! mp[…], wecom[{corp_id, external_userid, reps[]}], phone?}], missing: [{profile_id,
//! merged_into?}]}`, `items` in the order asked. An id that is not an active profile of the
//! tenant (unknown, another tenant's, merged since) is in `missing`, never an error: an export
//! reading a segment page by page meets ids merged a moment ago. Segment exports for mass sends
//! read it a page at a time.

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use crate::store::reach::reach_of;

/// Most ids per request.
pub const MAX_IDS: usize = 1000;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/profiles/reach", web::post().to(post_reach));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReachBody {
    profile_ids: Vec<String>,
}

async fn post_reach(
    p: Principal,
    state: web::Data<ApiState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: ReachBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("request body: {e}"))
            .with_details(json!({"field": "profile_ids"}))
    })?;
    if b.profile_ids.is_empty() || b.profile_ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(
            "invalid_profile_ids",
            format!("`profile_ids`: 1 to {MAX_IDS} profile ids"),
        )
        .with_details(json!({"field": "profile_ids"})));
    }
    if let Some(i) = b
        .profile_ids
        .iter()
        .position(|id| id.is_empty() || id.len() > 64)
    {
        return Err(ApiError::bad_request(
            "invalid_profile_ids",
            format!("`profile_ids[{i}]` is not a profile id"),
        )
        .with_details(json!({"field": format!("profile_ids[{i}]")})));
    }
    let found = reach_of(&state.db, &p.tenant, &b.profile_ids).await?;
    Ok(HttpResponse::Ok().json(found))
}
