//! The admin API's route table: every `/admin/v1` route with the least role it needs and what
//! serves it — the gateway itself, or a service's internal API the gateway calls for the
//! principal. The guard ([`super::guard`]) reads this table for every request and refuses a
//! route that is not in it, so a route added without a declared permission serves no one; the
//! permission tests are generated from it.
//!
//! The table is kept in one file per area — the gateway's own routes (`gateway`), customers
//! (`identity`), tags (`tagging`), scores and stages (`scoring`) — and joined here in that
//! order into [`ROUTES`].

mod gateway;
mod identity;
mod scoring;
mod tagging;

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

/// Every admin route.
pub const ROUTES: &[AdminRoute] = &ALL;

const ALL: [AdminRoute;
    gateway::GATEWAY.len()
        + identity::IDENTITY.len()
        + tagging::TAGGING.len()
        + scoring::SCORING.len()] = concat([
    gateway::GATEWAY,
    identity::IDENTITY,
    tagging::TAGGING,
    scoring::SCORING,
]);

/// The areas' routes one after the other; `N` is their total length.
const fn concat<const N: usize>(parts: [&[AdminRoute]; 4]) -> [AdminRoute; N] {
    let mut out = [local("", "", None); N];
    let mut k = 0;
    let mut i = 0;
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[k] = parts[i][j];
            j += 1;
            k += 1;
        }
        i += 1;
    }
    out
}

/// The `POST` routes that only read (a query, a check or a simulation whose body is too rich
/// for a query string): they change nothing, so the audit log does not record them. An export
/// is not among them: who took customers' data out is worth recording.
pub const READ_ONLY_POSTS: &[&str] = &[
    "/admin/v1/conditions/validate",
    "/admin/v1/segments/preview",
    "/admin/v1/analytics",
    "/admin/v1/personas/{id}/validate",
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
mod tests;
