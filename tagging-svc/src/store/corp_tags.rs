//! The mirror of each corp's WeCom tag library (`corp_tags`: groups and tags with names, order
//! and deleted flags) and the local tag groups linked to it.
//!
//! - [`apply`] replaces what the mirror holds for a corp with a fresh `get_corp_tag_list`
//!   answer in one transaction: new and changed rows are written, rows WeCom no longer lists are
//!   flagged deleted, and each linked local group follows — a corp tag added gets a local tag, a
//!   renamed one renames its local tag (when the local name was still the mirrored one, so a
//!   local rename is kept), a deleted one retires it (rules stop setting it; profiles keep it as
//!   history) and its queued write-backs fail.
//! - [`link`] makes a mirrored corp group a local tag group written back to WeCom: the group and
//!   a tag per corp tag, with their WeCom ids. Mirror rows of a linked group or tag carry the
//!   local id in `tag_id`.
//! - [`set_group_sync_in`] switches a local group's write-back on or off.
//! - Sync requests (`corp_tag_syncs`): [`request_sync`] asks for a corp to be read again (an
//!   event, the API, start-up, the periodic refresh); [`claim_sync`] / [`finish_sync`] let one
//!   process at a time run it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use wechat::api::CorpTagGroup;

use super::catalog::{self, CatalogError, GroupRow, GroupView, TagRow, ACTIVE, MULTI, RETIRED};
use super::entities::{corp_tag, corp_tag_sync, tag, tag_group};
use super::rep_tags;
use super::sync_queue::{self, Closed};
use super::writeback;

/// `kind` of a mirrored group / tag.
pub const GROUP: &str = "group";
pub const TAG: &str = "tag";

/// What one [`apply`] changed.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct MirrorReport {
    /// Groups and tags WeCom listed.
    pub groups: u64,
    pub tags: u64,
    /// Mirror rows newly flagged deleted.
    pub deleted: u64,
    /// Local tags and groups of linked groups created, renamed, retired.
    pub local_created: u64,
    pub local_renamed: u64,
    pub local_retired: u64,
    /// Queued write-backs of deleted corp tags marked failed.
    pub writebacks_failed: u64,
}

/// A mirrored corp tag as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MirrorTag {
    pub wecom_id: String,
    pub name: String,
    pub order: i64,
    pub deleted: bool,
    /// The local tag it is linked to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_id: Option<String>,
}

/// A mirrored corp group with its tags.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MirrorGroup {
    pub wecom_id: String,
    pub name: String,
    pub order: i64,
    pub deleted: bool,
    /// The local tag group it is linked to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub synced_at: DateTime<Utc>,
    pub tags: Vec<MirrorTag>,
}

fn mirror_key(m: &corp_tag::Model) -> String {
    m.wecom_id.clone()
}

