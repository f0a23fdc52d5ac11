//! A manual merge: the guards apply (a refusal is recorded), the absorbed profile and the ones
//! merged into it follow the survivor, a manual edge proves it, a block an operator left between
//! the two is lifted, and `identity.merged` is announced.

use chrono::Utc;
use platform::db::outbox;
use proto::identity::{IdentifierKind, IdentityMerged, LinkRule};
use proto::Envelope;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use serde_json::json;

use crate::domain::{merge_violation, Key, RefusalReason};
use crate::store::entities::{block, identifier, merge, profile, refusal};
use crate::store::queries::find_profile;
use crate::store::resolve::{snapshot, NewEdge};
use crate::store::state;
use crate::store::{Resolver, ACTIVE, MERGED};

use super::{conflict, not_found, Decision, ManualError, Merged};

/// What the manual-merge transaction decided (a guard refusal is committed as a record).
pub(super) enum MergeTx {
    Done(Merged),
    Refused(RefusalReason),
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

pub(super) async fn merge_tx(
    txn: &DatabaseTransaction,
    resolver: &Resolver,
    tenant: &str,
    survivor: &str,
    absorbed: &str,
    by: &Decision,
) -> Result<MergeTx, ManualError> {
    let now = Utc::now();
    for (field, id) in [("survivor", survivor), ("absorbed", absorbed)] {
        match find_profile(txn, tenant, id).await? {
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
