//! Tags reps set on their customers in WeCom, held as memberships of source `wecom` (origin and
//! actor: the rep's userid). identity-svc reads each rep's corp tags on a customer with
//! `externalcontact/get` whenever the contact is added or edited (a rep changing tags is an
//! edit) and `profile.updated` carries them per follow; a corp tag linked to a local tag gives
//! the profile that tag for that rep ([`reconcile`]), and it goes when the rep takes it off or
//! the follow ends.
//!
//! What this service wrote itself (write-back with `mark_tag`) comes back in the same lists. It
//! is told apart by the marks ([`record_marks`], kept by the write-back worker when WeCom
//! accepts a call), and a tag with a write-back still queued or in flight for the contact is
//! left as it is until WeCom has it: taken for the rep's, a rule's tag written back would hold
//! itself, so the rule could never remove it. A rep who sets by hand a tag this service had
//! already put on the contact is not told apart (write-back owns the tag for that contact then).
//!
//! Must not touch: memberships of other sources, the write-back queue's items.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use proto::identity::Relations;
use proto::tagging::TagSource;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QuerySelect, Set,
};

use super::entities::{membership, sync_item, tag, tag_group, wecom_mark};
use super::members::{Reason, TagInfo};
use super::sync_queue::{ClaimedItem, Contact, SENDING};
use super::writeback::PENDING;

/// A `wecom` reason to give or take.
#[derive(Debug, Clone)]
pub struct RepChange {
    pub info: TagInfo,
    /// `true`: the rep set the tag; `false`: the rep took it off (or the follow ended).
    pub add: bool,
    pub reason: Reason,
}

/// The reason a rep's own tagging in WeCom gives.
pub fn reason(user_id: &str) -> Reason {
    Reason {
        source: TagSource::Wecom,
        origin: user_id.to_string(),
        actor: Some(user_id.to_string()),
    }
}

/// One rep's view of the customer (under each external_userid the profile has in the corp)
/// with the corp tags WeCom shows in it (none once the follow ended).
struct View<'a> {
    corp: &'a str,
    user: &'a str,
    externals: BTreeSet<&'a str>,
    tags: BTreeSet<&'a str>,
}

/// The `wecom` reasons `profile` should gain and lose so that they match what the reps' views
/// in `r` show: for each follow whose corp tags are known (or that has ended) and each local tag
/// linked to a corp tag of its corp. Rows are not changed here except forgotten marks (a tag
/// this service had put on a view and that WeCom no longer shows there); the caller applies
/// the changes (so rules reading the tags settle).
pub async fn reconcile(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    r: &Relations,
) -> Result<Vec<RepChange>, DbErr> {
    let mut views: BTreeMap<(&str, &str), View> = BTreeMap::new();
    for f in &r.wecom_follows {
        let Some(external) = f.external_userid.as_deref() else {
            continue;
        };
        let tags: BTreeSet<&str> = match (&f.corp_tags, f.is_active()) {
            (_, false) => BTreeSet::new(),
            (Some(tags), true) => tags.iter().map(String::as_str).collect(),
            (None, true) => continue,
        };
        let key = (f.corp_id.as_str(), f.user_id.as_str());
        let v = views.entry(key).or_insert_with(|| View {
            corp: &f.corp_id,
            user: &f.user_id,
            externals: BTreeSet::new(),
            tags: BTreeSet::new(),
        });
        v.externals.insert(external);
        v.tags.extend(tags);
    }
    if views.is_empty() {
        return Ok(Vec::new());
    }
    let corps: BTreeSet<&str> = views.values().map(|v| v.corp).collect();
    let linked = linked_tags(txn, tenant, &corps).await?;
    if linked.is_empty() {
        return Ok(Vec::new());
    }
    let held: BTreeSet<(String, String)> = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(profile))
        .filter(membership::Column::Source.eq(TagSource::Wecom.as_str()))
        .all(txn)
        .await?
        .into_iter()
        .map(|m| (m.tag_id, m.origin))
        .collect();
    let externals: BTreeSet<&str> = views
        .values()
        .flat_map(|v| v.externals.iter().copied())
        .collect();
    let marks: BTreeSet<(String, String, String, String)> = wecom_mark::Entity::find()
        .filter(wecom_mark::Column::TenantId.eq(tenant))
        .filter(wecom_mark::Column::CorpId.is_in(corps.iter().copied()))
        .filter(wecom_mark::Column::ExternalUserid.is_in(externals.iter().copied()))
        .all(txn)
        .await?
        .into_iter()
        .map(|m| (m.corp_id, m.user_id, m.external_userid, m.wecom_tag_id))
        .collect();
    let in_flight: BTreeSet<(String, String, String, String)> = sync_item::Entity::find()
        .select_only()
        .columns([
            sync_item::Column::CorpId,
            sync_item::Column::UserId,
            sync_item::Column::ExternalUserid,
            sync_item::Column::WecomTagId,
        ])
        .filter(sync_item::Column::TenantId.eq(tenant))
        .filter(sync_item::Column::CorpId.is_in(corps.iter().copied()))
        .filter(sync_item::Column::ExternalUserid.is_in(externals.iter().copied()))
        .filter(sync_item::Column::Status.is_in([PENDING, SENDING]))
        .into_tuple()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    let mut gone_marks: Vec<(&View, &str)> = Vec::new();
    let (mut adds, mut removes) = (Vec::new(), Vec::new());
    for v in views.values() {
        for ((corp, wecom_tag), info) in linked.range((v.corp.to_string(), String::new())..) {
            if corp != v.corp {
                break;
            }
            let keys: Vec<_> = v
                .externals
                .iter()
                .map(|e| {
                    (
                        v.corp.to_string(),
                        v.user.to_string(),
                        e.to_string(),
                        wecom_tag.clone(),
                    )
                })
                .collect();
            if keys.iter().any(|k| in_flight.contains(k)) {
                continue;
            }
            let shown = v.tags.contains(wecom_tag.as_str());
            let ours = keys.iter().any(|k| marks.contains(k));
            let has = held.contains(&(info.tag.id.clone(), v.user.to_string()));
            if shown && !ours && !has {
                adds.push(RepChange {
                    info: info.clone(),
                    add: true,
                    reason: reason(v.user),
                });
            } else if !shown && has {
                removes.push(RepChange {
                    info: info.clone(),
                    add: false,
                    reason: reason(v.user),
                });
            }
            if !shown && ours {
                gone_marks.push((v, wecom_tag.as_str()));
            }
        }
    }
    for (v, wecom_tag) in gone_marks {
        wecom_mark::Entity::delete_many()
            .filter(wecom_mark::Column::TenantId.eq(tenant))
            .filter(wecom_mark::Column::CorpId.eq(v.corp))
            .filter(wecom_mark::Column::ExternalUserid.is_in(v.externals.iter().copied()))
            .filter(wecom_mark::Column::UserId.eq(v.user))
            .filter(wecom_mark::Column::WecomTagId.eq(wecom_tag))
            .exec(txn)
            .await?;
    }
    // Removals first: in a single-select group the rep's new tag is the one that stays.
    removes.extend(adds);
    Ok(removes)
}

