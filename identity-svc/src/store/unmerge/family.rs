//! What an un-merge and a split share: the family of a profile (the profiles merged into it,
//! their identifiers and live edges) loaded and locked, the timeline rows moved to the side
//! their subject identifier ends on, and the separation recorded (the un-merge row, the block
//! against merging the two again, both sides' state and the `identity.unmerged` event).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use platform::db::outbox;
use proto::identity::{IdentityUnmerged, UnmergeKind};
use proto::Envelope;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::domain::profile_pair;
use crate::domain::separation::{self, TimelineMoves};
use crate::store::entities::{block, edge, identifier, profile, timeline, unmerge};
use crate::store::resolve::snapshot;
use crate::store::state;

use super::{public, Decision};

/// A profile and the ones merged into it, their identifiers and the live edges between them.
pub(super) struct Family {
    pub(super) members: Vec<profile::Model>,
    pub(super) idents: Vec<identifier::Model>,
    pub(super) edges: Vec<edge::Model>,
}

/// Loads (and locks, identifiers first as resolution does) the family of active profile `c`.
pub(super) async fn load_family(txn: &DatabaseTransaction, c: &str) -> Result<Family, DbErr> {
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
pub(super) async fn move_timeline(
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
    let rows = rows.iter().map(|row| separation::Row {
        id: row.id,
        profile: &row.profile_id,
        event_id: &row.event_id,
        identifiers: row_identifiers(row),
    });
    let TimelineMoves {
        to_restored,
        to_stay,
        events: moved_events,
    } = separation::timeline_moves(rows, &known, moving, restored_side);
    let moved = to_restored.len() + to_stay.len();
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
pub(super) async fn record_separation(
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
