//! The consequences of a change to one profile, decided without I/O and settled to a fixed
//! point. Each round, in this order: state rules hold their points while the profile matches and
//! release them when it stops (and what deleted or disabled rules still hold is released); score
//! triggers fire on crossings since the side last recorded; the triggers of the stages entered
//! so far fire; one automatic stage move is made if the machine allows one. A firing runs its
//! actions (a stage move, a tag command, a notification); a stage entered by an action or an
//! automatic move fires its triggers in the same or the next round. Rounds stop when a round
//! changed nothing and no entered stage waits for its triggers, or at the bound (`cut`).
//!
//! The store loads what the decision reads ([`Profile`]: folds, the lead, the facts, the points
//! state rules hold, the score triggers' states and the firing keys recorded), calls [`decide`]
//! once, and writes the [`Effect`]s in their order: ledger entries, firings with their results,
//! stage moves (history, SLAs, `lead.stage_changed`), tag commands and notifications. The profile
//! it reads back carries the folds, the lead, the held points and the trigger states as decided.
//!
//! What the decision cannot know: the id of a stage-history entry it creates. A stage it enters is
//! named by [`History::Move`] (the n-th move it makes) and the store puts the entry's id in its
//! firings' keys. Such a key is taken for granted as new — it names a history entry created in
//! this transaction; only a trigger that was a score trigger before being redefined could have a
//! recorded firing with that number, and the store then records no second firing row.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use proto::scoring::{ActorKind, LeadNotify, NotifyReason, Owner};
use proto::tagging::TagCommand;
use rules::{EvalCtx, ProfileFacts};
use serde_json::json;

use super::compiled::Compiled;
use super::decay::{Fold, Worth};
use super::defs::ActionSpec;
use super::stages::LeadView;
use super::triggers::{crossings, On, TrigState, Trigger};
use super::view::{self, LeadProps};

/// Scores closer than this are equal.
pub const EPS: f64 = 1e-9;

/// A stage-history entry: written before the decision, or the n-th move the decision makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    Stored(i64),
    Move(usize),
}

/// The key of a firing: a score trigger's crossing count, or the history entry of the stage
/// entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seq {
    Count(i64),
    Entered(History),
}

/// The lead as the decision reads and moves it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadState {
    pub stage: String,
    pub stage_entered_at: DateTime<Utc>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub owner: Option<Owner>,
}

/// What the decision starts from, changed in place to what it decided.
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: String,
    pub lead: LeadState,
    /// One per model, carried to now.
    pub folds: Vec<Fold>,
    /// Each model's score when the work opened (crossings are counted from it).
    pub before: Vec<f64>,
    /// The facts conditions read (the lead properties are set here before each evaluation).
    pub facts: ProfileFacts,
    /// Rule → (model id, points held) of the state rules; `None` when state rules are not
    /// reconciled (the tenant has none and releasing was not asked for).
    pub held: Option<BTreeMap<String, (String, f64)>>,
    /// Score trigger id → its state; `None` when the tenant has no score trigger.
    pub triggers: Option<HashMap<String, TrigState>>,
    /// Firing keys (trigger id, seq) recorded for this profile.
    pub recorded: BTreeSet<(String, i64)>,
    /// Stages entered whose triggers have not been looked at.
    pub entered: Vec<(String, History)>,
    /// Stages left during this work (not entered again automatically).
    pub left: BTreeSet<String>,
}

/// How to decide.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub defs: &'a Compiled,
    pub ctx: EvalCtx,
    pub max_rounds: u32,
    /// Fire triggers on crossings (recompute jobs may record sides without firing).
    pub fire_triggers: bool,
    /// Reconcile state rules even when the tenant has none (releases points of deleted rules).
    pub force_state: bool,
}

/// One consequence to write, in the order decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A state rule's points held (`delta` added) or released: a ledger entry of `model`.
    Hold {
        model: usize,
        model_id: String,
        rule_id: String,
        points: f64,
        delta: f64,
        note: &'static str,
    },
    /// `trigger` (an index into the definitions' triggers) fired: its firing, with the results
    /// of its actions (whose own effects follow it).
    Fire {
        trigger: usize,
        seq: Seq,
        /// `up`, `down` or `stage`.
        kind: &'static str,
        value: Option<f64>,
        stage: Option<String>,
        results: Vec<serde_json::Value>,
    },
    /// The lead moved from `from` to `to` (entered now).
    Move {
        from: String,
        to: String,
        kind: ActorKind,
        actor: String,
        reason: String,
    },
    /// A tag command for tagging.
    Tag { add: bool, cmd: TagCommand },
    /// `lead.notify` for the lead's owner.
    Notify(LeadNotify),
}

/// What was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub effects: Vec<Effect>,
    pub rounds: u32,
    /// The last round still changed something: the consequences were cut at the bound.
    pub cut: bool,
}

