//! What the description says of each route beyond the route table: the summary, request and
//! answer schemas and extra error statuses of the gateway's own handlers, and the success
//! statuses and known query parameters of the routes a service answers.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Required;

use super::{DOCS_PATH, SPEC_PATH};

/// Which query a local route reads.
#[derive(Clone, Copy)]
pub(super) enum Query {
    None,
    Page,
    Audit,
}

/// What the description says of a gateway handler.
pub(super) struct LocalDoc {
    pub(super) summary: &'static str,
    /// The request body's schema.
    pub(super) body: Option<&'static str>,
    pub(super) query: Query,
    /// The success status and its schema (`None`: no body).
    pub(super) ok: (u16, Option<&'static str>),
    /// Error statuses beyond the ones every route of its kind has.
    pub(super) errors: &'static [u16],
}

pub(super) const fn doc(
    summary: &'static str,
    body: Option<&'static str>,
    query: Query,
    ok: (u16, Option<&'static str>),
    errors: &'static [u16],
) -> LocalDoc {
    LocalDoc {
        summary,
        body,
        query,
        ok,
        errors,
    }
}

/// The description of a gateway handler; `None` for a route that is not one.
pub(super) fn local_doc(method: &str, path: &str) -> Option<LocalDoc> {
    use Query::{Audit, None as NoQuery, Page};
    Some(match (method, path) {
        ("POST", "/admin/v1/login") => doc(
            "Sign in with e-mail and password: a session token for 12 hours",
            Some("Login"),
            NoQuery,
            (200, Some("Issued")),
            &[429],
        ),
        ("GET", SPEC_PATH) => doc("This description", None, NoQuery, (200, None), &[]),
        ("GET", DOCS_PATH) => doc(
            "An interactive viewer of this description",
            None,
            NoQuery,
            (200, None),
            &[],
        ),
        ("POST", "/admin/v1/logout") => doc(
            "Sign out: the presented credential is revoked",
            None,
            NoQuery,
            (204, None),
            &[],
        ),
        ("GET", "/admin/v1/me") => doc(
            "Who the credential acts for",
            None,
            NoQuery,
            (200, Some("Me")),
            &[],
        ),
        ("GET", "/admin/v1/tokens") => doc(
            "The caller's API tokens, newest first",
            None,
            Page,
            (200, Some("TokenPage")),
            &[],
        ),
        ("POST", "/admin/v1/tokens") => doc(
            "A new personal API token (at most the caller's role), shown once",
            Some("NewToken"),
            NoQuery,
            (201, Some("NewTokenAnswer")),
            &[],
        ),
        ("DELETE", "/admin/v1/tokens/{id}") => doc(
            "Revokes one of the caller's tokens",
            None,
            NoQuery,
            (204, None),
            &[],
        ),
        ("GET", "/admin/v1/users") => doc(
            "The tenant's members",
            None,
            Page,
            (200, Some("MemberPage")),
            &[],
        ),
        ("POST", "/admin/v1/users") => doc(
            "Adds a member (an existing user of another tenant keeps their password); a \
             member already is 409 `member_exists`",
            Some("NewUser"),
            NoQuery,
            (201, Some("MemberView")),
            &[409],
        ),
        ("PATCH", "/admin/v1/users/{id}") => doc(
            "Changes a member's role or status; disabling revokes their credentials at once; \
             the last active owner stays (409 `last_owner`)",
            Some("UserChange"),
            NoQuery,
            (200, Some("MemberView")),
            &[409],
        ),
        ("DELETE", "/admin/v1/users/{id}") => doc(
            "Removes a member from the tenant and revokes their credentials for it; the last \
             active owner stays (409 `last_owner`)",
            None,
            NoQuery,
            (204, None),
            &[409],
        ),
        ("GET", "/admin/v1/tenant") => {
            doc("The tenant", None, NoQuery, (200, Some("TenantView")), &[])
        }
        ("PATCH", "/admin/v1/tenant") => doc(
            "Changes the tenant's name or time zone (an IANA zone)",
            Some("TenantChange"),
            NoQuery,
            (200, Some("TenantView")),
            &[],
        ),
        ("GET", "/admin/v1/audit") => doc(
            "The audit log of writes through this API, newest first",
            None,
            Audit,
            (200, Some("AuditPage")),
            &[],
        ),
        ("GET", "/admin/v1/apps") => doc(
            "The tenant's WeChat apps (never a secret)",
            None,
            Page,
            (200, Some("AppPage")),
            &[],
        ),
        ("POST", "/admin/v1/apps") => doc(
            "Registers an Official Account, mini-program, WeCom corp or WeCom agent app (the \
             corp's self-built app that sends reps app messages: `app_id` the corpid, with \
             `agent_id` and `secret`, no callback token)",
            Some("NewApp"),
            NoQuery,
            (201, Some("AppView")),
            &[409],
        ),
        ("GET", "/admin/v1/apps/{kind}/{app_id}") => {
            doc("One app", None, NoQuery, (200, Some("AppView")), &[])
        }
        ("PATCH", "/admin/v1/apps/{kind}/{app_id}") => doc(
            "Changes an app's name, token, secrets or (an agent app's) AgentID",
            Some("AppChange"),
            NoQuery,
            (200, Some("AppView")),
            &[],
        ),
        ("DELETE", "/admin/v1/apps/{kind}/{app_id}") => doc(
            "Removes an app: its callbacks are refused from then on",
            None,
            NoQuery,
            (204, None),
            &[],
        ),
        ("POST", "/admin/v1/apps/{kind}/{app_id}/test") => doc(
            "Fetches an access token through the keeper: the secret is right and WeChat answers \
             (`ok: false` with the reason when not)",
            None,
            NoQuery,
            (200, Some("AppTest")),
            &[409],
        ),
        ("GET", "/admin/v1/write-keys") => doc(
            "The tenant's write keys (never a key)",
            None,
            Page,
            (200, Some("WriteKeyPage")),
            &[],
        ),
        ("POST", "/admin/v1/write-keys") => doc(
            "A new write key for server-side tracking, shown once",
            Some("NewKey"),
            NoQuery,
            (201, Some("NewKeyAnswer")),
            &[],
        ),
        ("DELETE", "/admin/v1/write-keys/{id}") => {
            doc("Removes a write key", None, NoQuery, (204, None), &[])
        }
        ("POST", "/admin/v1/saved-segments/{id}/audience") => doc(
            "A saved segment's members with their openids per Official Account and mini-program, \
             WeCom external_userids with the reps following them, tags and fields, streamed as \
             JSON lines (default) or CSV",
            Some("AudienceRequest"),
            NoQuery,
            (200, None),
            &[404, 409],
        ),
        ("POST", "/admin/v1/saved-segments/{id}/audience-jobs") => doc(
            "The audience export as a background job (the same body): its progress at \
             `/admin/v1/export-jobs/{id}`, its file there once done",
            Some("AudienceRequest"),
            NoQuery,
            (202, Some("JobView")),
            &[404, 409],
        ),
        ("GET", "/admin/v1/export-jobs") => doc(
            "The tenant's export jobs, newest first",
            None,
            Page,
            (200, None),
            &[],
        ),
        ("GET", "/admin/v1/export-jobs/{id}") => doc(
            "An export job's status and progress",
            None,
            NoQuery,
            (200, Some("JobView")),
            &[],
        ),
        ("GET", "/admin/v1/export-jobs/{id}/file") => doc(
            "A done export job's file (JSON lines or CSV, as asked), streamed; 409 \
             `export_not_ready` before it is done, 410 `export_expired` after its retention",
            None,
            NoQuery,
            (200, None),
            &[409, 410],
        ),
        ("POST", "/admin/v1/channel-codes") => doc(
            "A channel code: a WeCom contact-me code or an OA parametric QR code, its entry key \
             bound to a source; 422 `wechat_refused` with WeChat's errcode",
            Some("NewChannelCode"),
            NoQuery,
            (201, Some("CodeView")),
            &[404, 409, 422],
        ),
        ("GET", "/admin/v1/channel-codes") => {
            doc("The tenant's channel codes", None, Page, (200, None), &[])
        }
        ("GET", "/admin/v1/channel-codes/{id}") => doc(
            "A channel code",
            None,
            NoQuery,
            (200, Some("CodeView")),
            &[404],
        ),
        ("PATCH", "/admin/v1/channel-codes/{id}") => doc(
            "Changes a channel code's name, reps or verification (at WeChat too for a contact-me \
             code); 409 `code_retired`",
            Some("CodeChange"),
            NoQuery,
            (200, Some("CodeView")),
            &[404, 409, 422],
        ),
        ("POST", "/admin/v1/channel-codes/{id}/retire") => doc(
            "Retires a channel code: deleted at WeChat (contact-me codes) and its key unbound",
            None,
            NoQuery,
            (200, Some("CodeView")),
            &[404],
        ),
        ("GET", "/admin/v1/customers/{id}") => doc(
            "The 360° view of a customer, composed from the services",
            None,
            NoQuery,
            (200, Some("Customer360")),
            &[],
        ),
        _ => return None,
    })
}

/// The success statuses of a route a service answers.
pub(super) fn proxied_success(method: &str, path: &str) -> &'static [u16] {
    match (method, path) {
        ("POST", "/admin/v1/tag-groups")
        | ("POST", "/admin/v1/tags")
        | ("POST", "/admin/v1/tag-rules")
        | ("POST", "/admin/v1/wecom/{corp_id}/corp-tag-groups/{group_id}/link")
        | ("POST", "/admin/v1/customers/{id}/binding-token")
        | ("POST", "/admin/v1/score-models")
        | ("POST", "/admin/v1/score-models/{id}/rules")
        | ("POST", "/admin/v1/triggers")
        | ("POST", "/admin/v1/saved-segments")
        | ("POST", "/admin/v1/personas")
        | ("POST", "/admin/v1/sources") => &[201],
        ("POST", "/admin/v1/sources/{id}/bindings") => &[200, 201],
        ("POST", "/admin/v1/tag-rules/{id}/backfill")
        | ("POST", "/admin/v1/score-models/{id}/recompute") => &[202],
        ("POST", "/admin/v1/wecom/{corp_id}/corp-tags/sync") => &[200, 202],
        ("PUT", "/admin/v1/custom-fields/{name}") => &[200, 201],
        ("DELETE", "/admin/v1/score-rules/{id}")
        | ("DELETE", "/admin/v1/triggers/{id}")
        | ("DELETE", "/admin/v1/personas/{id}") => &[204],
        _ => &[200],
    }
}

/// Query parameters a service reads that the description names.
pub(super) fn proxied_query(method: &str, path: &str) -> Vec<Parameter> {
    let q = |name: &str, required: bool, what: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(if required {
                Required::True
            } else {
                Required::False
            })
            .description(Some(what))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    };
    match (method, path) {
        ("GET", "/admin/v1/customers/by-identifier") => vec![
            q("kind", true, "identifier kind, e.g. `oa_openid`, `phone`"),
            q(
                "namespace",
                true,
                "the identifier's namespace, e.g. the appid",
            ),
            q("value", true, "the identifier's value"),
        ],
        ("GET", "/admin/v1/customers") => {
            vec![
            q(
                "sort",
                false,
                "`last_active` (default), `created`, `stage` (the machine's stages in order, each \
                 by last activity) or `score` (needs `model`; highest first, unscored after)",
            ),
            q("order", false, "`desc` (default) or `asc`"),
            q("stage", false, "only customers in this stage"),
            q("owner", false, "only customers this rep (WeCom userid) owns"),
            q("owner_corp", false, "the owning rep's corp (a userid is unique within a corp)"),
            q("tag", false, "tag ids, comma-separated: customers with every one"),
            q("source", false, "the first touch's channel (`source.first.channel`)"),
            q("model", false, "the score model (key or id) of `sort=score` and the score range"),
            q("score_min", false, "the least score now in `model` (unscored = 0)"),
            q("score_max", false, "the greatest score now in `model`"),
            q(
                "condition",
                false,
                "a condition of the rule language as JSON (`POST /admin/v1/customers/query` takes \
                 it as an object)",
            ),
            q("cursor", false, "the `next_cursor` of the previous page of the same sort"),
            q("limit", false, "page size, 1..=500 (default 50)"),
        ]
        }
        ("GET", "/admin/v1/analytics/stages") => vec![
            q(
                "from",
                false,
                "the period's start, RFC 3339 (default: 30 days before `to`; at most 366 days)",
            ),
            q(
                "to",
                false,
                "the period's end (excluded), RFC 3339 (default: now)",
            ),
        ],
        ("GET", "/admin/v1/saved-segments") => vec![
            q("status", false, "`active` (default), `archived` or `all`"),
            q("cursor", false, "the `next_cursor` of the previous page"),
            q("limit", false, "page size, 1..=500 (default 50)"),
        ],
        ("GET", "/admin/v1/saved-segments/{id}/sizes") => vec![
            q(
                "cursor",
                false,
                "the `next_cursor` of the previous page (newest first)",
            ),
            q("limit", false, "page size, 1..=500 (default 50)"),
        ],
        ("GET", "/admin/v1/personas") => vec![
            q("cursor", false, "the `next_cursor` of the previous page"),
            q("limit", false, "page size, 1..=500 (default 50)"),
        ],
        ("GET", "/admin/v1/personas/{id}/report") => vec![q(
            "min_count",
            false,
            "least members a bucket needs to be a distinguishing trait (default 5)",
        )],
        ("GET", "/admin/v1/saved-segments/{id}/members") => vec![
            q(
                "after",
                false,
                "a profile id: the matching profiles after it in byte order (the previous \
                 page's `next`)",
            ),
            q("limit", false, "page size, 1..=1000 (default 100)"),
            q(
                "fields",
                false,
                "comma-separated field keys shown with each member (default name, nickname, city)",
            ),
            q("tags", false, "`true`: the tags each member carries"),
        ],
        _ => Vec::new(),
    }
}