/// (corp, WeCom tag id) → the local tag linked to it, with its group, for the groups linked to
/// `corps`.
async fn linked_tags<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corps: &BTreeSet<&str>,
) -> Result<BTreeMap<(String, String), TagInfo>, DbErr> {
    let groups: BTreeMap<String, tag_group::Model> = tag_group::Entity::find()
        .filter(tag_group::Column::TenantId.eq(tenant))
        .filter(tag_group::Column::CorpId.is_in(corps.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|g| (g.id.clone(), g))
        .collect();
    if groups.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut out = BTreeMap::new();
    for t in tag::Entity::find()
        .filter(tag::Column::GroupId.is_in(groups.keys().cloned()))
        .filter(tag::Column::WecomTagId.is_not_null())
        .all(conn)
        .await?
    {
        let (Some(group), Some(wecom_tag)) = (groups.get(&t.group_id), t.wecom_tag_id.clone())
        else {
            continue;
        };
        let Some(corp) = group.corp_id.clone() else {
            continue;
        };
        out.insert(
            (corp, wecom_tag),
            TagInfo {
                tag: t,
                group: group.clone(),
            },
        );
    }
    Ok(out)
}

/// Records what WeCom accepted for `contact`: `added` corp tags are now this service's marks
/// on it, `removed` ones are not.
pub async fn record_marks<C: ConnectionTrait>(
    conn: &C,
    contact: &Contact,
    added: &[&ClaimedItem],
    removed: &[&ClaimedItem],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if !removed.is_empty() {
        wecom_mark::Entity::delete_many()
            .filter(wecom_mark::Column::TenantId.eq(contact.tenant_id.as_str()))
            .filter(wecom_mark::Column::CorpId.eq(contact.corp_id.as_str()))
            .filter(wecom_mark::Column::ExternalUserid.eq(contact.external_userid.as_str()))
            .filter(wecom_mark::Column::UserId.eq(contact.user_id.as_str()))
            .filter(
                wecom_mark::Column::WecomTagId
                    .is_in(removed.iter().map(|i| i.wecom_tag_id.clone())),
            )
            .exec(conn)
            .await?;
    }
    let rows: BTreeSet<&str> = added.iter().map(|i| i.wecom_tag_id.as_str()).collect();
    if rows.is_empty() {
        return Ok(());
    }
    wecom_mark::Entity::insert_many(rows.into_iter().map(|t| wecom_mark::ActiveModel {
        tenant_id: Set(contact.tenant_id.clone()),
        corp_id: Set(contact.corp_id.clone()),
        external_userid: Set(contact.external_userid.clone()),
        user_id: Set(contact.user_id.clone()),
        wecom_tag_id: Set(t.to_string()),
        marked_at: Set(now),
    }))
    .on_conflict(
        OnConflict::columns([
            wecom_mark::Column::TenantId,
            wecom_mark::Column::CorpId,
            wecom_mark::Column::ExternalUserid,
            wecom_mark::Column::UserId,
            wecom_mark::Column::WecomTagId,
        ])
        .update_column(wecom_mark::Column::MarkedAt)
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Forgets every mark of `wecom_tag_ids` in `corp` (the corp tags were deleted in WeCom, which
/// takes them off every customer).
pub async fn forget_tags<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
    wecom_tag_ids: &[String],
) -> Result<u64, DbErr> {
    if wecom_tag_ids.is_empty() {
        return Ok(0);
    }
    Ok(wecom_mark::Entity::delete_many()
        .filter(wecom_mark::Column::TenantId.eq(tenant))
        .filter(wecom_mark::Column::CorpId.eq(corp))
        .filter(wecom_mark::Column::WecomTagId.is_in(wecom_tag_ids.to_vec()))
        .exec(conn)
        .await?
        .rows_affected)
}
