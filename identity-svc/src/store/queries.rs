//! Reads behind the internal API, each scoped to one tenant: a profile of another tenant reads
//! exactly like an unknown one (`None`), and lists hold only the tenant's rows, a page at a time
//! after the key of the previous page's last row (a keyset, never an offset). Sensitive
//! identifier values are returned masked.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::identity::{IdentifierKind, Relations};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::Value;

use super::entities::{edge, identifier, merge, profile, refusal, timeline};
use crate::domain::extract::normalise;
use crate::domain::pii::{plain_hash, Pii};

/// An identifier as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IdentifierView {
    pub id: i64,
    pub kind: String,
    pub namespace: String,
    /// Clear for openids, unionids, cookies; masked for phones and e-mails.
    pub value: String,
    pub provenance: String,
    pub first_seen_event: String,
    pub created_at: DateTime<Utc>,
}

impl From<identifier::Model> for IdentifierView {
    fn from(m: identifier::Model) -> Self {
        let sensitive = IdentifierKind::parse(&m.kind).is_some_and(IdentifierKind::is_sensitive);
        IdentifierView {
            id: m.id,
            value: if sensitive {
                m.value_masked
            } else {
                m.value.unwrap_or(m.value_masked)
            },
            kind: m.kind,
            namespace: m.namespace,
            provenance: m.provenance,
            first_seen_event: m.first_seen_event,
            created_at: m.created_at,
        }
    }
}

/// A profile with its identifiers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProfileView {
    pub id: String,
    pub tenant_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Version of the derived state (as in `profile.updated`).
    pub version: i64,
    /// Derived fields by dotted key (phones and e-mails masked).
    pub fields: BTreeMap<String, Value>,
    /// Subscriptions, WeCom follows, customer groups, reachability.
    pub relations: Relations,
    pub identifiers: Vec<IdentifierView>,
}

/// The profile `id` of `tenant`, `None` when unknown there (merged ones too: they show
/// `merged_into`).
pub async fn find_profile<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<profile::Model>, DbErr> {
    profile::Entity::find_by_id(id.to_string())
        .filter(profile::Column::TenantId.eq(tenant))
        .one(db)
        .await
}

