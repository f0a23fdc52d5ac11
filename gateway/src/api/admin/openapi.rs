//! The admin API's OpenAPI 3.1 description, built from the route table ([`ROUTES`]) so every
//! route appears with its method, path parameters, bearer security, least role and error
//! answers; served at `GET /admin/v1/openapi.json`, with an interactive viewer at
//! `GET /admin/v1/docs` (its files are compiled into the binary). The gateway's own handlers
//! have typed request and answer schemas (the structs they read and write); routes a service
//! answers have a JSON object schema and the statuses that service answers.

use std::sync::OnceLock;

use actix_web::{web, HttpResponse, Route};
use serde_json::json;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi as Document, Paths, Ref, RefOr, Required, ResponseBuilder,
    Schema,
};
use utoipa::{IntoParams, OpenApi};

mod described;

use described::{doc, local_doc, proxied_query, proxied_success, Query};

use super::page::PageQuery;
use super::routes::{AdminRoute, Target, ROUTES};

/// The security scheme every route but the public ones needs.
const BEARER: &str = "bearer";
/// The common error body's schema name.
const ERROR: &str = "Error";
/// The route of the description itself.
pub(crate) const SPEC_PATH: &str = "/admin/v1/openapi.json";
/// Routes a service answers with CSV (streamed exports).
const CSV_ANSWERS: &[&str] = &[
    "/admin/v1/segments/export",
    "/admin/v1/saved-segments/{id}/export",
];
/// The audience export and an export job's file: JSON lines or CSV.
const AUDIENCE_PATH: &str = "/admin/v1/saved-segments/{id}/audience";
const EXPORT_FILE_PATH: &str = "/admin/v1/export-jobs/{id}/file";
/// The route of the viewer; its files are under it.
pub(crate) const DOCS_PATH: &str = "/admin/v1/docs";

/// A role's schema: one of the role names.
pub(crate) fn role_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["owner", "admin", "operator", "analyst", "rep"]))
        .description(Some(
            "owner ⊃ admin ⊃ operator ⊃ analyst; rep: the sidebar only",
        ))
}

/// [`role_schema`], absent or `null` allowed.
pub(crate) fn optional_role_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([
            Some("owner"),
            Some("admin"),
            Some("operator"),
            Some("analyst"),
            Some("rep"),
            None,
        ]))
        .description(Some(
            "owner ⊃ admin ⊃ operator ⊃ analyst; rep: the sidebar only",
        ))
}

/// A membership status's schema.
pub(crate) fn member_status_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["active", "disabled"]))
}

/// The typed schemas of the gateway's own handlers.
#[derive(OpenApi)]
#[openapi(components(schemas(
    super::auth::Login,
    crate::access::Issued,
    super::auth::Me,
    crate::access::TokenView,
    super::auth::NewToken,
    super::auth::NewTokenAnswer,
    crate::access::MemberView,
    crate::access::MemberStatus,
    crate::access::TenantView,
    super::people::NewUser,
    super::people::UserChange,
    super::people::TenantChange,
    super::auth::AuditEntry,
    crate::registry::AppKind,
    crate::registry::AppSummary,
    super::apps::AppView,
    super::apps::NewApp,
    super::apps::AppChange,
    super::apps::AppTest,
    super::apps::TestFailure,
    super::apps::WriteKeyView,
    super::apps::NewKey,
    super::apps::NewKeyAnswer,
    super::customers::Customer360,
    super::audience::AudienceRequest,
    super::audience::Format,
    super::audience::ChannelName,
    crate::exports::store::JobView,
    crate::domain::channel_code::NewChannelCode,
    crate::domain::channel_code::CodeKind,
    crate::domain::channel_code::CodeChange,
    crate::store::channel_codes::CodeView,
)))]
struct Schemas;

fn method_of(m: &str) -> HttpMethod {
    match m {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// The `{name}` parameters of a route pattern.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn path_param(route: &AdminRoute, name: &str) -> Parameter {
    let schema = if name == "kind" && route.path.starts_with("/admin/v1/apps/") {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(crate::registry::AppKind::ALL.map(|k| k.as_str())))
    } else {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(schema))
        .build()
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn any_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
}

/// The common error body: `{code, message, details}`.
fn error_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("stable machine-readable code, e.g. `not_found`")),
        )
        .required("code")
        .property(
            "message",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("what is wrong, naming the field or thing at fault")),
        )
        .required("message")
        .property(
            "details",
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .description(Some(
                    "more, e.g. `{\"field\": …}` or `{\"errors\": [{path, code, message}]}`; null when none",
                )),
        )
        .description(Some("Every error of the admin API"))
        .into()
}

/// `{items: [item], next_cursor}`.
fn page_schema(item: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("items", ArrayBuilder::new().items(schema_ref(item)))
        .required("items")
        .property(
            "next_cursor",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("the next page's `cursor`; null on the last page")),
        )
        .required("next_cursor")
        .into()
}

