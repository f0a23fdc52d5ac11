//! Service credentials for tests that call a service's API directly (as the gateway does):
//! the header a request must carry, signed for a tenant and role.

use platform::http::{Principal, ServiceKey, PRINCIPAL_HEADER};
use proto::auth::Role;

/// The internal key of test deployments built by hand (a service's `App` in a test, or
/// `internal_key` in a test config).
pub const TEST_INTERNAL_KEY: &str = "test-internal-key-0123456789abcdef0123";

/// The service key of [`TEST_INTERNAL_KEY`] (put it in a test `App`'s data so handlers verify
/// the credential: `App::new().app_data(web::Data::new(test_support::auth::key()))`).
pub fn key() -> ServiceKey {
    ServiceKey::derive(TEST_INTERNAL_KEY)
}

/// The credential header for `tenant` acting as `actor` with `role`, under `internal_key`.
pub fn header_with(
    internal_key: &str,
    tenant: &str,
    actor: &str,
    role: Role,
) -> (&'static str, String) {
    let p = Principal::new(tenant, actor, role);
    (PRINCIPAL_HEADER, ServiceKey::derive(internal_key).sign(&p))
}

/// The credential header for `tenant`, as operator `user:test`, under [`TEST_INTERNAL_KEY`].
pub fn header(tenant: &str) -> (&'static str, String) {
    header_with(TEST_INTERNAL_KEY, tenant, "user:test", Role::Operator)
}