/// Settles the consequences on `p` (changed in place) and says what to write.
pub fn decide(rules: &Rules<'_>, p: &mut Profile) -> Decision {
    let mut run = Run {
        r: *rules,
        p,
        effects: Vec::new(),
        moves: 0,
    };
    let mut rounds = 0;
    let mut cut = false;
    for round in 0..rules.max_rounds {
        rounds = round + 1;
        let mut changed = run.reconcile_state();
        changed |= run.score_triggers();
        changed |= run.stage_triggers();
        changed |= run.auto_stage();
        if !changed && run.p.entered.is_empty() {
            break;
        }
        cut = round + 1 == rules.max_rounds;
    }
    Decision {
        effects: run.effects,
        rounds,
        cut,
    }
}

struct Run<'a, 'p> {
    r: Rules<'a>,
    p: &'p mut Profile,
    effects: Vec<Effect>,
    moves: usize,
}

impl Run<'_, '_> {
    /// The facts with the lead's current properties.
    fn view(&mut self) -> &ProfileFacts {
        let p = &mut *self.p;
        let props = LeadProps {
            scores: self
                .r
                .defs
                .models
                .iter()
                .zip(&p.folds)
                .map(|(m, f)| (m.key.clone(), f.value()))
                .collect(),
            stage: Some(p.lead.stage.clone()),
            stage_entered_at: Some(p.lead.stage_entered_at),
            last_activity_at: p.lead.last_activity_at,
            owner: p.lead.owner.as_ref().map(|o| o.user_id.clone()),
        };
        view::apply(&mut p.facts, &props);
        &p.facts
    }