fn error_response(what: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(what)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(schema_ref(ERROR)))
                .build(),
        )
        .build()
        .into()
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted (a job or a queued run)",
        204 => "Done, no content",
        400 => "Invalid request: `details.field` names what is wrong",
        401 => "No valid credential (`unauthenticated`, `invalid_token`, `invalid_credentials`)",
        403 => "The credential's role is below the route's least role (`forbidden`)",
        404 => "No such resource in the caller's tenant (`not_found`)",
        409 => "Conflicts with the current state",
        429 => "Too many attempts; see `Retry-After`",
        _ => "Answer",
    }
}

/// The operation of one route.
fn operation(r: &AdminRoute) -> Operation {
    let params = path_params(r.path);
    let role = r.role.map(|role| role.as_str());
    let mut description = match role {
        Some(role) => format!("Least role: `{role}` (owner ⊃ admin ⊃ operator ⊃ analyst)."),
        None => "Public: no credential needed.".to_string(),
    };
    let mut op = OperationBuilder::new().operation_id(Some(operation_id(r)));
    let mut statuses: Vec<u16> = Vec::new();
    let mut has_input = !params.is_empty();
    for p in &params {
        op = op.parameter(path_param(r, p));
    }
    match r.target {
        Target::Local => {
            let d =
                local_doc(r.method, r.path).unwrap_or(doc("", None, Query::None, (200, None), &[]));
            op = op.summary(Some(d.summary)).tag("gateway");
            match d.query {
                Query::None => {}
                Query::Page => {
                    has_input = true;
                    op = op.parameters(Some(PageQuery::into_params(|| Some(ParameterIn::Query))));
                }
                Query::Audit => {
                    has_input = true;
                    op = op.parameters(Some(super::auth::AuditQuery::into_params(|| {
                        Some(ParameterIn::Query)
                    })));
                }
            }
            if let Some(body) = d.body {
                has_input = true;
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(schema_ref(body))).build(),
                        )
                        .required(Some(Required::True))
                        .build(),
                ));
            }
            let (status, schema) = d.ok;
            let mut ok = ResponseBuilder::new().description(status_text(status));
            match (r.path, schema) {
                (SPEC_PATH, _) => {
                    ok = ok.content(
                        "application/json",
                        ContentBuilder::new().schema(Some(any_object())).build(),
                    );
                }
                (DOCS_PATH, _) => {
                    ok = ok.content(
                        "text/html",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .build(),
                    );
                }
                (_, Some(s)) => {
                    ok = ok.content(
                        "application/json",
                        ContentBuilder::new().schema(Some(schema_ref(s))).build(),
                    );
                }
                (AUDIENCE_PATH | EXPORT_FILE_PATH, None) => {
                    for ct in ["application/x-ndjson", "text/csv"] {
                        ok = ok.content(
                            ct,
                            ContentBuilder::new()
                                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                                .build(),
                        );
                    }
                }
                (_, None) => {}
            }
            op = op.response(status.to_string(), ok.build());
            if r.path == DOCS_PATH {
                op = op.response(
                    "308",
                    ResponseBuilder::new()
                        .description("To `/admin/v1/docs/`, where the viewer's page is")
                        .build(),
                );
            }
            if !params.is_empty() {
                statuses.push(404);
            }
            statuses.extend(d.errors);
        }
        Target::Proxy(service, service_path) => {
            description.push_str(&format!(
                " Answered by the {} service (`{service_path}`).",
                service.name()
            ));
            op = op
                .summary(Some(format!("{} {}", r.method, service_path)))
                .tag(service.name());
            let query = proxied_query(r.method, r.path);
            has_input |= !query.is_empty();
            op = op.parameters(Some(query));
            if r.method != "GET" && r.method != "DELETE" {
                has_input = true;
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(any_object())).build(),
                        )
                        .required(Some(Required::False))
                        .build(),
                ));
            }
            for &status in proxied_success(r.method, r.path) {
                let mut ok = ResponseBuilder::new().description(status_text(status));
                if status != 204 {
                    let content = if CSV_ANSWERS.contains(&r.path) {
                        (
                            "text/csv",
                            ContentBuilder::new()
                                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                                .build(),
                        )
                    } else {
                        (
                            "application/json",
                            ContentBuilder::new().schema(Some(any_object())).build(),
                        )
                    };
                    ok = ok.content(content.0, content.1);
                }
                op = op.response(status.to_string(), ok.build());
            }
            statuses.extend([404, 409]);
        }
    }
    if has_input {
        statuses.push(400);
    }
    if r.role.is_some() {
        statuses.extend([401, 403]);
        op = op.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
    } else if r.path == "/admin/v1/login" {
        statuses.push(401);
    }
    statuses.sort_unstable();
    statuses.dedup();
    for s in statuses {
        op = op.response(s.to_string(), error_response(status_text(s)));
    }
    op = op.response(
        "default",
        error_response("Any other error, in the common error body"),
    );
    let mut ext = ExtensionsBuilder::new();
    if let Some(role) = role {
        ext = ext.add("x-least-role", json!(role));
    }
    op.description(Some(description))
        .extensions(Some(ext.build()))
        .build()
}

