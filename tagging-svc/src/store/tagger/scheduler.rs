//! The scheduler's pass: counters rolled for every tenant whose day changed, old events dropped,
//! the tag holders' log folded, and the rules whose result may have changed by now (window exits) evaluated again.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::store::entities::schedule;
use crate::store::members;
use crate::store::rules::Trigger;

use super::Tagger;

impl Tagger {
    /// One scheduler pass: rolls the counters of every tenant whose day changed, folds the tag
    /// holders' log, then evaluates the rules whose result may have changed by now (window
    /// exits). Returns the profiles looked at.
    pub async fn tick(&self) -> Result<usize, DbErr> {
        let now = self.clock.now();
        for tenant in facts::tenants(&self.db).await? {
            let today = facts::local_day(now, self.cfg.zone_of(&tenant));
            facts::roll(&self.db, &tenant, today, 20_000, now).await?;
            let keep_from =
                today - chrono::Duration::days(i64::from(self.cfg.event_retention_days));
            let pruned = facts::prune_events(&self.db, &tenant, keep_from, 5_000).await?;
            if pruned > 0 {
                metrics::counter!(crate::metrics::EVENTS_PRUNED).increment(pruned);
            }
        }
        facts::compact_tag_holders(&self.db, facts::HOLDER_LOG_BATCH).await?;
        self.due(now, 500).await
    }

    /// Evaluates the rules due by `now` (at most `limit` schedule rows).
    pub async fn due(&self, now: DateTime<Utc>, limit: u64) -> Result<usize, DbErr> {
        let rows = schedule::Entity::find()
            .filter(schedule::Column::DueAt.lte(now))
            .order_by_asc(schedule::Column::DueAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut by_profile: std::collections::BTreeMap<(String, String), BTreeSet<String>> =
            Default::default();
        for r in rows {
            by_profile
                .entry((r.tenant_id, r.profile_id))
                .or_default()
                .insert(r.rule_id);
        }
        let n = by_profile.len();
        for ((tenant, profile), rule_ids) in by_profile {
            let at = self.at(&tenant);
            let txn = platform::db::begin_write(&self.db).await?;
            facts::lock_profile(&txn, &tenant, &profile).await?;
            let changes = self
                .engine
                .settle(
                    &txn,
                    &tenant,
                    &profile,
                    Trigger::Rules(rule_ids.clone()),
                    &at,
                )
                .await?;
            members::publish(&txn, &tenant, &changes).await?;
            // Rows still due belong to rules no longer live: nothing will move them.
            schedule::Entity::delete_many()
                .filter(schedule::Column::TenantId.eq(tenant.as_str()))
                .filter(schedule::Column::ProfileId.eq(profile.as_str()))
                .filter(schedule::Column::RuleId.is_in(rule_ids))
                .filter(schedule::Column::DueAt.lte(at.now))
                .exec(&txn)
                .await?;
            txn.commit().await?;
        }
        if n > 0 {
            metrics::counter!(crate::metrics::WINDOW_CHECKS).increment(n as u64);
        }
        Ok(n)
    }
}
