//! The tag catalogue: groups (single- or multi-select, optionally written back to WeCom) and
//! their tags (active or retired). Names are unique per tenant (groups) and per group (tags).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
};
use serde::Serialize;

use super::entities::{tag, tag_group};

/// Selection of a group.
pub const SINGLE: &str = "single";
pub const MULTI: &str = "multi";
/// Status of a live tag / group, and of one no longer set.
pub const ACTIVE: &str = "active";
pub const RETIRED: &str = "retired";

/// Why a catalogue write was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("`{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn invalid(field: &'static str, message: impl Into<String>) -> CatalogError {
    CatalogError::Invalid {
        field,
        message: message.into(),
    }
}

fn name_ok(field: &'static str, name: &str) -> Result<String, CatalogError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 {
        return Err(invalid(field, "must be 1..=64 characters"));
    }
    Ok(n.to_string())
}

fn duplicate(e: DbErr, what: &str) -> CatalogError {
    if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        CatalogError::Conflict {
            code: "duplicate_name",
            message: format!("{what} with this name exists already"),
        }
    } else {
        CatalogError::Db(e)
    }
}

/// A new group.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub tenant_id: String,
    pub name: String,
    pub selection: String,
    pub sync_wecom: bool,
    pub corp_id: Option<String>,
    pub created_by: String,
}

/// A group with its tags.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupView {
    #[serde(flatten)]
    pub group: GroupRow,
    pub tags: Vec<TagRow>,
}

impl GroupView {
    /// The group's place in the catalogue: `(name, id)`.
    pub fn key(&self) -> (String, String) {
        (self.group.name.clone(), self.group.id.clone())
    }
}

/// A group as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub selection: String,
    pub sync_wecom: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corp_id: Option<String>,
    pub status: String,
}

impl From<tag_group::Model> for GroupRow {
    fn from(g: tag_group::Model) -> Self {
        GroupRow {
            id: g.id,
            tenant_id: g.tenant_id,
            name: g.name,
            selection: g.selection,
            sync_wecom: g.sync_wecom,
            corp_id: g.corp_id,
            status: g.status,
        }
    }
}

/// A tag as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagRow {
    pub id: String,
    pub tenant_id: String,
    pub group_id: String,
    pub name: String,
    pub description: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wecom_tag_id: Option<String>,
}

impl From<tag::Model> for TagRow {
    fn from(t: tag::Model) -> Self {
        TagRow {
            id: t.id,
            tenant_id: t.tenant_id,
            group_id: t.group_id,
            name: t.name,
            description: t.description,
            status: t.status,
            wecom_tag_id: t.wecom_tag_id,
        }
    }
}

/// Creates a group.
pub async fn create_group(db: &DatabaseConnection, g: NewGroup) -> Result<GroupRow, CatalogError> {
    let name = name_ok("name", &g.name)?;
    if g.selection != SINGLE && g.selection != MULTI {
        return Err(invalid("selection", "must be `single` or `multi`"));
    }
    if g.sync_wecom && g.corp_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(invalid(
            "corp_id",
            "is required when the group is written back to WeCom",
        ));
    }
    let now = Utc::now();
    let m = tag_group::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(g.tenant_id),
        name: Set(name),
        selection: Set(g.selection),
        sync_wecom: Set(g.sync_wecom),
        corp_id: Set(g.corp_id),
        wecom_group_id: Set(None),
        status: Set(ACTIVE.into()),
        created_by: Set(g.created_by),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let row = m.insert(db).await.map_err(|e| duplicate(e, "a group"))?;
    Ok(row.into())
}

