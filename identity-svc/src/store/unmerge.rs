//! Operator decisions on identity: a manual merge, the un-merge of a merge and the split of one
//! identifier off a profile — each one transaction in one tenant (a profile or merge of another
//! tenant is not found), recorded with the operator and announced through the outbox.
//!
//! The edge ledger is the source of truth. A profile is the connected component of the
//! non-retracted edges between its identifiers and the profile itself (an edge without
//! `to_identifier_id` links an identifier to the profile named by the edge, e.g. the first
//! identifier of a new profile). Undoing a merge retracts the merge's edges (`retracted_at`; no
//! edge is ever deleted) and re-derives the sides: the absorbed profile takes back every identifier
//! still connected to it (also ones attached later through its identifiers, and profiles merged
//! in through them), the survivor keeps the rest; each timeline row goes to the side holding its
//! event's subject identifier. When other evidence still connects the two sides, the un-merge is
//! refused (`still_linked`). A split retracts every edge of one identifier and links it to a new
//! profile; identifiers attached only through it stay where they are. Both record a block, so
//! automatic resolution refuses to merge the pair again (`manually_unmerged`) until a manual
//! merge lifts it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use platform::db::outbox;
use proto::identity::{
    Identifier, IdentifierKind, IdentityMerged, IdentityUnmerged, LinkRule, UnmergeKind,
};
use proto::Envelope;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::entities::{block, edge, identifier, merge, profile, refusal, timeline, unmerge};
use super::queries::{lookup_hash, LookupError};
use super::resolve::{snapshot, NewEdge};
use super::state;
use super::{Resolver, ACTIVE, MERGED};
use crate::domain::components::{Components, Node};
use crate::domain::{merge_violation, profile_pair, Key, RefusalReason};

/// Why an operator's request was not carried out. `code`s are stable.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// Bad input (HTTP 400).
    #[error("{field}: {message}")]
    Invalid {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    /// Unknown profile, merge or identifier (HTTP 404).
    #[error("{field}: {message}")]
    NotFound {
        field: &'static str,
        message: String,
    },
    /// Not allowed in the current state, or refused by a guard (HTTP 409).
    #[error("{code}: {message}")]
    Conflict { code: &'static str, message: String },
    /// Phones and e-mails cannot be looked up without the personal-data key.
    #[error("{0} identifiers are not stored: no personal-data key is configured")]
    NoKey(IdentifierKind),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

fn conflict(code: &'static str, message: impl Into<String>) -> ManualError {
    ManualError::Conflict {
        code,
        message: message.into(),
    }
}

fn not_found(field: &'static str, message: impl Into<String>) -> ManualError {
    ManualError::NotFound {
        field,
        message: message.into(),
    }
}

/// Who decided, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    pub operator: String,
    pub reason: String,
}

/// A manual merge that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merged {
    pub merge_id: i64,
    pub survivor: String,
    pub absorbed: String,
}

/// An un-merge or split that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmerged {
    pub unmerge_id: i64,
    pub kind: UnmergeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_id: Option<i64>,
    pub survivor: String,
    pub restored: String,
    /// Identifiers now held by `restored` (sensitive values masked).
    pub identifiers: Vec<Identifier>,
    /// Timeline rows that changed profile.
    pub timeline_moved: usize,
}

/// What the manual-merge transaction decided (a guard refusal is committed as a record).
enum MergeTx {
    Done(Merged),
    Refused(RefusalReason),
}

fn public(m: &identifier::Model) -> Identifier {
    let kind = IdentifierKind::parse(&m.kind);
    let sensitive = kind.is_some_and(IdentifierKind::is_sensitive);
    let value = if sensitive {
        m.value_masked.clone()
    } else {
        m.value.clone().unwrap_or_else(|| m.value_masked.clone())
    };
    // Stored kinds are always known ones; an unknown one is shown as a CRM id rather than lost.
    Identifier::new(
        kind.unwrap_or(IdentifierKind::CrmId),
        m.namespace.clone(),
        value,
    )
}

fn keys(ids: &[identifier::Model]) -> Vec<Key> {
    ids.iter()
        .filter_map(|m| {
            Some(Key {
                kind: IdentifierKind::parse(&m.kind)?,
                namespace: m.namespace.clone(),
                hash: m.value_hash.clone(),
            })
        })
        .collect()
}

