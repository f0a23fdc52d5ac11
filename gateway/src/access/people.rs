//! A tenant's people and the tenant itself as its owners manage them: memberships listed by
//! page, a member's role and status changed, a member removed, the tenant's name and time zone.
//! A tenant always keeps one active owner (`last_owner`); a member disabled or removed loses
//! every credential for the tenant at once, in the database and in this process's cache.

use chrono::Utc;
use proto::auth::Role;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    check_email, check_password, check_tenant_name, check_time_zone, hash_password, now, utc,
    Access, AccessError,
};
use crate::store::access::{member, tenant, token, user};

/// Whether a member may act in the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Disabled,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Disabled => "disabled",
        }
    }
}

/// A member of the tenant as the admin API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MemberView {
    /// The user's id.
    pub id: String,
    pub email: String,
    pub name: String,
    /// The role in this tenant.
    #[schema(schema_with = crate::api::admin::openapi::role_schema)]
    pub role: String,
    /// `active` or `disabled` in this tenant.
    #[schema(schema_with = crate::api::admin::openapi::member_status_schema)]
    pub status: String,
    pub created_at: chrono::DateTime<Utc>,
}

/// The tenant as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    /// IANA name, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    pub status: String,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
    /// A WeCom member signing in to the sidebar for the first time becomes a `rep` (else an
    /// owner adds them first).
    pub reps_sign_up: bool,
}

impl From<tenant::Model> for TenantView {
    fn from(t: tenant::Model) -> Self {
        TenantView {
            id: t.id,
            name: t.name,
            time_zone: t.time_zone,
            status: t.status,
            created_at: utc(t.created_at),
            updated_at: utc(t.updated_at),
            reps_sign_up: t.reps_sign_up,
        }
    }
}

/// A change of a member: only what is given changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberChange {
    pub role: Option<Role>,
    pub status: Option<MemberStatus>,
}

fn view(m: member::Model, u: user::Model) -> MemberView {
    MemberView {
        id: u.id,
        email: u.email,
        name: u.name,
        role: m.role,
        status: m.status,
        created_at: utc(u.created_at),
    }
}

fn no_member(user_id: &str) -> AccessError {
    AccessError::NotFound(format!("no user `{user_id}` in this tenant"))
}

/// Active owners of the tenant but `except`.
async fn other_active_owners(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    except: &str,
) -> Result<u64, DbErr> {
    member::Entity::find()
        .filter(member::Column::TenantId.eq(tenant_id))
        .filter(member::Column::UserId.ne(except))
        .filter(member::Column::Role.eq(Role::Owner.as_str()))
        .filter(member::Column::Status.eq(MemberStatus::Active.as_str()))
        .count(db)
        .await
}

/// Would `m` after `change` no longer be an active owner?
fn stops_owning(m: &member::Model, change: MemberChange) -> bool {
    let owner_now = m.role == Role::Owner.as_str() && m.status == MemberStatus::Active.as_str();
    let role_after = change.role.map(Role::as_str).unwrap_or(m.role.as_str());
    let status_after = change
        .status
        .map(MemberStatus::as_str)
        .unwrap_or(m.status.as_str());
    owner_now && !(role_after == Role::Owner.as_str() && status_after == "active")
}

