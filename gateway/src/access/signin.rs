//! Password sign-in: argon2id hashes, a stand-in hash so a missing account costs what a present
//! one does, and the login that limits failed attempts per account and per address.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use proto::auth::Role;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::store::access::{member, user};

use super::tokens::digest;
use super::{
    invalid, Access, AccessError, Issued, MemberStatus, FAILURE_WINDOW, MAX_FAILURES, SESSION,
    SESSION_TTL,
};

/// An argon2id hash (PHC string) of `password`.
pub(super) fn hash_password(password: &str) -> Result<String, AccessError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AccessError::Cache(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccessError::Cache(e.to_string()))
}

pub(super) fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A stand-in hash verified when the account does not exist, so a miss costs what a hit costs.
pub(super) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2NybS1kdW1teS1zYWx0$PfdVttd2m3N2LAW8bVKb7QpPBq9rEx0SMHMnmJhy3Y4";

impl Access {
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
}