/// The profile `id` of `tenant` with its identifiers, `None` when unknown there (merged ones too:
/// they show `merged_into` and no identifiers).
pub async fn profile<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<ProfileView>, DbErr> {
    let Some(p) = find_profile(db, tenant, id).await? else {
        return Ok(None);
    };
    let identifiers = identifier::Entity::find()
        .filter(identifier::Column::TenantId.eq(tenant))
        .filter(identifier::Column::ProfileId.eq(id))
        .order_by_asc(identifier::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(IdentifierView::from)
        .collect();
    let state = super::state::stored(&p);
    Ok(Some(ProfileView {
        id: p.id,
        tenant_id: p.tenant_id,
        status: p.status,
        merged_into: p.merged_into,
        created_at: p.created_at,
        updated_at: p.updated_at,
        version: p.version,
        fields: state.fields,
        relations: state.relations,
        identifiers,
    }))
}

/// Why an identifier lookup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("value is not a valid {0}")]
    BadValue(IdentifierKind),
    #[error("{0} values are not stored: no personal-data key is configured")]
    NoKey(IdentifierKind),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The stored lookup hash of an identifier given in clear (normalised first; `namespace` is
/// trimmed by the caller's query too). Phones must be in E.164 here: the API turns a number in
/// another format (national, with spaces) into one in the tenant's region first
/// ([`crate::domain::fields::lookup_phone`]).
pub fn lookup_hash(
    pii: Option<&Pii>,
    kind: IdentifierKind,
    namespace: &str,
    value: &str,
) -> Result<String, LookupError> {
    let value = normalise(kind, value).ok_or(LookupError::BadValue(kind))?;
    Ok(if kind.is_sensitive() {
        pii.ok_or(LookupError::NoKey(kind))?
            .keyed_hash(kind, namespace.trim(), &value)
    } else {
        plain_hash(&value)
    })
}

/// The profile holding an identifier (the survivor when it was merged).
pub async fn profile_by_identifier<C: ConnectionTrait>(
    db: &C,
    pii: Option<&Pii>,
    tenant: &str,
    kind: IdentifierKind,
    namespace: &str,
    value: &str,
) -> Result<Option<ProfileView>, LookupError> {
    let hash = lookup_hash(pii, kind, namespace, value)?;
    let found = identifier::Entity::find()
        .filter(identifier::Column::TenantId.eq(tenant))
        .filter(identifier::Column::Kind.eq(kind.as_str()))
        .filter(identifier::Column::Namespace.eq(namespace.trim()))
        .filter(identifier::Column::ValueHash.eq(hash))
        .one(db)
        .await?;
    match found {
        Some(m) => Ok(profile(db, tenant, &m.profile_id).await?),
        None => Ok(None),
    }
}

/// One timeline entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelineEntry {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub summary: serde_json::Value,
    /// The profile the event was first resolved to (another id for events of merged profiles).
    pub profile_id: String,
    /// Row id: with `occurred_at`, the key of the timeline's order.
    #[serde(skip)]
    pub row: i64,
}

impl TimelineEntry {
    /// The entry's place in the timeline: `(occurred_at in nanoseconds, row id)`.
    pub fn key(&self) -> (i64, i64) {
        (
            self.occurred_at.timestamp_nanos_opt().unwrap_or(i64::MAX),
            self.row,
        )
    }
}

/// `tenant`'s profile `profile_id` and every profile merged into it: the profiles whose rows its
/// timeline and its notes hold (rows stay on the profile they were written to; a merge lists them
/// under the survivor, an un-merge takes them back by making their profile active again).
pub async fn family<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profile_id: &str,
) -> Result<Vec<String>, DbErr> {
    let mut ids = vec![profile_id.to_string()];
    ids.extend(
        profile::Entity::find()
            .filter(profile::Column::TenantId.eq(tenant))
            .filter(profile::Column::MergedInto.eq(profile_id))
            .all(db)
            .await?
            .into_iter()
            .map(|p| p.id),
    );
    Ok(ids)
}

/// The timeline of `tenant`'s profile and of every profile merged into it, newest first: at
/// most `limit` entries older than `before` (an entry's [`TimelineEntry::key`]).
pub async fn timeline<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profile_id: &str,
    before: Option<(i64, i64)>,
    limit: u64,
) -> Result<Vec<TimelineEntry>, DbErr> {
    let ids = family(db, tenant, profile_id).await?;
    let mut q = timeline::Entity::find()
        .filter(timeline::Column::TenantId.eq(tenant))
        .filter(timeline::Column::ProfileId.is_in(ids));
    if let Some((nanos, id)) = before {
        let at = DateTime::<Utc>::from_timestamp_nanos(nanos);
        q = q.filter(
            Condition::any()
                .add(timeline::Column::OccurredAt.lt(at))
                .add(
                    Condition::all()
                        .add(timeline::Column::OccurredAt.eq(at))
                        .add(timeline::Column::Id.lt(id)),
                ),
        );
    }
    Ok(q.order_by_desc(timeline::Column::OccurredAt)
        .order_by_desc(timeline::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|r| TimelineEntry {
            event_id: r.event_id,
            event_type: r.event_type,
            occurred_at: r.occurred_at,
            summary: serde_json::from_str(&r.summary).unwrap_or(serde_json::Value::Null),
            profile_id: r.profile_id,
            row: r.id,
        })
        .collect())
}

/// A merge record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MergeView {
    pub id: i64,
    pub survivor_id: String,
    pub absorbed_id: String,
    pub rule: String,
    pub evidence_event_id: Option<String>,
    pub operator: Option<String>,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// The operator's reason (manual merges).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the merge was undone, and by which un-merge record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmerged_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmerge_id: Option<i64>,
}

