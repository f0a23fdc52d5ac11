//! `POST /admin/v1/saved-segments/{id}/audience`: a saved segment's members with where each can
//! be reached, for an Official Account mass send (openids per app), a mini-program message or a
//! WeCom group send (external_userids per rep), streamed as JSON lines (default) or CSV.
//!
//! Composed a page at a time ([`PAGE`] members): tagging's members with the fields and tags
//! asked, then identity's reach of those profiles (`POST /v1/profiles/reach`), joined by
//! [`crate::domain::audience`]. Memory stays bounded whatever the segment's size, and the first
//! lines leave before the last member is read. The first page is read before answering, so an
//! unknown segment (404), an archived one (409) or a bad field (400) is an error answer, not a
//! broken stream; a service failing later ends the stream early (logged), which a client sees as
//! a truncated body.
//!
//! The body: `{format?: "jsonl" | "csv", fields?: [keys], tags?: bool (default true),
//! channels?: ["oa", "mp", "wecom", "phone"] (default all), reachable_only?: bool}`. Openids and
//! external_userids are what WeChat's send APIs take, so the route needs an operator; the phone
//! is masked for every role. Every export is recorded in the audit log (who took which
//! segment, in what shape).
//!
//! The same export runs as a background job (`POST …/audience-jobs`, [`super::export_jobs`]):
//! [`AudienceSource`] reads it page by page for [`crate::exports`].

use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, Route};
use futures_util::stream;
use platform::http::export::csv_rows;
use platform::http::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::audit;
use super::proxy::url_escape;
use super::routes::AdminRoute;
use crate::access::AdminPrincipal;
use crate::api::GatewayState;
use crate::domain::audience::{csv_cells, row, Channel, Columns, Shape};
use crate::registry::AppKind;
use crate::services::{Service, Services};

/// Members read per page (the most tagging's members and identity's reach answer).
const PAGE: usize = 1000;
/// Most fields per export (as tagging's exports).
const MAX_FIELDS: usize = 50;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &AdminRoute, route: Route) -> bool {
    match (r.method, r.path) {
        ("POST", "/admin/v1/saved-segments/{id}/audience") => {
            cfg.route(r.path, route.to(audience));
            true
        }
        _ => false,
    }
}

/// The export's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum Format {
    /// One JSON object per member and line (`application/x-ndjson`).
    #[default]
    Jsonl,
    /// A header and one row per member; a column per registered app (`text/csv`).
    Csv,
}

fn yes() -> bool {
    true
}

fn all_channels() -> Vec<ChannelName> {
    vec![
        ChannelName::Oa,
        ChannelName::Mp,
        ChannelName::Wecom,
        ChannelName::Phone,
    ]
}

/// A channel an export carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum ChannelName {
    Oa,
    Mp,
    Wecom,
    Phone,
}

impl From<ChannelName> for Channel {
    fn from(c: ChannelName) -> Self {
        match c {
            ChannelName::Oa => Channel::Oa,
            ChannelName::Mp => Channel::Mp,
            ChannelName::Wecom => Channel::Wecom,
            ChannelName::Phone => Channel::Phone,
        }
    }
}

/// What an audience export carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AudienceRequest {
    #[serde(default)]
    pub(super) format: Format,
    /// Field keys beside the identifiers (e.g. `contact.name`), at most 50.
    #[serde(default)]
    fields: Vec<String>,
    /// The tags each member carries (default true).
    #[serde(default = "yes")]
    tags: bool,
    /// Which identifiers (default all): Official Account openids of the accounts the customer
    /// follows, mini-program openids, WeCom external_userids with their reps, the masked phone.
    #[serde(default = "all_channels")]
    channels: Vec<ChannelName>,
    /// Leave out members with no identifier on the asked messaging channels.
    #[serde(default)]
    reachable_only: bool,
}

fn bad(code: &'static str, field: &str, message: String) -> ApiError {
    ApiError::bad_request(code, message).with_details(json!({"field": field}))
}

impl AudienceRequest {
    pub(super) fn shape(&self) -> Result<Shape, ApiError> {
        if self.fields.len() > MAX_FIELDS {
            return Err(bad(
                "invalid_fields",
                "fields",
                format!("`fields`: at most {MAX_FIELDS} field keys"),
            ));
        }
        let mut channels: Vec<Channel> = self.channels.iter().map(|&c| c.into()).collect();
        channels.sort();
        channels.dedup();
        Ok(Shape {
            fields: self.fields.clone(),
            tags: self.tags,
            channels,
            reachable_only: self.reachable_only,
        })
    }
}

/// How a page's members are written.
#[derive(Debug, Clone)]
pub(super) struct Encoding {
    pub(super) shape: Shape,
    pub(super) cols: Columns,
    pub(super) format: Format,
}

/// Where the stream is.
struct Cursor {
    services: Services,
    p: AdminPrincipal,
    members_path: String,
    enc: Encoding,
    /// The page read and not yet written (the first one is read before answering).
    page: Option<Value>,
    done: bool,
}

/// Tagging's members path of segment `id` for `shape` (without `after`).
pub(super) fn members_path(id: &str, shape: &Shape) -> String {
    let mut path = format!(
        "/v1/saved-segments/{}/members?limit={PAGE}&tags={}",
        url_escape(id),
        shape.tags
    );
    path.push_str("&fields=");
    path.push_str(&url_escape(&shape.fields.join(",")));
    path
}

