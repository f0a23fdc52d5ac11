//! Finding profiles: search by phone, name, unionid or external_userid; the customers a WeCom
//! rep follows (the basis of data permission in the sidebar); the data-quality log; the custom
//! fields. Every read is scoped to one tenant and reads one page, in a stable order, after the
//! key of the previous page's last row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::identity::IdentifierKind;
use sea_orm::sea_query::{Expr, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;

use super::entities::{custom_field, data_quality, identifier, profile, wecom_follow};
use super::queries::{lookup_hash, LookupError};
use super::ACTIVE;
use crate::domain::fields::{CustomField, FieldType};
use crate::domain::pii::Pii;

/// A profile in a result list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProfileSummary {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl ProfileSummary {
    /// The result's place in a search: `(display name, id)`.
    pub fn key(&self) -> (String, String) {
        (
            self.display_name.clone().unwrap_or_default(),
            self.id.clone(),
        )
    }
}

impl From<profile::Model> for ProfileSummary {
    fn from(p: profile::Model) -> Self {
        ProfileSummary {
            id: p.id,
            display_name: p.display_name,
            version: p.version,
            updated_at: p.updated_at,
        }
    }
}

/// What to search by.
#[derive(Debug, Clone)]
pub enum Search {
    /// An identifier given in clear; `namespace: None` searches every namespace of the kind.
    Identifier {
        kind: IdentifierKind,
        namespace: Option<String>,
        value: String,
    },
    /// Name or nickname starting with this text.
    NamePrefix(String),
}