impl Resolver {
    /// Merges `absorbed` into `survivor` on an operator's decision. The guards apply (a refusal is
    /// recorded and answered as a conflict with the reason code); a block left by an earlier
    /// un-merge of the two is lifted.
    pub async fn manual_merge(
        &self,
        tenant: &str,
        survivor: &str,
        absorbed: &str,
        by: &Decision,
    ) -> Result<Merged, ManualError> {
        if survivor == absorbed {
            return Err(ManualError::Invalid {
                code: "same_profile",
                field: "absorbed",
                message: "`absorbed` must be another profile than `survivor`".into(),
            });
        }
        let r = in_tx!(
            self,
            txn,
            ManualError::Db,
            merge_tx(&txn, self, tenant, survivor, absorbed, by).await
        )?;
        match r {
            MergeTx::Done(m) => {
                metrics::counter!(crate::metrics::MANUAL, "op" => "merge").increment(1);
                Ok(m)
            }
            MergeTx::Refused(reason) => Err(conflict(
                reason.as_str(),
                format!("the merge is refused by a guard: {}", reason.as_str()),
            )),
        }
    }

    /// Undoes `tenant`'s merge `merge_id`: the absorbed profile is active again with the
    /// identifiers still connected to it in the edge ledger, and the timeline rows of their
    /// events. A merge of another tenant is not found.
    pub async fn unmerge_in(
        &self,
        tenant: &str,
        merge_id: i64,
        by: &Decision,
    ) -> Result<Unmerged, ManualError> {
        let r = in_tx!(
            self,
            txn,
            ManualError::Db,
            unmerge_tx(&txn, tenant, merge_id, by).await
        )?;
        metrics::counter!(crate::metrics::MANUAL, "op" => "unmerge").increment(1);
        Ok(r)
    }

    /// Takes one identifier off `tenant`'s profile `profile_id` into a new profile.
    pub async fn split(
        &self,
        tenant: &str,
        profile_id: &str,
        kind: IdentifierKind,
        namespace: &str,
        value: &str,
        by: &Decision,
    ) -> Result<Unmerged, ManualError> {
        let hash = match lookup_hash(self.pii.as_ref(), kind, namespace, value) {
            Ok(h) => h,
            Err(LookupError::BadValue(k)) => {
                return Err(ManualError::Invalid {
                    code: "invalid_value",
                    field: "identifier.value",
                    message: format!("`identifier.value` is not a valid {k}"),
                })
            }
            Err(LookupError::NoKey(k)) => return Err(ManualError::NoKey(k)),
            Err(LookupError::Db(e)) => return Err(ManualError::Db(e)),
        };
        let key = Key {
            kind,
            namespace: namespace.trim().to_string(),
            hash,
        };
        let r = in_tx!(
            self,
            txn,
            ManualError::Db,
            split_tx(&txn, tenant, profile_id, &key, by).await
        )?;
        metrics::counter!(crate::metrics::MANUAL, "op" => "split").increment(1);
        Ok(r)
    }
}

/// A profile and the ones merged into it, their identifiers and the live edges between them.
struct Family {
    members: Vec<profile::Model>,
    idents: Vec<identifier::Model>,
    edges: Vec<edge::Model>,
}

