//! Who holds which tag, and why. A profile holds a tag while at least one membership row exists
//! (source manual / rule / import / wecom / trigger, origin = the rule id for rule tags). When the
//! first row of a tag appears or the last one goes, the profile's tag set changes: the facts
//! projection follows, `tag.changed` goes to the outbox, a WeCom write-back is queued for synced
//! groups, and in a single-select group gaining one tag drops the group's others.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use platform::db::outbox;
use proto::tagging::{TagChange, TagChanged, TagSource};
use proto::Envelope;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use super::catalog::{ACTIVE, SINGLE};
use super::entities::{membership, tag, tag_group};
use super::writeback;

/// Why a profile holds a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub source: TagSource,
    /// The rule id for rule tags, the asking service for triggers, empty otherwise.
    pub origin: String,
    /// The operator or service that set it.
    pub actor: Option<String>,
}

impl Reason {
    pub fn manual(actor: &str) -> Self {
        Reason {
            source: TagSource::Manual,
            origin: String::new(),
            actor: Some(actor.to_string()),
        }
    }

    pub fn rule(rule_id: &str) -> Self {
        Reason {
            source: TagSource::Rule,
            origin: rule_id.to_string(),
            actor: None,
        }
    }
}

/// Why a tag could not be set.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("no tag with id `{0}`")]
    UnknownTag(String),
    /// The tenant's projection does not hold the profile (unknown, or another tenant's).
    #[error("no profile with id `{0}`")]
    UnknownProfile(String),
    #[error("tag `{0}` is retired")]
    Retired(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl platform::db::Contention for MemberError {
    fn is_contention(&self) -> bool {
        matches!(self, MemberError::Db(e) if platform::db::is_contention(e))
    }
}

/// A tag with its group, as membership changes need them.
#[derive(Debug, Clone)]
pub struct TagInfo {
    pub tag: tag::Model,
    pub group: tag_group::Model,
}

/// The tag `tag_id` of `tenant` with its group.
pub async fn tag_info<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    tag_id: &str,
) -> Result<Option<TagInfo>, DbErr> {
    let Some(tag) = tag::Entity::find_by_id(tag_id.to_string())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if tag.tenant_id != tenant {
        return Ok(None);
    }
    let Some(group) = tag_group::Entity::find_by_id(tag.group_id.clone())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(TagInfo { tag, group }))
}

async fn held<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    tag_id: &str,
) -> Result<bool, DbErr> {
    Ok(membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(profile))
        .filter(membership::Column::TagId.eq(tag_id))
        .one(conn)
        .await?
        .is_some())
}

/// Gives the profile the tag for `why`. Returns the changes of its tag set (none when it held
/// the tag already).
pub async fn add(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    info: &TagInfo,
    why: &Reason,
    now: DateTime<Utc>,
) -> Result<Vec<TagChanged>, MemberError> {
    if info.tag.status != ACTIVE {
        return Err(MemberError::Retired(info.tag.name.clone()));
    }
    let tag_id = info.tag.id.as_str();
    // Every reason the profile holds the tag for, in one read.
    let reasons = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(profile))
        .filter(membership::Column::TagId.eq(tag_id))
        .all(txn)
        .await?;
    if reasons
        .iter()
        .any(|m| m.source == why.source.as_str() && m.origin == why.origin)
    {
        return Ok(Vec::new());
    }
    let was_held = !reasons.is_empty();
    membership::Entity::insert(membership::ActiveModel {
        id: sea_orm::NotSet,
        tenant_id: Set(tenant.to_string()),
        profile_id: Set(profile.to_string()),
        tag_id: Set(tag_id.to_string()),
        source: Set(why.source.as_str().to_string()),
        origin: Set(why.origin.clone()),
        actor: Set(why.actor.clone()),
        merged_from: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    if was_held {
        return Ok(Vec::new());
    }
    let mut changes = vec![changed(profile, info, TagChange::Added, why, now)];
    if info.group.selection == SINGLE {
        // One tag per profile in a single-select group: the others go.
        let others: BTreeSet<String> = membership::Entity::find()
            .filter(membership::Column::TenantId.eq(tenant))
            .filter(membership::Column::ProfileId.eq(profile))
            .filter(membership::Column::TagId.ne(tag_id))
            .all(txn)
            .await?
            .into_iter()
            .map(|m| m.tag_id)
            .collect();
        for other in others {
            let Some(o) = tag_info(txn, tenant, &other).await? else {
                continue;
            };
            if o.group.id == info.group.id {
                changes.extend(remove(txn, tenant, profile, &o, None, why, now).await?);
            }
        }
    }
    announce(txn, tenant, profile, info, &changes[..1], rep_of(why), now).await?;
    Ok(changes)
}

/// Takes the tag away for `only` (one source and origin) or for every reason (`None`). Returns
/// the change of its tag set when the last reason went.
pub async fn remove(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    info: &TagInfo,
    only: Option<(TagSource, &str)>,
    why: &Reason,
    now: DateTime<Utc>,
) -> Result<Vec<TagChanged>, DbErr> {
    let tag_id = info.tag.id.as_str();
    let mut q = membership::Entity::delete_many()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(profile))
        .filter(membership::Column::TagId.eq(tag_id));
    if let Some((source, origin)) = only {
        q = q
            .filter(membership::Column::Source.eq(source.as_str()))
            .filter(membership::Column::Origin.eq(origin));
    }
    if q.exec(txn).await?.rows_affected == 0 || held(txn, tenant, profile, tag_id).await? {
        return Ok(Vec::new());
    }
    let changes = vec![changed(profile, info, TagChange::Removed, why, now)];
    // A rep who took the tag off in WeCom has it off already.
    let rep = only.and_then(|(source, origin)| (source == TagSource::Wecom).then_some(origin));
    announce(txn, tenant, profile, info, &changes, rep, now).await?;
    Ok(changes)
}

