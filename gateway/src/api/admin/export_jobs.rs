//! Export jobs of the admin API: an audience export run in the background (`POST
//! /admin/v1/saved-segments/{id}/audience-jobs`, the body of `…/audience`), its progress
//! (`GET /admin/v1/export-jobs/{id}`, the tenant's list at `GET /admin/v1/export-jobs`) and its
//! file once done (`GET /admin/v1/export-jobs/{id}/file`, streamed part by part). The job reads
//! as the principal that asked; another tenant's job is 404; every request and every download
//! is in the audit log. The runner and the tables are [`crate::exports`]; the pages are the
//! streamed export's ([`AudienceSource`]).

use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, Route};
use futures_util::stream;
use platform::http::export::csv_rows;
use platform::http::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audience::{
    columns, encode, members_page, members_path, summary, AudienceRequest, Encoding, Format,
};
use super::audit;
use super::page::{Page, PageQuery};
use super::proxy::url_escape;
use super::routes::AdminRoute;
use crate::access::AdminPrincipal;
use crate::api::GatewayState;
use crate::domain::audience::Columns;
use crate::exports::store::{self, job, JobView, DONE, EXPIRED};
use crate::exports::{Page as OutPage, Source, SourceError};
use crate::services::{Service, Services};

/// Parts read from the store per step of a download.
const PARTS_PER_READ: u64 = 4;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &AdminRoute, route: Route) -> bool {
    match (r.method, r.path) {
        ("POST", "/admin/v1/saved-segments/{id}/audience-jobs") => {
            cfg.route(r.path, route.to(create));
            true
        }
        ("GET", "/admin/v1/export-jobs") => {
            cfg.route(r.path, route.to(list));
            true
        }
        ("GET", "/admin/v1/export-jobs/{id}") => {
            cfg.route(r.path, route.to(get));
            true
        }
        ("GET", "/admin/v1/export-jobs/{id}/file") => {
            cfg.route(r.path, route.to(file));
            true
        }
        _ => false,
    }
}

/// What an audience job exports, as it is kept with the job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Spec {
    request: AudienceRequest,
    /// The CSV columns as the tenant's apps stood when the job was asked for.
    cols: Columns,
}

/// The audience export's pages for the job runner.
pub struct AudienceSource {
    pub services: Services,
}

fn spec_of(j: &job::Model) -> Result<(Spec, AdminPrincipal, Encoding), SourceError> {
    let spec: Spec = serde_json::from_str(&j.spec)
        .map_err(|e| SourceError::Refused(format!("unreadable job spec: {e}")))?;
    let p: AdminPrincipal = serde_json::from_str(&j.principal)
        .map_err(|e| SourceError::Refused(format!("unreadable job principal: {e}")))?;
    let shape = spec
        .request
        .shape()
        .map_err(|e| SourceError::Refused(e.to_string()))?;
    let enc = Encoding {
        shape,
        cols: spec.cols.clone(),
        format: spec.request.format,
    };
    Ok((spec, p, enc))
}

#[async_trait::async_trait]
impl Source for AudienceSource {
    async fn header(&self, j: &job::Model) -> Result<Option<Vec<u8>>, SourceError> {
        let (_, _, enc) = spec_of(j)?;
        match enc.format {
            Format::Csv => csv_rows(&[enc.shape.header(&enc.cols)])
                .map(|b| Some(b.to_vec()))
                .map_err(|e| SourceError::Refused(e.to_string())),
            Format::Jsonl => Ok(None),
        }
    }

    async fn page(&self, j: &job::Model, after: Option<&str>) -> Result<OutPage, SourceError> {
        let (_, p, enc) = spec_of(j)?;
        let path = members_path(&j.segment_id, &enc.shape);
        let page = match members_page(&self.services, &p, &path, after).await {
            Ok(Ok(v)) => v,
            Ok(Err((status, v))) if status.is_client_error() => {
                return Err(SourceError::Refused(format!(
                    "tagging answered {status}: {}",
                    v["message"].as_str().unwrap_or_default()
                )))
            }
            Ok(Err((status, _))) => {
                return Err(SourceError::Unavailable(format!(
                    "tagging answered {status}"
                )))
            }
            Err(e) => return Err(SourceError::Unavailable(e.to_string())),
        };
        let (body, rows) = encode(&self.services, &p, &enc, &page)
            .await
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        Ok(OutPage {
            body: body.to_vec(),
            members: page["items"].as_array().map_or(0, |a| a.len() as u64),
            rows: rows as u64,
            next: page["next"].as_str().map(str::to_string),
        })
    }
}

fn storage(e: sea_orm::DbErr) -> ApiError {
    ApiError::internal(e.to_string())
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no export job with id `{id}`"),
    )
}