/// A tenant's groups with their tags, by name then id: at most `limit` groups after `after`
/// (a group's [`GroupView::key`]).
pub async fn groups<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    after: Option<&(String, String)>,
    limit: u64,
) -> Result<Vec<GroupView>, DbErr> {
    let mut q = tag_group::Entity::find().filter(tag_group::Column::TenantId.eq(tenant));
    if let Some((name, id)) = after {
        q = q.filter(
            Condition::any()
                .add(tag_group::Column::Name.gt(name.as_str()))
                .add(
                    Condition::all()
                        .add(tag_group::Column::Name.eq(name.as_str()))
                        .add(tag_group::Column::Id.gt(id.as_str())),
                ),
        );
    }
    let gs = q
        .order_by_asc(tag_group::Column::Name)
        .order_by_asc(tag_group::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let mut by_group: std::collections::BTreeMap<String, Vec<TagRow>> = Default::default();
    if !gs.is_empty() {
        for t in tag::Entity::find()
            .filter(tag::Column::TenantId.eq(tenant))
            .filter(tag::Column::GroupId.is_in(gs.iter().map(|g| g.id.clone())))
            .order_by_asc(tag::Column::Name)
            .all(db)
            .await?
        {
            by_group
                .entry(t.group_id.clone())
                .or_default()
                .push(t.into());
        }
    }
    Ok(gs
        .into_iter()
        .map(|g| GroupView {
            tags: by_group.remove(&g.id).unwrap_or_default(),
            group: g.into(),
        })
        .collect())
}

/// A tenant's tags (of group `group` when given) by id, the order they were created in (ids are
/// time-ordered): at most `limit` after `after`.
pub async fn tags<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    group: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<TagRow>, DbErr> {
    let mut q = tag::Entity::find().filter(tag::Column::TenantId.eq(tenant));
    if let Some(g) = group {
        q = q.filter(tag::Column::GroupId.eq(g));
    }
    if let Some(a) = after {
        q = q.filter(tag::Column::Id.gt(a));
    }
    Ok(q.order_by_asc(tag::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(TagRow::from)
        .collect())
}

/// The group `id` of `tenant` (a group of another tenant is not found, like an unknown id).
pub async fn group<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<tag_group::Model, CatalogError> {
    tag_group::Entity::find_by_id(id.to_string())
        .filter(tag_group::Column::TenantId.eq(tenant))
        .one(db)
        .await?
        .ok_or_else(|| CatalogError::NotFound(format!("no tag group with id `{id}`")))
}

/// The group `id` of `tenant` with its tags.
pub async fn group_view<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<GroupView, CatalogError> {
    let g = group(db, tenant, id).await?;
    let tags = tag::Entity::find()
        .filter(tag::Column::TenantId.eq(tenant))
        .filter(tag::Column::GroupId.eq(id))
        .order_by_asc(tag::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(TagRow::from)
        .collect();
    Ok(GroupView {
        group: g.into(),
        tags,
    })
}

/// The tag `id` of `tenant` (a tag of another tenant is not found, like an unknown id).
pub async fn tag_in<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<tag::Model, CatalogError> {
    tag::Entity::find_by_id(id.to_string())
        .filter(tag::Column::TenantId.eq(tenant))
        .one(db)
        .await?
        .ok_or_else(|| CatalogError::NotFound(format!("no tag with id `{id}`")))
}

/// A new tag.
#[derive(Debug, Clone)]
pub struct NewTag {
    pub tenant_id: String,
    pub group_id: String,
    pub name: String,
    pub description: String,
    pub created_by: String,
}

/// Creates a tag in an active group of the same tenant.
pub async fn create_tag(db: &DatabaseConnection, t: NewTag) -> Result<TagRow, CatalogError> {
    let name = name_ok("name", &t.name)?;
    if t.description.chars().count() > 255 {
        return Err(invalid("description", "must be at most 255 characters"));
    }
    // A group of another tenant is refused exactly like an unknown one.
    let g = group(db, &t.tenant_id, &t.group_id)
        .await
        .map_err(|e| match e {
            CatalogError::NotFound(_) => CatalogError::Invalid {
                field: "group_id",
                message: format!("no tag group `{}` in this tenant", t.group_id),
            },
            other => other,
        })?;
    if g.status != ACTIVE {
        return Err(CatalogError::Conflict {
            code: "group_retired",
            message: format!("group `{}` is retired", g.name),
        });
    }
    let now = Utc::now();
    let m = tag::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(t.tenant_id),
        group_id: Set(t.group_id),
        name: Set(name),
        description: Set(t.description),
        status: Set(ACTIVE.into()),
        wecom_tag_id: Set(None),
        created_by: Set(t.created_by),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let row = m
        .insert(db)
        .await
        .map_err(|e| duplicate(e, "a tag of this group"))?;
    Ok(row.into())
}

/// Changes to a tag.
#[derive(Debug, Clone, Default)]
pub struct TagPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
}

/// Renames, describes, retires or revives the tag `id` of `tenant`. A retired tag is no longer
/// set by anyone (its rules stop) but the profiles holding it keep it until removed.
pub async fn update_tag_in(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    p: TagPatch,
) -> Result<TagRow, CatalogError> {
    let row = tag_in(db, tenant, id).await?;
    let mut m = row.into_active_model();
    if let Some(n) = p.name {
        m.name = Set(name_ok("name", &n)?);
    }
    if let Some(d) = p.description {
        if d.chars().count() > 255 {
            return Err(invalid("description", "must be at most 255 characters"));
        }
        m.description = Set(d);
    }
    if let Some(s) = p.status {
        if s != ACTIVE && s != RETIRED {
            return Err(invalid("status", "must be `active` or `retired`"));
        }
        m.status = Set(s);
    }
    m.updated_at = Set(Utc::now());
    let row = m
        .update(db)
        .await
        .map_err(|e| duplicate(e, "a tag of this group"))?;
    Ok(row.into())
}