fn changed(
    profile: &str,
    info: &TagInfo,
    change: TagChange,
    why: &Reason,
    now: DateTime<Utc>,
) -> TagChanged {
    TagChanged {
        profile_id: profile.to_string(),
        tag_id: info.tag.id.clone(),
        tag_name: info.tag.name.clone(),
        group_id: Some(info.group.id.clone()),
        change,
        source: why.source,
        rule_id: (why.source == TagSource::Rule).then(|| why.origin.clone()),
        actor: why.actor.clone(),
        at: now,
    }
}

/// Writes `tag.changed` for `changes` to the outbox, in one statement for all: the owner of the
/// transaction that made them calls it once before committing (the changes come back to it
/// from every function here and from rule settling).
pub async fn publish<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    changes: &[TagChanged],
) -> Result<(), DbErr> {
    let envs: Vec<Envelope> = changes
        .iter()
        .map(|c| Envelope::of(tenant, c).occurred_at(c.at).build())
        .collect();
    outbox::enqueue_many(conn, &envs).await
}

/// The rep whose own tagging in WeCom `why` is.
fn rep_of(why: &Reason) -> Option<&str> {
    (why.source == TagSource::Wecom).then_some(why.origin.as_str())
}

/// The tag set changed: facts projection and WeCom write-back to every rep following the
/// profile but `rep` (whose own change in WeCom this is: it is there already) (`tag.changed`
/// goes out through [`publish`]).
async fn announce(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    info: &TagInfo,
    changes: &[TagChanged],
    rep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for c in changes {
        match c.change {
            TagChange::Added => facts::set_tag(txn, tenant, profile, &c.tag_id).await?,
            TagChange::Removed => facts::unset_tag(txn, tenant, profile, &c.tag_id).await?,
        }
        writeback::enqueue(txn, tenant, profile, info, c.change, rep, now).await?;
        metrics::counter!(crate::metrics::TAG_CHANGES, "change" => match c.change {
            TagChange::Added => "added",
            TagChange::Removed => "removed",
        }, "source" => c.source.as_str())
        .increment(1);
    }
    Ok(())
}

/// A membership as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Held {
    pub tag_id: String,
    pub tag_name: String,
    pub group_id: String,
    pub source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub since: DateTime<Utc>,
    /// The membership row: the key of the list's order.
    #[serde(skip)]
    pub row: i64,
}

/// Every reason the profile holds each of its tags, in the order they were given: at most
/// `limit` after membership row `after`.
pub async fn of_profile<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<Held>, DbErr> {
    let mut q = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(profile));
    if let Some(a) = after {
        q = q.filter(membership::Column::Id.gt(a));
    }
    let rows = q
        .order_by_asc(membership::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    let ids: BTreeSet<String> = rows.iter().map(|r| r.tag_id.clone()).collect();
    let tags: std::collections::BTreeMap<String, tag::Model> = if ids.is_empty() {
        Default::default()
    } else {
        tag::Entity::find()
            .filter(tag::Column::Id.is_in(ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect()
    };
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let t = tags.get(&r.tag_id)?;
            Some(Held {
                tag_id: r.tag_id,
                tag_name: t.name.clone(),
                group_id: t.group_id.clone(),
                source: r.source,
                origin: r.origin,
                actor: r.actor,
                since: r.created_at,
                row: r.id,
            })
        })
        .collect())
}

