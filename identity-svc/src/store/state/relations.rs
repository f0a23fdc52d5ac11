//! Relationship rows of an identifier: its Official Account subscription, its WeCom follows (each
//! change applied unless a later one was), and customer-group memberships.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use proto::identity::IdentifierKind;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, Set,
};

use crate::domain::observe::{FollowChange, GroupChange, RelationChange};
use crate::domain::pii::plain_hash;
use crate::store::entities::{group_member, identifier, oa_subscription, wecom_follow};

use super::*;

/// Applies a relationship change unless a later one was applied already (events arrive in any
/// order; `changed_at` is the event time of the last change).
pub(super) async fn apply_relation(
    txn: &DatabaseTransaction,
    tenant: &str,
    subject: i64,
    r: &RelationChange,
) -> Result<bool, DbErr> {
    match r {
        RelationChange::Oa {
            subscribed,
            scene,
            at,
            ..
        } => {
            let row = oa_subscription::Entity::find()
                .filter(oa_subscription::Column::IdentifierId.eq(subject))
                .lock_exclusive()
                .one(txn)
                .await?;
            match row {
                None => {
                    insert_relation(txn, tenant, subject, r).await?;
                    Ok(true)
                }
                Some(row) if *at >= row.changed_at => {
                    let same = row.subscribed == *subscribed
                        && (scene.is_none() || row.scene == *scene)
                        && row.changed_at == *at;
                    let mut m = row.into_active_model();
                    m.subscribed = Set(*subscribed);
                    if scene.is_some() {
                        m.scene = Set(scene.clone());
                    }
                    m.changed_at = Set(*at);
                    m.update(txn).await?;
                    Ok(!same)
                }
                Some(_) => Ok(false),
            }
        }
        RelationChange::Follow {
            corp_id,
            user_id,
            change,
            at,
        } => apply_follow(txn, tenant, subject, corp_id, user_id, change, *at).await,
    }
}

/// Inserts the row of relationship change `r` of an identifier that has none yet.
pub(super) async fn insert_relation(
    txn: &DatabaseTransaction,
    tenant: &str,
    subject: i64,
    r: &RelationChange,
) -> Result<(), DbErr> {
    match r {
        RelationChange::Oa {
            app_id,
            subscribed,
            scene,
            at,
        } => {
            oa_subscription::Entity::insert(oa_subscription::ActiveModel {
                id: sea_orm::NotSet,
                tenant_id: Set(tenant.to_string()),
                identifier_id: Set(subject),
                app_id: Set(app_id.clone()),
                subscribed: Set(*subscribed),
                scene: Set(scene.clone()),
                changed_at: Set(*at),
            })
            .exec_without_returning(txn)
            .await?;
            Ok(())
        }
        RelationChange::Follow {
            corp_id,
            user_id,
            change,
            at,
        } => insert_follow(txn, tenant, subject, corp_id, user_id, change, *at).await,
    }
}

