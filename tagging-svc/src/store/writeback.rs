//! Queueing tag changes for WeCom: when a tag of a group marked for sync is added to or removed
//! from a profile, one `mark_tag` item per rep that follows the profile in the group's corp is
//! queued (in the same transaction as the change), for the write-back worker. The reps and the
//! customer's external_userid come from `profile.updated` ([`set_contacts`]).

use chrono::{DateTime, Utc};
use proto::identity::Relations;
use proto::tagging::TagChange;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QuerySelect, Set,
};

use super::entities::{membership, sync_item, wecom_contact};
use super::members::TagInfo;

/// Status of a queued item waiting for (another) attempt.
pub const PENDING: &str = "pending";

/// Queues the write-back of a tag-set change when the tag's group is synced to WeCom, for every
/// rep following the profile in the group's corp but `skip_rep`.
pub async fn enqueue(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    info: &TagInfo,
    change: TagChange,
    skip_rep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (true, Some(corp), Some(wecom_tag)) = (
        info.group.sync_wecom,
        info.group.corp_id.as_deref(),
        info.tag.wecom_tag_id.as_deref(),
    ) else {
        return Ok(());
    };
    let action = match change {
        TagChange::Added => "add",
        TagChange::Removed => "remove",
    };
    let mut contacts = wecom_contact::Entity::find()
        .filter(wecom_contact::Column::TenantId.eq(tenant))
        .filter(wecom_contact::Column::ProfileId.eq(profile))
        .filter(wecom_contact::Column::CorpId.eq(corp))
        .all(txn)
        .await?;
    contacts.retain(|c| Some(c.user_id.as_str()) != skip_rep);
    queue(txn, tenant, corp, wecom_tag, action, contacts, now).await
}

/// Queues an `add` of `wecom_tag` for every rep's view of every profile holding `tag_id` (a tag
/// just linked to that corp tag: what was tagged before the link reaches WeCom too). Returns
/// the items queued.
pub async fn enqueue_holders<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
    tag_id: &str,
    wecom_tag: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let holders: Vec<String> = membership::Entity::find()
        .select_only()
        .column(membership::Column::ProfileId)
        .distinct()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::TagId.eq(tag_id))
        .into_tuple()
        .all(conn)
        .await?;
    let mut queued = 0;
    for chunk in holders.chunks(500) {
        let contacts = wecom_contact::Entity::find()
            .filter(wecom_contact::Column::TenantId.eq(tenant))
            .filter(wecom_contact::Column::CorpId.eq(corp))
            .filter(wecom_contact::Column::ProfileId.is_in(chunk.to_vec()))
            .all(conn)
            .await?;
        queued += contacts.len() as u64;
        queue(conn, tenant, corp, wecom_tag, "add", contacts, now).await?;
    }
    Ok(queued)
}

/// One pending item per contact (multi-row inserts).
async fn queue<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    corp: &str,
    wecom_tag: &str,
    action: &str,
    contacts: Vec<wecom_contact::Model>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let items: Vec<sync_item::ActiveModel> = contacts
        .into_iter()
        .map(|c| sync_item::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            corp_id: Set(corp.to_string()),
            user_id: Set(c.user_id),
            external_userid: Set(c.external_userid),
            wecom_tag_id: Set(wecom_tag.to_string()),
            action: Set(action.to_string()),
            status: Set(PENDING.to_string()),
            attempts: Set(0),
            next_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    for chunk in items.chunks(200) {
        sync_item::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Replaces the profile's active WeCom follows (rep, external_userid) with those of `r`.
pub async fn set_contacts<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    r: &Relations,
) -> Result<(), DbErr> {
    wecom_contact::Entity::delete_many()
        .filter(wecom_contact::Column::TenantId.eq(tenant))
        .filter(wecom_contact::Column::ProfileId.eq(profile))
        .exec(conn)
        .await?;
    let mut seen = std::collections::BTreeSet::new();
    for f in r.wecom_follows.iter().filter(|f| f.is_active()) {
        let Some(ext) = f.external_userid.clone() else {
            continue;
        };
        if !seen.insert((f.corp_id.clone(), f.user_id.clone())) {
            continue;
        }
        wecom_contact::Entity::insert(wecom_contact::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            profile_id: Set(profile.to_string()),
            corp_id: Set(f.corp_id.clone()),
            user_id: Set(f.user_id.clone()),
            external_userid: Set(ext),
        })
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}
