//! What an event observed, written against the identifier it came through: the claims (one
//! statement per field and source), the relationship changes and the refused values.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, Set,
};

use crate::domain::fields::{self, Strategy};
use crate::domain::observe::{self, Claim, Issue, Observations, RelationChange};
use crate::store::entities::{data_quality, property_record};

use super::relations::{apply_relation, insert_relation};

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
