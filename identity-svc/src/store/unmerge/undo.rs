//! Undoing a merge: the merge's edges are retracted and the absorbed profile takes back every
//! identifier still connected to it, with the timeline rows of their events; refused while other
//! evidence still links the two sides.

use chrono::Utc;
use proto::identity::UnmergeKind;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use crate::domain::separation::{self, Sides};
use crate::store::entities::{edge, identifier, merge, profile};
use crate::store::{ACTIVE, MERGED};

use super::family::{load_family, move_timeline, record_separation};
use super::{conflict, not_found, public, Decision, ManualError, Unmerged};

pub(super) async fn unmerge_tx(
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

    let edges: Vec<separation::Edge<'_>> = family.edges.iter().map(live_edge).collect();
    let retract = separation::merge_edges(
        &edges,
        &separation::Merge {
            id: m.id,
            evidence_event: m.evidence_event_id.as_deref(),
            before_snapshot: &m.before_snapshot,
        },
    );
    let idents: Vec<i64> = family.idents.iter().map(|m| m.id).collect();
    let members: Vec<String> = family.members.iter().map(|p| p.id.clone()).collect();
    let Ok(Sides {
        moving: moving_ids,
        side,
    }) = separation::sides(&idents, &members, &edges, &retract, &m.absorbed_id, &c)
    else {
        return Err(conflict(
            "still_linked",
            format!(
                "other links in the identity ledger still connect `{}` to `{c}`; split identifiers instead",
                m.absorbed_id
            ),
        ));
    };
    let moving: Vec<identifier::Model> = family
        .idents
        .iter()
        .filter(|i| moving_ids.contains(&i.id))
        .cloned()
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

/// An edge of the family as the separation reads it.
fn live_edge(e: &edge::Model) -> separation::Edge<'_> {
    separation::Edge {
        id: e.id,
        from: e.from_identifier_id,
        to: e.to_identifier_id,
        profile: &e.profile_id,
        merge_id: e.merge_id,
        evidence_event: e.evidence_event_id.as_deref(),
    }
}
