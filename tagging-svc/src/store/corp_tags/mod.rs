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

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, Set,
};
use serde::Serialize;
use wechat::api::CorpTagGroup;

use super::catalog::{ACTIVE, RETIRED};
use super::entities::{corp_tag, tag, tag_group};
use super::rep_tags;
use super::sync_queue::{self, Closed};

mod link;
mod sync;

pub use link::*;
pub use sync::*;

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