/// `absorbed` was merged into `survivor`: its memberships become the survivor's (remembering
/// where they came from, so an un-merge can give them back); the survivor's tag set grows by
/// the tags only the absorbed profile held. Returns those additions.
///
/// A membership the survivor holds for the same reason already (tag, source and origin are
/// unique per profile) cannot move: a rule's goes (rules are evaluated again when the merge is
/// undone), any other (an operator's, a rep's, a trigger's) stays parked on the absorbed profile,
/// marked as merged, so the un-merge gives it back too.
pub async fn merge(
    txn: &DatabaseTransaction,
    tenant: &str,
    survivor: &str,
    absorbed: &str,
    now: DateTime<Utc>,
) -> Result<Vec<TagChanged>, DbErr> {
    let theirs = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(absorbed))
        .all(txn)
        .await?;
    let mut gained = Vec::new();
    for m in theirs {
        let before = held(txn, tenant, survivor, &m.tag_id).await?;
        let dup = membership::Entity::find()
            .filter(membership::Column::TenantId.eq(tenant))
            .filter(membership::Column::ProfileId.eq(survivor))
            .filter(membership::Column::TagId.eq(m.tag_id.clone()))
            .filter(membership::Column::Source.eq(m.source.clone()))
            .filter(membership::Column::Origin.eq(m.origin.clone()))
            .one(txn)
            .await?
            .is_some();
        if dup && m.source == TagSource::Rule.as_str() {
            membership::Entity::delete_by_id(m.id).exec(txn).await?;
        } else if dup {
            membership::Entity::update_many()
                .col_expr(membership::Column::MergedFrom, Expr::value(absorbed))
                .filter(membership::Column::Id.eq(m.id))
                .exec(txn)
                .await?;
        } else {
            membership::Entity::update_many()
                .col_expr(membership::Column::ProfileId, Expr::value(survivor))
                .col_expr(membership::Column::MergedFrom, Expr::value(absorbed))
                .filter(membership::Column::Id.eq(m.id))
                .exec(txn)
                .await?;
        }
        if !before {
            if let Some(info) = tag_info(txn, tenant, &m.tag_id).await? {
                let why = Reason {
                    source: proto::tagging::TagSource::parse(&m.source)
                        .unwrap_or(TagSource::Manual),
                    origin: m.origin.clone(),
                    actor: m.actor.clone(),
                };
                let c = vec![changed(survivor, &info, TagChange::Added, &why, now)];
                announce(txn, tenant, survivor, &info, &c, None, now).await?;
                gained.extend(c);
            }
        }
    }
    Ok(gained)
}

/// An un-merge gave `restored` back: the memberships it brought into `survivor` return to it,
/// and those parked on it by the merge are its own again. Returns the tag-set changes of both:
/// every tag `restored` holds now is announced as added (the projections dropped its tags when
/// it was merged away), and the survivor's tags that went with it as removed.
pub async fn unmerge(
    txn: &DatabaseTransaction,
    tenant: &str,
    survivor: &str,
    restored: &str,
    now: DateTime<Utc>,
) -> Result<Vec<TagChanged>, DbErr> {
    let survivor_before = tags_of(txn, tenant, survivor).await?;
    let back = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(survivor))
        .filter(membership::Column::MergedFrom.eq(restored))
        .all(txn)
        .await?;
    if !back.is_empty() {
        // The restored profile may hold some for the same reason already (its own state,
        // announced before the separation, reached its rules first): those need no row back.
        let own: BTreeSet<(String, String, String)> = membership::Entity::find()
            .filter(membership::Column::TenantId.eq(tenant))
            .filter(membership::Column::ProfileId.eq(restored))
            .all(txn)
            .await?
            .into_iter()
            .map(|m| (m.tag_id, m.source, m.origin))
            .collect();
        let (twice, moving): (Vec<_>, Vec<_>) = back
            .into_iter()
            .partition(|m| own.contains(&(m.tag_id.clone(), m.source.clone(), m.origin.clone())));
        if !twice.is_empty() {
            membership::Entity::delete_many()
                .filter(membership::Column::Id.is_in(twice.iter().map(|m| m.id)))
                .exec(txn)
                .await?;
        }
        if !moving.is_empty() {
            membership::Entity::update_many()
                .col_expr(membership::Column::ProfileId, Expr::value(restored))
                .col_expr(
                    membership::Column::MergedFrom,
                    Expr::value(Option::<String>::None),
                )
                .filter(membership::Column::Id.is_in(moving.iter().map(|m| m.id)))
                .exec(txn)
                .await?;
        }
    }
    membership::Entity::update_many()
        .col_expr(
            membership::Column::MergedFrom,
            Expr::value(Option::<String>::None),
        )
        .filter(
            Condition::all()
                .add(membership::Column::TenantId.eq(tenant))
                .add(membership::Column::ProfileId.eq(restored))
                .add(membership::Column::MergedFrom.eq(restored)),
        )
        .exec(txn)
        .await?;
    let survivor_now = tags_of(txn, tenant, survivor).await?;
    let why = Reason {
        source: TagSource::Manual,
        origin: String::new(),
        actor: Some("identity:unmerge".into()),
    };
    let mut out = Vec::new();
    let changes = tags_of(txn, tenant, restored)
        .await?
        .into_iter()
        .map(|t| (restored, t, TagChange::Added))
        .chain(
            survivor_before
                .difference(&survivor_now)
                .cloned()
                .map(|t| (survivor, t, TagChange::Removed)),
        );
    for (profile, t, change) in changes.collect::<Vec<_>>() {
        let Some(info) = tag_info(txn, tenant, &t).await? else {
            continue;
        };
        let c = vec![changed(profile, &info, change, &why, now)];
        announce(txn, tenant, profile, &info, &c, None, now).await?;
        out.extend(c);
    }
    Ok(out)
}

/// The tags a profile holds.
pub(crate) async fn tags_of<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
) -> Result<BTreeSet<String>, DbErr> {
    Ok(membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(profile))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.tag_id)
        .collect())
}