/// Writes a fresh tag library of `corp` (every group WeCom lists) into the mirror and the
/// linked local groups.
pub async fn apply(
    db: &DatabaseConnection,
    tenant: &str,
    corp: &str,
    library: &[CorpTagGroup],
    now: DateTime<Utc>,
) -> Result<MirrorReport, DbErr> {
    let txn = platform::db::begin_write(db).await?;
    let old: BTreeMap<String, corp_tag::Model> = corp_tag::Entity::find()
        .filter(corp_tag::Column::TenantId.eq(tenant))
        .filter(corp_tag::Column::CorpId.eq(corp))
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (mirror_key(&m), m))
        .collect();
    let local = local_links(&txn, tenant, corp).await?;
    let mut report = MirrorReport::default();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut rows = Vec::new();
    for g in library {
        report.groups += 1;
        rows.push((
            g.group_id.clone(),
            GROUP,
            None,
            &g.group_name,
            g.order,
            g.deleted,
        ));
        for t in &g.tag {
            report.tags += 1;
            rows.push((
                t.id.clone(),
                TAG,
                Some(g.group_id.clone()),
                &t.name,
                t.order,
                t.deleted || g.deleted,
            ));
        }
    }
    for (wecom_id, kind, group, name, order, deleted) in rows {
        listed.insert(wecom_id.clone());
        let name: String = name.chars().take(64).collect();
        match old.get(&wecom_id) {
            Some(o)
                if o.name == name
                    && o.sort_order == order
                    && o.deleted == deleted
                    && o.group_wecom_id == group
                    && o.kind == kind => {}
            Some(o) => {
                if deleted && !o.deleted {
                    report.deleted += 1;
                }
                let mut m = o.clone().into_active_model();
                m.kind = Set(kind.to_string());
                m.group_wecom_id = Set(group);
                m.name = Set(name);
                m.sort_order = Set(order);
                m.deleted = Set(deleted);
                m.synced_at = Set(now);
                m.update(&txn).await?;
            }
            None => {
                let tag_id = local.get(&wecom_id).cloned();
                corp_tag::Entity::insert(corp_tag::ActiveModel {
                    tenant_id: Set(tenant.to_string()),
                    corp_id: Set(corp.to_string()),
                    wecom_id: Set(wecom_id),
                    kind: Set(kind.to_string()),
                    group_wecom_id: Set(group),
                    name: Set(name),
                    sort_order: Set(order),
                    deleted: Set(deleted),
                    tag_id: Set(tag_id),
                    synced_at: Set(now),
                })
                .exec_without_returning(&txn)
                .await?;
            }
        }
    }
    // WeCom does not list what was deleted: flag what it left out.
    let gone: Vec<String> = old
        .values()
        .filter(|o| !o.deleted && !listed.contains(&o.wecom_id))
        .map(|o| o.wecom_id.clone())
        .collect();
    if !gone.is_empty() {
        report.deleted += gone.len() as u64;
        corp_tag::Entity::update_many()
            .col_expr(corp_tag::Column::Deleted, Expr::value(true))
            .col_expr(corp_tag::Column::SyncedAt, Expr::value(now))
            .filter(corp_tag::Column::TenantId.eq(tenant))
            .filter(corp_tag::Column::CorpId.eq(corp))
            .filter(corp_tag::Column::WecomId.is_in(gone))
            .exec(&txn)
            .await?;
    }
    follow_linked(&txn, tenant, corp, &old, now, &mut report).await?;
    let deleted_tags: Vec<String> = corp_tag::Entity::find()
        .filter(corp_tag::Column::TenantId.eq(tenant))
        .filter(corp_tag::Column::CorpId.eq(corp))
        .filter(corp_tag::Column::Kind.eq(TAG))
        .filter(corp_tag::Column::Deleted.eq(true))
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| m.wecom_id)
        .collect();
    report.writebacks_failed =
        sync_queue::close_pending(&txn, tenant, corp, &deleted_tags, Closed::TagDeleted, now)
            .await?;
    // WeCom took deleted tags off every customer: no mark of ours is left on anyone.
    rep_tags::forget_tags(&txn, tenant, corp, &deleted_tags).await?;
    txn.commit().await?;
    Ok(report)
}

/// The local groups of `corp` linked to a corp group.
async fn linked_groups<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
) -> Result<Vec<tag_group::Model>, DbErr> {
    tag_group::Entity::find()
        .filter(tag_group::Column::TenantId.eq(tenant))
        .filter(tag_group::Column::CorpId.eq(corp))
        .filter(tag_group::Column::WecomGroupId.is_not_null())
        .all(conn)
        .await
}

/// WeCom id → local id of the groups of `corp` linked to a corp group and of their tags linked
/// to a corp tag (a group pushed to WeCom is linked before its tags are first mirrored).
async fn local_links<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
) -> Result<BTreeMap<String, String>, DbErr> {
    let groups = linked_groups(conn, tenant, corp).await?;
    let mut out = BTreeMap::new();
    let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    for g in groups {
        if let Some(w) = g.wecom_group_id {
            out.insert(w, g.id);
        }
    }
    for chunk in ids.chunks(500) {
        for t in tag::Entity::find()
            .filter(tag::Column::TenantId.eq(tenant))
            .filter(tag::Column::GroupId.is_in(chunk.to_vec()))
            .filter(tag::Column::WecomTagId.is_not_null())
            .all(conn)
            .await?
        {
            if let Some(w) = t.wecom_tag_id {
                out.insert(w, t.id);
            }
        }
    }
    Ok(out)
}

