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

mod people;
mod reps;

pub use people::{MemberChange, MemberStatus, MemberView, TenantView};
pub use reps::{RepRef, RepRefusal, SIDEBAR, SIDEBAR_TTL};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{NaiveDateTime, Utc};
use platform::cache::Cache;
use proto::auth::Role;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::store::access::{audit, member, tenant, token, user};

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

/// The authenticated principal of an admin request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Hex SHA-256 of a token: what is stored and looked up.
fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token: a kind prefix and 32 random bytes.
fn new_token(kind: &str) -> String {
    format!(
        "scrm_{kind}_{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// Checks a tenant id: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn check_tenant_id(id: &str) -> Result<(), AccessError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "invalid_tenant_id",
            "tenant_id",
            "must be 1–64 of a-z, 0-9, `_`, `-`, starting with a letter or digit",
        ))
    }
}

/// Checks a time zone: a name of the IANA database, e.g. `Asia/Shanghai`.
pub fn check_time_zone(tz: &str) -> Result<(), AccessError> {
    if tz.len() <= 64 && tz.parse::<chrono_tz::Tz>().is_ok() {
        Ok(())
    } else {
        Err(invalid(
            "invalid_time_zone",
            "time_zone",
            "must be an IANA time zone such as `Asia/Shanghai`",
        ))
    }
}

