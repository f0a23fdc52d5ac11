//! Routes the gateway serves itself: the API's description, sign-in and credentials, the tenant
//! and its people, the audit log, the app registry and write keys, channel codes.

use proto::auth::Role::{Admin, Analyst, Operator, Owner};

use super::{local, AdminRoute};

pub(super) const GATEWAY: &[AdminRoute] = &[
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
    // Channel codes (contact-me and QR codes).
    local("GET", "/admin/v1/channel-codes", Some(Analyst)),
    local("POST", "/admin/v1/channel-codes", Some(Operator)),
    local("GET", "/admin/v1/channel-codes/{id}", Some(Analyst)),
    local("PATCH", "/admin/v1/channel-codes/{id}", Some(Operator)),
    local(
        "POST",
        "/admin/v1/channel-codes/{id}/retire",
        Some(Operator),
    ),
];