/// Loads (and locks, identifiers first as resolution does) the family of active profile `c`.
async fn load_family(txn: &DatabaseTransaction, c: &str) -> Result<Family, DbErr> {
    let in_family = || {
        Condition::any()
            .add(profile::Column::Id.eq(c))
            .add(profile::Column::MergedInto.eq(c))
    };
    let ids: Vec<String> = profile::Entity::find()
        .filter(in_family())
        .all(txn)
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    let idents = identifier::Entity::find()
        .filter(identifier::Column::ProfileId.is_in(ids))
        .order_by_asc(identifier::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?;
    let members = profile::Entity::find()
        .filter(in_family())
        .order_by_asc(profile::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?;
    let ident_ids: Vec<i64> = idents.iter().map(|m| m.id).collect();
    let mut edges = Vec::new();
    // Bounded IN lists: a profile may hold thousands of identifiers.
    for chunk in ident_ids.chunks(500) {
        edges.extend(
            edge::Entity::find()
                .filter(edge::Column::RetractedAt.is_null())
                .filter(
                    Condition::any()
                        .add(edge::Column::FromIdentifierId.is_in(chunk.to_vec()))
                        .add(edge::Column::ToIdentifierId.is_in(chunk.to_vec())),
                )
                .all(txn)
                .await?,
        );
    }
    edges.sort_by_key(|e| e.id);
    edges.dedup_by_key(|e| e.id);
    Ok(Family {
        members,
        idents,
        edges,
    })
}

/// Ids in a timeline row's `identifier_ids` (subject first); none for rows written before them.
fn row_identifiers(row: &timeline::Model) -> Vec<i64> {
    row.identifier_ids
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// Moves the family's timeline rows whose subject identifier is in `moving` to `restored` (unless
/// their profile already lies on that side), and those on the restored side whose subject is not
/// back to `stay`. Rows without identifiers keep their profile. Returns the number moved and the
/// events of `moving`'s identifiers — every one, also those whose row never left the restored
/// side: downstream services moved all of the absorbed profile's events to the survivor when the
/// merge was announced, and take back exactly these.
async fn move_timeline(
    txn: &DatabaseTransaction,
    family: &Family,
    moving: &BTreeSet<i64>,
    restored_side: &BTreeSet<String>,
    restored: &str,
    stay: &str,
) -> Result<(usize, Vec<Uuid>), DbErr> {
    let known: BTreeSet<i64> = family.idents.iter().map(|m| m.id).collect();
    let rows = timeline::Entity::find()
        .filter(timeline::Column::ProfileId.is_in(family.members.iter().map(|p| p.id.clone())))
        .all(txn)
        .await?;
    let (mut to_restored, mut to_stay) = (Vec::new(), Vec::new());
    let mut moved_events = Vec::new();
    for row in rows {
        let Some(subject) = row_identifiers(&row)
            .into_iter()
            .find(|i| known.contains(i))
        else {
            continue;
        };
        let on_restored_side = restored_side.contains(&row.profile_id);
        if moving.contains(&subject) {
            moved_events.extend(Uuid::parse_str(&row.event_id).ok());
        }
        match (moving.contains(&subject), on_restored_side) {
            (true, false) => to_restored.push(row.id),
            (false, true) => to_stay.push(row.id),
            _ => {}
        }
    }
    let moved = to_restored.len() + to_stay.len();
    moved_events.sort();
    for (ids, target) in [(to_restored, restored), (to_stay, stay)] {
        for chunk in ids.chunks(500) {
            timeline::Entity::update_many()
                .col_expr(timeline::Column::ProfileId, Expr::value(target))
                .filter(timeline::Column::Id.is_in(chunk.to_vec()))
                .exec(txn)
                .await?;
        }
    }
    Ok((moved, moved_events))
}

#[allow(clippy::too_many_arguments)]
async fn record_separation(
    txn: &DatabaseTransaction,
    tenant: &str,
    kind: UnmergeKind,
    merge_id: Option<i64>,
    survivor: &str,
    restored: &str,
    moved: &[identifier::Model],
    by: &Decision,
    moved_events: Vec<Uuid>,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let survivor_ids = identifier::Entity::find()
        .filter(identifier::Column::ProfileId.eq(survivor))
        .order_by_asc(identifier::Column::Id)
        .all(txn)
        .await?;
    let after = json!({
        "survivor": snapshot(survivor, &survivor_ids),
        "restored": snapshot(restored, moved),
    });
    let id = unmerge::Entity::insert(unmerge::ActiveModel {
        id: sea_orm::NotSet,
        tenant_id: Set(tenant.to_string()),
        kind: Set(kind.as_str().to_string()),
        merge_id: Set(merge_id),
        survivor_id: Set(survivor.to_string()),
        restored_id: Set(restored.to_string()),
        identifiers: Set(json!(moved.iter().map(public).collect::<Vec<_>>()).to_string()),
        after_snapshot: Set(after.to_string()),
        operator: Set(by.operator.clone()),
        reason: Set(by.reason.clone()),
        created_at: Set(now),
    })
    .exec(txn)
    .await?
    .last_insert_id;
    let (a, b) = profile_pair(survivor, restored);
    block::Entity::insert(block::ActiveModel {
        id: sea_orm::NotSet,
        tenant_id: Set(tenant.to_string()),
        profile_a: Set(a),
        profile_b: Set(b),
        unmerge_id: Set(Some(id)),
        created_by: Set(by.operator.clone()),
        created_at: Set(now),
        lifted_at: Set(None),
        lifted_by: Set(None),
    })
    .exec_without_returning(txn)
    .await?;
    profile::Entity::update_many()
        .col_expr(profile::Column::UpdatedAt, Expr::value(now))
        .filter(profile::Column::Id.is_in([survivor.to_string(), restored.to_string()]))
        .exec(txn)
        .await?;
    // Each side's fields and relationships come from the rows its identifiers hold.
    let mut states = Vec::new();
    for p in [survivor, restored] {
        state::refresh(txn, p, None, now).await?;
        states.extend(state::current(txn, p).await?);
    }
    let payload = IdentityUnmerged {
        kind,
        survivor: survivor.to_string(),
        restored: vec![restored.to_string()],
        identifiers: moved.iter().map(public).collect(),
        merge_id,
        operator: by.operator.clone(),
        reason: by.reason.clone(),
        moved_events,
        states,
    };
    let env = Envelope::of(tenant, &payload)
        .dedupe_key(format!("unmerge|{id}"))
        .build();
    outbox::enqueue(txn, &env).await?;
    Ok(id)
}

async fn unmerge_tx(
    txn: &DatabaseTransaction,
    tenant: &str,
    merge_id: i64,
    by: &Decision,
) -> Result<Unmerged, ManualError> {
    let now = Utc::now();
    let Some(m) = merge::Entity::find_by_id(merge_id)
        .filter(merge::Column::TenantId.eq(tenant))
        .one(txn)
        .await?
    else {
        return Err(not_found("id", format!("no merge with id {merge_id}")));
    };
    if m.unmerged_at.is_some() {
        return Err(conflict(
            "already_unmerged",
            format!("merge {merge_id} was already undone"),
        ));
    }
    let absorbed = profile::Entity::find_by_id(m.absorbed_id.clone())
        .one(txn)
        .await?;
    let container = match absorbed {
        Some(p) if p.status == MERGED => p.merged_into,
        _ => None,
    };
    let Some(c) = container else {
        return Err(conflict(
            "not_merged",
            format!(
                "profile `{}` is no longer merged into another profile",
                m.absorbed_id
            ),
        ));
    };
    let family = load_family(txn, &c).await?;
    if !family.members.iter().any(|p| p.id == m.absorbed_id) {
        // The absorbed profile moved between the reads (a concurrent un-merge): try again.
        return Err(conflict(
            "not_merged",
            format!("profile `{}` is no longer merged into `{c}`", m.absorbed_id),
        ));
    }

    // The merge's own edges; for merges recorded before edges named their merge, the edges of its
    // evidence event with exactly one end among the absorbed profile's identifiers of then.
    let mut retract: BTreeSet<i64> = family
        .edges
        .iter()
        .filter(|e| e.merge_id == Some(m.id))
        .map(|e| e.id)
        .collect();
    if retract.is_empty() && m.evidence_event_id.is_some() {
        let before: serde_json::Value =
            serde_json::from_str(&m.before_snapshot).unwrap_or_default();
        let then: BTreeSet<i64> = before["absorbed"]["identifiers"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["id"].as_i64()).collect())
            .unwrap_or_default();
        retract = family
            .edges
            .iter()
            .filter(|e| e.evidence_event_id == m.evidence_event_id && e.merge_id.is_none())
            .filter(|e| {
                e.to_identifier_id
                    .is_some_and(|to| then.contains(&to) != then.contains(&e.from_identifier_id))
            })
            .map(|e| e.id)
            .collect();
    }

    let mut comps = Components::new(
        family.idents.iter().map(|m| m.id),
        family.members.iter().map(|p| p.id.clone()),
        family
            .edges
            .iter()
            .filter(|e| !retract.contains(&e.id))
            .map(|e| {
                (
                    e.from_identifier_id,
                    e.to_identifier_id,
                    e.profile_id.as_str(),
                )
            }),
    );
    let restored_root = comps.of(&Node::Root(m.absorbed_id.clone()));
    if restored_root.is_some() && restored_root == comps.of(&Node::Root(c.clone())) {
        return Err(conflict(
            "still_linked",
            format!(
                "other links in the identity ledger still connect `{}` to `{c}`; split identifiers instead",
                m.absorbed_id
            ),
        ));
    }
    let moving: Vec<identifier::Model> = family
        .idents
        .iter()
        .filter(|i| comps.of(&Node::Ident(i.id)) == restored_root)
        .cloned()
        .collect();
    let side: BTreeSet<String> = family
        .members
        .iter()
        .filter(|p| comps.of(&Node::Root(p.id.clone())) == restored_root)
        .map(|p| p.id.clone())
        .collect();
    let restored = m.absorbed_id.clone();

    // Edges: retracted, never deleted.
    if !retract.is_empty() {
        edge::Entity::update_many()
            .col_expr(edge::Column::RetractedAt, Expr::value(now))
            .filter(edge::Column::Id.is_in(retract.iter().copied()))
            .exec(txn)
            .await?;
    }
    // Profiles: the restored one is active again; others on its side are merged into it.
    profile::Entity::update_many()
        .col_expr(profile::Column::Status, Expr::value(ACTIVE))
        .col_expr(
            profile::Column::MergedInto,
            Expr::value(Option::<String>::None),
        )
        .filter(profile::Column::Id.eq(restored.clone()))
        .exec(txn)
        .await?;
    let others: Vec<String> = side.iter().filter(|p| **p != restored).cloned().collect();
    if !others.is_empty() {
        profile::Entity::update_many()
            .col_expr(profile::Column::MergedInto, Expr::value(restored.clone()))
            .col_expr(profile::Column::UpdatedAt, Expr::value(now))
            .filter(profile::Column::Id.is_in(others))
            .exec(txn)
            .await?;
    }
    let moving_ids: BTreeSet<i64> = moving.iter().map(|i| i.id).collect();
    for chunk in moving_ids.iter().copied().collect::<Vec<_>>().chunks(500) {
        identifier::Entity::update_many()
            .col_expr(identifier::Column::ProfileId, Expr::value(restored.clone()))
            .col_expr(identifier::Column::UpdatedAt, Expr::value(now))
            .filter(identifier::Column::Id.is_in(chunk.to_vec()))
            .exec(txn)
            .await?;
    }
    let (timeline_moved, moved_events) =
        move_timeline(txn, &family, &moving_ids, &side, &restored, &c).await?;
    let unmerge_id = record_separation(
        txn,
        &m.tenant_id,
        UnmergeKind::Unmerge,
        Some(m.id),
        &c,
        &restored,
        &moving,
        by,
        moved_events,
        now,
    )
    .await?;
    merge::Entity::update_many()
        .col_expr(merge::Column::UnmergedAt, Expr::value(now))
        .col_expr(merge::Column::UnmergeId, Expr::value(unmerge_id))
        .filter(merge::Column::Id.eq(m.id))
        .exec(txn)
        .await?;
    Ok(Unmerged {
        unmerge_id,
        kind: UnmergeKind::Unmerge,
        merge_id: Some(m.id),
        survivor: c,
        restored,
        identifiers: moving.iter().map(public).collect(),
        timeline_moved,
    })
}

async fn split_tx(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile_id: &str,
    key: &Key,
    by: &Decision,
) -> Result<Unmerged, ManualError> {
    let now = Utc::now();
    let Some(p) = super::queries::find_profile(txn, tenant, profile_id).await? else {
        return Err(not_found(
            "id",
            format!("no profile with id `{profile_id}`"),
        ));
    };
    if p.status != ACTIVE {
        return Err(conflict(
            "profile_not_active",
            format!(
                "profile `{profile_id}` is merged into `{}`: split it there",
                p.merged_into.unwrap_or_default()
            ),
        ));
    }
    let family = load_family(txn, profile_id).await?;
    let Some(x) = family
        .idents
        .iter()
        .find(|m| {
            m.tenant_id == p.tenant_id
                && m.kind == key.kind.as_str()
                && m.namespace == key.namespace
                && m.value_hash == key.hash
        })
        .cloned()
    else {
        return Err(not_found(
            "identifier",
            format!("profile `{profile_id}` holds no such identifier"),
        ));
    };
    if family.idents.len() <= 1 {
        return Err(conflict(
            "last_identifier",
            "the profile's only identifier cannot be split off",
        ));
    }
    let retract: Vec<i64> = family
        .edges
        .iter()
        .filter(|e| e.from_identifier_id == x.id || e.to_identifier_id == Some(x.id))
        .map(|e| e.id)
        .collect();
    if !retract.is_empty() {
        edge::Entity::update_many()
            .col_expr(edge::Column::RetractedAt, Expr::value(now))
            .filter(edge::Column::Id.is_in(retract))
            .exec(txn)
            .await?;
    }
    let new_id = uuid::Uuid::now_v7().to_string();
    profile::Entity::insert(profile::ActiveModel {
        id: Set(new_id.clone()),
        tenant_id: Set(p.tenant_id.clone()),
        status: Set(ACTIVE.to_string()),
        merged_into: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await?;
    identifier::Entity::update_many()
        .col_expr(identifier::Column::ProfileId, Expr::value(new_id.clone()))
        .col_expr(identifier::Column::UpdatedAt, Expr::value(now))
        .filter(identifier::Column::Id.eq(x.id))
        .exec(txn)
        .await?;
    let e = NewEdge {
        tenant: &p.tenant_id,
        from: x.id,
        to: None,
        profile_id: &new_id,
        rule: LinkRule::Manual,
        event_id: None,
        created_by: &by.operator,
        merge_id: None,
    };
    e.insert(txn, now).await?;
    let moving = BTreeSet::from([x.id]);
    let (timeline_moved, moved_events) =
        move_timeline(txn, &family, &moving, &BTreeSet::new(), &new_id, profile_id).await?;
    let mut moved = x.clone();
    moved.profile_id = new_id.clone();
    let unmerge_id = record_separation(
        txn,
        &p.tenant_id,
        UnmergeKind::Split,
        None,
        profile_id,
        &new_id,
        std::slice::from_ref(&moved),
        by,
        moved_events,
        now,
    )
    .await?;
    Ok(Unmerged {
        unmerge_id,
        kind: UnmergeKind::Split,
        merge_id: None,
        survivor: profile_id.to_string(),
        restored: new_id,
        identifiers: vec![public(&moved)],
        timeline_moved,
    })
}

async fn merge_tx(
    txn: &DatabaseTransaction,
    resolver: &Resolver,
    tenant: &str,
    survivor: &str,
    absorbed: &str,
    by: &Decision,
) -> Result<MergeTx, ManualError> {
    let now = Utc::now();
    for (field, id) in [("survivor", survivor), ("absorbed", absorbed)] {
        match super::queries::find_profile(txn, tenant, id).await? {
            Some(p) => {
                if p.status != ACTIVE {
                    return Err(ManualError::Conflict {
                        code: "profile_not_active",
                        message: format!(
                            "`{field}`: profile `{id}` is merged into `{}`",
                            p.merged_into.unwrap_or_default()
                        ),
                    });
                }
            }
            None => {
                return Err(not_found(
                    field,
                    format!("`{field}`: no profile with id `{id}`"),
                ))
            }
        }
    }
    let pair = [survivor.to_string(), absorbed.to_string()];
    let held = identifier::Entity::find()
        .filter(identifier::Column::ProfileId.is_in(pair.clone()))
        .order_by_asc(identifier::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?;
    let locked = profile::Entity::find()
        .filter(profile::Column::Id.is_in(pair.clone()))
        .order_by_asc(profile::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?;
    if locked.iter().any(|p| p.status != ACTIVE) {
        // Merged by a concurrent transaction between the reads.
        return Err(conflict(
            "profile_not_active",
            "a profile was merged meanwhile",
        ));
    }
    let (s_ids, a_ids): (Vec<_>, Vec<_>) = held.into_iter().partition(|m| m.profile_id == survivor);
    if let Some(reason) = merge_violation(
        &keys(&s_ids),
        &keys(&a_ids),
        resolver.policy.for_tenant(tenant),
    ) {
        refusal::Entity::insert(refusal::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            candidate_ids: Set(json!(pair).to_string()),
            rule: Set(LinkRule::Manual.as_str().to_string()),
            reason: Set(reason.as_str().to_string()),
            evidence_event_id: Set(None),
            created_at: Set(now),
        })
        .exec_without_returning(txn)
        .await?;
        metrics::counter!(crate::metrics::MERGE_REFUSALS, "reason" => reason.as_str()).increment(1);
        return Ok(MergeTx::Refused(reason));
    }

    let before = json!({
        "survivor": snapshot(survivor, &s_ids),
        "absorbed": snapshot(absorbed, &a_ids),
    });
    identifier::Entity::update_many()
        .col_expr(identifier::Column::ProfileId, Expr::value(survivor))
        .col_expr(identifier::Column::UpdatedAt, Expr::value(now))
        .filter(identifier::Column::ProfileId.eq(absorbed))
        .exec(txn)
        .await?;
    // Profiles merged into the absorbed one before follow it (kept one level deep).
    let absorbed_family: Vec<String> = profile::Entity::find()
        .filter(profile::Column::MergedInto.eq(absorbed))
        .all(txn)
        .await?
        .into_iter()
        .map(|p| p.id)
        .chain([absorbed.to_string()])
        .collect();
    let survivor_family: Vec<String> = profile::Entity::find()
        .filter(profile::Column::MergedInto.eq(survivor))
        .all(txn)
        .await?
        .into_iter()
        .map(|p| p.id)
        .chain([survivor.to_string()])
        .collect();
    profile::Entity::update_many()
        .col_expr(profile::Column::Status, Expr::value(MERGED))
        .col_expr(profile::Column::MergedInto, Expr::value(survivor))
        .col_expr(profile::Column::UpdatedAt, Expr::value(now))
        .filter(profile::Column::Id.is_in(absorbed_family.clone()))
        .exec(txn)
        .await?;
    profile::Entity::update_many()
        .col_expr(profile::Column::UpdatedAt, Expr::value(now))
        .filter(profile::Column::Id.eq(survivor))
        .exec(txn)
        .await?;
    let mut after_ids = s_ids.clone();
    after_ids.extend(a_ids.iter().cloned().map(|mut m| {
        m.profile_id = survivor.to_string();
        m
    }));
    let merge_id = merge::Entity::insert(merge::ActiveModel {
        id: sea_orm::NotSet,
        tenant_id: Set(tenant.to_string()),
        survivor_id: Set(survivor.to_string()),
        absorbed_id: Set(absorbed.to_string()),
        rule: Set(LinkRule::Manual.as_str().to_string()),
        evidence_event_id: Set(None),
        before_snapshot: Set(before.to_string()),
        after_snapshot: Set(json!({"survivor": snapshot(survivor, &after_ids)}).to_string()),
        operator: Set(Some(by.operator.clone())),
        created_at: Set(now),
        reason: Set(Some(by.reason.clone())),
        unmerged_at: Set(None),
        unmerge_id: Set(None),
    })
    .exec(txn)
    .await?
    .last_insert_id;
    if let (Some(from), Some(to)) = (s_ids.first(), a_ids.first()) {
        let e = NewEdge {
            tenant,
            from: from.id,
            to: Some(to.id),
            profile_id: survivor,
            rule: LinkRule::Manual,
            event_id: None,
            created_by: &by.operator,
            merge_id: Some(merge_id),
        };
        e.insert(txn, now).await?;
    }
    // An operator joining what an operator separated lifts the block.
    block::Entity::update_many()
        .col_expr(block::Column::LiftedAt, Expr::value(now))
        .col_expr(block::Column::LiftedBy, Expr::value(by.operator.clone()))
        .filter(block::Column::TenantId.eq(tenant))
        .filter(block::Column::LiftedAt.is_null())
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(block::Column::ProfileA.is_in(survivor_family.clone()))
                        .add(block::Column::ProfileB.is_in(absorbed_family.clone())),
                )
                .add(
                    Condition::all()
                        .add(block::Column::ProfileA.is_in(absorbed_family))
                        .add(block::Column::ProfileB.is_in(survivor_family)),
                ),
        )
        .exec(txn)
        .await?;
    let payload = IdentityMerged {
        survivor: survivor.to_string(),
        absorbed: vec![absorbed.to_string()],
        rule: LinkRule::Manual,
        evidence_event: None,
        operator: Some(by.operator.clone()),
    };
    let env = Envelope::of(tenant, &payload)
        .dedupe_key(format!("merge|{merge_id}"))
        .build();
    outbox::enqueue(txn, &env).await?;
    state::refresh(txn, survivor, None, now).await?;
    Ok(MergeTx::Done(Merged {
        merge_id,
        survivor: survivor.to_string(),
        absorbed: absorbed.to_string(),
    }))
}
