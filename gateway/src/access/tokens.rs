//! Credentials: login sessions and personal API tokens issued (random, shown once, stored as
//! SHA-256), verified (cached for a few seconds), listed and revoked.

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use proto::auth::Role;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use sha2::{Digest, Sha256};

use crate::store::access::{member, token, user};

use super::{
    now, utc, Access, AccessError, AdminPrincipal, Issued, MemberStatus, TokenView, API, SIDEBAR,
};

/// Hex SHA-256 of a token: what is stored and looked up.
pub(super) fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token: a kind prefix and 32 random bytes.
pub(super) fn new_token(kind: &str) -> String {
    format!(
        "scrm_{kind}_{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

impl Access {
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
}
