//! Reps signing in to the WeCom sidebar: a WeCom member WeChat vouched for (OAuth) becomes the
//! user mapped to them in the tenant — created with the `rep` role on their first sign-in when
//! the tenant lets reps sign up, refused otherwise — and gets a short sidebar session. A user
//! disabled in the tenant, or a disabled account, cannot sign in.

use std::time::Duration;

use proto::auth::Role;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::{now, Access, AccessError, Issued, MemberStatus};
use crate::store::access::{member, tenant, user};
use crate::store::reps::rep_identity;

/// `kind` of a sidebar session.
pub const SIDEBAR: &str = "sidebar";

/// How long a sidebar session lasts.
pub const SIDEBAR_TTL: Duration = Duration::from_secs(8 * 3600);

/// The WeCom member a sidebar session acts as.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepRef {
    pub corp_id: String,
    /// The member's WeCom userid.
    pub userid: String,
}

/// Why a sign-in was refused (besides storage errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepRefusal {
    /// The member has no user in the tenant and the tenant does not let reps sign up.
    NotAMember,
    /// The user or their membership is disabled.
    Disabled,
    /// The tenant is unknown or suspended.
    NoTenant,
}

/// The synthetic e-mail of the user a WeCom member becomes (users are keyed by e-mail).
fn rep_email(corp_id: &str, userid: &str) -> String {
    format!(
        "{}@{}.wecom.invalid",
        userid.to_lowercase(),
        corp_id.to_lowercase()
    )
}

impl Access {
    /// Signs `userid` of `corp_id` in to the sidebar of `tenant_id`: their user (created on the
    /// first sign-in when the tenant allows), and a session acting with their role.
    pub async fn rep_sign_in(
        &self,
        tenant_id: &str,
        corp_id: &str,
        userid: &str,
    ) -> Result<Result<Issued, RepRefusal>, AccessError> {
        let Some(t) = tenant::Entity::find_by_id(tenant_id.to_string())
            .one(self.db())
            .await?
            .filter(|t| t.status == "active")
        else {
            return Ok(Err(RepRefusal::NoTenant));
        };
        let known = rep_identity::Entity::find_by_id((
            tenant_id.to_string(),
            corp_id.to_string(),
            userid.to_string(),
        ))
        .one(self.db())
        .await?;
        let user_id = match known {
            Some(k) => k.user_id,
            None => {
                if !t.reps_sign_up {
                    return Ok(Err(RepRefusal::NotAMember));
                }
                self.add_rep(tenant_id, corp_id, userid).await?
            }
        };
        let active_user = user::Entity::find_by_id(user_id.clone())
            .one(self.db())
            .await?
            .is_some_and(|u| u.status == "active");
        let membership = member::Entity::find_by_id((tenant_id.to_string(), user_id.clone()))
            .one(self.db())
            .await?;
        let Some(m) = membership else {
            return Ok(Err(RepRefusal::NotAMember));
        };
        if !active_user || m.status != MemberStatus::Active.as_str() {
            return Ok(Err(RepRefusal::Disabled));
        }
        let role = Role::parse(&m.role).unwrap_or(Role::Rep);
        let issued = self
            .issue(
                &user_id,
                tenant_id,
                role,
                SIDEBAR,
                &format!("sidebar {corp_id}/{userid}"),
                Some(SIDEBAR_TTL),
            )
            .await?;
        Ok(Ok(issued))
    }

    /// A new user with the `rep` role mapped to the member (or the one another sign-in made at
    /// the same time). Each step is one statement that a repeat finds done — no transaction
    /// that reads and then writes, which SQLite may refuse to upgrade under concurrent writers
    /// — so a sign-in that failed half way is completed by the next one.
    async fn add_rep(
        &self,
        tenant_id: &str,
        corp_id: &str,
        userid: &str,
    ) -> Result<String, AccessError> {
        let at = now();
        let email = rep_email(corp_id, userid);
        let find_user = || {
            user::Entity::find()
                .filter(user::Column::Email.eq(email.clone()))
                .one(self.db())
        };
        let user_id = match find_user().await? {
            Some(u) => u.id,
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                let inserted = user::ActiveModel {
                    id: Set(id.clone()),
                    email: Set(email.clone()),
                    name: Set(userid.chars().take(128).collect()),
                    password_hash: Set(None),
                    status: Set("active".into()),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(self.db())
                .await;
                match inserted {
                    Ok(_) => id,
                    // Another sign-in made the user first.
                    Err(e) => find_user().await?.map(|u| u.id).ok_or(AccessError::Db(e))?,
                }
            }
        };
        let membership = member::Entity::find_by_id((tenant_id.to_string(), user_id.clone()))
            .one(self.db())
            .await?;
        if membership.is_none() {
            let inserted = member::ActiveModel {
                tenant_id: Set(tenant_id.to_string()),
                user_id: Set(user_id.clone()),
                role: Set(Role::Rep.as_str().to_string()),
                status: Set(MemberStatus::Active.as_str().to_string()),
                created_at: Set(at),
            }
            .insert(self.db())
            .await;
            if let Err(e) = inserted {
                member::Entity::find_by_id((tenant_id.to_string(), user_id.clone()))
                    .one(self.db())
                    .await?
                    .ok_or(AccessError::Db(e))?;
            }
        }
        let inserted = rep_identity::ActiveModel {
            tenant_id: Set(tenant_id.to_string()),
            corp_id: Set(corp_id.to_string()),
            wecom_userid: Set(userid.to_string()),
            user_id: Set(user_id.clone()),
            created_at: Set(at),
        }
        .insert(self.db())
        .await;
        match inserted {
            Ok(_) => Ok(user_id),
            // Another sign-in of the same member won the race: theirs stands.
            Err(e) => rep_identity::Entity::find_by_id((
                tenant_id.to_string(),
                corp_id.to_string(),
                userid.to_string(),
            ))
            .one(self.db())
            .await?
            .map(|k| k.user_id)
            .ok_or(AccessError::Db(e)),
        }
    }

    /// The WeCom member `user_id` is in `tenant_id`'s sidebar (the first mapped, if several).
    pub(crate) async fn rep_of(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<RepRef>, sea_orm::DbErr> {
        Ok(rep_identity::Entity::find()
            .filter(rep_identity::Column::TenantId.eq(tenant_id))
            .filter(rep_identity::Column::UserId.eq(user_id))
            .one(self.db())
            .await?
            .map(|k| RepRef {
                corp_id: k.corp_id,
                userid: k.wecom_userid,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rep_emails_are_stable_and_cannot_collide_with_real_ones() {
        assert_eq!(rep_email("ww1", "ZhangSan"), "zhangsan@ww1.wecom.invalid");
    }
}
