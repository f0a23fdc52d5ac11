//! Writes what settling decided ([`crate::domain::settle::Decision`]), in the order it was
//! decided: each rule's membership change through `members` (which announces it: facts
//! projection, WeCom write-back) and each windowed or time-relative rule's next look in the
//! schedule; then the real-time segments' entries and exits ([`segments`]). Nothing here
//! decides.

use chrono::{DateTime, Utc};
use proto::tagging::{TagChanged, TagSource};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set};

use crate::domain::segment::SegmentVerdict;
use crate::domain::settle::{Action, Decision, Schedule};
use crate::domain::At;
use crate::store::entities::schedule;
use crate::store::members::{self, MemberError, Reason};
use crate::store::rules::TenantRules;
use crate::store::saved::kept;

/// Writes `decision` for the profile; returns the changes of its tag set.
pub async fn apply(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    set: &TenantRules,
    decision: &Decision,
    at: &At,
) -> Result<Vec<TagChanged>, DbErr> {
    let mut all = Vec::new();
    for v in &decision.verdicts {
        if let (Some(action), Some(info)) = (v.action, set.tags.get(&v.tag_id)) {
            let why = Reason::rule(&v.rule_id);
            let changes = match action {
                Action::Add => match members::add(txn, tenant, profile, info, &why, at.now).await {
                    Ok(c) => c,
                    Err(MemberError::Db(e)) => return Err(e),
                    // Retired: decided as nothing already.
                    Err(_) => Vec::new(),
                },
                Action::Remove => {
                    let only = Some((TagSource::Rule, v.rule_id.as_str()));
                    members::remove(txn, tenant, profile, info, only, &why, at.now).await?
                }
            };
            if !changes
                .iter()
                .map(|c| (&c.tag_id, c.change))
                .eq(v.changes.iter().map(|(t, c)| (t, *c)))
            {
                // Only a writer that does not lock the profile (a backfill batch) between the
                // load and now can make the memberships differ from what was decided on.
                tracing::warn!(profile_id = %profile, rule_id = %v.rule_id, "Memberships changed while the profile was settling");
            }
            all.extend(changes);
        }
        match v.schedule {
            Schedule::Untouched => {}
            Schedule::At(due) => reschedule(txn, tenant, profile, &v.rule_id, Some(due)).await?,
            Schedule::Clear => reschedule(txn, tenant, profile, &v.rule_id, None).await?,
        }
    }
    Ok(all)
}

/// Writes what was decided for the real-time segments: entries and exits of the profile, and each
/// timed segment's next look in the schedule (keyed by the segment's id, as a rule's is).
pub async fn segments(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    verdicts: &[SegmentVerdict],
    at: &At,
) -> Result<(), DbErr> {
    let me = [profile.to_string()];
    for v in verdicts {
        match v.change {
            Some(Action::Add) => {
                kept::enter(txn, tenant, &v.segment_id, &me, at.now, "engine").await?
            }
            Some(Action::Remove) => kept::leave(txn, tenant, &v.segment_id, &me, "engine").await?,
            None => {}
        }
        match v.schedule {
            Schedule::Untouched => {}
            Schedule::At(due) => reschedule(txn, tenant, profile, &v.segment_id, Some(due)).await?,
            Schedule::Clear => reschedule(txn, tenant, profile, &v.segment_id, None).await?,
        }
    }
    Ok(())
}

/// Sets (or clears) when the profile's result for the rule must be looked at again (one
/// statement: an upsert or a delete).
pub async fn reschedule(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    rule_id: &str,
    due: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    match due {
        None => schedule::Entity::delete_many()
            .filter(schedule::Column::TenantId.eq(tenant))
            .filter(schedule::Column::ProfileId.eq(profile))
            .filter(schedule::Column::RuleId.eq(rule_id))
            .exec(txn)
            .await
            .map(drop),
        Some(d) => schedule::Entity::insert(schedule::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            profile_id: Set(profile.to_string()),
            rule_id: Set(rule_id.to_string()),
            due_at: Set(d),
        })
        .on_conflict(
            OnConflict::columns([
                schedule::Column::TenantId,
                schedule::Column::ProfileId,
                schedule::Column::RuleId,
            ])
            .update_column(schedule::Column::DueAt)
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map(drop),
    }
}
