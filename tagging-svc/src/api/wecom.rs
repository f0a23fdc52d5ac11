//! WeCom corp-tag sync over HTTP.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/wecom/{corp_id}/corp-tags?tenant_id=` | the mirror: `{corp_id, groups: [{wecom_id, name, order, deleted, group_id?, synced_at, tags: [{wecom_id, name, order, deleted, tag_id?}]}], sync: {last_synced_at, last_error, pending}}` |
//! | `POST /v1/wecom/{corp_id}/corp-tags/sync?tenant_id=` | reads the library now: 200 what changed; 202 `{status: "queued"}` while another process syncs it; 502 `wechat_error` (`details.errcode`); 503 `wecom_sync_off` |
//! | `POST /v1/wecom/{corp_id}/corp-tag-groups/{group_id}/link` `{tenant_id, operator, name?, selection?}` | 201 the local group (written back to WeCom) with a tag per corp tag; 404 not mirrored; 409 `already_linked`, `corp_group_deleted`, `duplicate_name` |
//! | `GET /v1/wecom/sync-queue?tenant_id=[&recent=20]` | write-back items per status and the latest failures |
//! | `PATCH /v1/tag-groups/{id}/wecom` `{sync_wecom?, corp_id?}` | the group; turning sync off drops its pending write-backs, on queues its linked tags for every profile holding them |
//! | `POST /v1/tag-groups/{id}/wecom/push` `{tenant_id}` | creates the group's tags that WeCom lacks (and the corp group when not linked), links them: 200 `{group_id, wecom_group_id, created, linked, mirror}`; 400 a name over 30 characters or no `corp_id`; 409 `already_linked`, `group_retired`, `sync_running`; 502 `wechat_error`; 503 `wecom_sync_off` |

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use platform::http::params::limit;
use platform::http::{ApiError, Routes};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::json;

use super::catalog::catalog_error;
use super::{db_error, field, required};
use crate::store::corp_tags::{self, LinkOptions};
use crate::store::sync_queue;
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

#[derive(Debug, Deserialize)]
struct TenantQuery {
    tenant_id: Option<String>,
    recent: Option<u64>,
}

async fn get_mirror(
    state: web::Data<WecomState>,
    corp: web::Path<String>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    let corp = corp.into_inner();
    let mut mirror = corp_tags::list(&state.db, &tenant, Some(&corp))
        .await
        .map_err(db_error)?;
    let sync = corp_tags::sync_state(&state.db, &tenant, &corp)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({
        "corp_id": corp,
        "groups": mirror.remove(&corp).unwrap_or_default(),
        "sync": sync,
    })))
}

async fn post_sync(
    state: web::Data<WecomState>,
    corp: web::Path<String>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    let sync = wecom_on(&state)?;
    match sync.mirror.sync(&tenant, &corp).await {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(MirrorError::Busy) => Ok(HttpResponse::Accepted().json(json!({"status": "queued"}))),
        Err(e) => Err(mirror_error(e)),
    }
}

fn mirror_error(e: MirrorError) -> ApiError {
    match e {
        MirrorError::Busy => ApiError::new(StatusCode::CONFLICT, "sync_running", e.to_string()),
        MirrorError::Db(e) => db_error(e),
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

#[derive(Debug, Deserialize)]
struct PushBody {
    tenant_id: Option<String>,
}

async fn post_push(
    state: web::Data<WecomState>,
    id: web::Path<String>,
    body: web::Json<PushBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = field(body.into_inner().tenant_id, "tenant_id")?;
    let sync = wecom_on(&state)?;
    match sync.mirror.push(&tenant, &id).await {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(PushError::Refused(e)) => Err(catalog_error(e)),
        Err(PushError::Mirror(e)) => Err(mirror_error(e)),
    }
}

#[derive(Debug, Deserialize)]
struct LinkBody {
    tenant_id: Option<String>,
    operator: Option<String>,
    name: Option<String>,
    selection: Option<String>,
}

async fn post_link(
    state: web::Data<WecomState>,
    path: web::Path<(String, String)>,
    body: web::Json<LinkBody>,
) -> Result<HttpResponse, ApiError> {
    let (corp, group) = path.into_inner();
    let b = body.into_inner();
    let tenant = field(b.tenant_id, "tenant_id")?;
    let opts = LinkOptions {
        name: b.name.filter(|n| !n.trim().is_empty()),
        selection: b.selection,
        operator: field(b.operator, "operator")?,
    };
    let view = corp_tags::link(&state.db, &tenant, &corp, &group, opts)
        .await
        .map_err(catalog_error)?;
    Ok(HttpResponse::Created().json(view))
}

async fn get_queue(
    state: web::Data<WecomState>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = required(q.tenant_id, "tenant_id")?;
    let recent = limit(q.recent, 20, 500)?;
    let status = sync_queue::status(&state.db, &tenant, recent)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(status))
}

#[derive(Debug, Deserialize)]
struct GroupSyncBody {
    sync_wecom: Option<bool>,
    corp_id: Option<String>,
}

async fn patch_group(
    state: web::Data<WecomState>,
    id: web::Path<String>,
    body: web::Json<GroupSyncBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let g = corp_tags::set_group_sync(&state.db, &id, b.sync_wecom, b.corp_id)
        .await
        .map_err(catalog_error)?;
    Ok(HttpResponse::Ok().json(g))
}
