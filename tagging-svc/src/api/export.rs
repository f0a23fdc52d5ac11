//! The audience package: every profile of the caller's tenant matching a condition as CSV
//! (`profile_id` and the asked fields), streamed batch by batch over profile-id ranges, so any
//! size is exported with bounded memory and the first bytes leave before the last profile is
//! read. Text that a spreadsheet would take for a formula (a cell starting with `=`, `+`, `-`,
//! `@`, a tab or a carriage return — visitors type some of these values) is written with a
//! leading `'` (OWASP's advice against CSV injection), so it stays inert text. A saved
//! segment's export ([`super::saved_segments`]) is this same stream ([`csv_response`]).

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures_util::stream;
use platform::http::{ApiError, Principal};
use serde_json::{json, Value};

use super::rules::{condition_of, ConditionBody};
use super::ApiState;
use crate::store::segments;

/// Profiles looked at per batch.
const BATCH: u64 = 10_000;
/// Most fields per export.
const MAX_FIELDS: usize = 50;

/// First characters that make a spreadsheet read a cell as a formula (or, for tab and carriage
/// return, that hide one).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `s` as inert text: with a leading `'` when it starts like a formula.
fn neutral(s: &str) -> String {
    if s.starts_with(FORMULA_STARTS) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// A field value as a cell. Numbers and booleans are written as they are (a negative number is
/// not a formula); text, lists and objects are neutralised.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(Value::String(s)) => neutral(s),
        Some(other) => neutral(&other.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_text_is_neutralised_and_the_rest_is_not() {
        for (raw, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1+2", "'+1+2"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("Hangzhou", "Hangzhou"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(cell(Some(&Value::String(raw.into()))), want, "{raw:?}");
        }
        assert_eq!(cell(Some(&json!(-5))), "-5");
        assert_eq!(cell(Some(&json!(true))), "true");
        assert_eq!(cell(Some(&json!(["=x"]))), "[\"=x\"]");
        assert_eq!(cell(Some(&json!({"a": 1}))), "{\"a\":1}");
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&Value::Null)), "");
    }

    #[test]
    fn neutralised_cells_survive_csv_quoting() {
        let row = vec![cell(Some(&json!("=1+1,\"x\"")))];
        let bytes = csv_rows(&[row]).unwrap();
        assert_eq!(&bytes[..], b"\"'=1+1,\"\"x\"\"\"\n");
    }
}
