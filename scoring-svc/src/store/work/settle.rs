//! Settling a [`Work`]'s consequences as load → decide → write: everything the decision can
//! read is loaded first (the facts the tenant's conditions read, the points state rules hold, the
//! score triggers' states and the firing keys recorded for the profile — besides the folds and
//! the lead the work holds), [`decide`] settles the fixed point once without I/O, and its effects
//! are written in the order decided, so ledger ids, history ids and outbox ids come out as they
//! would one by one.
//!
//! Why loading once is enough: the work holds the lead row's lock and reads under READ COMMITTED
//! (SQLite serialises writers), so what it loads is what the last holder of the lock committed,
//! and nothing else writes this profile's ledger, trigger states or firings until it commits —
//! whether a score trigger's firing key is new is known before deciding, not learnt from the
//! unique key on insert.
//!
//! What still meets the database mid-way: a stage the decision enters gets its history entry's
//! id only when written, and its triggers' firings are keyed by that id. The decision takes such
//! a key as new (the entry is created in this transaction); only a trigger redefined from a score
//! trigger into a stage trigger can have a recorded firing numbered like a new history entry, and
//! then that firing's row is not written a second time while its decided actions are (see
//! `triggers`).

use std::mem;

use rules::ProfileFacts;
use sea_orm::DbErr;

use crate::domain::settle::{decide, Effect, History, LeadState, Profile, Rules, Seq};
use crate::domain::triggers::On;
use crate::store::ledger::{self, NewEntry};

use super::Work;

impl Work<'_> {
    /// Settles consequences until nothing changes (or the round limit).
    pub async fn settle(&mut self) -> Result<(), DbErr> {
        let mut p = self.load().await?;
        let rules = Rules {
            defs: self.defs,
            ctx: self.ctx(),
            max_rounds: self.max_rounds,
            fire_triggers: self.fire_triggers,
            force_state: self.force_state,
        };
        let d = decide(&rules, &mut p);
        if d.cut {
            tracing::warn!(profile_id = %self.lead.profile, rounds = self.max_rounds, "Consequences still changing after the last round; stopping");
        }
        self.folds = p.folds;
        self.facts = p.facts;
        self.held = p.held;
        self.trig = p.triggers;
        self.left = p.left;
        let moves = self.write(d.effects).await?;
        debug_assert_eq!(self.lead.stage, p.lead.stage);
        // Stages entered in the last round of a cut settle, as written.
        for (stage, h) in p.entered {
            let h = match h {
                History::Move(k) => History::Stored(hid(&moves, k)?),
                stored => stored,
            };
            self.entered.push((stage, h));
        }
        Ok(())
    }

    /// What the decision reads; the work's folds, facts, held points, trigger states and stages
    /// entered and left move into it (and back after the decision).
    async fn load(&mut self) -> Result<Profile, DbErr> {
        let defs = self.defs;
        self.ensure_facts().await?;
        if self.held.is_none() && (!defs.state_rules.is_empty() || self.force_state) {
            self.held = Some(ledger::held(self.txn, &self.tenant, &self.lead.profile).await?);
        }
        if defs
            .triggers
            .iter()
            .any(|t| matches!(t.on, On::Score { .. }))
        {
            self.trigger_states().await?;
        }
        let recorded = if self.fire_triggers {
            self.recorded_firings().await?
        } else {
            Default::default()
        };
        let empty = ProfileFacts::new(self.lead.profile.clone());
        Ok(Profile {
            id: self.lead.profile.clone(),
            lead: self.lead_state(),
            folds: mem::take(&mut self.folds),
            before: self.before.clone(),
            facts: mem::replace(&mut self.facts, empty),
            held: self.held.take(),
            triggers: self.trig.take(),
            recorded,
            entered: mem::take(&mut self.entered),
            left: mem::take(&mut self.left),
        })
    }

    /// The lead as the decisions read it.
    pub(super) fn lead_state(&self) -> LeadState {
        LeadState {
            stage: self.lead.stage.clone(),
            stage_entered_at: self.lead.stage_entered_at,
            last_activity_at: self.lead.last_activity_at,
            owner: self.lead.owner.clone(),
        }
    }

    /// Writes the decided effects in their order; returns the history entries of the moves.
    async fn write(&mut self, effects: Vec<Effect>) -> Result<Vec<i64>, DbErr> {
        let defs = self.defs;
        let mut moves: Vec<i64> = Vec::new();
        for e in effects {
            match e {
                Effect::Hold {
                    model,
                    model_id,
                    rule_id,
                    points,
                    delta,
                    note,
                } => {
                    let e = NewEntry {
                        model_id,
                        rule_id,
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
                    // A fresh key: never there already.
                    self.write_entry(model, &e).await?;
                }
                Effect::Fire {
                    trigger,
                    seq,
                    kind,
                    value,
                    stage,
                    results,
                } => {
                    let seq = match seq {
                        Seq::Count(n) | Seq::Entered(History::Stored(n)) => n,
                        Seq::Entered(History::Move(k)) => hid(&moves, k)?,
                    };
                    let t = &defs.triggers[trigger];
                    self.record_firing(t, seq, kind, value, stage, results)
                        .await?;
                }
                Effect::Move {
                    from,
                    to,
                    kind,
                    actor,
                    reason,
                } => {
                    let hid = self.leave_for(&from, &to, kind, &actor, &reason).await?;
                    moves.push(hid);
                }
                Effect::Tag { add, cmd } => self.command(add, &cmd).await?,
                Effect::Notify(n) => self.publish(&n).await?,
            }
        }
        Ok(moves)
    }
}

/// The history entry written for the `k`-th decided move.
fn hid(moves: &[i64], k: usize) -> Result<i64, DbErr> {
    moves
        .get(k)
        .copied()
        .ok_or_else(|| DbErr::Custom(format!("stage move {k} was not written")))
}
