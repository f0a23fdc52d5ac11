//! Who may come in: tenants, users with their role per tenant, password sign-in (argon2id, failed
//! attempts limited per account and per address), login sessions and personal API tokens
//! (random, shown once, stored as SHA-256, expiring or revocable, last use recorded), and the
//! audit log. The principal of a request (tenant, user, role) comes only from its credential.
//!
//! Verified credentials are kept for a few seconds so a request does not cost a database read;
//! any change of who may act (a revocation, a role or status change, a removal) forgets them
//! in this process at once, and a lookup that raced such a change is not kept (see
//! [`Access::forget_verified`]). Other gateway processes see the change within the cache's
//! time to live.
//!
//! Here: the [`Access`] handle, its errors and what it hands out. Input checks are in `checks`,
//! tenants and users in `accounts`, password sign-in in `signin`, tokens and their verification
//! in `tokens`, the audit log in `audit_log`; a tenant's people in `people`, reps of the sidebar in
//! `reps`.

mod accounts;
mod audit_log;
mod checks;
mod people;
mod reps;
mod signin;
mod tokens;

pub use checks::{check_tenant_id, check_tenant_name, check_time_zone};
pub use people::{MemberChange, MemberStatus, MemberView, TenantView};
pub use reps::{RepRef, RepRefusal, SIDEBAR, SIDEBAR_TTL};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use platform::cache::Cache;
use proto::auth::Role;
use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;
use utoipa::ToSchema;

use checks::{check_email, check_password};
use signin::hash_password;

/// How long a login session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed sign-ins allowed per account, and per client address, in [`FAILURE_WINDOW`].
pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// `session` credentials come from a password sign-in; `api` ones are personal tokens.
pub const SESSION: &str = "session";
pub const API: &str = "api";

/// Why a request about access was refused. `code`s are stable.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{field}: {message}")]
    Invalid {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    #[error("wrong e-mail or password")]
    BadLogin,
    #[error("too many failed sign-ins; try again in {0:?}")]
    Throttled(Duration),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The change would leave the tenant without an active owner.
    #[error("{0}")]
    LastOwner(String),
    /// The user is a member of the tenant already.
    #[error("{0}")]
    MemberExists(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("cache error: {0}")]
    Cache(String),
}

fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> AccessError {
    AccessError::Invalid {
        code,
        field,
        message: message.into(),
    }
}

/// The authenticated principal of an admin request (kept with a background job, which reads as
/// the principal that asked for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AdminPrincipal {
    pub tenant_id: String,
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// The credential's id (a session or an API token).
    pub token_id: String,
    /// `session`, `api` or `sidebar`.
    pub kind: String,
    /// The WeCom member a sidebar session acts as.
    pub rep: Option<RepRef>,
}

impl AdminPrincipal {
    /// The actor services record: `rep:<corp>:<userid>` for a sidebar session, else
    /// `user:<id>`.
    pub fn actor(&self) -> String {
        match &self.rep {
            Some(r) => format!("rep:{}:{}", r.corp_id, r.userid),
            None => format!("user:{}", self.user_id),
        }
    }
}

/// A credential just issued: the token is in the clear only here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Issued {
    pub id: String,
    /// The bearer token; shown only in this answer.
    pub token: String,
    pub tenant_id: String,
    #[schema(schema_with = crate::api::admin::openapi::role_schema)]
    pub role: Role,
    pub expires_at: Option<chrono::DateTime<Utc>>,
}

/// A credential as lists show it (never the token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// `session` or `api`.
    pub kind: String,
    #[schema(schema_with = crate::api::admin::openapi::role_schema)]
    pub role: String,
    pub created_at: chrono::DateTime<Utc>,
    pub expires_at: Option<chrono::DateTime<Utc>>,
    pub last_used_at: Option<chrono::DateTime<Utc>>,
}

fn utc(t: NaiveDateTime) -> chrono::DateTime<Utc> {
    t.and_utc()
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// Tenants, users, credentials and the audit log of the gateway's database.
#[derive(Clone)]
pub struct Access {
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
    /// Recently verified credentials (a request should not cost a database read).
    verified: moka::future::Cache<String, Option<AdminPrincipal>>,
    /// Bumped by every change of who may act; a lookup that began under an older value is
    /// answered but not kept in [`Self::verified`].
    epoch: Arc<AtomicU64>,
}

impl Access {
    pub fn new(db: DatabaseConnection, cache: Arc<dyn Cache>) -> Self {
        Access {
            db,
            cache,
            verified: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Forgets every verified credential of this process, after a change of who may act has
    /// been written: the next request of any credential is looked up again, and a lookup that
    /// was under way during the change is not kept.
    pub fn forget_verified(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.verified.invalidate_all();
    }
}

#[cfg(test)]
mod tests;
