//! Triggers of a [`Work`]: score triggers fire on crossings since the side last recorded, stage
//! triggers on the stages entered; each firing is recorded once (the unique key) and runs its
//! actions (a stage move, a tag command, a notification).

use std::collections::HashMap;

use proto::scoring::{ActorKind, LeadNotify, NotifyReason};
use proto::tagging::TagCommand;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{DbErr, FromQueryResult};
use serde_json::json;

use crate::domain::defs::ActionSpec;
use crate::domain::stages::LeadView;
use crate::domain::triggers::{crossings, On, Trigger};
use crate::store::migrations::{TriggerFirings as F, TriggerState as TS};
use crate::store::{exec, fetch, is_duplicate};

use super::{TrigState, Work};

impl Work<'_> {
    async fn trigger_states(&mut self) -> Result<(), DbErr> {
        if self.trig.is_some() {
            return Ok(());
        }
        #[derive(FromQueryResult)]
        struct Row {
            trigger_id: String,
            above: bool,
            seq: i64,
        }
        let q = Query::select()
            .columns([TS::TriggerId, TS::Above, TS::Seq])
            .from(TS::Table)
            .and_where(Expr::col(TS::TenantId).eq(&self.tenant))
            .and_where(Expr::col(TS::ProfileId).eq(&self.lead.profile))
            .to_owned();
        let mut m = HashMap::new();
        for r in fetch::<Row, _>(self.txn, &q).await? {
            m.insert(
                r.trigger_id,
                TrigState {
                    above: Some(r.above),
                    seq: r.seq,
                    seen: None,
                    changed: false,
                },
            );
        }
        self.trig = Some(m);
        Ok(())
    }

    fn trig_mut(&mut self, id: &str) -> &mut TrigState {
        self.trig
            .get_or_insert_with(HashMap::new)
            .entry(id.to_string())
            .or_insert(TrigState {
                above: None,
                seq: 0,
                seen: None,
                changed: false,
            })
    }

    /// Score triggers: fire on crossings since the side last recorded. Returns whether any fired.
    pub(super) async fn score_triggers(&mut self) -> Result<bool, DbErr> {
        let defs = self.defs;
        if !defs
            .triggers
            .iter()
            .any(|t| matches!(t.on, On::Score { .. }))
        {
            return Ok(false);
        }
        self.trigger_states().await?;
        let mut fired = false;
        for t in &defs.triggers {
            let On::Score {
                model,
                threshold,
                direction,
            } = t.on
            else {
                continue;
            };
            let new = self.score(model);
            let before = self.before[model];
            let st = self.trig_mut(&t.id);
            let old = st.seen.unwrap_or(before);
            let c = crossings(threshold, st.above, old, new);
            st.seen = Some(new);
            if st.above != Some(c.above) {
                st.above = Some(c.above);
                st.changed = true;
            }
            if !c.fires(direction) || !self.fire_triggers {
                continue;
            }
            if !self.trigger_condition(t).await? {
                continue;
            }
            let st = self.trig_mut(&t.id);
            st.seq += 1;
            st.changed = true;
            let seq = st.seq;
            let reason = NotifyReason::ScoreCrossed {
                model: defs.models[model].key.clone(),
                threshold,
                direction: direction.as_str().to_string(),
                score: new,
            };
            fired |= self
                .fire(t, seq, direction.as_str(), Some(new), reason)
                .await?;
        }
        Ok(fired)
    }

    async fn trigger_condition(&mut self, t: &Trigger) -> Result<bool, DbErr> {
        let Some(c) = &t.condition else {
            return Ok(true);
        };
        let ctx = self.ctx();
        let f = self.view().await?;
        Ok(rules::evaluate(c, f, &ctx))
    }

    /// Stage triggers of the stages entered so far.
    pub(super) async fn stage_triggers(&mut self) -> Result<bool, DbErr> {
        let entered = std::mem::take(&mut self.entered);
        let defs = self.defs;
        let mut fired = false;
        for (stage, hid) in entered {
            for t in &defs.triggers {
                if !matches!(&t.on, On::StageEntered { stage: s } if *s == stage)
                    || !self.fire_triggers
                {
                    continue;
                }
                if !self.trigger_condition(t).await? {
                    continue;
                }
                let reason = NotifyReason::StageEntered {
                    stage: stage.clone(),
                };
                fired |= self.fire(t, hid, "stage", None, reason).await?;
            }
        }
        Ok(fired)
    }

    /// Records a firing (once per trigger, profile and crossing: the unique key) and runs its
    /// actions. Returns whether it fired now.
    async fn fire(
        &mut self,
        t: &Trigger,
        seq: i64,
        kind: &str,
        value: Option<f64>,
        reason: NotifyReason,
    ) -> Result<bool, DbErr> {
        let stage = match &reason {
            NotifyReason::StageEntered { stage } => Some(stage.clone()),
            NotifyReason::ScoreCrossed { .. } => None,
        };
        let q = Query::insert()
            .into_table(F::Table)
            .columns([
                F::TenantId,
                F::TriggerId,
                F::ProfileId,
                F::Seq,
                F::Kind,
                F::Value,
                F::Stage,
                F::FiredAt,
                F::CauseId,
                F::Result,
            ])
            .values_panic([
                self.tenant.clone().into(),
                t.id.clone().into(),
                self.lead.profile.clone().into(),
                seq.into(),
                kind.into(),
                value.into(),
                stage.into(),
                self.now.into(),
                Some(self.cause.id.clone()).into(),
                "[]".into(),
            ])
            .to_owned();
        let id = match exec(self.txn, &q).await {
            Ok(r) => r.last_insert_id(),
            Err(e) if is_duplicate(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        metrics::counter!(crate::metrics::TRIGGER_FIRED).increment(1);
        let mut results = Vec::new();
        for a in &t.actions {
            let r = match a {
                ActionSpec::MoveStage { stage } => self.trigger_move(t, stage).await?,
                ActionSpec::AddTag { tag_id } | ActionSpec::RemoveTag { tag_id } => {
                    let add = matches!(a, ActionSpec::AddTag { .. });
                    let cmd = TagCommand {
                        profile_id: self.lead.profile.clone(),
                        tag_id: tag_id.clone(),
                        actor: format!("scoring:trigger:{}", t.id),
                    };
                    self.command(add, &cmd).await?;
                    json!({"type": a_type(a), "tag_id": tag_id, "result": "sent"})
                }
                ActionSpec::Notify { message } => {
                    let n = LeadNotify {
                        profile_id: self.lead.profile.clone(),
                        owner: self.lead.owner.clone(),
                        trigger_id: t.id.clone(),
                        trigger_name: t.name.clone(),
                        reason: reason.clone(),
                        message: message.clone(),
                        stage: self.lead.stage.clone(),
                        at: self.now,
                    };
                    self.publish(&n).await?;
                    json!({"type": "notify", "result": "sent", "owner": self.lead.owner.as_ref().map(|o| o.user_id.clone())})
                }
            };
            results.push(r);
        }
        let q = Query::update()
            .table(F::Table)
            .value(F::Result, serde_json::Value::Array(results).to_string())
            .and_where(Expr::col(F::Id).eq(id as i64))
            .to_owned();
        exec(self.txn, &q).await?;
        Ok(true)
    }

    async fn trigger_move(&mut self, t: &Trigger, stage: &str) -> Result<serde_json::Value, DbErr> {
        if self.lead.stage == stage {
            return Ok(json!({"type": "move_stage", "stage": stage, "result": "already_there"}));
        }
        let ctx = self.ctx();
        let from = self.lead.stage.clone();
        let entered = self.lead.stage_entered_at;
        let last = self.lead.last_activity_at;
        let machine = &self.defs.machine;
        let facts = self.view().await?;
        let v = LeadView {
            stage: &from,
            entered_at: entered,
            last_activity: last,
            facts,
            ctx: &ctx,
        };
        match machine.check_manual(&v, stage) {
            Ok(()) => {
                let reason = format!("trigger `{}` fired", t.name);
                self.move_stage(stage, ActorKind::Trigger, &t.id, &reason)
                    .await?;
                Ok(json!({"type": "move_stage", "stage": stage, "result": "moved"}))
            }
            Err(r) => Ok(
                json!({"type": "move_stage", "stage": stage, "result": "refused", "code": r.code, "message": r.message}),
            ),
        }
    }
}

fn a_type(a: &ActionSpec) -> &'static str {
    match a {
        ActionSpec::MoveStage { .. } => "move_stage",
        ActionSpec::AddTag { .. } => "add_tag",
        ActionSpec::RemoveTag { .. } => "remove_tag",
        ActionSpec::Notify { .. } => "notify",
    }
}
