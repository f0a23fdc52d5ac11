//! Internal HTTP API of the identity service, called only by the gateway (DESIGN.md §10). Every
//! `/v1` request carries a service credential (`X-Scrm-Principal`, 401 without a valid one): its
//! tenant scopes every read and write — a profile, merge or note of another tenant answers 404
//! exactly like an unknown id, lists hold only the tenant's rows — and its actor is the operator
//! recorded in merges, un-merges, splits, field edits, custom fields and binding codes, and the
//! author of notes. Requests never name the tenant or the operator (a stray `tenant_id`,
//! `operator` or `actor` is ignored; a note's body refuses any field it does not have). Errors
//! are the common JSON body with a stable `code`; phones and e-mails are masked in every
//! response.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/profiles/{id}` | the profile with its identifiers |
//! | `GET /v1/profiles/by-identifier?kind=&namespace=&value=` | the profile holding it; a `phone` in any format (`13800138000`, `+86 138…`), `namespace` (its calling code) optional |
//! | `GET /v1/profiles/{id}/timeline` | resolved events and note entries, newest first |
//! | `GET /v1/profiles/{id}/merges` | merges the profile took part in, with snapshots, oldest first |
//! | `GET /v1/profiles/{id}/edges` | the edge ledger of its identifiers (live and retracted links, rule, evidence, author), oldest first |
//! | `GET /v1/merge-refusals` | refused merges, newest first |
//! | `POST /v1/profiles/reach` `{profile_ids}` | where each profile can be reached now, per channel (see [`reach`]) |
//! | `POST /v1/profiles/merge` `{survivor, absorbed, reason}` | manual merge (guards apply: 409 with the reason code) |
//! | `POST /v1/merges/{id}/unmerge` `{reason}` | undo a merge: the absorbed profile is active again |
//! | `POST /v1/profiles/{id}/split` `{identifier: {kind, namespace, value}, reason}` | move one identifier to a new profile |
//! | `POST /v1/profiles/{id}/notes` `{type, text, next_follow_up_at?}` | a note on the customer (201), by the credential's actor |
//! | `GET /v1/profiles/{id}/notes` | its notes and those of profiles merged into it, newest first |
//! | `PATCH /v1/notes/{id}` `{text?, type?, next_follow_up_at?}` | the note edited (its author, an admin or owner; else 403 `not_your_note`) |
//! | `DELETE /v1/notes/{id}` | 204; same rule |
//!
//! Search, a rep's customers, field edits, custom fields, binding tokens and the data-quality log:
//! see [`directory`]. Notes, their fields and errors, and how they follow merges: see [`notes`].
//! The source registry (`/v1/sources`) touches are attributed through: see [`sources`].
//! Each note write adds a timeline entry (`note.added`, `note.edited`, `note.deleted`, its
//! `summary` naming the note) in the same transaction.
//!
//! Every list pages by `?cursor=&limit=` and answers `{items, next_cursor}` ([`page`]: `limit`
//! 1..=500, default 50; 400 `invalid_cursor` / `invalid_limit` naming the parameter).
//!
//! Operator actions answer 400 for bad input (`missing_field`, `invalid_kind`, `invalid_value`,
//! `invalid_namespace`, `namespace_mismatch`, `same_profile`, `invalid_merge_id`,
//! `invalid_actor`; `details.field` names the field), 404 for unknown ids — and ids of another
//! tenant — (`not_found`), 409 when not allowed (`profile_not_active`, `already_unmerged`,
//! `not_merged`, `still_linked`, `last_identifier`, or the guard's reason:
//! `conflicting_unionids`, `kind_limit`).

mod directory;
mod notes;
mod reach;
mod sources;
use platform::http::page;
use platform::ServiceError;

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use platform::http::params::{field, missing, required};
use platform::http::{ApiError, Principal, Routes};
use proto::identity::IdentifierKind;
use sea_orm::DatabaseConnection;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use self::page::PageQuery;
use crate::domain::fields;
use crate::domain::pii::Pii;
use crate::store::queries::{self, LookupError, TimelineEntry};
use crate::store::unmerge::{Decision, ManualError};
use crate::store::Resolver;

/// Longest actor the audit columns hold.
const MAX_ACTOR: usize = 64;

fn profile_not_found(id: &str) -> ServiceError {
    ServiceError::not_found(format!("no profile with id `{id}`"))
}

/// The acting person of a request as audit trails record it: the credential's actor.
fn actor(p: &Principal) -> Result<String, ApiError> {
    let a = p.actor.trim();
    if a.is_empty() || a.chars().count() > MAX_ACTOR {
        return Err(ApiError::bad_request(
            "invalid_actor",
            format!("the service credential's `actor` must be 1 to {MAX_ACTOR} characters"),
        )
        .with_details(json!({"field": "actor"})));
    }
    Ok(a.to_string())
}

