//! Local tag groups linked to mirrored corp groups: what a linked group looks like, linking one,
//! the plan for pushing a local group to WeCom and linking what was pushed, and switching a
//! group's write-back.

use std::collections::BTreeMap;

use chrono::{SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use wechat::api::CorpTagGroup;

use crate::store::catalog::{self, CatalogError, GroupRow, GroupView, TagRow, ACTIVE, MULTI};
use crate::store::entities::{corp_tag, tag, tag_group};
use crate::store::sync_queue::{self, Closed};
use crate::store::writeback;

use super::*;

impl MirrorGroup {
    /// The group's place in the mirror: `(WeCom's order, WeCom id)`.
    pub fn key(&self) -> (i64, String) {
        (self.order, self.wecom_id.clone())
    }
}

/// The mirror of `tenant`'s `corp`: groups by WeCom's order (larger first, then WeCom id), each
/// with its tags; at most `limit` groups after `after` (a group's [`MirrorGroup::key`]).
pub async fn mirror<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
    after: Option<&(i64, String)>,
    limit: u64,
) -> Result<Vec<MirrorGroup>, DbErr> {
    let mut q = corp_tag::Entity::find()
        .filter(corp_tag::Column::TenantId.eq(tenant))
        .filter(corp_tag::Column::CorpId.eq(corp))
        .filter(corp_tag::Column::Kind.eq(GROUP));
    if let Some((order, wecom_id)) = after {
        q = q.filter(
            Condition::any()
                .add(corp_tag::Column::SortOrder.lt(*order))
                .add(
                    Condition::all()
                        .add(corp_tag::Column::SortOrder.eq(*order))
                        .add(corp_tag::Column::WecomId.gt(wecom_id.as_str())),
                ),
        );
    }
    let groups = q
        .order_by_desc(corp_tag::Column::SortOrder)
        .order_by_asc(corp_tag::Column::WecomId)
        .limit(limit)
        .all(conn)
        .await?;
    let mut tags: BTreeMap<String, Vec<MirrorTag>> = BTreeMap::new();
    if !groups.is_empty() {
        for r in corp_tag::Entity::find()
            .filter(corp_tag::Column::TenantId.eq(tenant))
            .filter(corp_tag::Column::CorpId.eq(corp))
            .filter(corp_tag::Column::Kind.eq(TAG))
            .filter(corp_tag::Column::GroupWecomId.is_in(groups.iter().map(|g| g.wecom_id.clone())))
            .order_by_desc(corp_tag::Column::SortOrder)
            .order_by_asc(corp_tag::Column::WecomId)
            .all(conn)
            .await?
        {
            tags.entry(r.group_wecom_id.clone().unwrap_or_default())
                .or_default()
                .push(MirrorTag {
                    wecom_id: r.wecom_id,
                    name: r.name,
                    order: r.sort_order,
                    deleted: r.deleted,
                    tag_id: r.tag_id,
                });
        }
    }
    Ok(groups
        .into_iter()
        .map(|r| MirrorGroup {
            tags: tags.remove(&r.wecom_id).unwrap_or_default(),
            wecom_id: r.wecom_id,
            name: r.name,
            order: r.sort_order,
            deleted: r.deleted,
            group_id: r.tag_id,
            synced_at: r.synced_at,
        })
        .collect())
}

/// How to link a mirrored corp group.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Local name; the corp group's when `None`.
    pub name: Option<String>,
    /// `single` or `multi` (WeCom's groups are multi-select).
    pub selection: Option<String>,
    pub operator: String,
}

