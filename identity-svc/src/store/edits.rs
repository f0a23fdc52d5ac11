//! Operator writes that are not identity decisions: field values set by hand (the most trusted
//! source), the tenant's custom-field declarations, and personalised binding tokens
//! (千人千面码) whose QR scene / contact-me `state` ties whoever comes through it to a profile.
//! Each is made in one tenant, on a profile of that tenant (another tenant's is not found), and
//! records the acting person.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    Set,
};
use serde::Serialize;
use serde_json::Value;

use super::entities::{binding_token, custom_field, identifier, profile};
use super::resolve::Resolver;
use super::{state, ACTIVE};
use crate::domain::fields::{self, CustomField, FieldType, Kind, Rejection};
use crate::domain::observe::{Claim, Trust};

pub use super::bindings::BINDING_PREFIX;
/// Source name of operator claims.
pub const OPERATOR_SOURCE: &str = "operator";

/// Why an operator write was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A field (`fields.<key>`) that cannot take the value: the field and the reason code.
    #[error("`{field}`: {reason}")]
    InvalidField { field: String, reason: &'static str },
    #[error("{0}")]
    NotFound(String),
    /// Not allowed in the current state (a stable code and a message).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A binding token handed out for a profile.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Binding {
    pub token: String,
    /// Use as the OA QR code `scene_str` or the WeCom contact-me `state` (≤ 30 characters).
    pub scene: String,
    pub profile_id: String,
    pub expires_at: DateTime<Utc>,
}

impl Resolver {
    /// Sets (or, with `null`, clears) fields of `tenant`'s active profile on the operator's word.
    /// Each value is cleaned like any other; all or nothing.
    pub async fn set_fields(
        &self,
        tenant: &str,
        profile_id: &str,
        values: &serde_json::Map<String, Value>,
        operator: &str,
    ) -> Result<i64, EditError> {
        let now = Utc::now();
        let p = self.active_profile(tenant, profile_id).await?;
        let custom = self.custom_fields(&p.tenant_id).await?;
        let mut claims = Vec::new();
        for (key, raw) in values {
            let bad = |reason: Rejection| EditError::InvalidField {
                field: format!("fields.{key}"),
                reason: reason.as_str(),
            };
            let (field, kind) = fields::lookup(key, &custom)
                .filter(|(_, k)| !matches!(k, Kind::Touch))
                .ok_or(bad(Rejection::UnknownField))?;
            let value = if raw.is_null() {
                Value::Null
            } else {
                let v = fields::clean(kind, raw, now)
                    .map_err(bad)?
                    .ok_or(bad(Rejection::WrongType))?;
                fields::plausible(&field, &v, now).map_err(bad)?;
                v
            };
            claims.push(Claim {
                field,
                value,
                trust: Trust::Operator,
                source: OPERATOR_SOURCE.into(),
                at: now,
            });
        }
        let txn = platform::db::begin_write(&self.db).await?;
        // Operator statements belong to the profile's first identifier, so an un-merge keeps
        // them with the person they were made about.
        let anchor = identifier::Entity::find()
            .filter(identifier::Column::ProfileId.eq(profile_id))
            .order_by_asc(identifier::Column::Id)
            .one(&txn)
            .await?
            .ok_or_else(|| EditError::Conflict {
                code: "no_identifiers",
                message: format!("profile `{profile_id}` holds no identifier"),
            })?;
        for c in &claims {
            state::upsert_claim(&txn, &p.tenant_id, anchor.id, None, c, now).await?;
        }
        let version = state::refresh(&txn, profile_id, None, now)
            .await?
            .unwrap_or(p.version);
        txn.commit().await?;
        tracing::info!(
            profile_id,
            operator,
            fields = claims.len(),
            "Operator set profile fields"
        );
        Ok(version)
    }

    async fn active_profile(
        &self,
        tenant: &str,
        profile_id: &str,
    ) -> Result<profile::Model, EditError> {
        let p = super::queries::find_profile(&self.db, tenant, profile_id)
            .await?
            .ok_or_else(|| EditError::NotFound(format!("no profile with id `{profile_id}`")))?;
        if p.status != ACTIVE {
            return Err(EditError::Conflict {
                code: "profile_not_active",
                message: format!(
                    "profile `{profile_id}` was merged into `{}`",
                    p.merged_into.clone().unwrap_or_default()
                ),
            });
        }
        Ok(p)
    }

    /// Declares (or relabels) a custom field. Its type cannot change once declared: stored
    /// values would no longer fit it.
    pub async fn declare_custom_field(
        &self,
        tenant: &str,
        f: &CustomField,
        operator: &str,
    ) -> Result<bool, EditError> {
        if !fields::valid_custom_name(&f.name) {
            return Err(EditError::InvalidField {
                field: "name".into(),
                reason: "invalid_name",
            });
        }
        let existing = custom_field::Entity::find()
            .filter(custom_field::Column::TenantId.eq(tenant))
            .filter(custom_field::Column::Name.eq(f.name.clone()))
            .one(&self.db)
            .await?;
        match existing {
            Some(row) if row.value_type != f.value_type.as_str() => Err(EditError::Conflict {
                code: "type_change",
                message: format!(
                    "custom field `{}` is a {}; its type cannot change",
                    f.name, row.value_type
                ),
            }),
            Some(row) => {
                let mut m = row.into_active_model();
                m.label = Set(f.label.chars().take(128).collect());
                m.update(&self.db).await?;
                Ok(false)
            }
            None => {
                custom_field::Entity::insert(custom_field::ActiveModel {
                    id: sea_orm::NotSet,
                    tenant_id: Set(tenant.to_string()),
                    name: Set(f.name.clone()),
                    value_type: Set(f.value_type.as_str().to_string()),
                    label: Set(f.label.chars().take(128).collect()),
                    created_by: Set(operator.chars().take(64).collect()),
                    created_at: Set(Utc::now()),
                })
                .exec_without_returning(&self.db)
                .await?;
                Ok(true)
            }
        }
    }

    /// A new binding token for `tenant`'s active profile, valid for `ttl`.
    pub async fn binding_token(
        &self,
        tenant: &str,
        profile_id: &str,
        operator: &str,
        ttl: Duration,
    ) -> Result<Binding, EditError> {
        let p = self.active_profile(tenant, profile_id).await?;
        // 20 characters of base32 (100 bits): `pb_` + token fits WeCom's 30-character `state`.
        let token: String = (0..20)
            .map(|_| {
                let i = rand::random_range(0..32usize);
                b"abcdefghijklmnopqrstuvwxyz234567"[i] as char
            })
            .collect();
        let now = Utc::now();
        let expires_at = now + ttl;
        binding_token::Entity::insert(binding_token::ActiveModel {
            token: Set(token.clone()),
            tenant_id: Set(p.tenant_id),
            profile_id: Set(profile_id.to_string()),
            created_by: Set(operator.chars().take(64).collect()),
            created_at: Set(now),
            expires_at: Set(expires_at),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(Binding {
            scene: format!("{BINDING_PREFIX}{token}"),
            token,
            profile_id: profile_id.to_string(),
            expires_at,
        })
    }
}

/// Custom-field types for the API's validation message.
pub fn field_types() -> Vec<&'static str> {
    FieldType::ALL.iter().map(|t| t.as_str()).collect()
}