impl Access {
    /// A page of the tenant's members in user-id order after `after`: at most `limit` + 1
    /// (the extra one tells a next page exists).
    pub async fn members(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<MemberView>, AccessError> {
        let mut q = member::Entity::find().filter(member::Column::TenantId.eq(tenant_id));
        if let Some(a) = after {
            q = q.filter(member::Column::UserId.gt(a));
        }
        let ms = q
            .order_by_asc(member::Column::UserId)
            .limit(limit + 1)
            .all(self.db())
            .await?;
        let ids: Vec<String> = ms.iter().map(|m| m.user_id.clone()).collect();
        let mut users: std::collections::HashMap<String, user::Model> = user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .all(self.db())
            .await?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect();
        Ok(ms
            .into_iter()
            .filter_map(|m| {
                let u = users.remove(&m.user_id)?;
                Some(view(m, u))
            })
            .collect())
    }

    /// Adds a member through the admin API: a new user with `password`, or an existing user
    /// (of another tenant) given `role` here with their password and name left as they are —
    /// an owner of one tenant never sets the password of a person who can sign in to another.
    /// A user who is a member already is `member_exists` (change them with
    /// [`Self::update_member`]).
    pub async fn add_member(
        &self,
        tenant_id: &str,
        email: &str,
        name: &str,
        password: &str,
        role: Role,
    ) -> Result<MemberView, AccessError> {
        let email = check_email(email)?;
        check_password(password)?;
        if self.tenant(tenant_id).await?.is_none() {
            return Err(AccessError::NotFound(format!(
                "tenant_id: no tenant `{tenant_id}`"
            )));
        }
        let existing = user::Entity::find()
            .filter(user::Column::Email.eq(email.clone()))
            .one(self.db())
            .await?;
        let u = match existing {
            Some(u) => {
                let member = member::Entity::find_by_id((tenant_id.to_string(), u.id.clone()))
                    .one(self.db())
                    .await?;
                if member.is_some() {
                    return Err(AccessError::MemberExists(format!(
                        "`email`: {email} is a member already (PATCH /admin/v1/users/{})",
                        u.id
                    )));
                }
                u
            }
            None => {
                let at = now();
                user::ActiveModel {
                    id: Set(uuid::Uuid::now_v7().to_string()),
                    email: Set(email.clone()),
                    name: Set(name.trim().chars().take(128).collect()),
                    password_hash: Set(Some(hash_password(password)?)),
                    status: Set("active".into()),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(self.db())
                .await?
            }
        };
        member::ActiveModel {
            tenant_id: Set(tenant_id.to_string()),
            user_id: Set(u.id.clone()),
            role: Set(role.as_str().to_string()),
            status: Set(MemberStatus::Active.as_str().to_string()),
            created_at: Set(now()),
        }
        .insert(self.db())
        .await?;
        self.forget_verified();
        self.member(tenant_id, &u.id).await
    }

    /// One member of the tenant.
    pub async fn member(&self, tenant_id: &str, user_id: &str) -> Result<MemberView, AccessError> {
        let m = member::Entity::find_by_id((tenant_id.to_string(), user_id.to_string()))
            .one(self.db())
            .await?
            .ok_or_else(|| no_member(user_id))?;
        let u = user::Entity::find_by_id(user_id.to_string())
            .one(self.db())
            .await?
            .ok_or_else(|| no_member(user_id))?;
        Ok(view(m, u))
    }

    /// Changes a member's role and/or status. The tenant row is locked first, so two owners
    /// demoting each other cannot both succeed; a change that leaves no active owner is
    /// `last_owner`. A member disabled loses every credential for the tenant.
    pub async fn update_member(
        &self,
        tenant_id: &str,
        user_id: &str,
        change: MemberChange,
    ) -> Result<MemberView, AccessError> {
        let txn = platform::db::begin_write(self.db()).await?;
        tenant::Entity::find_by_id(tenant_id.to_string())
            .lock_exclusive()
            .one(&txn)
            .await?;
        let m = member::Entity::find_by_id((tenant_id.to_string(), user_id.to_string()))
            .one(&txn)
            .await?
            .ok_or_else(|| no_member(user_id))?;
        if stops_owning(&m, change) && other_active_owners(&txn, tenant_id, user_id).await? == 0 {
            return Err(AccessError::LastOwner(format!(
                "user `{user_id}` is the tenant's last active owner: make another owner first"
            )));
        }
        let mut a: member::ActiveModel = m.into();
        if let Some(r) = change.role {
            a.role = Set(r.as_str().to_string());
        }
        if let Some(s) = change.status {
            a.status = Set(s.as_str().to_string());
        }
        a.update(&txn).await?;
        if change.status == Some(MemberStatus::Disabled) {
            revoke_all(&txn, tenant_id, user_id).await?;
        }
        txn.commit().await?;
        self.forget_verified();
        self.member(tenant_id, user_id).await
    }

    /// Removes a member from the tenant (the user stays, with their other tenants) and revokes
    /// every credential they had for it. The last active owner cannot be removed.
    pub async fn remove_member(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<MemberView, AccessError> {
        let before = self.member(tenant_id, user_id).await?;
        let txn = platform::db::begin_write(self.db()).await?;
        tenant::Entity::find_by_id(tenant_id.to_string())
            .lock_exclusive()
            .one(&txn)
            .await?;
        let m = member::Entity::find_by_id((tenant_id.to_string(), user_id.to_string()))
            .one(&txn)
            .await?
            .ok_or_else(|| no_member(user_id))?;
        let leaving = MemberChange {
            role: None,
            status: Some(MemberStatus::Disabled),
        };
        if stops_owning(&m, leaving) && other_active_owners(&txn, tenant_id, user_id).await? == 0 {
            return Err(AccessError::LastOwner(format!(
                "user `{user_id}` is the tenant's last active owner: make another owner first"
            )));
        }
        member::Entity::delete_by_id((tenant_id.to_string(), user_id.to_string()))
            .exec(&txn)
            .await?;
        revoke_all(&txn, tenant_id, user_id).await?;
        txn.commit().await?;
        self.forget_verified();
        Ok(before)
    }

    /// The tenant, whatever its status.
    pub async fn tenant_view(&self, tenant_id: &str) -> Result<TenantView, AccessError> {
        tenant::Entity::find_by_id(tenant_id.to_string())
            .one(self.db())
            .await?
            .map(TenantView::from)
            .ok_or_else(|| AccessError::NotFound(format!("no tenant `{tenant_id}`")))
    }

    /// Changes the tenant's name, time zone (checked: 1–128 characters, an IANA zone) and
    /// whether reps sign up in the sidebar.
    pub async fn update_tenant(
        &self,
        tenant_id: &str,
        name: Option<&str>,
        time_zone: Option<&str>,
        reps_sign_up: Option<bool>,
    ) -> Result<TenantView, AccessError> {
        if let Some(n) = name {
            check_tenant_name(n)?;
        }
        if let Some(tz) = time_zone {
            check_time_zone(tz)?;
        }
        let txn = platform::db::begin_write(self.db()).await?;
        let t = tenant::Entity::find_by_id(tenant_id.to_string())
            .one(&txn)
            .await?
            .ok_or_else(|| AccessError::NotFound(format!("no tenant `{tenant_id}`")))?;
        if let Some(tz) = time_zone.filter(|tz| *tz != t.time_zone) {
            super::accounts::announce_zone(&txn, tenant_id, tz).await?;
        }
        let mut a: tenant::ActiveModel = t.into();
        if let Some(n) = name {
            a.name = Set(n.trim().to_string());
        }
        if let Some(tz) = time_zone {
            a.time_zone = Set(tz.to_string());
        }
        if let Some(r) = reps_sign_up {
            a.reps_sign_up = Set(r);
        }
        a.updated_at = Set(now());
        let t = a.update(&txn).await?;
        txn.commit().await?;
        Ok(t.into())
    }
}

/// Revokes every live credential of `user_id` for `tenant_id`.
async fn revoke_all(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    user_id: &str,
) -> Result<u64, DbErr> {
    let r = token::Entity::update_many()
        .col_expr(token::Column::RevokedAt, Expr::value(Some(now())))
        .filter(token::Column::UserId.eq(user_id))
        .filter(token::Column::TenantId.eq(tenant_id))
        .filter(token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use platform::config::DbConfig;

    use super::*;
    use crate::access::API;

    async fn access() -> (Access, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("people-{}.db", uuid::Uuid::new_v4()));
        let cfg = DbConfig::new(format!("sqlite://{}", path.display()));
        platform::role::migrate::<crate::store::Migrator>("gateway", &cfg)
            .await
            .unwrap();
        let db = platform::db::connect(&cfg, false).await.unwrap();
        let cache = Arc::new(platform::cache::MemoryCache::new("t:", 100));
        (Access::new(db, cache), path)
    }

    #[tokio::test]
    async fn the_last_owner_stays_and_a_disabled_member_is_locked_out_at_once() {
        let (a, path) = access().await;
        a.put_tenant("acme", "Acme", "Asia/Shanghai").await.unwrap();
        let owner = a
            .put_user("acme", "o@acme.test", "O", None, Role::Owner)
            .await
            .unwrap();
        let op = a
            .put_user("acme", "op@acme.test", "Op", None, Role::Operator)
            .await
            .unwrap();
        let demote = MemberChange {
            role: Some(Role::Admin),
            status: None,
        };
        let e = a
            .update_member("acme", &owner.id, demote)
            .await
            .unwrap_err();
        assert!(matches!(e, AccessError::LastOwner(_)), "{e:?}");
        let e = a.remove_member("acme", &owner.id).await.unwrap_err();
        assert!(matches!(e, AccessError::LastOwner(_)), "{e:?}");

        // The operator's token is verified (and kept); disabling them ends it in this process.
        let t = a
            .issue(&op.id, "acme", Role::Operator, API, "script", None)
            .await
            .unwrap();
        assert!(a.authenticate(&t.token).await.unwrap().is_some());
        let off = MemberChange {
            role: None,
            status: Some(MemberStatus::Disabled),
        };
        let v = a.update_member("acme", &op.id, off).await.unwrap();
        assert_eq!(v.status, "disabled");
        assert!(a.authenticate(&t.token).await.unwrap().is_none());
        let on = MemberChange {
            role: None,
            status: Some(MemberStatus::Active),
        };
        a.update_member("acme", &op.id, on).await.unwrap();
        assert!(
            a.authenticate(&t.token).await.unwrap().is_none(),
            "re-enabling does not bring revoked credentials back"
        );

        // With a second owner, the first may step down; a removed member's token is dead.
        a.update_member(
            "acme",
            &op.id,
            MemberChange {
                role: Some(Role::Owner),
                status: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            a.update_member("acme", &owner.id, demote)
                .await
                .unwrap()
                .role,
            "admin"
        );
        let t2 = a
            .issue(&owner.id, "acme", Role::Admin, API, "s", None)
            .await
            .unwrap();
        assert!(a.authenticate(&t2.token).await.unwrap().is_some());
        a.remove_member("acme", &owner.id).await.unwrap();
        assert!(a.authenticate(&t2.token).await.unwrap().is_none());
        let page = a.members("acme", None, 10).await.unwrap();
        assert_eq!(page.len(), 1);

        assert!(matches!(
            a.update_tenant("acme", None, Some("Mars/Olympus"), None)
                .await,
            Err(AccessError::Invalid {
                code: "invalid_time_zone",
                ..
            })
        ));
        let t = a
            .update_tenant("acme", Some("Acme Ltd"), Some("Europe/Paris"), None)
            .await
            .unwrap();
        assert_eq!(
            (t.name.as_str(), t.time_zone.as_str()),
            ("Acme Ltd", "Europe/Paris")
        );
        a.db().clone().close().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn a_new_time_zone_is_announced_once_with_the_change() {
        let (a, path) = access().await;
        let pending = || async { platform::db::outbox::pending_count(a.db()).await.unwrap() };
        a.put_tenant("acme", "Acme", "Asia/Shanghai").await.unwrap();
        assert_eq!(pending().await, 1, "a new tenant announces its zone");
        a.put_tenant("acme", "Acme Ltd", "Asia/Shanghai")
            .await
            .unwrap();
        a.update_tenant("acme", Some("Acme"), Some("Asia/Shanghai"), None)
            .await
            .unwrap();
        assert_eq!(pending().await, 1, "the same zone again is no news");
        let t = a
            .update_tenant("acme", None, Some("Europe/Berlin"), None)
            .await
            .unwrap();
        assert_eq!(t.time_zone, "Europe/Berlin");
        assert_eq!(pending().await, 2);
        let e = a
            .update_tenant("acme", None, Some("Mars/Olympus_Mons"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, AccessError::Invalid { .. }), "{e:?}");
        assert_eq!(pending().await, 2, "a refused change announces nothing");
        drop(a);
        let _ = std::fs::remove_file(path);
    }
}
