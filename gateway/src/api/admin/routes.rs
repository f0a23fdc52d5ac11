//! The admin API's route table: every `/admin/v1` route with the least role it needs and what
//! serves it — the gateway itself, or a service's internal API the gateway calls for the
//! principal. The guard ([`super::guard`]) reads this table for every request and refuses a
//! route that is not in it, so a route added without a declared permission serves no one; the
//! permission tests are generated from it.

use proto::auth::Role;

use crate::services::Service;

/// What answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A handler of the gateway.
    Local,
    /// A service's route; `{name}` segments are filled from the admin path's.
    Proxy(Service, &'static str),
}

/// One admin route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminRoute {
    pub method: &'static str,
    /// The actix pattern, e.g. `/admin/v1/tags/{id}`.
    pub path: &'static str,
    /// The least role that may call it; `None` for the public ones: the sign-in, the API's
    /// description and its viewer.
    pub role: Option<Role>,
    pub target: Target,
}

const fn local(method: &'static str, path: &'static str, role: Option<Role>) -> AdminRoute {
    AdminRoute {
        method,
        path,
        role,
        target: Target::Local,
    }
}

const fn to(
    method: &'static str,
    path: &'static str,
    role: Role,
    service: Service,
    service_path: &'static str,
) -> AdminRoute {
    AdminRoute {
        method,
        path,
        role: Some(role),
        target: Target::Proxy(service, service_path),
    }
}

use Role::{Admin, Analyst, Operator, Owner};
use Service::{Identity, Scoring, Tagging};

