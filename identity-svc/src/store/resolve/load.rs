//! What resolving one event reads, locked for its transaction: the event's identifiers that
//! exist (`FOR UPDATE`), the profiles holding them and their survivors (`FOR UPDATE`, in id
//! order, so concurrent resolutions wait instead of deadlocking), every identifier of those
//! profiles, and the pairs of them an operator separated. The decision is
//! [`crate::domain::resolution::decide`]; nothing here writes.

use std::collections::{BTreeMap, BTreeSet};

use proto::identity::IdentifierKind;
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::Prepared;
use crate::domain::resolution::{Held, Loaded};
use crate::domain::{profile_pair, Incoming};
use crate::store::entities::{block, identifier, profile};
use crate::store::MERGED;

/// An identifier row as the decision sees it.
pub(crate) fn held(m: &identifier::Model) -> Held {
    let sensitive = IdentifierKind::parse(&m.kind).is_some_and(IdentifierKind::is_sensitive);
    Held {
        id: m.id,
        kind: m.kind.clone(),
        namespace: m.namespace.clone(),
        hash: m.value_hash.clone(),
        shown: if sensitive {
            m.value_masked.clone()
        } else {
            m.value.clone().unwrap_or_default()
        },
        provenance: m.provenance.clone(),
    }
}

/// Loads what resolving `prepared` (one event's identifiers) of `tenant` decides on.
pub(crate) async fn load(
    txn: &DatabaseTransaction,
    tenant: &str,
    prepared: &[Prepared],
) -> Result<Loaded, DbErr> {
    // 1. The event's identifiers that exist, locked.
    let mut any = Condition::any();
    for p in prepared {
        any = any.add(
            Condition::all()
                .add(identifier::Column::Kind.eq(p.key.kind.as_str()))
                .add(identifier::Column::Namespace.eq(p.key.namespace.clone()))
                .add(identifier::Column::ValueHash.eq(p.key.hash.clone())),
        );
    }
    let by_key: BTreeMap<(String, String, String), identifier::Model> = identifier::Entity::find()
        .filter(identifier::Column::TenantId.eq(tenant))
        .filter(any)
        .lock_exclusive()
        .all(txn)
        .await?
        .into_iter()
        .map(|m| {
            (
                (m.kind.clone(), m.namespace.clone(), m.value_hash.clone()),
                m,
            )
        })
        .collect();
    let found: Vec<Option<&identifier::Model>> = prepared
        .iter()
        .map(|p| {
            by_key.get(&(
                p.key.kind.as_str().to_string(),
                p.key.namespace.clone(),
                p.key.hash.clone(),
            ))
        })
        .collect();

    // 2. Their profiles, locked in id order; a merged one stands for its survivor.
    let holders: BTreeSet<String> = by_key.values().map(|m| m.profile_id.clone()).collect();
    let canonical = lock_profiles(txn, &holders).await?;
    let of = |p: &str| canonical.get(p).cloned().unwrap_or_else(|| p.to_string());
    let profile_ids: BTreeSet<String> = canonical.values().cloned().collect();

    // 3. Every identifier of those profiles (guards and snapshots).
    let mut held_by: BTreeMap<String, Vec<Held>> = BTreeMap::new();
    if !profile_ids.is_empty() {
        for m in identifier::Entity::find()
            .filter(identifier::Column::ProfileId.is_in(profile_ids.iter().cloned()))
            .order_by_asc(identifier::Column::Id)
            .all(txn)
            .await?
        {
            held_by.entry(of(&m.profile_id)).or_default().push(held(&m));
        }
    }

    // 4. The pairs of them an operator separated.
    let blocked = if profile_ids.len() > 1 {
        blocked_pairs(txn, tenant, &profile_ids).await?
    } else {
        BTreeSet::new()
    };
    Ok(Loaded {
        incoming: prepared
            .iter()
            .zip(&found)
            .map(|(p, f)| Incoming {
                key: p.key.clone(),
                provenance: p.found.provenance,
                binding: p.binding,
                found_in: f.map(|m| of(&m.profile_id)),
            })
            .collect(),
        rows: found.iter().map(|f| f.map(|m| m.id)).collect(),
        held: held_by,
        blocked,
    })
}

/// Locks `holders` and the survivors of those merged away, in id order; maps each holder to
/// its canonical profile.
async fn lock_profiles(
    txn: &DatabaseTransaction,
    holders: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, DbErr> {
    let mut canonical = BTreeMap::new();
    if holders.is_empty() {
        return Ok(canonical);
    }
    for p in profile::Entity::find()
        .filter(profile::Column::Id.is_in(holders.iter().cloned()))
        .order_by_asc(profile::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?
    {
        let target = match (&p.status[..], &p.merged_into) {
            (MERGED, Some(into)) => into.clone(),
            _ => p.id.clone(),
        };
        canonical.insert(p.id, target);
    }
    let survivors: Vec<String> = canonical
        .values()
        .filter(|t| !holders.contains(*t))
        .cloned()
        .collect();
    if !survivors.is_empty() {
        profile::Entity::find()
            .filter(profile::Column::Id.is_in(survivors))
            .order_by_asc(profile::Column::Id)
            .lock_exclusive()
            .all(txn)
            .await?;
    }
    Ok(canonical)
}

/// Pairs of the canonical `profiles` (or of profiles merged into them) an operator separated
/// and no manual merge joined again, as canonical pairs.
pub(crate) async fn blocked_pairs(
    txn: &DatabaseTransaction,
    tenant: &str,
    profiles: &BTreeSet<String>,
) -> Result<BTreeSet<(String, String)>, DbErr> {
    let mut canonical: BTreeMap<String, String> =
        profiles.iter().map(|p| (p.clone(), p.clone())).collect();
    for p in profile::Entity::find()
        .filter(profile::Column::MergedInto.is_in(profiles.iter().cloned()))
        .all(txn)
        .await?
    {
        if let Some(into) = p.merged_into {
            canonical.insert(p.id, into);
        }
    }
    let family: Vec<String> = canonical.keys().cloned().collect();
    let rows = block::Entity::find()
        .filter(block::Column::TenantId.eq(tenant))
        .filter(block::Column::LiftedAt.is_null())
        .filter(block::Column::ProfileA.is_in(family.clone()))
        .filter(block::Column::ProfileB.is_in(family))
        .all(txn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|b| {
            let a = canonical.get(&b.profile_a)?;
            let b = canonical.get(&b.profile_b)?;
            (a != b).then(|| profile_pair(a, b))
        })
        .collect())
}