    /// State rules: hold each rule's points while the profile matches, release them when it
    /// stops (and release what deleted or disabled rules still hold).
    fn reconcile_state(&mut self) -> bool {
        let defs = self.r.defs;
        if defs.state_rules.is_empty() && !self.r.force_state {
            return false;
        }
        let ctx = self.r.ctx;
        let held = self.p.held.take().unwrap_or_default();
        let mut wanted = Vec::new();
        let facts = self.view();
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
                let model_id = defs.models[r.model].id.clone();
                wanted.push((
                    r.model,
                    r.id.clone(),
                    model_id,
                    r.points,
                    target - cur,
                    note,
                ));
            }
        }
        for (rule, (model_id, sum)) in &held {
            if sum.abs() > EPS && !defs.state_rules.iter().any(|r| &r.id == rule) {
                if let Some(m) = defs.model_by_id(model_id) {
                    let note = "released: rule deleted or disabled";
                    wanted.push((m, rule.clone(), model_id.clone(), 0.0, -sum, note));
                }
            }
        }
        let mut held = held;
        let changed = !wanted.is_empty();
        for (model, rule_id, model_id, points, delta, note) in wanted {
            let worth = Worth {
                delta,
                earned: ctx.now,
                decays: false,
            };
            self.p.folds[model].add(&defs.models[model].decay, &worth);
            held.entry(rule_id.clone())
                .or_insert((model_id.clone(), 0.0))
                .1 += delta;
            self.effects.push(Effect::Hold {
                model,
                model_id,
                rule_id,
                points,
                delta,
                note,
            });
        }
        self.p.held = Some(held);
        changed
    }

    fn trig_mut(&mut self, id: &str) -> &mut TrigState {
        self.p
            .triggers
            .get_or_insert_with(HashMap::new)
            .entry(id.to_string())
            .or_insert_with(TrigState::unseen)
    }

    /// Score triggers: fire on crossings since the side last recorded.
    fn score_triggers(&mut self) -> bool {
        let defs = self.r.defs;
        let mut fired = false;
        for (i, t) in defs.triggers.iter().enumerate() {
            let On::Score {
                model,
                threshold,
                direction,
            } = t.on
            else {
                continue;
            };
            let new = self.p.folds[model].value();
            let before = self.p.before[model];
            let st = self.trig_mut(&t.id);
            let c = crossings(threshold, st.above, st.seen.unwrap_or(before), new);
            st.seen = Some(new);
            if st.above != Some(c.above) {
                st.above = Some(c.above);
                st.changed = true;
            }
            if !c.fires(direction) || !self.r.fire_triggers || !self.condition(t) {
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
            fired |= self.fire(i, Seq::Count(seq), direction.as_str(), Some(new), reason);
        }
        fired
    }

    fn condition(&mut self, t: &Trigger) -> bool {
        let Some(c) = &t.condition else {
            return true;
        };
        let ctx = self.r.ctx;
        rules::evaluate(c, self.view(), &ctx)
    }

    /// The triggers of the stages entered so far.
    fn stage_triggers(&mut self) -> bool {
        let entered = std::mem::take(&mut self.p.entered);
        let defs = self.r.defs;
        let mut fired = false;
        for (stage, hid) in entered {
            for (i, t) in defs.triggers.iter().enumerate() {
                if !matches!(&t.on, On::StageEntered { stage: s } if *s == stage)
                    || !self.r.fire_triggers
                    || !self.condition(t)
                {
                    continue;
                }
                let reason = NotifyReason::StageEntered {
                    stage: stage.clone(),
                };
                fired |= self.fire(i, Seq::Entered(hid), "stage", None, reason);
            }
        }
        fired
    }

    /// Fires trigger `i` once per key (a key recorded already fires nothing) and runs its
    /// actions. Returns whether it fired.
    fn fire(
        &mut self,
        i: usize,
        seq: Seq,
        kind: &'static str,
        value: Option<f64>,
        reason: NotifyReason,
    ) -> bool {
        let t = &self.r.defs.triggers[i];
        let known = match seq {
            Seq::Count(n) | Seq::Entered(History::Stored(n)) => Some(n),
            Seq::Entered(History::Move(_)) => None,
        };
        if let Some(n) = known {
            if !self.p.recorded.insert((t.id.clone(), n)) {
                return false;
            }
        }
        let stage = match &reason {
            NotifyReason::StageEntered { stage } => Some(stage.clone()),
            NotifyReason::ScoreCrossed { .. } => None,
        };
        let at = self.effects.len();
        self.effects.push(Effect::Fire {
            trigger: i,
            seq,
            kind,
            value,
            stage,
            results: Vec::new(),
        });
        let mut out = Vec::with_capacity(t.actions.len());
        for a in &t.actions {
            out.push(self.act(t, a, &reason));
        }
        if let Some(Effect::Fire { results, .. }) = self.effects.get_mut(at) {
            *results = out;
        }
        true
    }

    /// Runs one action of a firing; returns what it did.
    fn act(&mut self, t: &Trigger, a: &ActionSpec, reason: &NotifyReason) -> serde_json::Value {
        match a {
            ActionSpec::MoveStage { stage } => self.trigger_move(t, stage),
            ActionSpec::AddTag { tag_id } | ActionSpec::RemoveTag { tag_id } => {
                let add = matches!(a, ActionSpec::AddTag { .. });
                let cmd = TagCommand {
                    profile_id: self.p.id.clone(),
                    tag_id: tag_id.clone(),
                    actor: format!("scoring:trigger:{}", t.id),
                };
                self.effects.push(Effect::Tag { add, cmd });
                let kind = if add { "add_tag" } else { "remove_tag" };
                json!({"type": kind, "tag_id": tag_id, "result": "sent"})
            }
            ActionSpec::Notify { message } => {
                let lead = &self.p.lead;
                self.effects.push(Effect::Notify(LeadNotify {
                    profile_id: self.p.id.clone(),
                    owner: lead.owner.clone(),
                    trigger_id: t.id.clone(),
                    trigger_name: t.name.clone(),
                    reason: reason.clone(),
                    message: message.clone(),
                    stage: lead.stage.clone(),
                    at: self.r.ctx.now,
                }));
                json!({"type": "notify", "result": "sent", "owner": lead.owner.as_ref().map(|o| o.user_id.clone())})
            }
        }
    }

    fn trigger_move(&mut self, t: &Trigger, stage: &str) -> serde_json::Value {
        if self.p.lead.stage == stage {
            return json!({"type": "move_stage", "stage": stage, "result": "already_there"});
        }
        let ctx = self.r.ctx;
        let lead = self.p.lead.clone();
        let machine = &self.r.defs.machine;
        let v = LeadView {
            stage: &lead.stage,
            entered_at: lead.stage_entered_at,
            last_activity: lead.last_activity_at,
            facts: self.view(),
            ctx: &ctx,
        };
        match machine.check_manual(&v, stage) {
            Ok(()) => {
                let reason = format!("trigger `{}` fired", t.name);
                self.move_stage(stage, ActorKind::Trigger, &t.id, &reason);
                json!({"type": "move_stage", "stage": stage, "result": "moved"})
            }
            Err(r) => {
                json!({"type": "move_stage", "stage": stage, "result": "refused", "code": r.code, "message": r.message})
            }
        }
    }

    /// One automatic stage move, if one applies.
    fn auto_stage(&mut self) -> bool {
        let ctx = self.r.ctx;
        let lead = self.p.lead.clone();
        let left = self.p.left.clone();
        let machine = &self.r.defs.machine;
        let v = LeadView {
            stage: &lead.stage,
            entered_at: lead.stage_entered_at,
            last_activity: lead.last_activity_at,
            facts: self.view(),
            ctx: &ctx,
        };
        match machine.next_auto(&v, &left) {
            Some(m) => {
                self.move_stage(&m.to, ActorKind::Rule, &m.actor, &m.reason);
                true
            }
            None => false,
        }
    }

    fn move_stage(&mut self, to: &str, kind: ActorKind, actor: &str, reason: &str) {
        let from = std::mem::replace(&mut self.p.lead.stage, to.to_string());
        self.p.left.insert(from.clone());
        self.p.lead.stage_entered_at = self.r.ctx.now;
        self.p
            .entered
            .push((to.to_string(), History::Move(self.moves)));
        self.moves += 1;
        self.effects.push(Effect::Move {
            from,
            to: to.to_string(),
            kind,
            actor: actor.to_string(),
            reason: reason.to_string(),
        });
    }
}

#[cfg(test)]
mod tests;
