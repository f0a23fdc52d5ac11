//! The customer browse over HTTP, in the tenant of the caller's credential ([`crate::store::browse`]).
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/customers?sort=&order=&stage=&owner=&owner_corp=&tag=&source=&model=&score_min=&score_max=&condition=&cursor=&limit=` | `{items, next_cursor, as_of}` |
//! | `POST /v1/customers/query` with the same fields as a JSON object (`tags` a list, `condition` an object) | the same |
//!
//! - `sort`: `last_active` (default), `created`, `stage` (the machine's stages in order, each by
//!   last activity) or `score` (needs `model`; always highest first);
//! - `order`: `desc` (default) or `asc`;
//! - `tag` (GET, comma-separated) / `tags` (POST): the customer has every one;
//! - `source`: the first touch's channel (`source.first.channel`);
//! - `score_min` / `score_max` with `model`: the score now in that model (unscored = 0);
//! - `condition`: a condition of the rule language (GET: as JSON text), evaluated on this
//!   service's facts; references to tag rules are not accepted (filter by the rule's tag).
//!
//! Items: `profile_id`, `name` (name, else nickname), `avatar`, `stage`, `stage_entered_at`,
//! `owner`, `created_at`, `last_activity_at`, `scores` (every active model by key). Errors:
//! 400 `invalid_field` / `unknown_model` / `invalid_condition` naming the field.

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use rules::sql::{self, CompileCtx};
use rules::{EvalCtx, Limits, NoRules};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{self, Body, RequestBody};
use super::page::PageReq;
use super::ApiState;
use crate::domain::compiled::Compiled;
use crate::store::browse::{self, Browse, Customer, Filter, Key, ScoreRange, Sort};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/customers", web::get().to(get_customers))
        .route("/v1/customers/query", web::post().to(post_query));
}

/// The query string of `GET /v1/customers`.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    sort: Option<String>,
    order: Option<String>,
    stage: Option<String>,
    owner: Option<String>,
    owner_corp: Option<String>,
    tag: Option<String>,
    source: Option<String>,
    model: Option<String>,
    score_min: Option<f64>,
    score_max: Option<f64>,
    condition: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

/// The body of `POST /v1/customers/query` (a `tenant_id`, `operator` or `actor` a caller still
/// sends is dropped unread, [`body`](super::body)).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sort: Option<String>,
    order: Option<String>,
    stage: Option<String>,
    owner: Option<String>,
    owner_corp: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    source: Option<String>,
    model: Option<String>,
    score_min: Option<f64>,
    score_max: Option<f64>,
    condition: Option<Value>,
    cursor: Option<String>,
    limit: Option<u64>,
}

impl RequestBody for QueryBody {
    const IGNORED: &'static [&'static str] = body::FROM_CREDENTIAL;
}

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_field", format!("`{field}`: {message}"))
        .with_details(json!({"field": field}))
}

fn blank_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

async fn get_customers(
    state: web::Data<ApiState>,
    p: Principal,
    q: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let condition = match blank_none(q.condition) {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<Value>(&text)
                .map_err(|e| invalid("condition", format!("not JSON: {e}")))?,
        ),
    };
    let tags = blank_none(q.tag)
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let body = QueryBody {
        sort: q.sort,
        order: q.order,
        stage: q.stage,
        owner: q.owner,
        owner_corp: q.owner_corp,
        tags,
        source: q.source,
        model: q.model,
        score_min: q.score_min,
        score_max: q.score_max,
        condition,
        cursor: q.cursor,
        limit: q.limit,
    };
    answer(&state, &p.tenant, body).await
}

async fn post_query(
    state: web::Data<ApiState>,
    p: Principal,
    Body(body): Body<QueryBody>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &p.tenant, body).await
}

/// The cursor namespace of each sort and order: a cursor of one does not continue another.
fn list_name(sort: Sort, desc: bool) -> &'static str {
    match (sort, desc) {
        (Sort::LastActive, true) => "customers.last_active.desc",
        (Sort::LastActive, false) => "customers.last_active.asc",
        (Sort::Created, true) => "customers.created.desc",
        (Sort::Created, false) => "customers.created.asc",
        (Sort::Stage, true) => "customers.stage.desc",
        (Sort::Stage, false) => "customers.stage.asc",
        (Sort::Score(_), _) => "customers.score",
    }
}

fn model_of(defs: &Compiled, model: Option<&str>, why: &str) -> Result<usize, ApiError> {
    let Some(model) = model else {
        return Err(
            ApiError::bad_request("missing_field", format!("`model` is required {why}"))
                .with_details(json!({"field": "model"})),
        );
    };
    defs.model_by_key(model)
        .or_else(|| defs.model_by_id(model))
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_model",
                format!("`model`: no active model `{model}`"),
            )
            .with_details(json!({"field": "model"}))
        })
}

async fn answer(state: &ApiState, tenant: &str, q: QueryBody) -> Result<HttpResponse, ApiError> {
    let s = &state.scorer;
    let defs = s.compiled(tenant).await?;
    let model = blank_none(q.model);
    let desc = match blank_none(q.order).as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => return Err(invalid("order", format!("`{o}` is not `desc` or `asc`"))),
    };
    let sort = match blank_none(q.sort).as_deref() {
        None | Some("last_active") => Sort::LastActive,
        Some("created") => Sort::Created,
        Some("stage") => Sort::Stage,
        Some("score") => {
            if !desc {
                return Err(invalid("order", "the score sort is highest first only"));
            }
            Sort::Score(model_of(&defs, model.as_deref(), "to sort by score")?)
        }
        Some(o) => {
            return Err(invalid(
                "sort",
                format!("`{o}` is not one of last_active, created, stage, score"),
            ))
        }
    };
    for (f, v) in [("score_min", q.score_min), ("score_max", q.score_max)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(invalid(f, "must be a finite number"));
        }
    }
    if let (Some(lo), Some(hi)) = (q.score_min, q.score_max) {
        if lo > hi {
            return Err(invalid("score_min", "is above `score_max`"));
        }
    }
    let score = if q.score_min.is_some() || q.score_max.is_some() {
        Some(ScoreRange {
            model: model_of(&defs, model.as_deref(), "with `score_min` / `score_max`")?,
            min: q.score_min,
            max: q.score_max,
        })
    } else {
        None
    };
    let now = s.clock().now();
    let condition = match q.condition {
        None | Some(Value::Null) => None,
        Some(doc) => {
            let (_, expanded) =
                rules::parse_expanded(&doc, &Limits::default(), &NoRules).map_err(|errors| {
                    ApiError::bad_request(
                        "invalid_condition",
                        match errors.first() {
                            Some(first) => format!("`condition` is invalid: {first}"),
                            None => "`condition` is invalid".to_string(),
                        },
                    )
                    .with_details(json!({"field": "condition", "errors": errors}))
                })?;
            let today = facts::local_day(now, s.cfg.zone_of(tenant));
            let ctx = CompileCtx::new(tenant, &EvalCtx { now, today });
            Some(sql::compile(&expanded, &ctx))
        }
    };
    let page: PageReq<Key> = PageReq::parse(list_name(sort, desc), q.cursor.as_deref(), q.limit)?;
    let b = Browse {
        sort,
        desc,
        filter: Filter {
            stage: blank_none(q.stage),
            owner: blank_none(q.owner),
            owner_corp: blank_none(q.owner_corp),
            tags: q
                .tags
                .into_iter()
                .filter(|t| !t.trim().is_empty())
                .collect(),
            source: blank_none(q.source),
            score,
            condition,
        },
        after: page.after.clone(),
        limit: page.fetch(),
    };
    let rows = browse::browse(s, tenant, &defs, &b).await?;
    let page = page.page(rows, |c: &Customer| c.key.clone());
    Ok(HttpResponse::Ok().json(json!({
        "items": page.items,
        "next_cursor": page.next_cursor,
        "as_of": now,
    })))
}