/// The columns of a CSV export: one per registered app of the tenant, in app id order.
pub(super) async fn columns(state: &GatewayState, tenant: &str) -> Result<Columns, ApiError> {
    let mut cols = Columns::default();
    let mut apps = state
        .registry
        .list(tenant)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    apps.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    for a in apps {
        match a.kind {
            AppKind::Oa => cols.oa.push(a.app_id),
            AppKind::Mp => cols.mp.push(a.app_id),
            AppKind::Wecom => cols.corps.push(a.app_id),
            AppKind::WecomAgent => {}
        }
    }
    Ok(cols)
}

/// Tagging's page of members after `after`: `Ok(page)`, or the service's error answer.
pub(super) async fn members_page(
    services: &Services,
    p: &AdminPrincipal,
    base: &str,
    after: Option<&str>,
) -> Result<Result<Value, (StatusCode, Value)>, ApiError> {
    let path = match after {
        Some(a) => format!("{base}&after={}", url_escape(a)),
        None => base.to_string(),
    };
    let (status, v) = services
        .json(Service::Tagging, Method::GET, &path, None, p)
        .await
        .map_err(platform::ServiceError::from)?;
    Ok(if status.is_success() {
        Ok(v)
    } else {
        Err((status, v))
    })
}

/// The rows of one page, encoded, and how many rows they are.
pub(super) async fn encode(
    services: &Services,
    p: &AdminPrincipal,
    enc: &Encoding,
    page: &Value,
) -> Result<(Bytes, usize), std::io::Error> {
    let members = page["items"].as_array().cloned().unwrap_or_default();
    let mut reach: std::collections::HashMap<String, Value> = Default::default();
    if !enc.shape.channels.is_empty() && !members.is_empty() {
        let ids: Vec<&str> = members
            .iter()
            .filter_map(|m| m["profile_id"].as_str())
            .collect();
        let (status, v) = services
            .json(
                Service::Identity,
                Method::POST,
                "/v1/profiles/reach",
                Some(&json!({"profile_ids": ids})),
                p,
            )
            .await
            .map_err(std::io::Error::other)?;
        if !status.is_success() {
            return Err(std::io::Error::other(format!(
                "identity answered {status} to a reach read"
            )));
        }
        for r in v["items"].as_array().into_iter().flatten() {
            if let Some(id) = r["profile_id"].as_str() {
                reach.insert(id.to_string(), r.clone());
            }
        }
    }
    let rows: Vec<Value> = members
        .iter()
        .filter_map(|m| {
            let id = m["profile_id"].as_str().unwrap_or_default();
            row(&enc.shape, m, reach.get(id))
        })
        .collect();
    let n = rows.len();
    let bytes = match enc.format {
        Format::Jsonl => {
            let mut out = Vec::new();
            for r in &rows {
                serde_json::to_writer(&mut out, r).map_err(std::io::Error::other)?;
                out.push(b'\n');
            }
            Bytes::from(out)
        }
        Format::Csv => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| csv_cells(&enc.shape, &enc.cols, r))
                .collect();
            csv_rows(&cells)?
        }
    };
    Ok((bytes, n))
}

/// The audit summary of an audience export of segment `id`.
pub(super) fn summary(id: &str, b: &AudienceRequest, shape: &Shape) -> Value {
    json!({"request": {"segment_id": id, "format": format!("{:?}", b.format).to_lowercase(),
           "fields": shape.fields, "tags": shape.tags, "channels": b.channels.iter()
           .map(|c| format!("{c:?}").to_lowercase()).collect::<Vec<_>>(),
           "reachable_only": shape.reachable_only}})
}

async fn audience(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    p: AdminPrincipal,
    id: web::Path<String>,
    body: web::Json<AudienceRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let shape = b.shape()?;
    let members_path = members_path(&id, &shape);
    let first = match members_page(&state.services, &p, &members_path, None).await? {
        Ok(v) => v,
        Err((status, v)) => return Ok(HttpResponse::build(status).json(v)),
    };
    let cols = match b.format {
        Format::Csv => columns(&state, &p.tenant_id).await?,
        Format::Jsonl => Columns::default(),
    };
    audit(
        &state.access,
        &req,
        &p,
        StatusCode::OK,
        summary(&id, &b, &shape),
    )
    .await;
    let header = match b.format {
        Format::Csv => {
            Some(csv_rows(&[shape.header(&cols)]).map_err(|e| ApiError::internal(e.to_string()))?)
        }
        Format::Jsonl => None,
    };
    let start = Cursor {
        services: state.services.clone(),
        p,
        members_path,
        enc: Encoding {
            shape,
            cols,
            format: b.format,
        },
        page: Some(first),
        done: false,
    };
    let body = stream::unfold(start, |mut c| async move {
        if c.done {
            return None;
        }
        let page = c.page.take()?;
        let chunk = encode(&c.services, &c.p, &c.enc, &page)
            .await
            .map(|(bytes, _)| bytes);
        if chunk.is_err() {
            c.done = true;
        } else if let Some(next) = page["next"].as_str() {
            match members_page(&c.services, &c.p, &c.members_path, Some(next)).await {
                Ok(Ok(v)) => c.page = Some(v),
                Ok(Err((status, _))) => {
                    tracing::error!(%status, "Audience export stopped: tagging refused a page");
                    c.done = true;
                }
                Err(e) => {
                    tracing::error!(error = ?e, "Audience export stopped");
                    c.done = true;
                }
            }
        }
        if let Err(e) = &chunk {
            tracing::error!(error = %e, "Audience export stopped");
        }
        Some((chunk, c))
    });
    let (content_type, ext) = match b.format {
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let head = stream::iter(header.map(Ok::<_, std::io::Error>));
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "content-disposition",
            format!(
                "attachment; filename=\"audience-{}.{ext}\"",
                url_escape(&id)
            ),
        ))
        .streaming(futures_util::StreamExt::chain(head, body)))
}
