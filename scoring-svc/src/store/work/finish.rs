//! The end of a [`Work`]: folds, trigger states and the lead row written, score changes
//! announced, and when the lead must be looked at again.

use chrono::{DateTime, Utc};
use proto::scoring::{ScoreCause, ScoreChanged, ScoreReason};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::DbErr;

use crate::domain::stages::LeadView;
use crate::store::leads::{self, Lead};
use crate::store::migrations::TriggerState as TS;
use crate::store::{exec, scores};

use super::{Work, EPS};

impl Work<'_> {
    /// When the lead must be looked at again: a decay boundary, a predicted threshold crossing,
    /// an inactivity deadline or a time-driven condition.
    async fn next_check(&mut self) -> Result<Option<DateTime<Utc>>, DbErr> {
        let mut due: Option<DateTime<Utc>> = None;
        let mut at = |t: DateTime<Utc>| due = Some(due.map_or(t, |d| d.min(t)));
        for (i, m) in self.defs.models.iter().enumerate() {
            let f = &self.folds[i];
            if let Some(v) = f.valid_until {
                at(v);
            }
            for t in &self.defs.thresholds[i] {
                if let Some(c) = f.crossing(&m.decay, *t) {
                    at(c);
                }
            }
        }
        let ctx = self.ctx();
        let stage = self.lead.stage.clone();
        let entered = self.lead.stage_entered_at;
        let last = self.lead.last_activity_at;
        let zone = self.zone;
        let machine = &self.defs.machine;
        let facts = self.view().await?;
        let v = LeadView {
            stage: &stage,
            entered_at: entered,
            last_activity: last,
            facts,
            ctx: &ctx,
        };
        if let Some(t) = machine.next_time_check(&v, zone) {
            at(t);
        }
        Ok(due)
    }

    /// Writes folds, trigger states and the lead row, and announces score changes.
    pub async fn finish(mut self) -> Result<Lead, DbErr> {
        for i in 0..self.defs.models.len() {
            let m = &self.defs.models[i];
            let new = self.folds[i].value();
            let reason = &self.reasons[i];
            let crossed_by_decay = self.stored_value[i].is_some_and(|old| {
                self.defs.thresholds[i]
                    .iter()
                    .any(|t| (old >= *t) != (new >= *t))
            });
            let (publish, old, cause) = if reason.touched {
                (
                    (new - self.before[i]).abs() > EPS,
                    self.before[i],
                    self.cause.kind,
                )
            } else if self.rebuilt[i] || crossed_by_decay {
                let old = self.stored_value[i].unwrap_or(0.0);
                self.dirty[i] = true;
                ((new - old).abs() > EPS, old, ScoreCause::Decay)
            } else {
                (false, 0.0, self.cause.kind)
            };
            if self.dirty[i] {
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
            if publish {
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
            self.next_check().await?
        } else {
            None
        };
        if self.lead != self.stored_lead {
            leads::save(self.txn, &self.lead, self.now).await?;
        }
        Ok(self.lead)
    }
}
