//! The changes to one locked profile inside one transaction, and their consequences settled to a
//! fixed point: state rules hold or release their points, score triggers fire on crossings, the
//! lead moves through stages (entry conditions, automatic transitions, trigger actions), entered
//! stages fire their triggers — then the folds, the lead row and the trigger states are written
//! and `lead.score_changed` / `lead.stage_changed` / `lead.notify` / tag commands go to the
//! outbox, all in the same transaction (`publish`: how they are enqueued).
//!
//! Here: the work itself, what it opens with and the change's own writes (ledger entries, folds
//! rebuilt). The consequences are settled as load → decide → write (`settle`): everything the
//! decision can read is loaded, [`crate::domain::settle::decide`] settles the fixed point without
//! I/O, and its effects are written in the order decided. `triggers` reads trigger states and
//! recorded firings and writes a firing; `stages` writes stage moves with their history, SLAs and
//! events (the change's own moves as well as decided ones); `finish` writes what the work
//! changed and when the lead is looked at next.

mod finish;
mod publish;
mod settle;
mod stages;
mod triggers;

use platform::clock::Tz;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use proto::scoring::ScoreCause;
use proto::Envelope;
use rules::{EvalCtx, ProfileFacts};
use sea_orm::{DatabaseTransaction, DbErr};

use super::leads::Lead;
use super::ledger::{self, NewEntry};
use super::scores;
use crate::domain::compiled::Compiled;
use crate::domain::decay::Fold;
use crate::domain::settle::History;
use crate::domain::triggers::TrigState;
use crate::domain::view::{self, LeadProps};

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

/// One profile's changes in one transaction.
pub struct Work<'a> {
    pub txn: &'a DatabaseTransaction,
    pub defs: &'a Compiled,
    pub tenant: String,
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
    pub zone: Tz,
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
    entered: Vec<(String, History)>,
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
        zone: Tz,
        cause: Cause,
        max_rounds: u32,
    ) -> Result<Work<'a>, DbErr> {
        let tenant = lead.tenant.clone();
        let stored = scores::load(txn, &tenant, &lead.profile).await?;
        let n = defs.models.len();
        let mut w = Work {
            txn,
            defs,
            today: facts::local_day(now, zone),
            tenant,
            now,
            zone,
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
        if !self.write_entry(model, &e).await? {
            return Ok(false);
        }
        let decay = &self.defs.models[model].decay;
        self.folds[model].add(decay, &e.worth());
        Ok(true)
    }

    /// Writes a ledger entry whose points its model's fold has already (or will not have:
    /// `false` when its key exists), and notes what changed the model.
    async fn write_entry(&mut self, model: usize, e: &NewEntry) -> Result<bool, DbErr> {
        if !ledger::insert(self.txn, &self.tenant, &self.lead.profile, e, self.now).await? {
            return Ok(false);
        }
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
}