/// A JSON body whose every field is optional: an empty body is the default.
fn optional_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))
}

fn invalid_kind(field: &str, given: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_kind",
        format!("`{field}`: unknown identifier kind `{given}`"),
    )
    .with_details(json!({
        "field": field,
        "allowed": IdentifierKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
    }))
}

/// `(namespace, value in E.164)` of a phone given to find an identifier: in any format, a number
/// without a country code read in the region of `namespace` (a calling code such as `86`) when it
/// is given, else in the tenant's default region (`identity.resolution.default_phone_region`).
/// `ns_field` / `value_field` name the inputs in errors.
fn phone_key(
    resolver: &Resolver,
    tenant: &str,
    namespace: Option<&str>,
    value: &str,
    (ns_field, value_field): (&str, &str),
) -> Result<(String, String), ApiError> {
    let namespace = namespace.map(str::trim).filter(|n| !n.is_empty());
    let region = match namespace {
        Some(ns) => fields::region_of_calling_code(ns).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_namespace",
                format!(
                    "`{ns_field}`: a phone's namespace is its country calling code (e.g. `86`), not `{ns}`"
                ),
            )
            .with_details(json!({"field": ns_field}))
        })?,
        None => resolver.default_region(tenant).to_string(),
    };
    let (e164, cc) = fields::lookup_phone(value, &region).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_value",
            format!("`{value_field}` is not a valid phone number"),
        )
        .with_details(json!({"field": value_field}))
    })?;
    if let Some(ns) = namespace.filter(|ns| *ns != cc) {
        return Err(ApiError::bad_request(
            "namespace_mismatch",
            format!(
                "`{ns_field}` is `{ns}` but `{value_field}` is a number of country code `{cc}`"
            ),
        )
        .with_details(json!({"field": ns_field})));
    }
    Ok((cc, e164))
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub db: DatabaseConnection,
    pub pii: Option<Pii>,
    pub resolver: Resolver,
}

impl ApiState {
    /// 404 unless `tenant` has a profile `id` (merged ones count).
    async fn require_profile(&self, tenant: &str, id: &str) -> Result<(), ApiError> {
        match queries::find_profile(&self.db, tenant, id).await? {
            Some(_) => Ok(()),
            None => Err(profile_not_found(id).into()),
        }
    }
}

/// Routes of the internal API (health, readiness and metrics are added by the platform).
pub fn routes(resolver: Resolver) -> Routes {
    let state = ApiState {
        db: resolver.db().clone(),
        pii: resolver.pii().cloned(),
        resolver,
    };
    Arc::new(move |cfg| {
        cfg.app_data(web::Data::new(state.clone()))
            .configure(directory::routes)
            .configure(notes::routes)
            .configure(reach::routes)
            .configure(sources::routes)
            .route("/v1/profiles/merge", web::post().to(post_merge))
            .route("/v1/merges/{id}/unmerge", web::post().to(post_unmerge))
            .route("/v1/profiles/{id}/split", web::post().to(post_split))
            .route(
                "/v1/profiles/by-identifier",
                web::get().to(profile_by_identifier),
            )
            .route("/v1/profiles/{id}", web::get().to(get_profile))
            .route("/v1/profiles/{id}/timeline", web::get().to(get_timeline))
            .route("/v1/profiles/{id}/merges", web::get().to(get_merges))
            .route("/v1/profiles/{id}/edges", web::get().to(get_edges))
            .route("/v1/merge-refusals", web::get().to(get_refusals));
    })
}

async fn get_profile(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match queries::profile(&state.db, &p.tenant, &id).await? {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(profile_not_found(&id).into()),
    }
}

#[derive(Debug, Deserialize)]
struct ByIdentifier {
    kind: Option<String>,
    namespace: Option<String>,
    value: Option<String>,
}

async fn profile_by_identifier(
    p: Principal,
    state: web::Data<ApiState>,
    q: web::Query<ByIdentifier>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let kind_s = required(q.kind, "kind")?;
    let kind = IdentifierKind::parse(&kind_s).ok_or_else(|| invalid_kind("kind", &kind_s))?;
    let (namespace, value) = if kind == IdentifierKind::Phone {
        let value = required(q.value, "value")?;
        phone_key(
            &state.resolver,
            &p.tenant,
            q.namespace.as_deref(),
            &value,
            ("namespace", "value"),
        )?
    } else {
        let namespace = required(q.namespace, "namespace")?;
        (namespace, required(q.value, "value")?)
    };
    let found = queries::profile_by_identifier(
        &state.db,
        state.pii.as_ref(),
        &p.tenant,
        kind,
        &namespace,
        &value,
    )
    .await;
    match found {
        Ok(Some(v)) => Ok(HttpResponse::Ok().json(v)),
        Ok(None) => Err(ApiError::not_found("no profile holds this identifier")),
        Err(LookupError::BadValue(k)) => Err(ApiError::bad_request(
            "invalid_value",
            format!("`value` is not a valid {k}"),
        )
        .with_details(json!({"field": "value"}))),
        Err(LookupError::NoKey(k)) => Err(ApiError::unavailable(
            "pii_key_missing",
            format!("{k} identifiers are not stored: identity.pii_key is not configured"),
        )),
        Err(LookupError::Db(e)) => Err(ApiError::from(e)),
    }
}