/// `get_admin_v1_apps_kind_app_id`.
fn operation_id(r: &AdminRoute) -> String {
    let words: Vec<String> = r
        .path
        .trim_start_matches('/')
        .split(['/', '-', '.'])
        .map(|s| s.trim_start_matches('{').trim_end_matches('}').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    format!("{}_{}", r.method.to_lowercase(), words.join("_"))
}

/// The description of the admin API.
pub fn spec() -> Document {
    let mut doc = Schemas::openapi();
    doc.info = InfoBuilder::new()
        .title("SCRM admin API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The operators' API of the gateway. Send `Authorization: Bearer <token>` (a session \
             from `POST /admin/v1/login`, or a personal API token). Each route names its least \
             role (`x-least-role`); roles are owner ⊃ admin ⊃ operator ⊃ analyst. Errors are \
             `{code, message, details}` with a stable `code`. Lists answer \
             `{items, next_cursor}` and take `?cursor=&limit=`.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    components
        .schemas
        .insert(ERROR.into(), error_schema().into());
    for (page, item) in [
        ("TokenPage", "TokenView"),
        ("MemberPage", "MemberView"),
        ("AuditPage", "AuditEntry"),
        ("AppPage", "AppView"),
        ("WriteKeyPage", "WriteKeyView"),
    ] {
        components
            .schemas
            .insert(page.into(), page_schema(item).into());
    }
    let mut paths = Paths::new();
    for r in ROUTES {
        paths.add_path_operation(r.path, vec![method_of(r.method)], operation(r));
    }
    doc.paths = paths;
    doc
}

/// The description as served, built once.
fn spec_json() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::to_string(&spec()).unwrap_or_else(|_| "{}".into()))
}

async fn serve_spec() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(spec_json())
}

/// `/admin/v1/docs` → `/admin/v1/docs/` (the viewer's files are relative to it).
async fn docs_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, format!("{DOCS_PATH}/")))
        .finish()
}

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &AdminRoute, route: Route) -> bool {
    match (r.method, r.path) {
        ("GET", SPEC_PATH) => {
            cfg.route(r.path, route.to(serve_spec));
        }
        ("GET", DOCS_PATH) => {
            cfg.route(r.path, route.to(docs_index));
            cfg.service(
                utoipa_swagger_ui::SwaggerUi::new(format!("{DOCS_PATH}/{{_:.*}}"))
                    .config(utoipa_swagger_ui::Config::new([SPEC_PATH])),
            );
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_its_role_and_errors() {
        let spec = serde_json::to_value(spec()).unwrap();
        let mut described = 0;
        for r in ROUTES {
            let op = &spec["paths"][r.path][r.method.to_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is not in the description",
                r.method,
                r.path
            );
            for p in path_params(r.path) {
                assert!(
                    op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x["name"] == p && x["in"] == "path"),
                    "{} {}: parameter {p}",
                    r.method,
                    r.path
                );
            }
            match r.role {
                Some(role) => {
                    assert_eq!(op["x-least-role"], role.as_str(), "{} {}", r.method, r.path);
                    assert!(op["description"].as_str().unwrap().contains(role.as_str()));
                    assert_eq!(op["security"][0]["bearer"], json!([]));
                    for s in ["401", "403"] {
                        assert_eq!(
                            op["responses"][s]["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/Error",
                            "{} {} {s}",
                            r.method,
                            r.path
                        );
                    }
                }
                None => assert!(op.get("security").is_none()),
            }
            if !path_params(r.path).is_empty() {
                assert!(
                    op["responses"]["404"].is_object(),
                    "{} {}",
                    r.method,
                    r.path
                );
            }
            if r.target == Target::Local {
                assert!(
                    local_doc(r.method, r.path).is_some(),
                    "{} {} has no typed description",
                    r.method,
                    r.path
                );
            }
            described += 1;
        }
        assert_eq!(described, ROUTES.len());
        // Every schema a route names is there.
        let text = spec.to_string();
        for name in text
            .split("\"#/components/schemas/")
            .skip(1)
            .filter_map(|s| s.split('"').next())
        {
            assert!(
                spec["components"]["schemas"][name].is_object(),
                "schema {name} is missing"
            );
        }
        assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
        // `details` is null when an error has none: any value, not only an object.
        let error = &spec["components"]["schemas"]["Error"];
        assert!(
            error["properties"]["details"].get("type").is_none(),
            "{error}"
        );
        assert_eq!(error["required"], json!(["code", "message"]));
    }

    #[test]
    fn local_answers_are_typed() {
        let spec = serde_json::to_value(spec()).unwrap();
        let me = &spec["components"]["schemas"]["Me"];
        assert!(me["properties"]["role"]["enum"].is_array(), "{me}");
        let login = &spec["paths"]["/admin/v1/login"]["post"];
        assert_eq!(
            login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Login"
        );
        let users = &spec["paths"]["/admin/v1/users"]["get"];
        assert!(users["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "cursor"));
        assert_eq!(login["operationId"], "post_admin_v1_login");
        assert_eq!(
            spec["paths"]["/admin/v1/apps/{kind}/{app_id}"]["get"]["operationId"],
            "get_admin_v1_apps_kind_app_id"
        );
    }
}