async fn create(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
    body: web::Json<AudienceRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let shape = b.shape()?;
    // The segment as tagging sees it for this principal: unknown (404) and archived (409)
    // segments are refused now, not by a failed job; its size is the job's total.
    let (status, seg) = state
        .services
        .json(
            Service::Tagging,
            Method::GET,
            &format!("/v1/saved-segments/{}", url_escape(&id)),
            None,
            &p,
        )
        .await
        .map_err(platform::ServiceError::from)?;
    if !status.is_success() {
        return Ok(HttpResponse::build(status).json(seg));
    }
    if seg["status"] == json!("archived") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "segment_archived",
            format!("the saved segment `{id}` is archived"),
        ));
    }
    // Members are read page by page while the job runs; check the first page is readable now
    // (a saved condition that no longer validates is 409 here, not a failed job).
    if let Err((status, v)) =
        members_page(&state.services, &p, &members_path(&id, &shape), None).await?
    {
        return Ok(HttpResponse::build(status).json(v));
    }
    let cols = match b.format {
        Format::Csv => columns(&state, &p.tenant_id).await?,
        Format::Jsonl => Columns::default(),
    };
    let spec = Spec {
        request: b.clone(),
        cols,
    };
    let j = store::create(
        &state.exports.db,
        store::NewJob {
            tenant_id: p.tenant_id.clone(),
            kind: "audience".into(),
            segment_id: id.to_string(),
            format: format!("{:?}", b.format).to_lowercase(),
            spec: serde_json::to_string(&spec).map_err(|e| ApiError::internal(e.to_string()))?,
            // Kept without the e-mail: the services read the tenant, the actor and the role.
            principal: serde_json::to_string(&AdminPrincipal {
                email: String::new(),
                ..p.clone()
            })
            .map_err(|e| ApiError::internal(e.to_string()))?,
            total: seg["size"].as_i64(),
            created_by: p.actor(),
        },
        chrono::Utc::now(),
    )
    .await
    .map_err(storage)?;
    let mut s = summary(&id, &b, &shape);
    s["job_id"] = json!(j.id);
    audit(&state.access, &req, &p, StatusCode::ACCEPTED, s).await;
    state.exports.start(&j.id);
    Ok(HttpResponse::Accepted().json(JobView::from(j)))
}

async fn list(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let w = q.window("export-jobs")?;
    let rows = store::list(
        &state.exports.db,
        &p.tenant_id,
        w.after.as_deref(),
        w.limit + 1,
    )
    .await
    .map_err(storage)?;
    let more = rows.len() as u64 > w.limit;
    let mut items: Vec<JobView> = rows.into_iter().map(JobView::from).collect();
    items.truncate(w.limit as usize);
    let next_cursor = if more {
        items.last().map(|j| w.cursor(&j.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

async fn get(
    state: web::Data<GatewayState>,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let j = store::get_in(&state.exports.db, &p.tenant_id, &id)
        .await
        .map_err(storage)?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(JobView::from(j)))
}

async fn file(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let j = store::get_in(&state.exports.db, &p.tenant_id, &id)
        .await
        .map_err(storage)?
        .ok_or_else(|| not_found(&id))?;
    match j.status.as_str() {
        DONE => {}
        EXPIRED => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "export_expired",
                format!("the file of export job `{id}` was dropped after its retention"),
            ))
        }
        other => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "export_not_ready",
                format!("export job `{id}` is {other}; its file is there once it is done"),
            )
            .with_details(json!({"status": other})))
        }
    }
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::OK,
        json!({"request": {"job_id": j.id, "segment_id": j.segment_id, "bytes": j.bytes}}),
    )
    .await;
    let (content_type, ext) = match j.format.as_str() {
        "csv" => ("text/csv; charset=utf-8", "csv"),
        _ => ("application/x-ndjson", "jsonl"),
    };
    let db = state.exports.db.clone();
    let job_id = j.id.clone();
    let parts = j.parts;
    let body = stream::unfold(0i64, move |next| {
        let (db, job_id) = (db.clone(), job_id.clone());
        async move {
            if next >= parts {
                return None;
            }
            match store::parts(&db, &job_id, next, PARTS_PER_READ).await {
                Ok(bodies) if !bodies.is_empty() => {
                    let n = bodies.len() as i64;
                    let chunk: Vec<u8> = bodies.concat();
                    Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), next + n))
                }
                // Dropped meanwhile (expired): the body ends short.
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(job_id = %job_id, error = %e, "Export download stopped");
                    Some((Err(std::io::Error::other(e.to_string())), parts))
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "content-disposition",
            format!(
                "attachment; filename=\"audience-{}.{ext}\"",
                url_escape(&j.segment_id)
            ),
        ))
        .streaming(body))
}
