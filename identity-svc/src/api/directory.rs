//! Profile search, a rep's customers, operator field edits, custom-field declarations, binding
//! tokens and the data-quality log. As every route of the API: the tenant is the service
//! credential's, the operator its actor (see the parent module).
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/search?phone=\|name=\|unionid=\|external_userid=[&corp_id=]` | the tenant's matching profiles (id, display name, version): active ones by name then id for a name prefix, by id for an identifier; a phone in any format (`13800138000`, `+86 138 0013 8000`) |
//! | `PATCH /v1/profiles/{id}/fields` `{fields: {key: value \| null}}` | sets / clears fields as the operator; 400 `invalid_field` names `fields.<key>` and the reason |
//! | `POST /v1/profiles/{id}/binding-token` `{ttl_days?}` (body optional) | a personalised code (`scene`) for a QR code or contact-me link (201) |
//! | `GET /v1/reps/{user_id}/customers?corp_id=&include_deleted=` | the customers a WeCom rep follows, in the order the follows were recorded |
//! | `GET /v1/custom-fields` | the tenant's custom fields by name |
//! | `PUT /v1/custom-fields/{name}` `{value_type, label?}` | declares one (201) or relabels it (200); 409 `type_change` |
//! | `GET /v1/data-quality?profile_id=` | the tenant's refused values, newest first |
//!
//! The lists page as every list of the API: `?cursor=&limit=`, `{items, next_cursor}`.

use actix_web::{web, HttpResponse};
use platform::http::{ApiError, Principal};
use platform::ServiceError;
use proto::identity::IdentifierKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::page::{PageQuery, PageReq};
use super::{actor, field, missing, optional_body, phone_key, profile_not_found, ApiState};
use crate::domain::fields::{CustomField, FieldType};
use crate::store::directory::{self, ProfileSummary, Search};
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

impl From<EditError> for ServiceError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::InvalidField { field, reason } => {
                ServiceError::invalid("invalid_field", format!("`{field}`: {reason}"))
                    .with_details(json!({"field": field, "reason": reason}))
            }
            EditError::NotFound(m) => ServiceError::not_found(m),
            EditError::Conflict { code, message } => ServiceError::conflict(code, message),
            EditError::Db(e) => ServiceError::Db(e),
        }
    }
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    phone: Option<String>,
    name: Option<String>,
    unionid: Option<String>,
    external_userid: Option<String>,
    corp_id: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn search(
    p: Principal,
    state: web::Data<ApiState>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let tenant = p.tenant;
    let page: PageReq<(String, String)> =
        PageReq::parse("profiles.search", q.cursor.as_deref(), q.limit)?;
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
    let s = if let Some(phone) = q.phone.filter(|p| !p.trim().is_empty()) {
        let (cc, e164) = phone_key(&state.resolver, &tenant, None, &phone, ("phone", "phone"))?;
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
    let found = directory::search(
        &state.db,
        state.pii.as_ref(),
        &tenant,
        &s,
        page.after.as_ref(),
        page.fetch(),
    )
    .await;
    match found {
        Ok(rows) => Ok(HttpResponse::Ok().json(page.page(rows, ProfileSummary::key))),
        Err(LookupError::BadValue(k)) => Err(ApiError::bad_request(
            "invalid_value",
            format!("not a valid {k}"),
        )
        .with_details(json!({"field": k.as_str()}))),
        Err(LookupError::NoKey(k)) => Err(ApiError::unavailable(
            "pii_key_missing",
            format!("{k} identifiers are not stored: identity.pii_key is not configured"),
        )),
        Err(LookupError::Db(e)) => Err(ApiError::from(e)),
    }
}

#[derive(Debug, Deserialize)]
struct FieldsBody {
    fields: Option<serde_json::Map<String, Value>>,
}

async fn patch_fields(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<FieldsBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let operator = actor(&p)?;
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
        .set_fields(&p.tenant, &id, &values, &operator)
        .await?;
    match queries::profile(&state.db, &p.tenant, &id).await? {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(profile_not_found(&id).into()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct BindingBody {
    ttl_days: Option<i64>,
}

async fn post_binding(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: BindingBody = optional_body(&body)?;
    let operator = actor(&p)?;
    let days = b.ttl_days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(
            ApiError::bad_request("invalid_ttl", "`ttl_days` must be 1..=365")
                .with_details(json!({"field": "ttl_days"})),
        );
    }
    let binding = state
        .resolver
        .binding_token(&p.tenant, &id, &operator, chrono::Duration::days(days))
        .await?;
    Ok(HttpResponse::Created().json(binding))
}

#[derive(Debug, Deserialize)]
struct RepQuery {
    corp_id: Option<String>,
    include_deleted: Option<bool>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn rep_customers(
    p: Principal,
    state: web::Data<ApiState>,
    user: web::Path<String>,
    q: web::Query<RepQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page: PageReq<i64> = PageReq::parse("rep-customers", q.cursor.as_deref(), q.limit)?;
    let (items, next) = directory::rep_customers(
        &state.db,
        &p.tenant,
        q.corp_id.as_deref().filter(|c| !c.is_empty()),
        &user,
        q.include_deleted.unwrap_or(false),
        page.after,
        page.limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.with_next(items, next)))
}

async fn list_custom(
    p: Principal,
    state: web::Data<ApiState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page: PageReq<String> = q.read("custom-fields")?;
    let rows =
        directory::custom_fields(&state.db, &p.tenant, page.after.as_deref(), page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |f| f.name.clone())))
}

#[derive(Debug, Deserialize)]
struct CustomBody {
    value_type: Option<String>,
    label: Option<String>,
}

async fn put_custom(
    p: Principal,
    state: web::Data<ApiState>,
    name: web::Path<String>,
    body: web::Json<CustomBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let operator = actor(&p)?;
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
        .declare_custom_field(&p.tenant, &f, &operator)
        .await?;
    Ok(if created {
        HttpResponse::Created().json(f)
    } else {
        HttpResponse::Ok().json(f)
    })
}

#[derive(Debug, Deserialize)]
struct QualityQuery {
    profile_id: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn data_quality(
    p: Principal,
    state: web::Data<ApiState>,
    q: web::Query<QualityQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page: PageReq<i64> = PageReq::parse("data-quality", q.cursor.as_deref(), q.limit)?;
    let rows = directory::data_quality(
        &state.db,
        &p.tenant,
        q.profile_id.as_deref().filter(|p| !p.is_empty()),
        page.after,
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |e| e.id)))
}
