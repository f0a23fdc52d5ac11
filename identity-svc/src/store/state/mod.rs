//! A profile's 360° state in the database: what an event observed is written against the
//! identifier it came through (property records, subscription and follow rows, group
//! memberships, refused values), and [`refresh`] derives the profile's fields and relationship
//! state again from every row its identifiers hold, stores them on the profile with a new
//! version and announces `profile.updated` through the outbox when they changed.
//!
//! Everything runs inside the caller's transaction. Rows are keyed by identifier, never by
//! profile, so a merge or an un-merge only has to [`refresh`] the profiles involved.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use platform::db::outbox;
use proto::identity::{
    GroupChatMembership, IdentifierKind, OaSubscription, ProfileUpdated, Relations, WecomFollow,
};
use proto::Envelope;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{json, Value};
use uuid::Uuid;

use super::entities::{
    group_member, identifier, oa_subscription, profile, property_record, wecom_follow,
};
use crate::domain::derive::{self, ContactValue, Record};
use crate::domain::observe::Trust;

mod record;
mod relations;

pub(crate) use record::*;
pub(crate) use relations::apply_group;
use relations::decode_tags;

/// Rows of an `IN (…)` list per query.
const CHUNK: usize = 500;

/// The derived state of a profile, computed from the rows its identifiers hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub fields: BTreeMap<String, Value>,
    pub relations: Relations,
}

/// Derives the state of the person holding `idents` (identifier rows of one profile).
pub(crate) async fn derive_for<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    idents: &[identifier::Model],
) -> Result<Derived, DbErr> {
    let ids: Vec<i64> = idents.iter().map(|m| m.id).collect();
    let mut records = Vec::new();
    let mut oa = Vec::new();
    let mut follows = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        for r in property_record::Entity::find()
            .filter(property_record::Column::IdentifierId.is_in(chunk.to_vec()))
            .all(conn)
            .await?
        {
            let (Ok(value), Some(trust)) = (
                serde_json::from_str::<Value>(&r.value),
                Trust::parse(&r.trust),
            ) else {
                continue;
            };
            records.push(Record {
                id: r.id,
                field: r.field,
                value,
                trust,
                at: r.observed_at,
            });
        }
        for s in oa_subscription::Entity::find()
            .filter(oa_subscription::Column::IdentifierId.is_in(chunk.to_vec()))
            .all(conn)
            .await?
        {
            oa.push(OaSubscription {
                app_id: s.app_id,
                subscribed: s.subscribed,
                scene: s.scene,
                changed_at: s.changed_at,
            });
        }
        for f in wecom_follow::Entity::find()
            .filter(wecom_follow::Column::IdentifierId.is_in(chunk.to_vec()))
            .all(conn)
            .await?
        {
            let external_userid = idents
                .iter()
                .find(|m| m.id == f.identifier_id)
                .and_then(|m| m.value.clone());
            follows.push(WecomFollow {
                corp_id: f.corp_id,
                user_id: f.user_id,
                external_userid,
                remark: f.remark,
                add_way: f.add_way.map(i64::from),
                state: f.state,
                added_at: f.added_at,
                deleted_at: f.deleted_at,
                corp_tags: decode_tags(f.corp_tags.as_deref()),
            });
        }
    }
    let externals: Vec<(&str, &str)> = idents
        .iter()
        .filter(|m| m.kind == IdentifierKind::WecomExternalUserid.as_str())
        .map(|m| (m.namespace.as_str(), m.value_hash.as_str()))
        .collect();
    let mut groups = Vec::new();
    for chunk in externals.chunks(CHUNK) {
        let mut any = Condition::any();
        for (corp, hash) in chunk {
            any = any.add(
                Condition::all()
                    .add(group_member::Column::CorpId.eq(*corp))
                    .add(group_member::Column::MemberHash.eq(*hash)),
            );
        }
        for g in group_member::Entity::find()
            .filter(group_member::Column::TenantId.eq(tenant))
            .filter(group_member::Column::LeftAt.is_null())
            .filter(any)
            .all(conn)
            .await?
        {
            groups.push(GroupChatMembership {
                corp_id: g.corp_id,
                chat_id: g.chat_id,
                joined_at: g.joined_at,
            });
        }
    }
    let contact = |kind: IdentifierKind| -> Vec<ContactValue> {
        idents
            .iter()
            .filter(|m| m.kind == kind.as_str())
            .map(|m| ContactValue {
                masked: m.value_masked.clone(),
                verified: m.provenance == proto::identity::Provenance::VerifiedMp.as_str(),
                id: m.id,
            })
            .collect()
    };
    Ok(Derived {
        fields: derive::fields(
            &records,
            &contact(IdentifierKind::Phone),
            &contact(IdentifierKind::Email),
        ),
        relations: derive::relations(oa, follows, groups),
    })
}

