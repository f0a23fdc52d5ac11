//! The end of a [`Work`]: folds, trigger states and the lead row written, score changes
//! announced, and when the lead must be looked at again — what to write and announce decided by
//! [`crate::domain::finish`].

use proto::scoring::{ScoreChanged, ScoreFold, ScoreReason};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::DbErr;

use crate::domain::finish::{next_check, score_end, ModelEnd};
use crate::store::leads::{self, Lead};
use crate::store::migrations::TriggerState as TS;
use crate::store::{exec, scores};

use super::Work;

impl Work<'_> {
    /// Writes folds, trigger states and the lead row, and announces score changes.
    pub async fn finish(mut self) -> Result<Lead, DbErr> {
        for i in 0..self.defs.models.len() {
            let m = &self.defs.models[i];
            let new = self.folds[i].value();
            let reason = &self.reasons[i];
            let end = ModelEnd {
                new,
                before: self.before[i],
                stored: self.stored_value[i],
                touched: reason.touched,
                rebuilt: self.rebuilt[i],
                dirty: self.dirty[i],
            };
            let end = score_end(&end, &self.defs.thresholds[i], self.cause.kind);
            if end.save {
                scores::save(
                    self.txn,
                    &self.tenant,
                    &self.lead.profile,
                    m,
                    &self.folds[i],
                    self.now,
                )
                .await?;
            }
            if let Some((old, cause)) = end.announce {
                let ev = ScoreChanged {
                    profile_id: self.lead.profile.clone(),
                    model_id: m.id.clone(),
                    model: m.key.clone(),
                    old,
                    new,
                    reason: ScoreReason {
                        cause,
                        rule_ids: reason.rule_ids.iter().cloned().collect(),
                        event_id: reason.event_id.clone(),
                        event_kind: reason.event_kind.clone(),
                        cause_id: Some(self.cause.id.clone()),
                    },
                    at: self.now,
                    fold: Some(ScoreFold {
                        held: self.folds[i].held,
                        decaying: self.folds[i].decaying,
                        half_life_days: m.decay.half_life_days(),
                    }),
                };
                self.publish(&ev).await?;
            }
        }
        if let Some(trig) = self.trig.take() {
            for (id, st) in trig.into_iter().filter(|(_, s)| s.changed) {
                let q = Query::insert()
                    .into_table(TS::Table)
                    .columns([
                        TS::TenantId,
                        TS::TriggerId,
                        TS::ProfileId,
                        TS::Above,
                        TS::Seq,
                        TS::UpdatedAt,
                    ])
                    .values_panic([
                        self.tenant.clone().into(),
                        id.into(),
                        self.lead.profile.clone().into(),
                        st.above.unwrap_or(false).into(),
                        st.seq.into(),
                        self.now.into(),
                    ])
                    .on_conflict(
                        OnConflict::columns([TS::TenantId, TS::ProfileId, TS::TriggerId])
                            .update_columns([TS::Above, TS::Seq, TS::UpdatedAt])
                            .to_owned(),
                    )
                    .to_owned();
                exec(self.txn, &q).await?;
            }
        }
        self.lead.next_check_at = if self.lead.active() {
            self.ensure_facts().await?;
            let lead = self.lead_state();
            let ctx = self.ctx();
            next_check(
                self.defs,
                &self.folds,
                &lead,
                &mut self.facts,
                &ctx,
                self.zone,
            )
        } else {
            None
        };
        if self.lead != self.stored_lead {
            leads::save(self.txn, &self.lead, self.now).await?;
        }
        Ok(self.lead)
    }
}
