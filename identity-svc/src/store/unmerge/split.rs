//! Splitting one identifier off a profile into a new profile: its edges are retracted, a manual
//! edge links it to the new profile, and the timeline rows of its events follow it.

use std::collections::BTreeSet;

use chrono::Utc;
use proto::identity::{LinkRule, UnmergeKind};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};

use crate::domain::Key;
use crate::store::entities::{edge, identifier, profile};
use crate::store::queries::find_profile;
use crate::store::resolve::NewEdge;
use crate::store::ACTIVE;

use super::family::{load_family, move_timeline, record_separation};
use super::{conflict, not_found, public, Decision, ManualError, Unmerged};

pub(super) async fn split_tx(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile_id: &str,
    key: &Key,
    by: &Decision,
) -> Result<Unmerged, ManualError> {
    let now = Utc::now();
    let Some(p) = find_profile(txn, tenant, profile_id).await? else {
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
