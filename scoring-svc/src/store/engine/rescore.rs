//! Looking at a lead again without a message: the scheduler's look (decay, crossings,
//! time-driven stage moves) and a recompute job's rebuild of one model's entries from the
//! profile's events under the current rules.

use platform::db::begin_locking_write;
use proto::scoring::ScoreCause;

use crate::domain::replay::replay;
use crate::store::leads;
use crate::store::ledger::{self, NewEntry};
use crate::store::work::Cause;

use super::projection::profile_events;
use super::{ScoreError, Scorer};

impl Scorer {
    /// Looks at a lead again (scheduler): decay, crossings, time-driven stage moves.
    pub async fn reevaluate(&self, tenant: &str, profile: &str) -> Result<bool, ScoreError> {
        let defs = self.compiled(tenant).await?;
        self.retry(|| async {
            let now = self.clock.now();
            let txn = begin_locking_write(&self.db).await?;
            let Some(lead) = leads::lock(&txn, tenant, profile).await? else {
                txn.rollback().await?;
                return Ok(false);
            };
            if !lead.active() || lead.next_check_at.is_some_and(|t| t > now) {
                txn.rollback().await?;
                return Ok(false);
            }
            let cause = Cause {
                id: format!("tick:{}", now.timestamp()),
                kind: ScoreCause::Decay,
                trace_id: uuid::Uuid::now_v7().simple().to_string(),
            };
            let mut w = self
                .open(&txn, &defs, lead, false, now, cause, None)
                .await?;
            w.settle().await?;
            w.finish().await?;
            txn.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Rebuilds `profile`'s entries of model `model_id` from its events under the current rules
    /// (a recompute job's step). Returns whether the profile was active.
    pub async fn recompute_profile(
        &self,
        tenant: &str,
        profile: &str,
        model_id: &str,
        job_id: &str,
        fire_triggers: bool,
    ) -> Result<bool, ScoreError> {
        let defs = self.compiled(tenant).await?;
        let Some(model) = defs.model_by_id(model_id) else {
            return Ok(false);
        };
        self.retry(|| async {
            let now = self.clock.now();
            let txn = begin_locking_write(&self.db).await?;
            let Some(lead) = leads::lock(&txn, tenant, profile).await? else {
                txn.rollback().await?;
                return Ok(false);
            };
            if !lead.active() {
                txn.rollback().await?;
                return Ok(false);
            }
            let cause = Cause {
                id: format!("job:{job_id}"),
                kind: ScoreCause::Recompute,
                trace_id: job_id.to_string(),
            };
            let mut w = self
                .open(&txn, &defs, lead, false, now, cause, None)
                .await?;
            w.fire_triggers = fire_triggers;
            let events = profile_events(&txn, tenant, profile, w.zone).await?;
            let ctx = w.ctx();
            let zone = w.zone;
            let facts = w.view().await?.clone();
            let planned = replay(&defs, Some(model), &events, &facts, &ctx, zone);
            ledger::void_model(
                &txn,
                tenant,
                profile,
                model_id,
                &format!("job:{job_id}"),
                now,
            )
            .await?;
            let m = &defs.models[model];
            for p in planned {
                let e = NewEntry {
                    model_id: m.id.clone(),
                    rule_id: p.rule_id,
                    kind: match p.kind {
                        crate::domain::defs::RuleKind::Event => ledger::EVENT,
                        crate::domain::defs::RuleKind::State => ledger::STATE,
                    },
                    source_key: if p.source_key.is_empty() {
                        format!("state:{}", uuid::Uuid::now_v7().simple())
                    } else {
                        p.source_key
                    },
                    event_kind: p.event_kind,
                    points: p.points,
                    delta: p.delta,
                    capped: p.capped,
                    earned: p.earned,
                    expires_at: (p.kind == crate::domain::defs::RuleKind::Event)
                        .then(|| m.decay.expires_after().map(|d| p.earned + d))
                        .flatten(),
                    cause_id: Some(format!("job:{job_id}")),
                    note: Some("recomputed".into()),
                };
                w.add_entry(model, e).await?;
            }
            w.rebuild_all().await?;
            w.settle().await?;
            w.finish().await?;
            txn.commit().await?;
            Ok(true)
        })
        .await
    }
}
