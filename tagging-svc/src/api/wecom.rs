//! WeCom corp-tag sync over HTTP. The tenant is the caller's principal's and the actor recorded
//! its actor; a group of another tenant, and a corp the tenant has nothing of, is answered 404
//! like an unknown id.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/wecom/{corp_id}/corp-tags?cursor=&limit=` | the mirror, a page of groups by WeCom's order: `{corp_id, sync: {last_synced_at, last_error, pending}, items: [{wecom_id, name, order, deleted, group_id?, synced_at, tags: [{wecom_id, name, order, deleted, tag_id?}]}], next_cursor}`; 404 before the tenant ever asked for the corp |
//! | `POST /v1/wecom/{corp_id}/corp-tags/sync` | reads the library now: 200 what changed; 202 `{status: "queued"}` while another process syncs it; 404 a corp that is not the tenant's (the gateway's token keeper knows no such WeCom app of the tenant); 502 `wechat_error` (`details.errcode`); 503 `wecom_sync_off` |
//! | `POST /v1/wecom/{corp_id}/corp-tag-groups/{group_id}/link` `{name?, selection?}` | 201 the local group (written back to WeCom) with a tag per corp tag; 404 not mirrored; 409 `already_linked`, `corp_group_deleted`, `duplicate_name` |
//! | `GET /v1/wecom/sync-queue?cursor=&limit=` | write-back items per status and a page of failures, latest first: `{counts, items, next_cursor}` (`recent`, the old name of `limit`, is still read) |
//! | `PATCH /v1/tag-groups/{id}/wecom` `{sync_wecom?, corp_id?}` | the group; turning sync off drops its pending write-backs, on queues its linked tags for every profile holding them |
//! | `POST /v1/tag-groups/{id}/wecom/push` | creates the group's tags that WeCom lacks (and the corp group when not linked), links them: 200 `{group_id, wecom_group_id, created, linked, mirror}`; 400 a name over 30 characters, no `corp_id` or one that is not the tenant's; 409 `already_linked`, `group_retired`, `sync_running`; 502 `wechat_error`; 503 `wecom_sync_off` |

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal, Routes};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::json;

use super::page::{limit, PageQuery, PageReq};
use crate::store::catalog;
use crate::store::corp_tags::{self, LinkOptions, MirrorGroup};
use crate::store::sync_queue::{self, FailedItem};
use crate::wecom::mirror::{MirrorError, PushError};
use crate::wecom::WecomSync;

#[derive(Clone)]
struct WecomState {
    db: DatabaseConnection,
    /// `None` while `tagging.wechat.enabled = false`.
    sync: Option<WecomSync>,
}

/// `base` plus the WeCom routes.
pub fn routes(base: Routes, db: DatabaseConnection, sync: Option<WecomSync>) -> Routes {
    let state = WecomState { db, sync };
    Arc::new(move |cfg| {
        base(cfg);
        cfg.app_data(web::Data::new(state.clone()))
            .route("/v1/wecom/sync-queue", web::get().to(get_queue))
            .route("/v1/wecom/{corp_id}/corp-tags", web::get().to(get_mirror))
            .route(
                "/v1/wecom/{corp_id}/corp-tags/sync",
                web::post().to(post_sync),
            )
            .route(
                "/v1/wecom/{corp_id}/corp-tag-groups/{group_id}/link",
                web::post().to(post_link),
            )
            .route("/v1/tag-groups/{id}/wecom", web::patch().to(patch_group))
            .route("/v1/tag-groups/{id}/wecom/push", web::post().to(post_push));
    })
}

/// The sync queue's page of failures: `?cursor=&limit=`, `recent` the old name of `limit` (a
/// `tenant_id` still sent by an old caller is ignored).
#[derive(Debug, Deserialize)]
struct QueueQuery {
    cursor: Option<String>,
    limit: Option<u64>,
    recent: Option<u64>,
}

async fn get_mirror(
    state: web::Data<WecomState>,
    p: Principal,
    corp: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<(i64, String)> = q.read("corp-tags")?;
    let corp = corp.into_inner();
    let groups = corp_tags::mirror(
        &state.db,
        &p.tenant,
        &corp,
        page.after.as_ref(),
        page.fetch(),
    )
    .await?;
    let sync = corp_tags::sync_state(&state.db, &p.tenant, &corp).await?;
    if sync.is_none() && groups.is_empty() && page.after.is_none() {
        return Err(unknown_corp(&corp, " (sync its tag library first)"));
    }
    let page = page.page(groups, MirrorGroup::key);
    Ok(HttpResponse::Ok().json(json!({
        "corp_id": corp,
        "sync": sync,
        "items": page.items,
        "next_cursor": page.next_cursor,
    })))
}

/// 404 for a corp the tenant has nothing of (`hint`: what to do about it, may be empty).
fn unknown_corp(corp: &str, hint: &str) -> ApiError {
    ApiError::not_found(format!("no WeCom corp `{corp}` in this tenant{hint}"))
}