/// The linked local groups of `corp` follow the mirror (already written in `txn`); `old` is the
/// mirror before, to tell a name the local side still mirrors from one set locally.
async fn follow_linked<C: ConnectionTrait>(
    txn: &C,
    tenant: &str,
    corp: &str,
    old: &BTreeMap<String, corp_tag::Model>,
    now: DateTime<Utc>,
    report: &mut MirrorReport,
) -> Result<(), DbErr> {
    let mirror: BTreeMap<String, corp_tag::Model> = corp_tag::Entity::find()
        .filter(corp_tag::Column::TenantId.eq(tenant))
        .filter(corp_tag::Column::CorpId.eq(corp))
        .all(txn)
        .await?
        .into_iter()
        .map(|m| (mirror_key(&m), m))
        .collect();
    let groups = linked_groups(txn, tenant, corp).await?;
    let was_mirrored =
        |wecom_id: &str, local: &str| old.get(wecom_id).is_some_and(|o| o.name == local);
    for g in groups {
        let Some(gid) = g.wecom_group_id.clone() else {
            continue;
        };
        let corp_group = mirror.get(&gid);
        let local_tags = tag::Entity::find()
            .filter(tag::Column::TenantId.eq(tenant))
            .filter(tag::Column::GroupId.eq(g.id.as_str()))
            .all(txn)
            .await?;
        let group_gone = corp_group.is_none_or(|c| c.deleted);
        if group_gone {
            if g.status == ACTIVE {
                let mut m = g.clone().into_active_model();
                m.status = Set(RETIRED.into());
                m.updated_at = Set(now);
                m.update(txn).await?;
                report.local_retired += 1;
            }
        } else if let Some(c) = corp_group {
            if c.name != g.name
                && was_mirrored(&gid, &g.name)
                && !group_name_taken(txn, tenant, &c.name, &g.id).await?
            {
                let mut m = g.clone().into_active_model();
                m.name = Set(c.name.clone());
                m.updated_at = Set(now);
                m.update(txn).await?;
                report.local_renamed += 1;
            }
        }
        let by_wecom: BTreeMap<String, &tag::Model> = local_tags
            .iter()
            .filter_map(|t| t.wecom_tag_id.clone().map(|w| (w, t)))
            .collect();
        for t in &local_tags {
            let Some(w) = t.wecom_tag_id.as_deref() else {
                continue;
            };
            let corp_tag = mirror.get(w);
            let gone = group_gone || corp_tag.is_none_or(|c| c.deleted);
            if gone {
                if t.status == ACTIVE {
                    let mut m = t.clone().into_active_model();
                    m.status = Set(RETIRED.into());
                    m.updated_at = Set(now);
                    m.update(txn).await?;
                    report.local_retired += 1;
                }
            } else if let Some(c) = corp_tag {
                if c.name != t.name
                    && was_mirrored(w, &t.name)
                    && !tag_name_taken(txn, tenant, &g.id, &c.name, &t.id).await?
                {
                    let mut m = t.clone().into_active_model();
                    m.name = Set(c.name.clone());
                    m.updated_at = Set(now);
                    m.update(txn).await?;
                    report.local_renamed += 1;
                }
            }
        }
        if group_gone || g.status != ACTIVE {
            continue;
        }
        // Corp tags added to a linked group since.
        for c in mirror.values().filter(|c| {
            c.kind == TAG
                && !c.deleted
                && c.group_wecom_id.as_deref() == Some(gid.as_str())
                && !by_wecom.contains_key(&c.wecom_id)
        }) {
            if tag_name_taken(txn, tenant, &g.id, &c.name, "").await? {
                tracing::warn!(group_id = %g.id, wecom_tag_id = %c.wecom_id, "Corp tag not mirrored locally: its group has a tag of that name");
                continue;
            }
            let id = new_local_tag(txn, tenant, &g.id, c, "wecom:mirror", now).await?;
            set_link(txn, tenant, corp, &c.wecom_id, &id).await?;
            report.local_created += 1;
        }
    }
    Ok(())
}

async fn group_name_taken<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    name: &str,
    except: &str,
) -> Result<bool, DbErr> {
    Ok(tag_group::Entity::find()
        .filter(tag_group::Column::TenantId.eq(tenant))
        .filter(tag_group::Column::Name.eq(name))
        .filter(tag_group::Column::Id.ne(except))
        .one(conn)
        .await?
        .is_some())
}