/// Makes the mirrored corp group `group_wecom_id` of `corp` a local tag group written back to
/// WeCom, with a tag per live corp tag. 404 when the mirror does not hold it (sync first), 409
/// when it is deleted or linked already, or the name is taken.
pub async fn link(
    db: &DatabaseConnection,
    tenant: &str,
    corp: &str,
    group_wecom_id: &str,
    opts: LinkOptions,
) -> Result<GroupView, CatalogError> {
    let txn = platform::db::begin_write(db).await?;
    let corp_group = corp_tag::Entity::find_by_id((
        tenant.to_string(),
        corp.to_string(),
        group_wecom_id.to_string(),
    ))
    .one(&txn)
    .await?
    .filter(|g| g.kind == GROUP)
    .ok_or_else(|| {
        CatalogError::NotFound(format!(
            "the mirror of corp `{corp}` has no tag group `{group_wecom_id}` (sync it first)"
        ))
    })?;
    if corp_group.deleted {
        return Err(CatalogError::Conflict {
            code: "corp_group_deleted",
            message: format!("corp tag group `{group_wecom_id}` was deleted in WeCom"),
        });
    }
    let linked = tag_group::Entity::find()
        .filter(tag_group::Column::TenantId.eq(tenant))
        .filter(tag_group::Column::CorpId.eq(corp))
        .filter(tag_group::Column::WecomGroupId.eq(group_wecom_id))
        .filter(tag_group::Column::Status.eq(ACTIVE))
        .one(&txn)
        .await?;
    if let Some(g) = linked {
        return Err(CatalogError::Conflict {
            code: "already_linked",
            message: format!(
                "corp tag group `{group_wecom_id}` is linked to group `{}`",
                g.id
            ),
        });
    }
    let name = match opts.name {
        Some(n) => n,
        None => corp_group.name.clone(),
    };
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(CatalogError::Invalid {
            field: "name",
            message: "must be 1..=64 characters".into(),
        });
    }
    let selection = opts.selection.unwrap_or_else(|| MULTI.into());
    if selection != catalog::SINGLE && selection != MULTI {
        return Err(CatalogError::Invalid {
            field: "selection",
            message: "must be `single` or `multi`".into(),
        });
    }
    if group_name_taken(&txn, tenant, &name, "").await? {
        return Err(CatalogError::Conflict {
            code: "duplicate_name",
            message: "a group with this name exists already; give the link another `name`".into(),
        });
    }
    let now = Utc::now().trunc_subsecs(0);
    let operator: String = opts.operator.chars().take(64).collect();
    let group = tag_group::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(tenant.to_string()),
        name: Set(name),
        selection: Set(selection),
        sync_wecom: Set(true),
        corp_id: Set(Some(corp.to_string())),
        wecom_group_id: Set(Some(group_wecom_id.to_string())),
        status: Set(ACTIVE.into()),
        created_by: Set(operator.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    set_link(&txn, tenant, corp, group_wecom_id, &group.id).await?;
    let corp_tags = corp_tag::Entity::find()
        .filter(corp_tag::Column::TenantId.eq(tenant))
        .filter(corp_tag::Column::CorpId.eq(corp))
        .filter(corp_tag::Column::GroupWecomId.eq(group_wecom_id))
        .filter(corp_tag::Column::Kind.eq(TAG))
        .filter(corp_tag::Column::Deleted.eq(false))
        .order_by_desc(corp_tag::Column::SortOrder)
        .all(&txn)
        .await?;
    let mut tags = Vec::new();
    for c in &corp_tags {
        let id = new_local_tag(&txn, tenant, &group.id, c, &operator, now).await?;
        set_link(&txn, tenant, corp, &c.wecom_id, &id).await?;
        tags.push(catalog::tag_in(&txn, tenant, &id).await?);
    }
    txn.commit().await?;
    Ok(GroupView {
        group: GroupRow::from(group),
        tags: tags.into_iter().map(TagRow::from).collect(),
    })
}

/// WeCom's longest corp tag or group name, in characters.
pub const WECOM_NAME_MAX: usize = 30;

/// A local group and its tags that are not in WeCom yet, for [`crate::wecom::mirror::Mirror::push`].
#[derive(Debug, Clone)]
pub struct PushPlan {
    pub group: tag_group::Model,
    /// Active tags without a WeCom id, oldest first.
    pub tags: Vec<tag::Model>,
}

/// What a push to WeCom would create for the local group `group_id` of `tenant`: refused for a
/// group without a corp, a retired group, names WeCom refuses (over 30 characters, naming the
/// tag), and a group whose name is a corp group already linked to another local group (WeCom
/// adds to the group of that name).
pub async fn push_plan(
    db: &DatabaseConnection,
    tenant: &str,
    group_id: &str,
) -> Result<PushPlan, CatalogError> {
    let group = catalog::group(db, tenant, group_id).await?;
    let Some(corp) = group.corp_id.clone() else {
        return Err(CatalogError::Invalid {
            field: "corp_id",
            message: "the group has no WeCom corp: set it with PATCH /v1/tag-groups/{id}/wecom"
                .into(),
        });
    };
    if group.status != ACTIVE {
        return Err(CatalogError::Conflict {
            code: "group_retired",
            message: format!("tag group `{group_id}` is retired"),
        });
    }
    let too_long = |n: &str| n.chars().count() > WECOM_NAME_MAX;
    if group.wecom_group_id.is_none() {
        if too_long(&group.name) {
            return Err(CatalogError::Invalid {
                field: "name",
                message: format!(
                    "WeCom takes group names of at most {WECOM_NAME_MAX} characters; rename the group"
                ),
            });
        }
        let same_name: Vec<String> = corp_tag::Entity::find()
            .filter(corp_tag::Column::TenantId.eq(tenant))
            .filter(corp_tag::Column::CorpId.eq(corp.as_str()))
            .filter(corp_tag::Column::Kind.eq(GROUP))
            .filter(corp_tag::Column::Deleted.eq(false))
            .filter(corp_tag::Column::Name.eq(group.name.as_str()))
            .all(db)
            .await?
            .into_iter()
            .map(|c| c.wecom_id)
            .collect();
        if !same_name.is_empty() {
            if let Some(other) = tag_group::Entity::find()
                .filter(tag_group::Column::TenantId.eq(tenant))
                .filter(tag_group::Column::CorpId.eq(corp.as_str()))
                .filter(tag_group::Column::WecomGroupId.is_in(same_name))
                .filter(tag_group::Column::Id.ne(group_id))
                .one(db)
                .await?
            {
                return Err(CatalogError::Conflict {
                    code: "already_linked",
                    message: format!(
                        "WeCom's group `{}` is linked to local group `{}`",
                        group.name, other.id
                    ),
                });
            }
        }
    }
    let tags: Vec<tag::Model> = tag::Entity::find()
        .filter(tag::Column::TenantId.eq(tenant))
        .filter(tag::Column::GroupId.eq(group_id))
        .filter(tag::Column::Status.eq(ACTIVE))
        .filter(tag::Column::WecomTagId.is_null())
        .order_by_asc(tag::Column::CreatedAt)
        .order_by_asc(tag::Column::Id)
        .all(db)
        .await?;
    if let Some(t) = tags.iter().find(|t| too_long(&t.name)) {
        return Err(CatalogError::Invalid {
            field: "tags",
            message: format!(
                "tag `{}` ({}): WeCom takes tag names of at most {WECOM_NAME_MAX} characters",
                t.id, t.name
            ),
        });
    }
    Ok(PushPlan { group, tags })
}

