//! Real-time rule evaluation for one profile, inside the transaction of the change that may
//! affect it: the rules the change can affect (the reverse index) are evaluated on the profile's
//! facts, their tags added or removed, rules reading a tag that changed are evaluated in turn
//! (chained rules settle, up to a bound), and each windowed rule's next possible change without
//! a new event is scheduled (window exits happen on time, not at the next event).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use facts::LoadOptions;
use proto::tagging::{TagChange, TagChanged, TagSource};
use rules::{EvalCtx, ProfileFacts};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set};

use super::entities::schedule;
use super::members::{self, MemberError, Reason, TagInfo};
use super::rules::{Mode, RuleCache, RuleEntry, Trigger};
use crate::clock::due_at;

/// Raw events older than this are never read for evaluation (the longest window).
const EVENT_HORIZON_DAYS: i64 = 366;

/// The time of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub now: DateTime<Utc>,
    /// Today in the tenant's time zone.
    pub today: NaiveDate,
    /// The tenant's time zone.
    pub zone: crate::clock::Tz,
}

impl At {
    fn eval(&self) -> EvalCtx {
        EvalCtx {
            now: self.now,
            today: self.today,
        }
    }
}

/// Evaluates rules for profiles.
#[derive(Clone)]
pub struct Engine {
    pub rules: RuleCache,
    pub max_rounds: u32,
}

/// Reads only what the candidate rules can look at: their property keys, tags, relationships,
/// the buckets of their metrics, raw events of their kinds when a leaf filters on properties.
fn load_options(cands: &[Arc<RuleEntry>], today: NaiveDate) -> LoadOptions {
    let raw = cands.iter().any(|e| {
        !e.deps.event_property_keys.is_empty()
            || (!e.deps.event_kinds.is_empty() && !e.deps.content_tags.is_empty())
    });
    let keys: BTreeSet<String> = cands
        .iter()
        .flat_map(|e| e.deps.property_keys.iter().cloned())
        .collect();
    let metrics: BTreeSet<String> = cands
        .iter()
        .flat_map(|e| {
            e.deps
                .event_kinds
                .iter()
                .map(|k| rules::event_metric(k))
                .chain(
                    e.deps
                        .content_tags
                        .iter()
                        .map(|t| rules::content_tag_metric(t)),
                )
                .collect::<Vec<_>>()
        })
        .collect();
    LoadOptions {
        events_since: raw.then(|| today - Duration::days(EVENT_HORIZON_DAYS)),
        event_kinds: if raw {
            cands
                .iter()
                .flat_map(|e| e.deps.event_kinds.iter().cloned())
                .collect()
        } else {
            BTreeSet::new()
        },
        properties: (!keys.is_empty()).then_some(keys),
        tags: cands.iter().any(|e| !e.deps.tags.is_empty()),
        relations: cands.iter().any(|e| e.deps.relations),
        metrics: (!metrics.is_empty()).then_some(metrics),
    }
}

impl Engine {
    /// Settles the profile after `trigger`: returns every change of its tag set.
    pub async fn settle(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        profile: &str,
        trigger: Trigger,
        at: &At,
    ) -> Result<Vec<TagChanged>, DbErr> {
        let set = self.rules.get(tenant).await?;
        let mut cands = set.candidates(&trigger);
        let mut all = Vec::new();
        let mut round = 0;
        while !cands.is_empty() && round < self.max_rounds {
            round += 1;
            let facts =
                facts::load_profile(txn, tenant, profile, &load_options(&cands, at.today)).await?;
            let mut changed_tags = BTreeSet::new();
            for rule in &cands {
                let info = set.tags.get(&rule.tag_id);
                for c in self
                    .apply(txn, tenant, profile, rule, info, &facts, at)
                    .await?
                {
                    changed_tags.insert(c.tag_id.clone());
                    all.push(c);
                }
            }
            if changed_tags.is_empty() {
                break;
            }
            cands = set.reading_tags(&changed_tags);
        }
        if round == self.max_rounds && !cands.is_empty() {
            metrics::counter!(crate::metrics::CHAIN_CUT).increment(1);
            tracing::warn!(profile_id = %profile, "Chained rules did not settle within the round limit");
        }
        Ok(all)
    }

    /// Evaluates one rule for the profile, changes its membership and schedules its next look.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        profile: &str,
        rule: &RuleEntry,
        info: Option<&TagInfo>,
        facts: &ProfileFacts,
        at: &At,
    ) -> Result<Vec<TagChanged>, DbErr> {
        let Some(cond) = &rule.expanded else {
            return Ok(Vec::new());
        };
        let matches = rules::evaluate(cond, facts, &at.eval());
        let mut out = Vec::new();
        // `add` and `remove` change nothing when the rule's reason is already there / not there,
        // so no read of the current membership is needed first.
        if matches || rule.mode == Mode::AddRemove {
            if let Some(info) = info {
                let why = Reason::rule(&rule.id);
                out = if matches {
                    match members::add(txn, tenant, profile, info, &why, at.now).await {
                        Ok(c) => c,
                        Err(MemberError::Db(e)) => return Err(e),
                        // Retired or gone since the rule set was loaded.
                        Err(_) => Vec::new(),
                    }
                } else {
                    members::remove(
                        txn,
                        tenant,
                        profile,
                        info,
                        Some((TagSource::Rule, &rule.id)),
                        &why,
                        at.now,
                    )
                    .await?
                };
            }
        }
        if rule.deps.windowed || rule.deps.time_relative {
            let next = rules::next_expiry(cond, facts, &at.eval());
            reschedule(
                txn,
                tenant,
                profile,
                &rule.id,
                next.map(|d| due_at(d, at.today, at.now, at.zone)),
            )
            .await?;
        }
        metrics::counter!(crate::metrics::RULE_EVALUATIONS).increment(1);
        Ok(out)
    }
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

/// The tag ids of `changes` that were added.
pub fn added(changes: &[TagChanged]) -> BTreeSet<String> {
    changes
        .iter()
        .filter(|c| c.change == TagChange::Added)
        .map(|c| c.tag_id.clone())
        .collect()
}