/// Did the gateway's token keeper refuse the tenant the corp (no such WeCom app, or another
/// tenant's)?
fn not_the_tenants(e: &MirrorError) -> bool {
    matches!(e, MirrorError::Wechat(wechat::api::ApiError::TokenKeeper { code, .. })
        if code == "unknown_app" || code == "tenant_mismatch")
}

async fn post_sync(
    state: web::Data<WecomState>,
    p: Principal,
    corp: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sync = wecom_on(&state)?;
    match sync.mirror.sync(&p.tenant, &corp).await {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(MirrorError::Busy) => Ok(HttpResponse::Accepted().json(json!({"status": "queued"}))),
        Err(e) if not_the_tenants(&e) => {
            // Not the tenant's corp: like an unknown one, and not asked for again.
            corp_tags::forget_corp(&state.db, &p.tenant, &corp).await?;
            Err(unknown_corp(&corp, ""))
        }
        Err(e) => Err(mirror_error(e)),
    }
}

fn mirror_error(e: MirrorError) -> ApiError {
    match e {
        MirrorError::Busy => ApiError::new(StatusCode::CONFLICT, "sync_running", e.to_string()),
        MirrorError::Db(e) => ApiError::from(e),
        MirrorError::Wechat(e) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "wechat_error", e.to_string())
                .with_details(json!({"errcode": e.errcode(), "transient": e.is_transient()}))
        }
        e @ (MirrorError::NoSlot | MirrorError::Limiter(_)) => {
            ApiError::unavailable("rate_limited", e.to_string())
        }
    }
}

fn wecom_on(state: &WecomState) -> Result<&WecomSync, ApiError> {
    state.sync.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "wecom_sync_off",
            "WeCom access is switched off (tagging.wechat.enabled = false)",
        )
    })
}

async fn post_push(
    state: web::Data<WecomState>,
    p: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // A group the tenant does not have is 404 whether or not WeCom access is on.
    catalog::group(&state.db, &p.tenant, &id).await?;
    let sync = wecom_on(&state)?;
    match sync.mirror.push(&p.tenant, &id).await {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(PushError::Refused(e)) => Err(ApiError::from(e)),
        // The group names a corp that is not a WeCom app of the tenant.
        Err(PushError::Mirror(e)) if not_the_tenants(&e) => Err(ApiError::bad_request(
            "invalid_field",
            "`corp_id`: the group's corp is not a WeCom app of this tenant; set another with \
             PATCH /v1/tag-groups/{id}/wecom",
        )
        .with_details(json!({"field": "corp_id"}))),
        Err(PushError::Mirror(e)) => Err(mirror_error(e)),
    }
}

/// How to link: `{name?, selection?}`; no body at all is the defaults (a `tenant_id` or
/// `operator` still sent by an old caller is ignored).
#[derive(Debug, Default)]
struct LinkBody {
    name: Option<String>,
    selection: Option<String>,
}

impl LinkBody {
    fn read(body: &[u8]) -> Result<Self, ApiError> {
        if body.trim_ascii().is_empty() {
            return Ok(LinkBody::default());
        }
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))?;
        let Some(obj) = v.as_object() else {
            return Err(ApiError::bad_request(
                "invalid_json",
                "request body: must be an object {name?, selection?}",
            ));
        };
        let text = |field: &'static str| match obj.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(
                "invalid_field",
                format!("`{field}`: must be a string"),
            )
            .with_details(json!({"field": field}))),
        };
        Ok(LinkBody {
            name: text("name")?,
            selection: text("selection")?,
        })
    }
}

async fn post_link(
    state: web::Data<WecomState>,
    p: Principal,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (corp, group) = path.into_inner();
    let b = LinkBody::read(&body)?;
    let opts = LinkOptions {
        name: b.name.filter(|n| !n.trim().is_empty()),
        selection: b.selection,
        operator: p.actor,
    };
    let view = corp_tags::link(&state.db, &p.tenant, &corp, &group, opts).await?;
    Ok(HttpResponse::Created().json(view))
}

async fn get_queue(
    state: web::Data<WecomState>,
    p: Principal,
    q: web::Query<QueueQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let mut page: PageReq<(i64, i64)> =
        PageReq::parse("sync-queue.failures", q.cursor.as_deref(), q.limit)?;
    if let (None, Some(recent)) = (q.limit, q.recent) {
        page.limit = limit(Some(recent), "recent")?;
    }
    let status = sync_queue::status(&state.db, &p.tenant, page.after, page.fetch()).await?;
    let failures = page.page(status.recent_failures, FailedItem::key);
    Ok(HttpResponse::Ok().json(json!({
        "counts": status.counts,
        "items": failures.items,
        "next_cursor": failures.next_cursor,
    })))
}

#[derive(Debug, Deserialize)]
struct GroupSyncBody {
    sync_wecom: Option<bool>,
    corp_id: Option<String>,
}

async fn patch_group(
    state: web::Data<WecomState>,
    p: Principal,
    id: web::Path<String>,
    body: web::Json<GroupSyncBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let g =
        corp_tags::set_group_sync_in(&state.db, &p.tenant, &id, b.sync_wecom, b.corp_id).await?;
    Ok(HttpResponse::Ok().json(g))
}