/// Links what `add_corp_tag` created for `plan` (the group it went into, and each local tag to
/// the corp tag of its name) and, when the group is written back, queues the tag for the
/// profiles holding it already. Returns how many tags were linked.
pub async fn link_pushed(
    db: &DatabaseConnection,
    plan: &PushPlan,
    created: &CorpTagGroup,
) -> Result<usize, DbErr> {
    let txn = platform::db::begin_write(db).await?;
    let now = Utc::now().trunc_subsecs(0);
    if plan.group.wecom_group_id.as_deref() != Some(created.group_id.as_str()) {
        let mut m = plan.group.clone().into_active_model();
        m.wecom_group_id = Set(Some(created.group_id.clone()));
        m.updated_at = Set(now);
        m.update(&txn).await?;
    }
    let by_name: BTreeMap<&str, &str> = created
        .tag
        .iter()
        .map(|t| (t.name.as_str(), t.id.as_str()))
        .collect();
    let mut linked = 0;
    for t in &plan.tags {
        let Some(w) = by_name.get(t.name.trim()) else {
            continue;
        };
        let mut m = t.clone().into_active_model();
        m.wecom_tag_id = Set(Some((*w).to_string()));
        m.updated_at = Set(now);
        m.update(&txn).await?;
        linked += 1;
        if let (true, Some(corp)) = (plan.group.sync_wecom, plan.group.corp_id.as_deref()) {
            writeback::enqueue_holders(&txn, &plan.group.tenant_id, corp, &t.id, w, now).await?;
        }
    }
    txn.commit().await?;
    Ok(linked)
}

/// Switches the write-back of the local group `id` of `tenant` on (with the corp, unless it has
/// one) or off. Turning it off drops the group's pending write-backs. A group linked to a corp
/// tag group keeps its corp.
pub async fn set_group_sync_in(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    sync_wecom: Option<bool>,
    corp_id: Option<String>,
) -> Result<GroupRow, CatalogError> {
    let txn = platform::db::begin_write(db).await?;
    let g = catalog::group(&txn, tenant, id).await?;
    let corp = corp_id
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if let (Some(new), Some(old), Some(_)) = (&corp, &g.corp_id, &g.wecom_group_id) {
        if new != old {
            return Err(CatalogError::Invalid {
                field: "corp_id",
                message: format!("the group mirrors a tag group of corp `{old}`"),
            });
        }
    }
    let corp = corp.or(g.corp_id.clone());
    let sync = sync_wecom.unwrap_or(g.sync_wecom);
    if sync && corp.is_none() {
        return Err(CatalogError::Invalid {
            field: "corp_id",
            message: "is required when the group is written back to WeCom".into(),
        });
    }
    if let Some(c) = &corp {
        if c.chars().count() > 64 {
            return Err(CatalogError::Invalid {
                field: "corp_id",
                message: "must be at most 64 characters".into(),
            });
        }
    }
    let now = Utc::now().trunc_subsecs(0);
    if g.sync_wecom && !sync {
        if let Some(old) = &g.corp_id {
            let wecom_ids: Vec<String> = tag::Entity::find()
                .filter(tag::Column::GroupId.eq(g.id.as_str()))
                .all(&txn)
                .await?
                .into_iter()
                .filter_map(|t| t.wecom_tag_id)
                .collect();
            sync_queue::close_pending(&txn, &g.tenant_id, old, &wecom_ids, Closed::SyncOff, now)
                .await?;
        }
    }
    if sync && !g.sync_wecom {
        // Switched on: WeCom learns what profiles hold now, not only later changes.
        if let Some(c) = &corp {
            for t in tag::Entity::find()
                .filter(tag::Column::GroupId.eq(g.id.as_str()))
                .filter(tag::Column::Status.eq(ACTIVE))
                .all(&txn)
                .await?
            {
                if let Some(w) = &t.wecom_tag_id {
                    writeback::enqueue_holders(&txn, &g.tenant_id, c, &t.id, w, now).await?;
                }
            }
        }
    }
    let mut m = g.into_active_model();
    m.sync_wecom = Set(sync);
    m.corp_id = Set(corp);
    m.updated_at = Set(now);
    let row = m.update(&txn).await?;
    txn.commit().await?;
    Ok(row.into())
}
