//! The changes to one locked profile inside one transaction, and their consequences settled to a
//! fixed point: state rules hold or release their points, score triggers fire on crossings, the
//! lead moves through stages (entry conditions, automatic transitions, trigger actions), entered
//! stages fire their triggers — then the folds, the lead row and the trigger states are written
//! and `lead.score_changed` / `lead.stage_changed` / `lead.notify` / tag commands go to the
//! outbox, all in the same transaction (`publish`: how they are enqueued).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use proto::scoring::{
    ActorKind, LeadNotify, NotifyReason, ScoreCause, ScoreChanged, ScoreReason, StageChanged,
};
use proto::tagging::TagCommand;
use proto::Envelope;
use rules::{EvalCtx, ProfileFacts};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{DatabaseTransaction, DbErr};
use serde_json::json;

use super::leads::{self, Lead, Move};
use super::ledger::{self, NewEntry};
use super::migrations::{TriggerFirings as F, TriggerState as TS};
use super::{exec, is_duplicate, rows, scores};
use crate::domain::compiled::Compiled;
use crate::domain::decay::Fold;
use crate::domain::defs::ActionSpec;
use crate::domain::stages::LeadView;
use crate::domain::triggers::{crossings, On, Trigger};
use crate::domain::view::{self, LeadProps};

mod publish;

/// Scores closer than this are equal.
const EPS: f64 = 1e-9;

/// What caused the work: the bus message, request, job or scheduler pass.
#[derive(Debug, Clone)]
pub struct Cause {
    /// Message id, request id, job id or `tick:<instant>`.
    pub id: String,
    pub kind: ScoreCause,
    pub trace_id: String,
}

#[derive(Debug, Clone, Default)]
struct Reason {
    rule_ids: BTreeSet<String>,
    event_id: Option<String>,
    event_kind: Option<String>,
    /// Entries were written (or moved) in this model.
    touched: bool,
}

#[derive(Debug, Clone)]
struct TrigState {
    above: Option<bool>,
    seq: i64,
    /// The value last evaluated in this work (crossings are counted from it).
    seen: Option<f64>,
    changed: bool,
}

/// One profile's changes in one transaction.
pub struct Work<'a> {
    pub txn: &'a DatabaseTransaction,
    pub defs: &'a Compiled,
    pub tenant: String,
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
    pub offset: i32,
    pub cause: Cause,
    pub lead: Lead,
    /// The lead as stored when the work opened (an unchanged lead is not written again).
    stored_lead: Lead,
    /// Settle consequences this many rounds at most.
    pub max_rounds: u32,
    /// Fire triggers on crossings (recompute jobs may record sides without firing).
    pub fire_triggers: bool,
    /// Reconcile state rules even when the tenant has none (releases points of deleted rules).
    pub force_state: bool,
    folds: Vec<Fold>,
    before: Vec<f64>,
    /// The stored fold's value at its own instant (decay changes are announced from it).
    stored_value: Vec<Option<f64>>,
    rebuilt: Vec<bool>,
    dirty: Vec<bool>,
    reasons: Vec<Reason>,
    facts: ProfileFacts,
    facts_loaded: bool,
    held: Option<BTreeMap<String, (String, f64)>>,
    trig: Option<HashMap<String, TrigState>>,
    entered: Vec<(String, i64)>,
    left: BTreeSet<String>,
    msgs: u32,
    /// Where its outbox events go when a batch writes them all at once ([`Work::defer_outbox`]).
    outbox: Option<&'a Mutex<Vec<Envelope>>>,
}

