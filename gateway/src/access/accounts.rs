//! Tenants and users as the operators' tooling creates them: a tenant put, a user put with a
//! membership, a role set (forgetting verified credentials in this process).

use proto::auth::Role;
use proto::tenant::TenantSettings;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, Set,
};

use crate::store::access::{member, tenant, user};

use super::checks::{
    check_email, check_password, check_tenant_id, check_tenant_name, check_time_zone,
};
use super::signin::hash_password;
use super::{now, Access, AccessError, MemberStatus};

impl Access {
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
        // Read, then write: on SQLite the write lock first (`begin_write`).
        let txn = platform::db::begin_write(&self.db).await?;
        let existing = tenant::Entity::find_by_id(id).one(&txn).await?;
        if existing.as_ref().map(|t| t.time_zone.as_str()) != Some(time_zone) {
            announce_zone(&txn, id, time_zone).await?;
        }
        let model = match existing {
            Some(t) => {
                let mut a: tenant::ActiveModel = t.into();
                a.name = Set(name.to_string());
                a.time_zone = Set(time_zone.to_string());
                a.updated_at = Set(at);
                a.update(&txn).await?
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
                .insert(&txn)
                .await?
            }
        };
        txn.commit().await?;
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
}

/// Tells the services that compute with the tenant's days (tagging, scoring) its new zone, in
/// the transaction that sets it (`tenant.settings` through the outbox).
pub(super) async fn announce_zone(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    time_zone: &str,
) -> Result<(), AccessError> {
    let settings = TenantSettings {
        time_zone: time_zone.to_string(),
        changed_at: platform::clock::whole(chrono::Utc::now()),
    };
    let env = proto::Envelope::of(tenant_id, &settings).build();
    platform::db::outbox::enqueue(txn, &env).await?;
    Ok(())
}
