//! The audience package: every profile of the caller's tenant matching a condition as CSV
//! (`profile_id` and the asked fields), streamed batch by batch over profile-id ranges, so any
//! size is exported with bounded memory and the first bytes leave before the last profile is
//! read. Cells are neutralised against formula injection ([`platform::http::export`]). A saved
//! segment's export ([`super::saved_segments`]) is this same stream ([`csv_response`]).

use actix_web::web;
use actix_web::HttpResponse;
use futures_util::stream;
use platform::http::export::{cell, csv_rows, neutral};
use platform::http::{ApiError, Principal};
use serde_json::json;

use super::rules::{condition_of, ConditionBody};
use super::ApiState;
use crate::store::segments;

/// Profiles looked at per batch.
const BATCH: u64 = 10_000;
/// Most fields per export.
const MAX_FIELDS: usize = 50;

struct Cursor {
    after: Option<String>,
    header: bool,
    finished: bool,
}

pub(super) async fn export(
    state: web::Data<ApiState>,
    p: Principal,
    body: web::Json<ConditionBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let tenant = p.tenant;
    let cond = condition_of(&state, &tenant, &b).await?;
    check_fields(&b.fields)?;
    let at = state.tagger.at(&tenant);
    Ok(csv_response(
        state.db.clone(),
        tenant,
        cond,
        at,
        b.fields,
        "segment.csv",
    ))
}

/// 400 `invalid_fields` unless `fields` are at most [`MAX_FIELDS`] valid field keys.
pub(super) fn check_fields(fields: &[String]) -> Result<(), ApiError> {
    if fields.len() > MAX_FIELDS || fields.iter().any(|f| !rules::valid_key(f)) {
        return Err(ApiError::bad_request(
            "invalid_fields",
            format!("`fields`: at most {MAX_FIELDS} valid field keys (e.g. `contact.name`)"),
        )
        .with_details(json!({"field": "fields"})));
    }
    Ok(())
}

/// The CSV of every profile of `tenant` matching `cond` at `at` (`profile_id` and `fields`),
/// streamed batch by batch, as the attachment `filename`.
pub(super) fn csv_response(
    db: sea_orm::DatabaseConnection,
    tenant: String,
    cond: rules::Expanded,
    at: crate::domain::At,
    fields: Vec<String>,
    filename: &str,
) -> HttpResponse {
    let start = Cursor {
        after: None,
        header: true,
        finished: false,
    };
    let body = stream::unfold(start, move |mut c| {
        let (db, tenant, cond, fields) = (db.clone(), tenant.clone(), cond.clone(), fields.clone());
        async move {
            if c.finished {
                return None;
            }
            let mut rows: Vec<Vec<String>> = Vec::new();
            if c.header {
                c.header = false;
                rows.push(
                    std::iter::once("profile_id".to_string())
                        .chain(fields.iter().cloned())
                        .collect(),
                );
            }
            let step = async {
                let r = segments::reader(&db).await?;
                let ids = segments::next_ids(&r, &tenant, c.after.as_deref(), BATCH).await?;
                let Some(until) = ids.last().cloned() else {
                    return Ok::<_, sea_orm::DbErr>(None);
                };
                let matched =
                    segments::matching(&r, &tenant, &cond, &at, c.after.as_deref(), &until).await?;
                let matched: Vec<String> = matched.into_iter().collect();
                let keys: Vec<&str> = fields.iter().map(String::as_str).collect();
                let values = segments::fields_of(&r, &tenant, &matched, &keys).await?;
                r.commit().await?;
                Ok(Some((until, matched, values)))
            };
            match step.await {
                Ok(Some((until, matched, values))) => {
                    for id in matched {
                        let vals = values.get(&id);
                        let mut row = vec![neutral(&id)];
                        row.extend(fields.iter().map(|f| cell(vals.and_then(|v| v.get(f)))));
                        rows.push(row);
                    }
                    c.after = Some(until);
                }
                Ok(None) => c.finished = true,
                Err(e) => {
                    tracing::error!(error = %e, "Export stopped: database error");
                    c.finished = true;
                    return Some((Err(std::io::Error::other(e.to_string())), c));
                }
            }
            Some((csv_rows(&rows), c))
        }
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body)
}