/// Inserts the follow of `user_id` by `subject`, not stored before.
async fn insert_follow(
    txn: &DatabaseTransaction,
    tenant: &str,
    subject: i64,
    corp_id: &str,
    user_id: &str,
    change: &FollowChange,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (deleted_at, remark, add_way, state, added_at, tags) = match change {
        FollowChange::Added { state } => (None, None, None, state.clone(), at, None),
        FollowChange::Deleted => (Some(at), None, None, None, at, None),
        FollowChange::Details {
            remark,
            add_way,
            state,
            since,
            corp_tags,
        } => (
            None,
            remark.clone(),
            *add_way,
            state.clone(),
            since.unwrap_or(at),
            corp_tags.as_deref().map(encode_tags),
        ),
    };
    wecom_follow::Entity::insert(wecom_follow::ActiveModel {
        id: sea_orm::NotSet,
        tenant_id: Set(tenant.to_string()),
        identifier_id: Set(subject),
        corp_id: Set(corp_id.to_string()),
        user_id: Set(user_id.to_string()),
        remark: Set(remark),
        add_way: Set(add_way.and_then(|w| i32::try_from(w).ok())),
        state: Set(state),
        added_at: Set(added_at),
        deleted_at: Set(deleted_at),
        changed_at: Set(at),
        corp_tags: Set(tags),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

async fn apply_follow(
    txn: &DatabaseTransaction,
    tenant: &str,
    subject: i64,
    corp_id: &str,
    user_id: &str,
    change: &FollowChange,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = wecom_follow::Entity::find()
        .filter(wecom_follow::Column::IdentifierId.eq(subject))
        .filter(wecom_follow::Column::UserId.eq(user_id))
        .lock_exclusive()
        .one(txn)
        .await?;
    let Some(row) = row else {
        insert_follow(txn, tenant, subject, corp_id, user_id, change, at).await?;
        return Ok(true);
    };
    let before = row.clone();
    let mut m = row.clone().into_active_model();
    match change {
        FollowChange::Added { state } if at >= row.changed_at => {
            if row.deleted_at.is_some() {
                // Added again after a deletion: a new relationship.
                m.added_at = Set(at);
                m.deleted_at = Set(None);
            }
            if state.is_some() {
                m.state = Set(state.clone());
            }
            m.changed_at = Set(at);
        }
        FollowChange::Deleted if at >= row.changed_at => {
            if row.deleted_at.is_none() {
                m.deleted_at = Set(Some(at));
            }
            m.changed_at = Set(at);
        }
        // Details come from WeCom's current view: always the freshest remark / add_way / state.
        FollowChange::Details {
            remark,
            add_way,
            state,
            since,
            corp_tags,
        } => {
            if let Some(tags) = corp_tags {
                m.corp_tags = Set(Some(encode_tags(tags)));
            }
            if remark.is_some() {
                m.remark = Set(remark.clone());
            }
            if let Some(w) = add_way.and_then(|w| i32::try_from(w).ok()) {
                m.add_way = Set(Some(w));
            }
            if state.is_some() {
                m.state = Set(state.clone());
            }
            if let (Some(s), None) = (since, row.deleted_at) {
                m.added_at = Set(*s);
            }
        }
        _ => return Ok(false),
    }
    let after = m.update(txn).await?;
    Ok(after != before)
}

/// A follow's corp tags as stored (a JSON array).
fn encode_tags(tags: &[String]) -> String {
    serde_json::Value::from(tags.to_vec()).to_string()
}

/// A follow's stored corp tags; `None` when not known (or not readable).
pub(super) fn decode_tags(stored: Option<&str>) -> Option<Vec<String>> {
    serde_json::from_str(stored?).ok()
}

/// Applies a customer-group change to the membership rows (keyed by the member's
/// external_userid hash, so members not known yet are kept) and returns the canonical profiles
/// of the members that are known, to be refreshed.
pub(crate) async fn apply_group(
    txn: &DatabaseTransaction,
    tenant: &str,
    g: &GroupChange,
) -> Result<BTreeSet<String>, DbErr> {
    let base = || {
        group_member::Entity::find()
            .filter(group_member::Column::TenantId.eq(tenant))
            .filter(group_member::Column::CorpId.eq(g.corp_id.clone()))
            .filter(group_member::Column::ChatId.eq(g.chat_id.clone()))
    };
    let mut touched: BTreeSet<String> = BTreeSet::new();
    if g.dismissed {
        for row in base()
            .filter(group_member::Column::LeftAt.is_null())
            .lock_exclusive()
            .all(txn)
            .await?
        {
            touched.insert(row.member_hash.clone());
            let mut m = row.into_active_model();
            m.left_at = Set(Some(g.at));
            m.changed_at = Set(g.at);
            m.update(txn).await?;
        }
    }
    for (members, joined) in [(&g.joined, true), (&g.left, false)] {
        for member in members {
            let hash = plain_hash(member);
            let row = base()
                .filter(group_member::Column::MemberHash.eq(hash.clone()))
                .lock_exclusive()
                .one(txn)
                .await?;
            match row {
                None => {
                    group_member::Entity::insert(group_member::ActiveModel {
                        id: sea_orm::NotSet,
                        tenant_id: Set(tenant.to_string()),
                        corp_id: Set(g.corp_id.clone()),
                        chat_id: Set(g.chat_id.clone()),
                        member_hash: Set(hash.clone()),
                        joined_at: Set(g.at),
                        left_at: Set((!joined).then_some(g.at)),
                        changed_at: Set(g.at),
                    })
                    .exec_without_returning(txn)
                    .await?;
                }
                Some(row) if g.at >= row.changed_at => {
                    let mut m = row.clone().into_active_model();
                    if joined && row.left_at.is_some() {
                        m.joined_at = Set(g.at);
                        m.left_at = Set(None);
                    } else if !joined && row.left_at.is_none() {
                        m.left_at = Set(Some(g.at));
                    }
                    m.changed_at = Set(g.at);
                    m.update(txn).await?;
                }
                Some(_) => continue,
            }
            touched.insert(hash);
        }
    }
    if touched.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut profiles = BTreeSet::new();
    for chunk in touched.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
        for m in identifier::Entity::find()
            .filter(identifier::Column::TenantId.eq(tenant))
            .filter(identifier::Column::Kind.eq(IdentifierKind::WecomExternalUserid.as_str()))
            .filter(identifier::Column::Namespace.eq(g.corp_id.clone()))
            .filter(identifier::Column::ValueHash.is_in(chunk.to_vec()))
            .all(txn)
            .await?
        {
            profiles.insert(m.profile_id);
        }
    }
    Ok(profiles)
}
