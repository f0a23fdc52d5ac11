//! A profile's 360° state in the database: what an event observed is written against the
//! identifier it came through (property records, subscription and follow rows, group
//! memberships, refused values), and [`refresh`] derives the profile's fields and relationship
//! state again from every row its identifiers hold, stores them on the profile with a new
//! version and announces `profile.updated` through the outbox when they changed.
//!
//! Everything runs inside the caller's transaction. Rows are keyed by identifier, never by
//! profile, so a merge or an un-merge only has to [`refresh`] the profiles involved.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use platform::db::outbox;
use proto::identity::{
    GroupChatMembership, IdentifierKind, OaSubscription, ProfileUpdated, Relations, WecomFollow,
};
use proto::Envelope;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{json, Value};
use uuid::Uuid;

use super::entities::{
    data_quality, group_member, identifier, oa_subscription, profile, property_record, wecom_follow,
};
use crate::domain::derive::{self, ContactValue, Record};
use crate::domain::fields::{self, Strategy};
use crate::domain::observe::{
    self, Claim, FollowChange, GroupChange, Issue, Observations, RelationChange, Trust,
};
use crate::domain::pii::plain_hash;

/// Rows of an `IN (…)` list per query.
const CHUNK: usize = 500;

/// Writes what `obs` says about the person behind identifier row `subject` (of `profile_id`).
/// `fresh`: the row was created in this transaction, so nothing is stored against it yet and
/// the rows are inserted without looking for them first. Returns whether a row that the derived
/// state depends on changed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    txn: &DatabaseTransaction,
    tenant: &str,
    subject: i64,
    fresh: bool,
    profile_id: &str,
    event_id: &str,
    obs: &Observations,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut changed = false;
    if fresh {
        let claims = observe::kept_claims(&obs.claims);
        changed |= !claims.is_empty();
        insert_claims(txn, tenant, subject, Some(event_id), &claims, now).await?;
    } else {
        for c in &obs.claims {
            changed |= upsert_claim(txn, tenant, subject, Some(event_id), c, now).await?;
        }
    }
    // Relations of a fresh row: the first of each kind is inserted as it is; any later one of
    // the same relation is applied on top of it.
    let mut inserted: Vec<&RelationChange> = Vec::new();
    for r in &obs.relations {
        let first = fresh && !inserted.iter().any(|o| same_relation(o, r));
        changed |= if first {
            inserted.push(r);
            insert_relation(txn, tenant, subject, r).await?;
            true
        } else {
            apply_relation(txn, tenant, subject, r).await?
        };
    }
    log_issues(
        txn,
        tenant,
        Some(profile_id),
        Some(event_id),
        &obs.issues,
        now,
    )
    .await?;
    Ok(changed)
}

/// Whether two changes are of one relationship row (the subscription, or the follow of a rep).
fn same_relation(a: &RelationChange, b: &RelationChange) -> bool {
    match (a, b) {
        (RelationChange::Oa { .. }, RelationChange::Oa { .. }) => true,
        (RelationChange::Follow { user_id: a, .. }, RelationChange::Follow { user_id: b, .. }) => {
            a == b
        }
        _ => false,
    }
}

/// Inserts the statements `claims` of an identifier that has none yet, in one statement.
async fn insert_claims(
    txn: &DatabaseTransaction,
    tenant: &str,
    subject: i64,
    event_id: Option<&str>,
    claims: &[&Claim],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if claims.is_empty() {
        return Ok(());
    }
    property_record::Entity::insert_many(claims.iter().map(|c| property_record::ActiveModel {
        id: sea_orm::NotSet,
        tenant_id: Set(tenant.to_string()),
        identifier_id: Set(subject),
        field: Set(c.field.clone()),
        source: Set(c.source.clone()),
        trust: Set(c.trust.as_str().to_string()),
        value: Set(c.value.to_string()),
        observed_at: Set(c.at),
        event_id: Set(event_id.map(str::to_string)),
        updated_at: Set(now),
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Records refused values in the data-quality log.
pub(crate) async fn log_issues(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile_id: Option<&str>,
    event_id: Option<&str>,
    issues: &[Issue],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for i in issues {
        metrics::counter!(crate::metrics::DATA_QUALITY, "reason" => i.reason.as_str()).increment(1);
        data_quality::Entity::insert(data_quality::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            profile_id: Set(profile_id.map(str::to_string)),
            event_id: Set(event_id.map(str::to_string)),
            field: Set(i.field.chars().take(128).collect()),
            value: Set(i.value.chars().take(255).collect()),
            reason: Set(i.reason.as_str().to_string()),
            source: Set(i.source.chars().take(64).collect()),
            created_at: Set(now),
        })
        .exec_without_returning(txn)
        .await?;
    }
    Ok(())
}

/// Keeps one statement per (identifier, field, source): the newest, or the earliest for a
/// first-touch field. Returns whether the stored statement changed.
pub(crate) async fn upsert_claim(
    txn: &DatabaseTransaction,
    tenant: &str,
    subject: i64,
    event_id: Option<&str>,
    c: &Claim,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let value = c.value.to_string();
    let existing = property_record::Entity::find()
        .filter(property_record::Column::IdentifierId.eq(subject))
        .filter(property_record::Column::Field.eq(c.field.clone()))
        .filter(property_record::Column::Source.eq(c.source.clone()))
        .lock_exclusive()
        .one(txn)
        .await?;
    let Some(row) = existing else {
        insert_claims(txn, tenant, subject, event_id, &[c], now).await?;
        return Ok(true);
    };
    let replace = match fields::strategy(&c.field) {
        Strategy::Earliest => c.at < row.observed_at,
        Strategy::Trusted | Strategy::Latest => {
            c.at >= row.observed_at
                && (row.value != value || row.observed_at != c.at || row.trust != c.trust.as_str())
        }
    };
    if !replace {
        return Ok(false);
    }
    let mut m = row.into_active_model();
    m.value = Set(value);
    m.trust = Set(c.trust.as_str().to_string());
    m.observed_at = Set(c.at);
    m.event_id = Set(event_id.map(str::to_string));
    m.updated_at = Set(now);
    m.update(txn).await?;
    Ok(true)
}

/// Applies a relationship change unless a later one was applied already (events arrive in any
/// order; `changed_at` is the event time of the last change).
async fn apply_relation(
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
async fn insert_relation(
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
fn decode_tags(stored: Option<&str>) -> Option<Vec<String>> {
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
