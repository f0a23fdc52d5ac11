//! Rule settling for one profile, decided without I/O. A round evaluates its candidate rules on
//! the profile's facts as they stood when it began; each rule that matches adds its reason
//! (`rule`, its id) to its tag, one that does not takes its reason back in `add_remove` mode only
//! ([`action`]); a windowed or time-relative rule also gets the time its result must be looked at
//! again ([`Schedule`]). The rules reading a tag the round changed are the next round's
//! candidates, on facts whose tags carry the changes; rounds stop when nothing changes or at the
//! bound (the chain is cut).
//!
//! The whole fixed point is decided in memory: the profile's memberships are followed by
//! [`Holdings`] exactly as the store keeps them (several reasons per tag, single-select groups,
//! retired tags), so the store writes once, at the end, what the [`Decision`] holds. Facts other
//! than tags do not change while settling; the store loads what each round's rules read
//! ([`Settling::next_round`] names them) before letting it decide ([`Settling::round`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use proto::tagging::TagChange;
use rules::ProfileFacts;

use super::holdings::{Holdings, TagSetChange};
use super::{At, Mode, RuleEntry, RuleSet};
use crate::clock::due_at;

/// What a rule does to its membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Adds its reason.
    Add,
    /// Takes its reason back.
    Remove,
}

/// What a rule does to a profile's membership: a match adds its reason, a non-match takes it
/// back in `add_remove` mode and does nothing in `add_only` mode. (Adding a reason that is there
/// already, or taking back one that is not, changes nothing.)
pub fn action(mode: Mode, matched: bool) -> Option<Action> {
    match (matched, mode) {
        (true, _) => Some(Action::Add),
        (false, Mode::AddRemove) => Some(Action::Remove),
        (false, Mode::AddOnly) => None,
    }
}

/// The profiles of a batch whose membership a rule changes: those to add its reason to (they
/// `matched` and it is not `held` for them) and those to take it back from, each in id order.
pub fn batch(
    mode: Mode,
    matched: &BTreeSet<String>,
    held: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for p in matched.union(held) {
        match (action(mode, matched.contains(p)), held.contains(p)) {
            (Some(Action::Add), false) => add.push(p.clone()),
            (Some(Action::Remove), true) => remove.push(p.clone()),
            _ => {}
        }
    }
    (add, remove)
}

/// When a rule's result must be looked at again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Neither windowed nor time-relative: its schedule is left as it is.
    Untouched,
    /// It may change by then without a new event.
    At(DateTime<Utc>),
    /// Nothing but a new event changes it: no schedule.
    Clear,
}

/// One evaluation of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub rule_id: String,
    pub tag_id: String,
    pub matched: bool,
    /// What to write ([`action`]); `None` also when the tag is retired or unknown.
    pub action: Option<Action>,
    /// The changes of the tag set the action makes, in the order the store makes them (none
    /// when the reason is there already / not there, or the tag held for another reason).
    pub changes: Vec<TagSetChange>,
    pub schedule: Schedule,
}

/// What settling decided, in the order it decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdicts: Vec<Verdict>,
    pub rounds: u32,
    /// The bound was reached with rules still to evaluate.
    pub cut: bool,
}

/// Settling in progress, round by round.
#[derive(Debug)]
pub struct Settling {
    holdings: Holdings,
    /// Tag → held, for every tag whose holding a decided round changed (the last change wins).
    tags: BTreeMap<String, bool>,
    candidates: Vec<Arc<RuleEntry>>,
    round: u32,
    max_rounds: u32,
    settled: bool,
    verdicts: Vec<Verdict>,
}

impl Settling {
    /// Starts with the rules the change may affect, on the profile's memberships as loaded.
    pub fn new(candidates: Vec<Arc<RuleEntry>>, holdings: Holdings, max_rounds: u32) -> Self {
        Settling {
            holdings,
            tags: BTreeMap::new(),
            candidates,
            round: 0,
            max_rounds,
            settled: false,
            verdicts: Vec::new(),
        }
    }

    /// The rules the next round evaluates; `None` once settled or at the bound.
    pub fn next_round(&self) -> Option<&[Arc<RuleEntry>]> {
        (!self.settled && !self.candidates.is_empty() && self.round < self.max_rounds)
            .then_some(self.candidates.as_slice())
    }

    /// Decides the next round on `facts` (as loaded: the tag changes of earlier rounds are
    /// applied to them here).
    pub fn round(&mut self, rules: &dyn RuleSet, facts: &mut ProfileFacts, at: &At) {
        for (tag, held) in &self.tags {
            if *held {
                facts.tags.insert(tag.clone());
            } else {
                facts.tags.remove(tag);
            }
        }
        self.round += 1;
        let mut changed = BTreeSet::new();
        for rule in &self.candidates {
            let Some(v) = verdict(rule, rules, facts, &mut self.holdings, at) else {
                continue;
            };
            for (tag, change) in &v.changes {
                changed.insert(tag.clone());
                self.tags.insert(tag.clone(), *change == TagChange::Added);
            }
            self.verdicts.push(v);
        }
        if changed.is_empty() {
            self.settled = true;
        } else {
            self.candidates = rules.reading_tags(&changed);
        }
    }

    /// What was decided.
    pub fn finish(self) -> Decision {
        Decision {
            cut: self.round == self.max_rounds && !self.candidates.is_empty(),
            rounds: self.round,
            verdicts: self.verdicts,
        }
    }
}

/// Settles in memory when every fact the rules read is at hand.
pub fn decide(
    rules: &dyn RuleSet,
    candidates: Vec<Arc<RuleEntry>>,
    holdings: Holdings,
    facts: &mut ProfileFacts,
    max_rounds: u32,
    at: &At,
) -> Decision {
    let mut s = Settling::new(candidates, holdings, max_rounds);
    while s.next_round().is_some() {
        s.round(rules, facts, at);
    }
    s.finish()
}

/// Evaluates one rule (`None`: its condition no longer expands, nothing is evaluated).
fn verdict(
    rule: &RuleEntry,
    rules: &dyn RuleSet,
    facts: &ProfileFacts,
    holdings: &mut Holdings,
    at: &At,
) -> Option<Verdict> {
    let cond = rule.expanded.as_ref()?;
    let ctx = at.eval();
    let matched = rules::evaluate(cond, facts, &ctx);
    let (mut act, mut changes) = (None, Vec::new());
    if let Some(tag) = rules.tag(&rule.tag_id) {
        act = action(rule.mode, matched);
        match act {
            Some(Action::Add) if !tag.active => act = None,
            Some(Action::Add) => changes = holdings.add_rule(&tag, &rule.id),
            Some(Action::Remove) => changes = holdings.remove_rule(&tag.id, &rule.id),
            None => {}
        }
    }
    let schedule = schedule(rule, facts, at);
    Some(Verdict {
        rule_id: rule.id.clone(),
        tag_id: rule.tag_id.clone(),
        matched,
        action: act,
        changes,
        schedule,
    })
}

/// When the entry's result for the profile must be looked at again.
pub(crate) fn schedule(rule: &RuleEntry, facts: &ProfileFacts, at: &At) -> Schedule {
    match &rule.expanded {
        Some(cond) if rule.timed() => match rules::next_expiry(cond, facts, &at.eval()) {
            Some(day) => Schedule::At(due_at(day, at.today, at.now, at.zone)),
            None => Schedule::Clear,
        },
        _ => Schedule::Untouched,
    }
}

#[cfg(test)]
mod tests;