/// Profiles matching `search` in `tenant`, at most `limit` after `after` (a result's
/// [`ProfileSummary::key`]): by name then id for a name, by id for an identifier.
pub async fn search<C: ConnectionTrait>(
    db: &C,
    pii: Option<&Pii>,
    tenant: &str,
    search: &Search,
    after: Option<&(String, String)>,
    limit: u64,
) -> Result<Vec<ProfileSummary>, LookupError> {
    let ids: Vec<String> = match search {
        Search::Identifier {
            kind,
            namespace,
            value,
        } => {
            let mut q = identifier::Entity::find()
                .filter(identifier::Column::TenantId.eq(tenant))
                .filter(identifier::Column::Kind.eq(kind.as_str()));
            match namespace {
                Some(ns) => {
                    let hash = lookup_hash(pii, *kind, ns, value)?;
                    q = q
                        .filter(identifier::Column::Namespace.eq(ns.trim()))
                        .filter(identifier::Column::ValueHash.eq(hash));
                }
                None if kind.is_sensitive() => {
                    return Err(LookupError::BadValue(*kind));
                }
                None => {
                    let hash = lookup_hash(pii, *kind, "", value)?;
                    q = q.filter(identifier::Column::ValueHash.eq(hash));
                }
            }
            // One value of one kind: a handful of identifiers (one per namespace at most).
            let mut ids: Vec<String> = q.all(db).await?.into_iter().map(|m| m.profile_id).collect();
            ids.sort();
            ids.dedup();
            ids
        }
        Search::NamePrefix(prefix) => {
            let pattern = format!("{}%", escape_like(prefix.trim()));
            let mut q = profile::Entity::find()
                .filter(profile::Column::TenantId.eq(tenant))
                .filter(profile::Column::Status.eq(ACTIVE))
                .filter(
                    Expr::col(profile::Column::DisplayName)
                        .like(LikeExpr::new(pattern).escape('\\')),
                );
            if let Some((name, id)) = after {
                q = q.filter(
                    Condition::any()
                        .add(profile::Column::DisplayName.gt(name.as_str()))
                        .add(
                            Condition::all()
                                .add(profile::Column::DisplayName.eq(name.as_str()))
                                .add(profile::Column::Id.gt(id.as_str())),
                        ),
                );
            }
            return Ok(q
                .order_by_asc(profile::Column::DisplayName)
                .order_by_asc(profile::Column::Id)
                .limit(limit)
                .all(db)
                .await?
                .into_iter()
                .map(ProfileSummary::from)
                .collect());
        }
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = profile::Entity::find()
        .filter(profile::Column::TenantId.eq(tenant))
        .filter(profile::Column::Id.is_in(ids));
    if let Some((_, id)) = after {
        q = q.filter(profile::Column::Id.gt(id.as_str()));
    }
    Ok(q.order_by_asc(profile::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(ProfileSummary::from)
        .collect())
}

/// `%`, `_` and `\` taken literally in a LIKE pattern.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One customer of a rep.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RepCustomer {
    pub profile_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub corp_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_way: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub added_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Row id, the cursor of the next page.
    #[serde(skip)]
    pub row: i64,
}

/// The customers WeCom rep `user_id` follows (or followed, with `include_deleted`), in the order
/// the follows were recorded: a page of at most `limit` follows after row `after`, and the row
/// to continue after when more follow (a follow whose identifier is gone is left out of the
/// page, not of the count).
pub async fn rep_customers<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    corp_id: Option<&str>,
    user_id: &str,
    include_deleted: bool,
    after: Option<i64>,
    limit: u64,
) -> Result<(Vec<RepCustomer>, Option<i64>), DbErr> {
    let mut q = wecom_follow::Entity::find()
        .filter(wecom_follow::Column::TenantId.eq(tenant))
        .filter(wecom_follow::Column::UserId.eq(user_id));
    if let Some(c) = corp_id {
        q = q.filter(wecom_follow::Column::CorpId.eq(c));
    }
    if !include_deleted {
        q = q.filter(wecom_follow::Column::DeletedAt.is_null());
    }
    if let Some(a) = after {
        q = q.filter(wecom_follow::Column::Id.gt(a));
    }
    let rows = q
        .order_by_asc(wecom_follow::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let ident_ids: Vec<i64> = rows.iter().map(|r| r.identifier_id).collect();
    let owners: BTreeMap<i64, String> = if ident_ids.is_empty() {
        BTreeMap::new()
    } else {
        identifier::Entity::find()
            .filter(identifier::Column::TenantId.eq(tenant))
            .filter(identifier::Column::Id.is_in(ident_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|m| (m.id, m.profile_id))
            .collect()
    };
    let names: BTreeMap<String, Option<String>> = if owners.is_empty() {
        BTreeMap::new()
    } else {
        profile::Entity::find()
            .filter(profile::Column::TenantId.eq(tenant))
            .filter(profile::Column::Id.is_in(owners.values().cloned()))
            .all(db)
            .await?
            .into_iter()
            .map(|p| (p.id, p.display_name))
            .collect()
    };
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(last.id),
        _ => None,
    };
    let items = rows
        .into_iter()
        .filter_map(|r| {
            let profile_id = owners.get(&r.identifier_id)?.clone();
            Some(RepCustomer {
                display_name: names.get(&profile_id).cloned().flatten(),
                profile_id,
                corp_id: r.corp_id,
                remark: r.remark,
                add_way: r.add_way,
                state: r.state,
                added_at: r.added_at,
                deleted_at: r.deleted_at,
                row: r.id,
            })
        })
        .collect();
    Ok((items, next))
}

/// One refused value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QualityEntry {
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub field: String,
    pub value: String,
    pub reason: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// The tenant's data-quality log (of one profile when given), newest first: at most `limit`
/// entries before row `before`.
pub async fn data_quality<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profile_id: Option<&str>,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<QualityEntry>, DbErr> {
    let mut q = data_quality::Entity::find().filter(data_quality::Column::TenantId.eq(tenant));
    if let Some(p) = profile_id {
        q = q.filter(data_quality::Column::ProfileId.eq(p));
    }
    if let Some(b) = before {
        q = q.filter(data_quality::Column::Id.lt(b));
    }
    Ok(q.order_by_desc(data_quality::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|r| QualityEntry {
            id: r.id,
            profile_id: r.profile_id,
            event_id: r.event_id,
            field: r.field,
            value: r.value,
            reason: r.reason,
            source: r.source,
            created_at: r.created_at,
        })
        .collect())
}

/// `tenant`'s declared custom fields by name: at most `limit` named after `after`.
pub async fn custom_fields<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<CustomField>, DbErr> {
    let mut q = custom_field::Entity::find().filter(custom_field::Column::TenantId.eq(tenant));
    if let Some(a) = after {
        q = q.filter(custom_field::Column::Name.gt(a));
    }
    Ok(q.order_by_asc(custom_field::Column::Name)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|c| {
            Some(CustomField {
                value_type: FieldType::parse(&c.value_type)?,
                name: c.name,
                label: c.label,
            })
        })
        .collect())
}
