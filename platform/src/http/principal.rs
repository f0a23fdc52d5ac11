//! The service credential (DESIGN.md §10): the gateway authenticates a person and calls a
//! service with a [`Principal`] — tenant, actor, role, expiry — signed with HMAC-SHA256 under a
//! key derived from the internal key, in the `X-Scrm-Principal` header. A service serves no `/v1`
//! route without a valid one (401), scopes every query by its tenant and records its actor; the
//! request itself never names the tenant or the actor.
//!
//! Wire form: `v1.<base64url(JSON)>.<base64url(HMAC)>`; the MAC covers `v1.<payload>` and is
//! compared in constant time.

use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proto::auth::Role;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::crypto::hmac_sha256;

/// The header carrying the credential.
pub const PRINCIPAL_HEADER: &str = "x-scrm-principal";

/// How long a credential the gateway signs for one call is valid.
pub const CREDENTIAL_TTL_SECS: i64 = 60;

const VERSION: &str = "v1";

/// Who acts, for which tenant, with which role — as the gateway authenticated them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The tenant every query of the request is scoped to.
    #[serde(rename = "t")]
    pub tenant: String,
    /// Who acts, as recorded in audit trails: `user:<id>` (an operator), `rep:<corp>:<userid>`
    /// (a sales rep) or `system:<what>` (the system itself, e.g. a scheduled job).
    #[serde(rename = "a")]
    pub actor: String,
    #[serde(rename = "r")]
    pub role: Role,
    /// Unix seconds after which the credential is refused.
    #[serde(rename = "e")]
    pub expires: i64,
}

impl Principal {
    /// A principal valid for [`CREDENTIAL_TTL_SECS`] from now.
    pub fn new(tenant: impl Into<String>, actor: impl Into<String>, role: Role) -> Self {
        Principal {
            tenant: tenant.into(),
            actor: actor.into(),
            role,
            expires: chrono::Utc::now().timestamp() + CREDENTIAL_TTL_SECS,
        }
    }
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("no service credential (X-Scrm-Principal): only the gateway calls this API")]
    Missing,
    #[error("the service credential is malformed")]
    Malformed,
    #[error("the service credential's signature does not match")]
    BadSignature,
    #[error("the service credential has expired")]
    Expired,
}

impl CredentialError {
    fn code(&self) -> &'static str {
        match self {
            CredentialError::Missing => "unauthenticated",
            CredentialError::Malformed => "malformed_credential",
            CredentialError::BadSignature => "invalid_credential",
            CredentialError::Expired => "expired_credential",
        }
    }
}

impl From<CredentialError> for crate::ServiceError {
    fn from(e: CredentialError) -> Self {
        crate::ServiceError::unauthenticated(e.code(), e.to_string())
    }
}

/// Signs and verifies service credentials. Derived from the internal key (never the key
/// itself: the internal key is also a bearer credential of the gateway's internal endpoints).
#[derive(Clone)]
pub struct ServiceKey([u8; 32]);

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKey(***)")
    }
}

impl ServiceKey {
    /// The key of the deployment whose internal key is `internal_key`.
    pub fn derive(internal_key: &str) -> Self {
        ServiceKey(hmac_sha256(
            internal_key.as_bytes(),
            &[b"scrm.service-credential.v1"],
        ))
    }

    /// The credential for `p`.
    pub fn sign(&self, p: &Principal) -> String {
        // A struct of strings and numbers always serialises.
        let json = serde_json::to_vec(p).unwrap_or_default();
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
        let mac = hmac_sha256(&self.0, &[signed.as_bytes()]);
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The principal of `credential` if it is ours and unexpired at `now` (Unix seconds).
    pub fn verify(&self, credential: &str, now: i64) -> Result<Principal, CredentialError> {
        let (signed, mac) = credential
            .rsplit_once('.')
            .ok_or(CredentialError::Malformed)?;
        let payload = signed
            .strip_prefix("v1.")
            .ok_or(CredentialError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| CredentialError::Malformed)?;
        let want = hmac_sha256(&self.0, &[signed.as_bytes()]);
        if !bool::from(want.ct_eq(mac.as_slice())) {
            return Err(CredentialError::BadSignature);
        }
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CredentialError::Malformed)?;
        let p: Principal = serde_json::from_slice(&json).map_err(|_| CredentialError::Malformed)?;
        if p.expires < now || p.tenant.is_empty() {
            return Err(CredentialError::Expired);
        }
        Ok(p)
    }
}

/// Middleware of a service's server (with `key`; a server without one, the gateway's, is not
/// guarded here): every `/v1/…` request must carry a valid credential (else 401 in the common
/// error body); its principal is kept for the [`Principal`] extractor. Health, readiness and
/// metrics stay open.
pub async fn require_credential(
    key: Option<Rc<ServiceKey>>,
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(key) = key.filter(|_| req.path().starts_with("/v1/")) else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let presented = req
        .headers()
        .get(PRINCIPAL_HEADER)
        .and_then(|v| v.to_str().ok());
    let verified = match presented {
        None => Err(CredentialError::Missing),
        Some(c) => key.verify(c, chrono::Utc::now().timestamp()),
    };
    match verified {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.call(req).await.map(|r| r.map_into_left_body())
        }
        Err(e) => {
            metrics::counter!(crate::metrics::SERVICE_CREDENTIAL_REFUSED, "reason" => e.code())
                .increment(1);
            let (req, _) = req.into_parts();
            let res = actix_web::ResponseError::error_response(&ApiError::from(e));
            Ok(ServiceResponse::new(req, res).map_into_right_body())
        }
    }
}

/// The principal of a request: the one [`require_credential`] verified, or — in an `App` built
/// without that middleware (a test's), with a [`ServiceKey`] in its app data — the header
/// verified here.
impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        if let Some(p) = req.extensions().get::<Principal>() {
            return ready(Ok(p.clone()));
        }
        let verified = match (
            req.app_data::<actix_web::web::Data<ServiceKey>>(),
            req.headers()
                .get(PRINCIPAL_HEADER)
                .and_then(|v| v.to_str().ok()),
        ) {
            (Some(key), Some(c)) => key.verify(c, chrono::Utc::now().timestamp()),
            _ => Err(CredentialError::Missing),
        };
        ready(verified.map_err(ApiError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_credentials_verify_and_tampering_does_not() {
        let key = ServiceKey::derive("internal-key-0123456789abcdef");
        let p = Principal {
            tenant: "acme".into(),
            actor: "user:42".into(),
            role: Role::Operator,
            expires: 2_000,
        };
        let c = key.sign(&p);
        assert_eq!(key.verify(&c, 1_000), Ok(p.clone()));
        assert_eq!(key.verify(&c, 2_001), Err(CredentialError::Expired));
        let other = ServiceKey::derive("another-key-0123456789abcdef0");
        assert_eq!(other.verify(&c, 1_000), Err(CredentialError::BadSignature));
        // Another tenant in the payload with the old MAC.
        let (_, mac) = c.rsplit_once('.').unwrap();
        let forged = Principal {
            tenant: "demo".into(),
            ..p
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            key.verify(&format!("v1.{body}.{mac}"), 1_000),
            Err(CredentialError::BadSignature)
        );
        assert_eq!(key.verify("v1.x", 1_000), Err(CredentialError::Malformed));
        assert_eq!(
            key.verify("garbage", 1_000),
            Err(CredentialError::Malformed)
        );
    }
}
