//! Profile search, a rep's customers, operator field edits, custom-field declarations, binding
//! tokens and the data-quality log.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/search?tenant_id=&phone=\|name=\|unionid=\|external_userid=[&corp_id=]&limit=` | matching active profiles (id, display name, version) |
//! | `PATCH /v1/profiles/{id}/fields` `{operator, fields: {key: value \| null}}` | sets / clears fields as the operator; 400 `invalid_field` names `fields.<key>` and the reason |
//! | `POST /v1/profiles/{id}/binding-token` `{operator, ttl_days?}` | a personalised code (`scene`) for a QR code or contact-me link |
//! | `GET /v1/reps/{user_id}/customers?tenant_id=&corp_id=&include_deleted=&cursor=&limit=` | the customers a WeCom rep follows |
//! | `GET /v1/custom-fields?tenant_id=` | the tenant's custom fields |
//! | `PUT /v1/custom-fields/{name}` `{tenant_id, value_type, label?, operator}` | declares one (201) or relabels it (200); 409 `type_change` |
//! | `GET /v1/data-quality?tenant_id=&profile_id=&cursor=&limit=` | refused values, newest first |

use actix_web::{web, HttpResponse};
use platform::http::ApiError;
use proto::identity::IdentifierKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{db_error, field, limit, missing, required, ApiState};
use crate::domain::fields::{self, CustomField, FieldType};
use crate::store::directory::{self, Search};
use crate::store::edits::{field_types, EditError};
use crate::store::queries::{self, LookupError};

/// Registers the routes (before `/v1/profiles/{id}`, which would take `search`).
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/profiles/search", web::get().to(search))
        .route("/v1/profiles/{id}/fields", web::patch().to(patch_fields))
        .route(
            "/v1/profiles/{id}/binding-token",
            web::post().to(post_binding),
        )
        .route("/v1/reps/{user_id}/customers", web::get().to(rep_customers))
        .route("/v1/custom-fields", web::get().to(list_custom))
        .route("/v1/custom-fields/{name}", web::put().to(put_custom))
        .route("/v1/data-quality", web::get().to(data_quality));
}

fn edit_error(e: EditError) -> ApiError {
    match e {
        EditError::InvalidField { field, reason } => {
            ApiError::bad_request("invalid_field", format!("`{field}`: {reason}"))
                .with_details(json!({"field": field, "reason": reason}))
        }
        EditError::NotFound(m) => ApiError::not_found(m),
        EditError::Conflict { code, message } => ApiError::conflict(code, message),
        EditError::Db(e) => db_error(e),
    }
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        "`cursor` is not a cursor this API returned",
    )
    .with_details(json!({"field": "cursor"}))
}

fn cursor(c: Option<&str>) -> Result<Option<i64>, ApiError> {
    match c.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => c.parse().map(Some).map_err(|_| bad_cursor()),
    }
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    tenant_id: Option<String>,
    phone: Option<String>,
    name: Option<String>,
    unionid: Option<String>,
    external_userid: Option<String>,
    corp_id: Option<String>,
    limit: Option<u64>,
}

async fn search(
    state: web::Data<ApiState>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = required(q.tenant_id, "tenant_id")?;
    let limit = limit(q.limit)?;
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    let n = [&q.phone, &q.name, &q.unionid, &q.external_userid]
        .iter()
        .filter(|v| given(v))
        .count();
    if n != 1 {
        return Err(ApiError::bad_request(
            "invalid_search",
            "give exactly one of `phone`, `name`, `unionid`, `external_userid`",
        )
        .with_details(json!({"field": "phone|name|unionid|external_userid"})));
    }
    let s = if let Some(p) = q.phone.filter(|p| !p.trim().is_empty()) {
        let region = state.resolver.default_region(&tenant);
        let (e164, cc) = fields::normalise_phone(&p, region).ok_or_else(|| {
            ApiError::bad_request("invalid_value", "`phone` is not a valid phone number")
                .with_details(json!({"field": "phone"}))
        })?;
        Search::Identifier {
            kind: IdentifierKind::Phone,
            namespace: Some(cc),
            value: e164,
        }
    } else if let Some(name) = q.name.filter(|n| !n.trim().is_empty()) {
        Search::NamePrefix(name)
    } else if let Some(u) = q.unionid.filter(|u| !u.trim().is_empty()) {
        Search::Identifier {
            kind: IdentifierKind::Unionid,
            namespace: Some(proto::identity::DEFAULT_NAMESPACE.into()),
            value: u,
        }
    } else {
        Search::Identifier {
            kind: IdentifierKind::WecomExternalUserid,
            namespace: q.corp_id.filter(|c| !c.trim().is_empty()),
            value: q.external_userid.unwrap_or_default(),
        }
    };
    match directory::search(&state.db, state.pii.as_ref(), &tenant, &s, limit).await {
        Ok(items) => Ok(HttpResponse::Ok().json(json!({"items": items}))),
        Err(LookupError::BadValue(k)) => Err(ApiError::bad_request(
            "invalid_value",
            format!("not a valid {k}"),
        )
        .with_details(json!({"field": k.as_str()}))),
        Err(LookupError::NoKey(k)) => Err(ApiError::unavailable(
            "pii_key_missing",
            format!("{k} identifiers are not stored: identity.pii_key is not configured"),
        )),
        Err(LookupError::Db(e)) => Err(db_error(e)),
    }
}