/// The stored derived state of a profile row.
pub(crate) fn stored(p: &profile::Model) -> Derived {
    Derived {
        fields: p
            .fields
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or_default(),
        relations: p
            .relations
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default(),
    }
}

/// `profile_id`'s stored state, whole, as `profile.updated` carries it (nothing marked changed).
pub(crate) async fn current(
    txn: &DatabaseTransaction,
    profile_id: &str,
) -> Result<Option<ProfileUpdated>, DbErr> {
    let Some(p) = profile::Entity::find_by_id(profile_id.to_string())
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    let s = stored(&p);
    Ok(Some(ProfileUpdated {
        profile_id: p.id,
        version: p.version,
        changed: Vec::new(),
        fields: s.fields,
        relations: s.relations,
        cause_event: None,
    }))
}

/// Derives `profile_id`'s state again; when it differs from the stored one (or was never
/// stored), stores it with the next version and enqueues `profile.updated`. Returns the new
/// version when it changed.
pub(crate) async fn refresh(
    txn: &DatabaseTransaction,
    profile_id: &str,
    cause: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, DbErr> {
    let Some(p) = profile::Entity::find_by_id(profile_id.to_string())
        .lock_exclusive()
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    let idents = identifier::Entity::find()
        .filter(identifier::Column::ProfileId.eq(profile_id))
        .order_by_asc(identifier::Column::Id)
        .all(txn)
        .await?;
    refresh_known(txn, &p, &idents, cause, now).await
}

/// [`refresh`] of profile row `p` (locked, or written in this transaction) holding `idents`.
pub(crate) async fn refresh_known(
    txn: &DatabaseTransaction,
    p: &profile::Model,
    idents: &[identifier::Model],
    cause: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, DbErr> {
    let profile_id = p.id.as_str();
    let new = derive_for(txn, &p.tenant_id, idents).await?;
    let fields_json = json!(new.fields).to_string();
    let relations_json = json!(new.relations).to_string();
    if p.fields.as_deref() == Some(fields_json.as_str())
        && p.relations.as_deref() == Some(relations_json.as_str())
    {
        return Ok(None);
    }
    let old = stored(p);
    let version = p.version + 1;
    profile::Entity::update_many()
        .col_expr(profile::Column::Fields, Expr::value(fields_json))
        .col_expr(profile::Column::Relations, Expr::value(relations_json))
        .col_expr(profile::Column::Version, Expr::value(version))
        .col_expr(
            profile::Column::DisplayName,
            Expr::value(derive::display_name(&new.fields)),
        )
        .col_expr(profile::Column::UpdatedAt, Expr::value(now))
        .filter(profile::Column::Id.eq(profile_id))
        .exec(txn)
        .await?;
    let payload = ProfileUpdated {
        profile_id: profile_id.to_string(),
        version,
        changed: derive::changed_keys(&old.fields, &new.fields, &old.relations, &new.relations),
        fields: new.fields,
        relations: new.relations,
        cause_event: cause,
    };
    let env = Envelope::of(&p.tenant_id, &payload)
        .dedupe_key(format!("profile|{profile_id}|v{version}"))
        .build();
    outbox::enqueue(txn, &env).await?;
    metrics::counter!(crate::metrics::PROFILE_UPDATES).increment(1);
    Ok(Some(version))
}
