//! The audience package: every profile matching a condition as CSV (`profile_id` and the asked
//! fields), streamed batch by batch over profile-id ranges, so any size is exported with bounded
//! memory and the first bytes leave before the last profile is read.

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures_util::stream;
use platform::http::ApiError;
use serde_json::{json, Value};

use super::rules::{condition_of, ConditionBody};
use super::ApiState;
use crate::store::segments;

/// Profiles looked at per batch.
const BATCH: u64 = 10_000;
/// Most fields per export.
const MAX_FIELDS: usize = 50;

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn csv_rows(rows: &[Vec<String>]) -> Result<Bytes, std::io::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r).map_err(std::io::Error::other)?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

struct Cursor {
    after: Option<String>,
    header: bool,
    finished: bool,
}

pub(super) async fn export(
    state: web::Data<ApiState>,
    body: web::Json<ConditionBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let (tenant, cond) = condition_of(&state, &b).await?;
    if b.fields.len() > MAX_FIELDS || b.fields.iter().any(|f| !rules::valid_key(f)) {
        return Err(ApiError::bad_request(
            "invalid_fields",
            format!("`fields`: at most {MAX_FIELDS} valid field keys (e.g. `contact.name`)"),
        )
        .with_details(json!({"field": "fields"})));
    }
    let fields = b.fields.clone();
    let at = state.tagger.at(&tenant);
    let db = state.db.clone();
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
                        let mut row = vec![id.clone()];
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
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            "attachment; filename=\"segment.csv\"",
        ))
        .streaming(body))
}