async fn tag_name_taken<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    group: &str,
    name: &str,
    except: &str,
) -> Result<bool, DbErr> {
    Ok(tag::Entity::find()
        .filter(tag::Column::TenantId.eq(tenant))
        .filter(tag::Column::GroupId.eq(group))
        .filter(tag::Column::Name.eq(name))
        .filter(tag::Column::Id.ne(except))
        .one(conn)
        .await?
        .is_some())
}

async fn new_local_tag<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    group: &str,
    c: &corp_tag::Model,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<String, DbErr> {
    let id = uuid::Uuid::now_v7().to_string();
    tag::Entity::insert(tag::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.to_string()),
        group_id: Set(group.to_string()),
        name: Set(c.name.clone()),
        description: Set(String::new()),
        status: Set(ACTIVE.into()),
        wecom_tag_id: Set(Some(c.wecom_id.clone())),
        created_by: Set(operator.chars().take(64).collect()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(id)
}

async fn set_link<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
    wecom_id: &str,
    local: &str,
) -> Result<(), DbErr> {
    corp_tag::Entity::update_many()
        .col_expr(corp_tag::Column::TagId, Expr::value(local))
        .filter(corp_tag::Column::TenantId.eq(tenant))
        .filter(corp_tag::Column::CorpId.eq(corp))
        .filter(corp_tag::Column::WecomId.eq(wecom_id))
        .exec(conn)
        .await?;
    Ok(())
}

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

/// Asks for `corp`'s tag library of `tenant` to be read again.
pub async fn request_sync<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    corp_tag_sync::Entity::insert(corp_tag_sync::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        corp_id: Set(corp.to_string()),
        requested: Set(1),
        synced: Set(0),
        claimed_until: Set(None),
        retry_at: Set(None),
        last_synced_at: Set(None),
        last_error: Set(None),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            corp_tag_sync::Column::TenantId,
            corp_tag_sync::Column::CorpId,
        ])
        .value(
            corp_tag_sync::Column::Requested,
            Expr::col(corp_tag_sync::Column::Requested).add(1),
        )
        .value(corp_tag_sync::Column::UpdatedAt, Expr::value(now))
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Forgets the sync requests of `corp` for `tenant` when the tenant holds nothing of it (no
/// mirror row, no tag group naming it): for a corp that is not the tenant's (the gateway's
/// token keeper knows no such WeCom app of the tenant), so the refresh stops asking for it.
/// Returns whether it was forgotten.
pub async fn forget_corp(db: &DatabaseConnection, tenant: &str, corp: &str) -> Result<bool, DbErr> {
    let txn = platform::db::begin_write(db).await?;
    let mirrored = corp_tag::Entity::find()
        .filter(corp_tag::Column::TenantId.eq(tenant))
        .filter(corp_tag::Column::CorpId.eq(corp))
        .one(&txn)
        .await?
        .is_some();
    let named = tag_group::Entity::find()
        .filter(tag_group::Column::TenantId.eq(tenant))
        .filter(tag_group::Column::CorpId.eq(corp))
        .one(&txn)
        .await?
        .is_some();
    if mirrored || named {
        return Ok(false);
    }
    corp_tag_sync::Entity::delete_many()
        .filter(corp_tag_sync::Column::TenantId.eq(tenant))
        .filter(corp_tag_sync::Column::CorpId.eq(corp))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(true)
}

/// Every (tenant, corp) the service knows: asked for before, or named by a tag group.
pub async fn known_corps<C: ConnectionTrait>(
    conn: &C,
) -> Result<BTreeSet<(String, String)>, DbErr> {
    let mut out: BTreeSet<(String, String)> = corp_tag_sync::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.tenant_id, r.corp_id))
        .collect();
    let groups: Vec<(String, Option<String>)> = tag_group::Entity::find()
        .select_only()
        .column(tag_group::Column::TenantId)
        .column(tag_group::Column::CorpId)
        .filter(tag_group::Column::CorpId.is_not_null())
        .distinct()
        .into_tuple()
        .all(conn)
        .await?;
    out.extend(groups.into_iter().filter_map(|(t, c)| Some((t, c?))));
    Ok(out)
}