/// Every admin route.
pub const ROUTES: &[AdminRoute] = &[
    // The API's description and its viewer.
    local("GET", "/admin/v1/openapi.json", None),
    local("GET", "/admin/v1/docs", None),
    // Sign-in, the caller, credentials.
    local("POST", "/admin/v1/login", None),
    local("POST", "/admin/v1/logout", Some(Analyst)),
    local("GET", "/admin/v1/me", Some(Analyst)),
    local("GET", "/admin/v1/tokens", Some(Analyst)),
    local("POST", "/admin/v1/tokens", Some(Analyst)),
    local("DELETE", "/admin/v1/tokens/{id}", Some(Analyst)),
    // The tenant, its people and the audit log.
    local("GET", "/admin/v1/tenant", Some(Admin)),
    local("PATCH", "/admin/v1/tenant", Some(Owner)),
    local("GET", "/admin/v1/users", Some(Admin)),
    local("POST", "/admin/v1/users", Some(Owner)),
    local("PATCH", "/admin/v1/users/{id}", Some(Owner)),
    local("DELETE", "/admin/v1/users/{id}", Some(Owner)),
    local("GET", "/admin/v1/audit", Some(Admin)),
    // The app registry and write keys.
    local("GET", "/admin/v1/apps", Some(Admin)),
    local("POST", "/admin/v1/apps", Some(Owner)),
    local("GET", "/admin/v1/apps/{kind}/{app_id}", Some(Admin)),
    local("PATCH", "/admin/v1/apps/{kind}/{app_id}", Some(Owner)),
    local("DELETE", "/admin/v1/apps/{kind}/{app_id}", Some(Owner)),
    local("POST", "/admin/v1/apps/{kind}/{app_id}/test", Some(Owner)),
    local("GET", "/admin/v1/write-keys", Some(Admin)),
    local("POST", "/admin/v1/write-keys", Some(Owner)),
    local("DELETE", "/admin/v1/write-keys/{id}", Some(Owner)),
    // Customers (identity).
    local("GET", "/admin/v1/customers/{id}", Some(Analyst)),
    to(
        "GET",
        "/admin/v1/customers/by-identifier",
        Analyst,
        Identity,
        "/v1/profiles/by-identifier",
    ),
    to(
        "GET",
        "/admin/v1/customers/search",
        Analyst,
        Identity,
        "/v1/profiles/search",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/profile",
        Analyst,
        Identity,
        "/v1/profiles/{id}",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/timeline",
        Analyst,
        Identity,
        "/v1/profiles/{id}/timeline",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/merges",
        Analyst,
        Identity,
        "/v1/profiles/{id}/merges",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/edges",
        Analyst,
        Identity,
        "/v1/profiles/{id}/edges",
    ),
    to(
        "PATCH",
        "/admin/v1/customers/{id}/fields",
        Operator,
        Identity,
        "/v1/profiles/{id}/fields",
    ),
    to(
        "POST",
        "/admin/v1/customers/{id}/binding-token",
        Operator,
        Identity,
        "/v1/profiles/{id}/binding-token",
    ),
    to(
        "POST",
        "/admin/v1/customers/merge",
        Operator,
        Identity,
        "/v1/profiles/merge",
    ),
    to(
        "POST",
        "/admin/v1/customers/{id}/split",
        Operator,
        Identity,
        "/v1/profiles/{id}/split",
    ),
    to(
        "POST",
        "/admin/v1/merges/{id}/unmerge",
        Operator,
        Identity,
        "/v1/merges/{id}/unmerge",
    ),
    to(
        "GET",
        "/admin/v1/merge-refusals",
        Analyst,
        Identity,
        "/v1/merge-refusals",
    ),
    to(
        "GET",
        "/admin/v1/data-quality",
        Analyst,
        Identity,
        "/v1/data-quality",
    ),
    to(
        "GET",
        "/admin/v1/custom-fields",
        Analyst,
        Identity,
        "/v1/custom-fields",
    ),
    to(
        "PUT",
        "/admin/v1/custom-fields/{name}",
        Admin,
        Identity,
        "/v1/custom-fields/{name}",
    ),
    to(
        "GET",
        "/admin/v1/reps/{user_id}/customers",
        Analyst,
        Identity,
        "/v1/reps/{user_id}/customers",
    ),
    // Tags, rules, segments (tagging).
    to(
        "GET",
        "/admin/v1/tag-groups",
        Analyst,
        Tagging,
        "/v1/tag-groups",
    ),
    to(
        "POST",
        "/admin/v1/tag-groups",
        Operator,
        Tagging,
        "/v1/tag-groups",
    ),
    to(
        "PATCH",
        "/admin/v1/tag-groups/{id}/wecom",
        Admin,
        Tagging,
        "/v1/tag-groups/{id}/wecom",
    ),
    to(
        "POST",
        "/admin/v1/tag-groups/{id}/wecom/push",
        Admin,
        Tagging,
        "/v1/tag-groups/{id}/wecom/push",
    ),
    to("GET", "/admin/v1/tags", Analyst, Tagging, "/v1/tags"),
    to("POST", "/admin/v1/tags", Operator, Tagging, "/v1/tags"),
    to(
        "GET",
        "/admin/v1/tags/{id}",
        Analyst,
        Tagging,
        "/v1/tags/{id}",
    ),
    to(
        "PATCH",
        "/admin/v1/tags/{id}",
        Operator,
        Tagging,
        "/v1/tags/{id}",
    ),
    to(
        "POST",
        "/admin/v1/conditions/validate",
        Analyst,
        Tagging,
        "/v1/conditions/validate",
    ),
    to(
        "POST",
        "/admin/v1/segments/preview",
        Analyst,
        Tagging,
        "/v1/segments/preview",
    ),
    to(
        "POST",
        "/admin/v1/segments/export",
        Analyst,
        Tagging,
        "/v1/segments/export",
    ),
    to(
        "GET",
        "/admin/v1/tag-rules",
        Analyst,
        Tagging,
        "/v1/tag-rules",
    ),
    to(
        "POST",
        "/admin/v1/tag-rules",
        Operator,
        Tagging,
        "/v1/tag-rules",
    ),
    to(
        "GET",
        "/admin/v1/tag-rules/{id}",
        Analyst,
        Tagging,
        "/v1/tag-rules/{id}",
    ),
    to(
        "PUT",
        "/admin/v1/tag-rules/{id}",
        Operator,
        Tagging,
        "/v1/tag-rules/{id}",
    ),
    to(
        "DELETE",
        "/admin/v1/tag-rules/{id}",
        Operator,
        Tagging,
        "/v1/tag-rules/{id}",
    ),
    to(
        "POST",
        "/admin/v1/tag-rules/{id}/backfill",
        Operator,
        Tagging,
        "/v1/tag-rules/{id}/backfill",
    ),
    to(
        "GET",
        "/admin/v1/tag-jobs/{id}",
        Analyst,
        Tagging,
        "/v1/jobs/{id}",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/tags",
        Analyst,
        Tagging,
        "/v1/profiles/{id}/tags",
    ),
    to(
        "POST",
        "/admin/v1/customers/{id}/tags",
        Operator,
        Tagging,
        "/v1/profiles/{id}/tags",
    ),
    to(
        "DELETE",
        "/admin/v1/customers/{id}/tags/{tag_id}",
        Operator,
        Tagging,
        "/v1/profiles/{id}/tags/{tag_id}",
    ),
    to(
        "GET",
        "/admin/v1/wecom/sync-queue",
        Admin,
        Tagging,
        "/v1/wecom/sync-queue",
    ),
    to(
        "GET",
        "/admin/v1/wecom/{corp_id}/corp-tags",
        Admin,
        Tagging,
        "/v1/wecom/{corp_id}/corp-tags",
    ),
    to(
        "POST",
        "/admin/v1/wecom/{corp_id}/corp-tags/sync",
        Admin,
        Tagging,
        "/v1/wecom/{corp_id}/corp-tags/sync",
    ),
    to(
        "POST",
        "/admin/v1/wecom/{corp_id}/corp-tag-groups/{group_id}/link",
        Admin,
        Tagging,
        "/v1/wecom/{corp_id}/corp-tag-groups/{group_id}/link",
    ),
    // Scores and stages (scoring).
    to(
        "GET",
        "/admin/v1/score-models",
        Analyst,
        Scoring,
        "/v1/models",
    ),
    to(
        "POST",
        "/admin/v1/score-models",
        Operator,
        Scoring,
        "/v1/models",
    ),
    to(
        "GET",
        "/admin/v1/score-models/{id}",
        Analyst,
        Scoring,
        "/v1/models/{id}",
    ),
    to(
        "PATCH",
        "/admin/v1/score-models/{id}",
        Operator,
        Scoring,
        "/v1/models/{id}",
    ),
    to(
        "GET",
        "/admin/v1/score-models/{id}/rules",
        Analyst,
        Scoring,
        "/v1/models/{id}/rules",
    ),
    to(
        "POST",
        "/admin/v1/score-models/{id}/rules",
        Operator,
        Scoring,
        "/v1/models/{id}/rules",
    ),
    to(
        "POST",
        "/admin/v1/score-models/{id}/recompute",
        Admin,
        Scoring,
        "/v1/models/{id}/recompute",
    ),
    to(
        "GET",
        "/admin/v1/score-rules/{id}",
        Analyst,
        Scoring,
        "/v1/rules/{id}",
    ),
    to(
        "PUT",
        "/admin/v1/score-rules/{id}",
        Operator,
        Scoring,
        "/v1/rules/{id}",
    ),
    to(
        "DELETE",
        "/admin/v1/score-rules/{id}",
        Operator,
        Scoring,
        "/v1/rules/{id}",
    ),
    to(
        "GET",
        "/admin/v1/stage-machine",
        Analyst,
        Scoring,
        "/v1/stage-machine",
    ),
    to(
        "PUT",
        "/admin/v1/stage-machine",
        Admin,
        Scoring,
        "/v1/stage-machine",
    ),
    to(
        "GET",
        "/admin/v1/triggers",
        Analyst,
        Scoring,
        "/v1/triggers",
    ),
    to(
        "POST",
        "/admin/v1/triggers",
        Operator,
        Scoring,
        "/v1/triggers",
    ),
    to(
        "GET",
        "/admin/v1/triggers/{id}",
        Analyst,
        Scoring,
        "/v1/triggers/{id}",
    ),
    to(
        "PUT",
        "/admin/v1/triggers/{id}",
        Operator,
        Scoring,
        "/v1/triggers/{id}",
    ),
    to(
        "DELETE",
        "/admin/v1/triggers/{id}",
        Operator,
        Scoring,
        "/v1/triggers/{id}",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/scores",
        Analyst,
        Scoring,
        "/v1/profiles/{id}/scores",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/ledger",
        Analyst,
        Scoring,
        "/v1/profiles/{id}/ledger",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/stage-history",
        Analyst,
        Scoring,
        "/v1/profiles/{id}/stage-history",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/firings",
        Analyst,
        Scoring,
        "/v1/profiles/{id}/firings",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/slas",
        Analyst,
        Scoring,
        "/v1/profiles/{id}/slas",
    ),
    to(
        "POST",
        "/admin/v1/customers/{id}/stage",
        Operator,
        Scoring,
        "/v1/profiles/{id}/stage",
    ),
    to(
        "POST",
        "/admin/v1/customers/{id}/contacted",
        Operator,
        Scoring,
        "/v1/profiles/{id}/contacted",
    ),
    to(
        "POST",
        "/admin/v1/customers/{id}/adjustments",
        Operator,
        Scoring,
        "/v1/profiles/{id}/adjustments",
    ),
    to(
        "GET",
        "/admin/v1/customers/{id}/notes",
        Analyst,
        Identity,
        "/v1/profiles/{id}/notes",
    ),
    to(
        "POST",
        "/admin/v1/customers/{id}/notes",
        Operator,
        Identity,
        "/v1/profiles/{id}/notes",
    ),
    to(
        "PATCH",
        "/admin/v1/notes/{id}",
        Operator,
        Identity,
        "/v1/notes/{id}",
    ),
    to(
        "DELETE",
        "/admin/v1/notes/{id}",
        Operator,
        Identity,
        "/v1/notes/{id}",
    ),
    to(
        "GET",
        "/admin/v1/customers",
        Analyst,
        Scoring,
        "/v1/customers",
    ),
    to(
        "POST",
        "/admin/v1/customers/query",
        Analyst,
        Scoring,
        "/v1/customers/query",
    ),
    to(
        "GET",
        "/admin/v1/leaderboard",
        Analyst,
        Scoring,
        "/v1/leaderboard",
    ),
    to(
        "POST",
        "/admin/v1/dry-run",
        Operator,
        Scoring,
        "/v1/dry-run",
    ),
    to(
        "GET",
        "/admin/v1/score-jobs/{id}",
        Analyst,
        Scoring,
        "/v1/jobs/{id}",
    ),
];

/// The `POST` routes that only read (a query, a check or a simulation whose body is too rich
/// for a query string): they change nothing, so the audit log does not record them. An export
/// is not among them: who took customers' data out is worth recording.
pub const READ_ONLY_POSTS: &[&str] = &[
    "/admin/v1/conditions/validate",
    "/admin/v1/segments/preview",
    "/admin/v1/dry-run",
    "/admin/v1/customers/query",
];

/// Does a call of `method` on `pattern` change something (and so goes to the audit log)?
pub fn writes(method: &str, pattern: &str) -> bool {
    method != "GET" && !(method == "POST" && READ_ONLY_POSTS.contains(&pattern))
}

/// The route declared for `method` on `pattern` (the matched actix pattern).
pub fn find(method: &str, pattern: &str) -> Option<&'static AdminRoute> {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_declared_once_with_matching_parameters() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(r.path.starts_with("/admin/v1/"));
            if let Target::Proxy(_, to) = r.target {
                let params = |p: &str| -> Vec<String> {
                    p.split('/')
                        .filter(|s| s.starts_with('{'))
                        .map(str::to_string)
                        .collect()
                };
                assert_eq!(params(r.path), params(to), "{} {}", r.method, r.path);
            }
        }
    }
}