/// Checks a tenant's display name: 1–128 characters, not blank.
pub fn check_tenant_name(name: &str) -> Result<(), AccessError> {
    if name.trim().is_empty() || name.chars().count() > 128 {
        return Err(invalid("invalid_name", "name", "must be 1–128 characters"));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<String, AccessError> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !e.contains(char::is_whitespace);
    if ok {
        Ok(e)
    } else {
        Err(invalid(
            "invalid_email",
            "email",
            "is not an e-mail address",
        ))
    }
}

fn check_password(password: &str) -> Result<(), AccessError> {
    if password.chars().count() < 12 {
        return Err(invalid(
            "weak_password",
            "password",
            "must be at least 12 characters",
        ));
    }
    Ok(())
}

/// An argon2id hash (PHC string) of `password`.
fn hash_password(password: &str) -> Result<String, AccessError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AccessError::Cache(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccessError::Cache(e.to_string()))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A stand-in hash verified when the account does not exist, so a miss costs what a hit costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2NybS1kdW1teS1zYWx0$PfdVttd2m3N2LAW8bVKb7QpPBq9rEx0SMHMnmJhy3Y4";

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

    /// Creates a tenant, or updates its name and time zone.
    pub async fn put_tenant(
        &self,
        id: &str,
        name: &str,
        time_zone: &str,
    ) -> Result<tenant::Model, AccessError> {
        check_tenant_id(id)?;
        check_time_zone(time_zone)?;
        check_tenant_name(name)?;
        let at = now();
        let model = match tenant::Entity::find_by_id(id).one(&self.db).await? {
            Some(t) => {
                let mut a: tenant::ActiveModel = t.into();
                a.name = Set(name.to_string());
                a.time_zone = Set(time_zone.to_string());
                a.updated_at = Set(at);
                a.update(&self.db).await?
            }
            None => {
                tenant::ActiveModel {
                    id: Set(id.to_string()),
                    name: Set(name.to_string()),
                    time_zone: Set(time_zone.to_string()),
                    status: Set("active".into()),
                    created_at: Set(at),
                    updated_at: Set(at),
                    reps_sign_up: Set(true),
                }
                .insert(&self.db)
                .await?
            }
        };
        Ok(model)
    }

    /// An active tenant.
    pub async fn tenant(&self, id: &str) -> Result<Option<tenant::Model>, AccessError> {
        Ok(tenant::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|t| t.status == "active"))
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Creates a user, or sets the password of the one with this e-mail; then gives them `role`
    /// in `tenant`. Returns the user.
    pub async fn put_user(
        &self,
        tenant_id: &str,
        email: &str,
        name: &str,
        password: Option<&str>,
        role: Role,
    ) -> Result<user::Model, AccessError> {
        let email = check_email(email)?;
        if self.tenant(tenant_id).await?.is_none() {
            return Err(AccessError::NotFound(format!(
                "tenant_id: no tenant `{tenant_id}`"
            )));
        }
        let hash = match password {
            Some(p) => {
                check_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        let at = now();
        let existing = user::Entity::find()
            .filter(user::Column::Email.eq(email.clone()))
            .one(&self.db)
            .await?;
        let u = match existing {
            Some(u) => {
                let mut a: user::ActiveModel = u.into();
                if hash.is_some() {
                    a.password_hash = Set(hash);
                }
                if !name.is_empty() {
                    a.name = Set(name.to_string());
                }
                a.updated_at = Set(at);
                a.update(&self.db).await?
            }
            None => {
                user::ActiveModel {
                    id: Set(uuid::Uuid::now_v7().to_string()),
                    email: Set(email.clone()),
                    name: Set(name.to_string()),
                    password_hash: Set(hash),
                    status: Set("active".into()),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(&self.db)
                .await?
            }
        };
        self.set_role(tenant_id, &u.id, role).await?;
        Ok(u)
    }

    /// Gives `user_id` `role` in `tenant_id` (replacing the one they had).
    pub async fn set_role(
        &self,
        tenant_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<(), AccessError> {
        let found = member::Entity::find_by_id((tenant_id.to_string(), user_id.to_string()))
            .one(&self.db)
            .await?;
        match found {
            Some(m) => {
                let mut a: member::ActiveModel = m.into();
                a.role = Set(role.as_str().to_string());
                a.update(&self.db).await?;
            }
            None => {
                member::ActiveModel {
                    tenant_id: Set(tenant_id.to_string()),
                    user_id: Set(user_id.to_string()),
                    role: Set(role.as_str().to_string()),
                    status: Set(MemberStatus::Active.as_str().to_string()),
                    created_at: Set(now()),
                }
                .insert(&self.db)
                .await?;
            }
        }
        self.forget_verified();
        Ok(())
    }

    /// Signs in with e-mail and password into `tenant_id` (or the user's only tenant); failed
    /// attempts are limited per account and per client address.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        tenant_id: Option<&str>,
        client: &str,
    ) -> Result<Issued, AccessError> {
        let email = email.trim().to_lowercase();
        let keys = [
            format!("login-fail:acct:{}", digest(&email)),
            format!("login-fail:addr:{client}"),
        ];
        for k in &keys {
            let failures = self
                .cache
                .get(k)
                .await
                .map_err(|e| AccessError::Cache(e.to_string()))?
                .and_then(|v| String::from_utf8(v).ok()?.parse::<i64>().ok())
                .unwrap_or(0);
            if failures >= MAX_FAILURES {
                metrics::counter!(crate::metrics::LOGINS, "outcome" => "throttled").increment(1);
                return Err(AccessError::Throttled(FAILURE_WINDOW));
            }
        }
        let u = user::Entity::find()
            .filter(user::Column::Email.eq(email.clone()))
            .one(&self.db)
            .await?;
        let ok = match &u {
            Some(u) if u.status == "active" => u
                .password_hash
                .as_deref()
                .is_some_and(|h| password_matches(password, h)),
            _ => {
                password_matches(password, DUMMY_HASH);
                false
            }
        };
        let Some(u) = u.filter(|_| ok) else {
            for k in &keys {
                self.cache
                    .incr(k, 1, FAILURE_WINDOW)
                    .await
                    .map_err(|e| AccessError::Cache(e.to_string()))?;
            }
            metrics::counter!(crate::metrics::LOGINS, "outcome" => "refused").increment(1);
            return Err(AccessError::BadLogin);
        };
        let memberships = member::Entity::find()
            .filter(member::Column::UserId.eq(u.id.clone()))
            .filter(member::Column::Status.eq(MemberStatus::Active.as_str()))
            .all(&self.db)
            .await?;
        let m = match tenant_id {
            Some(t) => memberships.into_iter().find(|m| m.tenant_id == t),
            None if memberships.len() <= 1 => memberships.into_iter().next(),
            None => {
                return Err(invalid(
                    "tenant_required",
                    "tenant_id",
                    "the user belongs to several tenants: name one",
                ))
            }
        };
        let Some(m) = m else {
            return Err(AccessError::BadLogin);
        };
        let role = Role::parse(&m.role).unwrap_or(Role::Analyst);
        metrics::counter!(crate::metrics::LOGINS, "outcome" => "ok").increment(1);
        self.issue(
            &u.id,
            &m.tenant_id,
            role,
            SESSION,
            "sign-in",
            Some(SESSION_TTL),
        )
        .await
    }

    /// Issues a credential for `user_id` in `tenant_id` with `role`.
    pub async fn issue(
        &self,
        user_id: &str,
        tenant_id: &str,
        role: Role,
        kind: &str,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<Issued, AccessError> {
        let tok = new_token(kind);
        let at = Utc::now();
        let expires = ttl.map(|d| at + chrono::Duration::from_std(d).unwrap_or_default());
        let id = uuid::Uuid::now_v7().to_string();
        token::ActiveModel {
            id: Set(id.clone()),
            token_hash: Set(digest(&tok)),
            kind: Set(kind.to_string()),
            user_id: Set(user_id.to_string()),
            tenant_id: Set(tenant_id.to_string()),
            role: Set(role.as_str().to_string()),
            name: Set(name.chars().take(128).collect()),
            created_at: Set(at.naive_utc()),
            expires_at: Set(expires.map(|e| e.naive_utc())),
            last_used_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok(Issued {
            id,
            token: tok,
            tenant_id: tenant_id.to_string(),
            role,
            expires_at: expires,
        })
    }

    /// The principal of a presented token, `None` when it is unknown, expired, revoked, or its
    /// user, membership or tenant is gone. The role is the lower of the token's and the
    /// user's current role.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<AdminPrincipal>, DbErr> {
        let h = digest(presented);
        if let Some(p) = self.verified.get(&h).await {
            return Ok(p);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let p = self.lookup(&h).await?;
        if self.epoch.load(Ordering::SeqCst) == epoch {
            self.verified.insert(h, p.clone()).await;
        }
        Ok(p)
    }

    async fn lookup(&self, hash: &str) -> Result<Option<AdminPrincipal>, DbErr> {
        let Some(t) = token::Entity::find()
            .filter(token::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let at = now();
        if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| e <= at) {
            return Ok(None);
        }
        let Some(u) = user::Entity::find_by_id(t.user_id.clone())
            .one(&self.db)
            .await?
            .filter(|u| u.status == "active")
        else {
            return Ok(None);
        };
        let Some(m) = member::Entity::find_by_id((t.tenant_id.clone(), t.user_id.clone()))
            .one(&self.db)
            .await?
            .filter(|m| m.status == MemberStatus::Active.as_str())
        else {
            return Ok(None);
        };
        if self.tenant(&t.tenant_id).await.ok().flatten().is_none() {
            return Ok(None);
        }
        let (Some(granted), Some(held)) = (Role::parse(&t.role), Role::parse(&m.role)) else {
            return Ok(None);
        };
        // The token acts with at most what the user may do now.
        let role = if held.covers(granted) {
            granted
        } else if granted.covers(held) {
            held
        } else {
            return Ok(None);
        };
        token::Entity::update_many()
            .col_expr(
                token::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(token::Column::Id.eq(t.id.clone()))
            .exec(&self.db)
            .await?;
        let rep = if t.kind == SIDEBAR {
            match self.rep_of(&t.tenant_id, &u.id).await? {
                Some(r) => Some(r),
                // A sidebar session of a member no longer mapped signs nothing in.
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some(AdminPrincipal {
            tenant_id: t.tenant_id,
            user_id: u.id,
            email: u.email,
            role,
            token_id: t.id,
            kind: t.kind,
            rep,
        }))
    }

    /// A page of the caller's API tokens in their tenant, newest first (ids are time-ordered),
    /// after the token `after` and at most `limit` + 1 (the extra one tells a next page exists).
    pub async fn tokens(
        &self,
        p: &AdminPrincipal,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<TokenView>, DbErr> {
        let mut q = token::Entity::find()
            .filter(token::Column::UserId.eq(p.user_id.clone()))
            .filter(token::Column::TenantId.eq(p.tenant_id.clone()))
            .filter(token::Column::Kind.eq(API))
            .filter(token::Column::RevokedAt.is_null());
        if let Some(a) = after {
            q = q.filter(token::Column::Id.lt(a));
        }
        let ts = q
            .order_by_desc(token::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        Ok(ts
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                kind: t.kind,
                role: t.role,
                created_at: utc(t.created_at),
                expires_at: t.expires_at.map(utc),
                last_used_at: t.last_used_at.map(utc),
            })
            .collect())
    }

    /// Revokes one of the caller's credentials (an API token, or a session on logout).
    pub async fn revoke(&self, p: &AdminPrincipal, id: &str) -> Result<bool, DbErr> {
        let r = token::Entity::update_many()
            .col_expr(
                token::Column::RevokedAt,
                sea_orm::sea_query::Expr::value(Some(now())),
            )
            .filter(token::Column::Id.eq(id))
            .filter(token::Column::UserId.eq(p.user_id.clone()))
            .filter(token::Column::TenantId.eq(p.tenant_id.clone()))
            .filter(token::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        self.forget_verified();
        Ok(r.rows_affected > 0)
    }

    /// Records a write through the admin API.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        p: &AdminPrincipal,
        action: &str,
        target: &str,
        status: u16,
        summary: serde_json::Value,
        request_id: Option<String>,
    ) -> Result<(), DbErr> {
        audit::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(p.tenant_id.clone()),
            actor: Set(p.actor()),
            action: Set(action.chars().take(160).collect()),
            target: Set(target.chars().take(512).collect()),
            status: Set(i32::from(status)),
            summary: Set(summary.to_string()),
            request_id: Set(request_id),
            at: Set(now()),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// A page of the tenant's audit log, newest first, after `cursor` (an entry id).
    pub async fn audit(
        &self,
        tenant_id: &str,
        actor: Option<&str>,
        target: Option<&str>,
        since: Option<NaiveDateTime>,
        cursor: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<audit::Model>, Option<i64>), DbErr> {
        let mut q = audit::Entity::find().filter(audit::Column::TenantId.eq(tenant_id));
        if let Some(a) = actor {
            q = q.filter(audit::Column::Actor.eq(a));
        }
        if let Some(t) = target {
            q = q.filter(audit::Column::Target.starts_with(t));
        }
        if let Some(s) = since {
            q = q.filter(audit::Column::At.gte(s));
        }
        if let Some(c) = cursor {
            q = q.filter(audit::Column::Id.lt(c));
        }
        let rows = q
            .order_by_desc(audit::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let more = rows.len() as u64 > limit;
        let items: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let next = if more {
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok((items, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("wrong", &h));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the stand-in parses");
        assert!(check_password("short").is_err());
        assert!(check_tenant_id("acme").is_ok());
        assert!(check_tenant_id("x'; DROP TABLE profiles; --").is_err());
        assert!(check_email("Ops@Example.com").unwrap() == "ops@example.com");
        assert!(check_email("nope").is_err());
        let t = new_token(API);
        assert!(t.starts_with("scrm_api_") && t.len() > 40);
        assert_eq!(digest(&t).len(), 64);
    }
}