#[derive(Debug, Deserialize)]
struct FieldsBody {
    operator: Option<String>,
    fields: Option<serde_json::Map<String, Value>>,
}

async fn patch_fields(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<FieldsBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let operator = field(b.operator, "operator")?;
    let values = b
        .fields
        .filter(|f| !f.is_empty())
        .ok_or_else(|| missing("fields"))?;
    if values.len() > 100 {
        return Err(
            ApiError::bad_request("too_many_fields", "at most 100 fields at once")
                .with_details(json!({"field": "fields"})),
        );
    }
    state
        .resolver
        .set_fields(&id, &values, &operator)
        .await
        .map_err(edit_error)?;
    match queries::profile(&state.db, &id).await.map_err(db_error)? {
        Some(p) => Ok(HttpResponse::Ok().json(p)),
        None => Err(ApiError::not_found(format!("no profile with id `{id}`"))),
    }
}

#[derive(Debug, Deserialize)]
struct BindingBody {
    operator: Option<String>,
    ttl_days: Option<i64>,
}

async fn post_binding(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<BindingBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let operator = field(b.operator, "operator")?;
    let days = b.ttl_days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(
            ApiError::bad_request("invalid_ttl", "`ttl_days` must be 1..=365")
                .with_details(json!({"field": "ttl_days"})),
        );
    }
    let binding = state
        .resolver
        .binding_token(&id, &operator, chrono::Duration::days(days))
        .await
        .map_err(edit_error)?;
    Ok(HttpResponse::Created().json(binding))
}

#[derive(Debug, Deserialize)]
struct RepQuery {
    tenant_id: Option<String>,
    corp_id: Option<String>,
    include_deleted: Option<bool>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn rep_customers(
    state: web::Data<ApiState>,
    user: web::Path<String>,
    q: web::Query<RepQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = required(q.tenant_id, "tenant_id")?;
    let page = directory::rep_customers(
        &state.db,
        &tenant,
        q.corp_id.as_deref().filter(|c| !c.is_empty()),
        &user,
        q.include_deleted.unwrap_or(false),
        cursor(q.cursor.as_deref())?,
        limit(q.limit)?,
    )
    .await
    .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize)]
struct TenantQuery {
    tenant_id: Option<String>,
}

async fn list_custom(
    state: web::Data<ApiState>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = required(q.into_inner().tenant_id, "tenant_id")?;
    let items = state
        .resolver
        .custom_fields(&tenant)
        .await
        .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

#[derive(Debug, Deserialize)]
struct CustomBody {
    tenant_id: Option<String>,
    value_type: Option<String>,
    label: Option<String>,
    operator: Option<String>,
}

async fn put_custom(
    state: web::Data<ApiState>,
    name: web::Path<String>,
    body: web::Json<CustomBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let tenant = field(b.tenant_id, "tenant_id")?;
    let operator = field(b.operator, "operator")?;
    let t = field(b.value_type, "value_type")?;
    let value_type = FieldType::parse(&t).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_value_type",
            format!("`value_type`: unknown type `{t}`"),
        )
        .with_details(json!({"field": "value_type", "allowed": field_types()}))
    })?;
    let f = CustomField {
        name: name.into_inner(),
        value_type,
        label: b.label.unwrap_or_default(),
    };
    let created = state
        .resolver
        .declare_custom_field(&tenant, &f, &operator)
        .await
        .map_err(edit_error)?;
    Ok(if created {
        HttpResponse::Created().json(f)
    } else {
        HttpResponse::Ok().json(f)
    })
}

#[derive(Debug, Deserialize)]
struct QualityQuery {
    tenant_id: Option<String>,
    profile_id: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn data_quality(
    state: web::Data<ApiState>,
    q: web::Query<QualityQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = required(q.tenant_id, "tenant_id")?;
    let (items, next) = directory::data_quality(
        &state.db,
        &tenant,
        q.profile_id.as_deref().filter(|p| !p.is_empty()),
        cursor(q.cursor.as_deref())?,
        limit(q.limit)?,
    )
    .await
    .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next})))
}
