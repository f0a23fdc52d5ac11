//! Customers: routes served by identity's internal API, and the customer view the gateway
//! assembles itself.

use proto::auth::Role::{Admin, Analyst, Operator};

use crate::services::Service::Identity;

use super::{local, to, AdminRoute};

pub(super) const IDENTITY: &[AdminRoute] = &[
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
];