/// (tenant, corp) with a sync asked for and not run since, not claimed by anyone and not
/// pausing after a failure at `now`.
pub async fn wanted<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, DbErr> {
    Ok(corp_tag_sync::Entity::find()
        .filter(
            Expr::col(corp_tag_sync::Column::Requested)
                .gt(Expr::col(corp_tag_sync::Column::Synced)),
        )
        .filter(
            sea_orm::Condition::any()
                .add(corp_tag_sync::Column::ClaimedUntil.is_null())
                .add(corp_tag_sync::Column::ClaimedUntil.lte(now)),
        )
        .filter(
            sea_orm::Condition::any()
                .add(corp_tag_sync::Column::RetryAt.is_null())
                .add(corp_tag_sync::Column::RetryAt.lte(now)),
        )
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.tenant_id, r.corp_id))
        .collect())
}

/// A sync this process runs until `until`, from request number `requested`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncClaim {
    pub until: DateTime<Utc>,
    pub requested: i64,
}

/// Takes the sync of `corp` (asked for with [`request_sync`]) for `lease` unless another
/// process holds it (`None`).
pub async fn claim_sync(
    db: &DatabaseConnection,
    tenant: &str,
    corp: &str,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> Result<Option<SyncClaim>, DbErr> {
    let until = (now + lease).trunc_subsecs(0);
    let taken = corp_tag_sync::Entity::update_many()
        .col_expr(corp_tag_sync::Column::ClaimedUntil, Expr::value(until))
        .filter(corp_tag_sync::Column::TenantId.eq(tenant))
        .filter(corp_tag_sync::Column::CorpId.eq(corp))
        .filter(
            sea_orm::Condition::any()
                .add(corp_tag_sync::Column::ClaimedUntil.is_null())
                .add(corp_tag_sync::Column::ClaimedUntil.lte(now)),
        )
        .exec(db)
        .await?
        .rows_affected;
    if taken == 0 {
        return Ok(None);
    }
    let row = corp_tag_sync::Entity::find_by_id((tenant.to_string(), corp.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("corp_tag_syncs row".into()))?;
    Ok(Some(SyncClaim {
        until,
        requested: row.requested,
    }))
}

/// Ends a claimed sync: done (every request up to the claim's is served) or failed (`error`;
/// the loop does not try again before `retry_at`, an operator's request may).
pub async fn finish_sync(
    db: &DatabaseConnection,
    tenant: &str,
    corp: &str,
    claim: &SyncClaim,
    result: Result<(), (String, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut q = corp_tag_sync::Entity::update_many()
        .col_expr(corp_tag_sync::Column::UpdatedAt, Expr::value(now))
        .filter(corp_tag_sync::Column::TenantId.eq(tenant))
        .filter(corp_tag_sync::Column::CorpId.eq(corp))
        .filter(corp_tag_sync::Column::ClaimedUntil.eq(claim.until))
        .col_expr(
            corp_tag_sync::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    q = match result {
        Ok(()) => q
            .col_expr(corp_tag_sync::Column::Synced, Expr::value(claim.requested))
            .col_expr(
                corp_tag_sync::Column::RetryAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(corp_tag_sync::Column::LastSyncedAt, Expr::value(now))
            .col_expr(
                corp_tag_sync::Column::LastError,
                Expr::value(Option::<String>::None),
            ),
        Err((error, retry_at)) => q
            .col_expr(corp_tag_sync::Column::RetryAt, Expr::value(retry_at))
            .col_expr(
                corp_tag_sync::Column::LastError,
                Expr::value(error.chars().take(1_000).collect::<String>()),
            ),
    };
    q.exec(db).await?;
    Ok(())
}

/// The sync state of one corp's mirror as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SyncState {
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// A sync is asked for and has not run yet.
    pub pending: bool,
}

/// The sync state of `corp`'s mirror (`None` before it was ever asked for).
pub async fn sync_state<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
) -> Result<Option<SyncState>, DbErr> {
    Ok(
        corp_tag_sync::Entity::find_by_id((tenant.to_string(), corp.to_string()))
            .one(conn)
            .await?
            .map(|r| SyncState {
                last_synced_at: r.last_synced_at,
                last_error: r.last_error,
                pending: r.requested > r.synced,
            }),
    )
}
