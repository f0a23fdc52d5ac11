//! Stored rules as operators write them: created for an existing tag (validated), read,
//! replaced, deleted and listed.

use chrono::Utc;
use rules::Limits;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use serde_json::Value;

use crate::store::entities::{rule, tag};

use super::validation::{check, check_input, RuleError};

/// A rule as written by an operator.
#[derive(Debug, Clone)]
pub struct RuleInput {
    pub tenant_id: String,
    pub tag_id: String,
    pub name: String,
    pub condition: Value,
    pub mode: String,
    pub enabled: bool,
    pub operator: String,
}

/// A rule as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleView {
    pub id: String,
    pub tenant_id: String,
    pub tag_id: String,
    pub name: String,
    pub condition: Value,
    pub mode: String,
    pub enabled: bool,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<rule::Model> for RuleView {
    fn from(r: rule::Model) -> Self {
        RuleView {
            condition: serde_json::from_str(&r.condition).unwrap_or(Value::Null),
            id: r.id,
            tenant_id: r.tenant_id,
            tag_id: r.tag_id,
            name: r.name,
            mode: r.mode,
            enabled: r.enabled,
            version: r.version,
            updated_by: r.updated_by,
            updated_at: r.updated_at,
        }
    }
}

/// Creates a rule (validated, see [`check`]) for an existing tag of the tenant.
pub async fn create(
    db: &DatabaseConnection,
    i: RuleInput,
    limits: &Limits,
) -> Result<rule::Model, RuleError> {
    let mode = check_input(&i)?;
    let t = tag::Entity::find_by_id(i.tag_id.clone())
        .filter(tag::Column::TenantId.eq(i.tenant_id.as_str()))
        .one(db)
        .await?;
    if t.is_none() {
        return Err(RuleError::Field {
            field: "tag_id",
            message: format!("no tag `{}` in this tenant", i.tag_id),
        });
    }
    let id = uuid::Uuid::now_v7().to_string();
    let (doc, _) = check(db, &i.tenant_id, Some(&id), &i.condition, limits).await?;
    let now = Utc::now();
    let m = rule::ActiveModel {
        id: Set(id),
        tenant_id: Set(i.tenant_id),
        tag_id: Set(i.tag_id),
        name: Set(i.name.trim().to_string()),
        condition: Set(serde_json::to_string(&doc).unwrap_or_default()),
        mode: Set(mode.as_str().to_string()),
        enabled: Set(i.enabled),
        version: Set(1),
        created_by: Set(i.operator.clone()),
        updated_by: Set(i.operator),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    };
    Ok(m.insert(db).await?)
}

/// The live rule `id` of `tenant` (a rule of another tenant is not found, like an unknown id).
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    id: &str,
) -> Result<rule::Model, RuleError> {
    rule::Entity::find_by_id(id.to_string())
        .filter(rule::Column::TenantId.eq(tenant))
        .one(conn)
        .await?
        .filter(|r| r.deleted_at.is_none())
        .ok_or_else(|| RuleError::NotFound(format!("no tag rule with id `{id}`")))
}

/// Replaces the name, condition, mode and enabled flag of the rule `id` of `i.tenant_id` (the
/// tag stays: `i.tag_id` is not read); a new version.
pub async fn update(
    db: &DatabaseConnection,
    id: &str,
    i: RuleInput,
    limits: &Limits,
) -> Result<rule::Model, RuleError> {
    let mode = check_input(&i)?;
    let row = get(db, &i.tenant_id, id).await?;
    let (doc, _) = check(db, &row.tenant_id, Some(id), &i.condition, limits).await?;
    let version = row.version + 1;
    let mut m = row.into_active_model();
    m.name = Set(i.name.trim().to_string());
    m.condition = Set(serde_json::to_string(&doc).unwrap_or_default());
    m.mode = Set(mode.as_str().to_string());
    m.enabled = Set(i.enabled);
    m.version = Set(version);
    m.updated_by = Set(i.operator);
    m.updated_at = Set(Utc::now());
    Ok(m.update(db).await?)
}

/// Marks the rule `id` of `tenant` deleted (kept for the history of the tags it set).
pub async fn delete(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    operator: &str,
) -> Result<rule::Model, RuleError> {
    let row = get(db, tenant, id).await?;
    let mut m = row.into_active_model();
    m.enabled = Set(false);
    m.deleted_at = Set(Some(Utc::now()));
    m.updated_by = Set(operator.to_string());
    Ok(m.update(db).await?)
}

/// The tenant's live rules by id (the order they were created in): at most `limit` after
/// `after`.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<RuleView>, DbErr> {
    let mut q = rule::Entity::find()
        .filter(rule::Column::TenantId.eq(tenant))
        .filter(rule::Column::DeletedAt.is_null());
    if let Some(a) = after {
        q = q.filter(rule::Column::Id.gt(a));
    }
    Ok(q.order_by_asc(rule::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(RuleView::from)
        .collect())
}