/// Merges `tenant`'s profile took part in (as survivor or absorbed), oldest first: at most
/// `limit` with an id above `after`.
pub async fn merges<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profile_id: &str,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<MergeView>, DbErr> {
    let mut q = merge::Entity::find()
        .filter(merge::Column::TenantId.eq(tenant))
        .filter(
            Condition::any()
                .add(merge::Column::SurvivorId.eq(profile_id))
                .add(merge::Column::AbsorbedId.eq(profile_id)),
        );
    if let Some(a) = after {
        q = q.filter(merge::Column::Id.gt(a));
    }
    Ok(q.order_by_asc(merge::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|m| MergeView {
            id: m.id,
            survivor_id: m.survivor_id,
            absorbed_id: m.absorbed_id,
            rule: m.rule,
            evidence_event_id: m.evidence_event_id,
            operator: m.operator,
            before: serde_json::from_str(&m.before_snapshot).unwrap_or_default(),
            after: serde_json::from_str(&m.after_snapshot).unwrap_or_default(),
            created_at: m.created_at,
            reason: m.reason,
            unmerged_at: m.unmerged_at,
            unmerge_id: m.unmerge_id,
        })
        .collect())
}

/// A refused merge.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RefusalView {
    pub id: i64,
    pub tenant_id: String,
    pub candidate_ids: Vec<String>,
    pub rule: String,
    pub reason: String,
    pub evidence_event_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `tenant`'s refused merges, newest first: at most `limit` with an id below `before`.
pub async fn refusals<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<RefusalView>, DbErr> {
    let mut q = refusal::Entity::find().filter(refusal::Column::TenantId.eq(tenant));
    if let Some(b) = before {
        q = q.filter(refusal::Column::Id.lt(b));
    }
    Ok(q.order_by_desc(refusal::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|r| RefusalView {
            id: r.id,
            tenant_id: r.tenant_id,
            candidate_ids: serde_json::from_str(&r.candidate_ids).unwrap_or_default(),
            rule: r.rule,
            reason: r.reason,
            evidence_event_id: r.evidence_event_id,
            created_at: r.created_at,
        })
        .collect())
}

/// One link of the edge ledger.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EdgeView {
    pub id: i64,
    pub from_identifier_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_identifier_id: Option<i64>,
    /// The profile the link was made in.
    pub profile_id: String,
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_event_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Set when an un-merge or split took the link back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retracted_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_id: Option<i64>,
}

/// Links (live and retracted) touching an identifier `tenant`'s profile holds, oldest first: at
/// most `limit` with an id above `after`.
pub async fn edges<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profile_id: &str,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<EdgeView>, DbErr> {
    let ids: Vec<i64> = identifier::Entity::find()
        .filter(identifier::Column::TenantId.eq(tenant))
        .filter(identifier::Column::ProfileId.eq(profile_id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Each chunk's first `limit` links after the cursor; the page is the first `limit` of all.
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let mut q = edge::Entity::find()
            .filter(edge::Column::TenantId.eq(tenant))
            .filter(
                Condition::any()
                    .add(edge::Column::FromIdentifierId.is_in(chunk.to_vec()))
                    .add(edge::Column::ToIdentifierId.is_in(chunk.to_vec())),
            );
        if let Some(a) = after {
            q = q.filter(edge::Column::Id.gt(a));
        }
        out.extend(
            q.order_by_asc(edge::Column::Id)
                .limit(limit)
                .all(db)
                .await?,
        );
    }
    out.sort_by_key(|e| e.id);
    out.dedup_by_key(|e| e.id);
    out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(out
        .into_iter()
        .map(|e| EdgeView {
            id: e.id,
            from_identifier_id: e.from_identifier_id,
            to_identifier_id: e.to_identifier_id,
            profile_id: e.profile_id,
            rule: e.rule,
            evidence_event_id: e.evidence_event_id,
            created_by: e.created_by,
            created_at: e.created_at,
            retracted_at: e.retracted_at,
            merge_id: e.merge_id,
        })
        .collect())
}