impl<'a> Work<'a> {
    /// Opens the work on a locked `lead`, as stored (changes go through [`Work::lead`]: the lead
    /// is written at [`Work::finish`] only when it differs from what was opened): loads its folds
    /// and carries them to `now` (rebuilding any whose decay boundary passed).
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        txn: &'a DatabaseTransaction,
        defs: &'a Compiled,
        lead: Lead,
        now: DateTime<Utc>,
        offset: i32,
        cause: Cause,
        max_rounds: u32,
    ) -> Result<Work<'a>, DbErr> {
        let tenant = lead.tenant.clone();
        let stored = scores::load(txn, &tenant, &lead.profile).await?;
        let n = defs.models.len();
        let mut w = Work {
            txn,
            defs,
            today: facts::local_day(now, offset),
            tenant,
            now,
            offset,
            cause,
            facts: ProfileFacts::new(lead.profile.clone()),
            stored_lead: lead.clone(),
            lead,
            max_rounds,
            fire_triggers: true,
            force_state: false,
            folds: Vec::with_capacity(n),
            before: Vec::with_capacity(n),
            stored_value: Vec::with_capacity(n),
            rebuilt: vec![false; n],
            dirty: vec![false; n],
            reasons: vec![Reason::default(); n],
            facts_loaded: false,
            held: None,
            trig: None,
            entered: Vec::new(),
            left: BTreeSet::new(),
            msgs: 0,
            outbox: None,
        };
        for (i, m) in defs.models.iter().enumerate() {
            let s = stored.get(&m.id);
            let (f, rebuilt) = scores::current(txn, &w.tenant, &w.lead.profile, m, s, now).await?;
            w.rebuilt[i] = rebuilt;
            w.dirty[i] = rebuilt;
            w.stored_value.push(s.map(Fold::value));
            w.before.push(f.value());
            w.folds.push(f);
        }
        Ok(w)
    }

    pub fn profile(&self) -> &str {
        &self.lead.profile
    }

    /// The exact score of model `i` now.
    pub fn score(&self, i: usize) -> f64 {
        self.folds[i].value()
    }

    pub fn ctx(&self) -> EvalCtx {
        EvalCtx {
            now: self.now,
            today: self.today,
        }
    }

    /// Loads the profile's facts from the projection when the tenant's conditions read them.
    pub async fn ensure_facts(&mut self) -> Result<(), DbErr> {
        if self.facts_loaded || !self.defs.needs.facts {
            return Ok(());
        }
        let opts = facts::LoadOptions {
            events_since: self.defs.needs.raw_from(self.today),
            event_kinds: Default::default(),
            ..Default::default()
        };
        self.facts = facts::load_profile(self.txn, &self.tenant, &self.lead.profile, &opts).await?;
        self.facts_loaded = true;
        Ok(())
    }

    /// Reloads the facts at the next evaluation (the projection changed).
    pub fn facts_changed(&mut self) {
        self.facts_loaded = false;
    }

    /// The facts with the lead's current properties.
    pub async fn view(&mut self) -> Result<&ProfileFacts, DbErr> {
        self.ensure_facts().await?;
        let props = LeadProps {
            scores: self
                .defs
                .models
                .iter()
                .zip(&self.folds)
                .map(|(m, f)| (m.key.clone(), f.value()))
                .collect(),
            stage: Some(self.lead.stage.clone()),
            stage_entered_at: Some(self.lead.stage_entered_at),
            last_activity_at: self.lead.last_activity_at,
            owner: self.lead.owner.as_ref().map(|o| o.user_id.clone()),
        };
        view::apply(&mut self.facts, &props);
        Ok(&self.facts)
    }

    /// Writes a ledger entry and adds it to its model's fold; `false` when its key exists.
    pub async fn add_entry(&mut self, model: usize, e: NewEntry) -> Result<bool, DbErr> {
        if !ledger::insert(self.txn, &self.tenant, &self.lead.profile, &e, self.now).await? {
            return Ok(false);
        }
        let decay = &self.defs.models[model].decay;
        self.folds[model].add(decay, &e.worth());
        self.dirty[model] = true;
        let r = &mut self.reasons[model];
        r.touched = true;
        if !e.rule_id.is_empty() {
            r.rule_ids.insert(e.rule_id.clone());
        }
        if e.kind == ledger::EVENT {
            r.event_id = Some(e.source_key.clone());
            r.event_kind = e.event_kind.clone();
        }
        Ok(true)
    }

    /// Rebuilds every fold from the ledger (after entries moved in or out).
    pub async fn rebuild_all(&mut self) -> Result<(), DbErr> {
        for (i, m) in self.defs.models.iter().enumerate() {
            self.folds[i] =
                scores::rebuild(self.txn, &self.tenant, &self.lead.profile, m, self.now).await?;
            self.dirty[i] = true;
            self.reasons[i].touched = true;
        }
        Ok(())
    }

    /// Enters the initial stage of a lead just created.
    pub async fn enter_initial(&mut self) -> Result<(), DbErr> {
        let to = self.lead.stage.clone();
        self.record_stage(None, &to, ActorKind::System, "scoring", "first seen")
            .await
    }

    /// Moves the lead to `to`.
    pub async fn move_stage(
        &mut self,
        to: &str,
        kind: ActorKind,
        actor: &str,
        reason: &str,
    ) -> Result<(), DbErr> {
        let from = self.lead.stage.clone();
        self.left.insert(from.clone());
        leads::settle_open_slas(
            self.txn,
            &self.tenant,
            &self.lead.profile,
            leads::SLA_CLOSED,
            "left the stage",
            self.now,
        )
        .await?;
        self.record_stage(Some(&from), to, kind, actor, reason)
            .await
    }

    /// Moves the lead back to `to` when what moved it on is undone (an un-merge): unlike
    /// [`Self::move_stage`], the stage it leaves may be entered again by this settle (it left
    /// because of facts it no longer has, and may qualify by its own).
    pub async fn return_to(
        &mut self,
        to: &str,
        kind: ActorKind,
        actor: &str,
        reason: &str,
    ) -> Result<(), DbErr> {
        let from = self.lead.stage.clone();
        self.move_stage(to, kind, actor, reason).await?;
        self.left.remove(&from);
        Ok(())
    }

    async fn record_stage(
        &mut self,
        from: Option<&str>,
        to: &str,
        kind: ActorKind,
        actor: &str,
        reason: &str,
    ) -> Result<(), DbErr> {
        let m = Move {
            from,
            to,
            actor_kind: kind,
            actor,
            reason,
            cause_id: Some(&self.cause.id),
        };
        let hid = leads::record_move(
            self.txn,
            &self.tenant,
            &self.lead.profile,
            self.lead.history_id,
            &m,
            self.now,
        )
        .await?;
        if let Some(sla) = self.defs.machine.stage(to).and_then(|s| s.sla.clone()) {
            let due = self.now + Duration::hours(i64::from(sla.hours));
            leads::open_sla(
                self.txn,
                &self.tenant,
                &self.lead.profile,
                hid,
                to,
                self.now,
                due,
            )
            .await?;
        }
        self.lead.stage = to.to_string();
        self.lead.stage_entered_at = self.now;
        self.lead.history_id = hid;
        self.entered.push((to.to_string(), hid));
        let ev = StageChanged {
            profile_id: self.lead.profile.clone(),
            from: from.map(str::to_string),
            to: to.to_string(),
            actor_kind: kind,
            actor: actor.to_string(),
            reason: reason.to_string(),
            history_id: hid,
            owner: self.lead.owner.clone(),
            at: self.now,
        };
        self.publish(&ev).await
    }

    /// State rules: hold each rule's points while the profile matches, release them when it
    /// stops (and release what deleted or disabled rules still hold). Returns whether anything
    /// changed.
    async fn reconcile_state(&mut self) -> Result<bool, DbErr> {
        if self.defs.state_rules.is_empty() && !self.force_state {
            return Ok(false);
        }
        if self.held.is_none() {
            self.held = Some(ledger::held(self.txn, &self.tenant, &self.lead.profile).await?);
        }
        let ctx = self.ctx();
        let defs = self.defs;
        let held = self.held.take().unwrap_or_default();
        let mut wanted: Vec<(usize, String, String, f64, f64, &'static str)> = Vec::new();
        let facts = self.view().await?;
        for r in &defs.state_rules {
            let target = if rules::evaluate(&r.condition, facts, &ctx) {
                r.points
            } else {
                0.0
            };
            let cur = held.get(&r.id).map_or(0.0, |h| h.1);
            if (target - cur).abs() > EPS {
                let note = if target != 0.0 {
                    "holds"
                } else {
                    "released: no longer matches"
                };
                wanted.push((
                    r.model,
                    r.id.clone(),
                    defs.models[r.model].id.clone(),
                    r.points,
                    target - cur,
                    note,
                ));
            }
        }
        for (rule, (model_id, sum)) in &held {
            if sum.abs() > EPS && !defs.state_rules.iter().any(|r| &r.id == rule) {
                if let Some(m) = defs.model_by_id(model_id) {
                    wanted.push((
                        m,
                        rule.clone(),
                        model_id.clone(),
                        0.0,
                        -sum,
                        "released: rule deleted or disabled",
                    ));
                }
            }
        }
        self.held = Some(held);
        let changed = !wanted.is_empty();
        for (model, rule, model_id, points, delta, note) in wanted {
            let e = NewEntry {
                model_id: model_id.clone(),
                rule_id: rule.clone(),
                kind: ledger::STATE,
                source_key: format!("state:{}", uuid::Uuid::now_v7().simple()),
                event_kind: None,
                points,
                delta,
                capped: None,
                earned: self.now,
                expires_at: None,
                cause_id: Some(self.cause.id.clone()),
                note: Some(note.to_string()),
            };
            self.add_entry(model, e).await?;
            if let Some(h) = self.held.as_mut() {
                h.entry(rule).or_insert((model_id, 0.0)).1 += delta;
            }
        }
        Ok(changed)
    }

    async fn trigger_states(&mut self) -> Result<(), DbErr> {
        if self.trig.is_some() {
            return Ok(());
        }
        let q = Query::select()
            .columns([TS::TriggerId, TS::Above, TS::Seq])
            .from(TS::Table)
            .and_where(Expr::col(TS::TenantId).eq(&self.tenant))
            .and_where(Expr::col(TS::ProfileId).eq(&self.lead.profile))
            .to_owned();
        let mut m = HashMap::new();
        for r in rows(self.txn, &q).await? {
            m.insert(
                r.try_get::<String>("", "trigger_id")?,
                TrigState {
                    above: Some(r.try_get("", "above")?),
                    seq: r.try_get("", "seq")?,
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
    async fn score_triggers(&mut self) -> Result<bool, DbErr> {
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
    async fn stage_triggers(&mut self) -> Result<bool, DbErr> {
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

    /// One automatic stage move, if one applies.
    async fn auto_stage(&mut self) -> Result<bool, DbErr> {
        let ctx = self.ctx();
        let stage = self.lead.stage.clone();
        let entered = self.lead.stage_entered_at;
        let last = self.lead.last_activity_at;
        let left = self.left.clone();
        let machine = &self.defs.machine;
        let facts = self.view().await?;
        let v = LeadView {
            stage: &stage,
            entered_at: entered,
            last_activity: last,
            facts,
            ctx: &ctx,
        };
        match machine.next_auto(&v, &left) {
            Some(m) => {
                self.move_stage(&m.to, ActorKind::Rule, &m.actor, &m.reason)
                    .await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Settles consequences until nothing changes (or the round limit).
    pub async fn settle(&mut self) -> Result<(), DbErr> {
        for round in 0..self.max_rounds {
            let mut changed = self.reconcile_state().await?;
            changed |= self.score_triggers().await?;
            changed |= self.stage_triggers().await?;
            changed |= self.auto_stage().await?;
            if !changed && self.entered.is_empty() {
                return Ok(());
            }
            if round + 1 == self.max_rounds {
                tracing::warn!(profile_id = %self.lead.profile, rounds = self.max_rounds, "Consequences still changing after the last round; stopping");
            }
        }
        Ok(())
    }

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
        let offset = self.offset;
        let machine = &self.defs.machine;
        let facts = self.view().await?;
        let v = LeadView {
            stage: &stage,
            entered_at: entered,
            last_activity: last,
            facts,
            ctx: &ctx,
        };
        if let Some(t) = machine.next_time_check(&v, offset) {
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

fn a_type(a: &ActionSpec) -> &'static str {
    match a {
        ActionSpec::MoveStage { .. } => "move_stage",
        ActionSpec::AddTag { .. } => "add_tag",
        ActionSpec::RemoveTag { .. } => "remove_tag",
        ActionSpec::Notify { .. } => "notify",
    }
}