async fn get_timeline(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = q.read("timeline")?;
    state.require_profile(&p.tenant, &id).await?;
    let rows = queries::timeline(&state.db, &p.tenant, &id, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, TimelineEntry::key)))
}

async fn get_edges(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = q.read("edges")?;
    state.require_profile(&p.tenant, &id).await?;
    let rows = queries::edges(&state.db, &p.tenant, &id, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |e| e.id)))
}

async fn get_merges(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = q.read("merges")?;
    state.require_profile(&p.tenant, &id).await?;
    let rows = queries::merges(&state.db, &p.tenant, &id, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |m| m.id)))
}

async fn get_refusals(
    p: Principal,
    state: web::Data<ApiState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = q.read("merge-refusals")?;
    let rows = queries::refusals(&state.db, &p.tenant, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(page.page(rows, |r| r.id)))
}

/// The decision of the credential's actor, with the reason the request gives.
fn decision(p: &Principal, reason: Option<String>) -> Result<Decision, ApiError> {
    Ok(Decision {
        operator: actor(p)?,
        reason: field(reason, "reason")?,
    })
}

impl From<ManualError> for ServiceError {
    fn from(e: ManualError) -> Self {
        match e {
            ManualError::Invalid {
                code,
                field,
                message,
            } => ServiceError::invalid(code, message).with_details(json!({"field": field})),
            ManualError::NotFound { field, message } => {
                ServiceError::not_found(message).with_details(json!({"field": field}))
            }
            ManualError::Conflict { code, message } => ServiceError::conflict(code, message),
            ManualError::NoKey(k) => ServiceError::unavailable(
                "pii_key_missing",
                format!("{k} identifiers are not stored: identity.pii_key is not configured"),
            ),
            ManualError::Db(e) => ServiceError::Db(e),
        }
    }
}

#[derive(Debug, Deserialize)]
struct MergeBody {
    survivor: Option<String>,
    absorbed: Option<String>,
    reason: Option<String>,
}

async fn post_merge(
    p: Principal,
    state: web::Data<ApiState>,
    body: web::Json<MergeBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let survivor = field(b.survivor, "survivor")?;
    let absorbed = field(b.absorbed, "absorbed")?;
    let by = decision(&p, b.reason)?;
    let m = state
        .resolver
        .manual_merge(&p.tenant, &survivor, &absorbed, &by)
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

#[derive(Debug, Deserialize)]
struct UnmergeBody {
    reason: Option<String>,
}

async fn post_unmerge(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<UnmergeBody>,
) -> Result<HttpResponse, ApiError> {
    let merge_id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request("invalid_merge_id", "`id` must be a merge id (an integer)")
            .with_details(json!({"field": "id"}))
    })?;
    let by = decision(&p, body.into_inner().reason)?;
    let u = state.resolver.unmerge_in(&p.tenant, merge_id, &by).await?;
    Ok(HttpResponse::Ok().json(u))
}

#[derive(Debug, Deserialize)]
struct IdentifierBody {
    kind: Option<String>,
    namespace: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SplitBody {
    identifier: Option<IdentifierBody>,
    reason: Option<String>,
}

async fn post_split(
    p: Principal,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<SplitBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let ident = b.identifier.ok_or_else(|| missing("identifier"))?;
    let kind_s = field(ident.kind, "identifier.kind")?;
    let kind =
        IdentifierKind::parse(&kind_s).ok_or_else(|| invalid_kind("identifier.kind", &kind_s))?;
    let (namespace, value) = if kind == IdentifierKind::Phone {
        let value = field(ident.value, "identifier.value")?;
        phone_key(
            &state.resolver,
            &p.tenant,
            ident.namespace.as_deref(),
            &value,
            ("identifier.namespace", "identifier.value"),
        )?
    } else {
        (
            field(ident.namespace, "identifier.namespace")?,
            field(ident.value, "identifier.value")?,
        )
    };
    let by = decision(&p, b.reason)?;
    let u = state
        .resolver
        .split(&p.tenant, &id, kind, &namespace, &value, &by)
        .await?;
    Ok(HttpResponse::Ok().json(u))
}
