//! A profile's events replayed through a rule set, in the order they happened: what each event
//! rule awards under its caps, and what each state rule holds now. Dry runs show it before a
//! rule set is saved; recompute jobs write it after a model changed. Conditions are evaluated on
//! the profile's facts as they are now (the projection keeps no history of properties and tags).

use chrono::{DateTime, Utc};
use platform::clock::Tz;
use rules::{EvalCtx, EventFact, ProfileFacts};

use super::compiled::Compiled;
use super::defs::RuleKind;
use super::points::{award, Prior};
use super::view::event_view;

/// One event of the profile with the instant it happened.
#[derive(Debug, Clone)]
pub struct ReplayEvent {
    pub event: EventFact,
    pub earned: DateTime<Utc>,
}

/// A ledger entry the replay would write.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub kind: RuleKind,
    pub rule_id: String,
    pub rule_name: String,
    pub model: usize,
    /// The event id (event rules); empty for state rules.
    pub source_key: String,
    pub event_kind: Option<String>,
    pub points: f64,
    pub delta: f64,
    pub capped: Option<&'static str>,
    pub earned: DateTime<Utc>,
}

/// Does event rule `r` of `c` score `ev` for a profile with `facts`?
pub fn rule_matches(
    filter: Option<&rules::Expanded>,
    condition: Option<&rules::Expanded>,
    ev_view: &ProfileFacts,
    facts: &ProfileFacts,
    ctx: &EvalCtx,
) -> bool {
    filter.is_none_or(|f| rules::evaluate(f, ev_view, ctx))
        && condition.is_none_or(|c| rules::evaluate(c, facts, ctx))
}

/// Replays `events` (any order; sorted here by time, then id) through the rules of `c` (only
/// model `only` when given).
pub fn replay(
    c: &Compiled,
    only: Option<usize>,
    events: &[ReplayEvent],
    facts: &ProfileFacts,
    ctx: &EvalCtx,
    zone: Tz,
) -> Vec<Planned> {
    let mut order: Vec<&ReplayEvent> = events.iter().collect();
    order.sort_by(|a, b| (a.earned, &a.event.event_id).cmp(&(b.earned, &b.event.event_id)));
    let mut out: Vec<Planned> = Vec::new();
    let wanted = |m: usize| only.is_none_or(|o| o == m);
    for e in order {
        let view = event_view(&e.event);
        for r in c.rules_for_event(&e.event.kind).filter(|r| wanted(r.model)) {
            if !rule_matches(r.filter.as_ref(), r.condition.as_ref(), &view, facts, ctx) {
                continue;
            }
            let prior: Vec<Prior> = out
                .iter()
                .filter(|p| p.rule_id == r.id)
                .map(|p| Prior {
                    delta: p.delta,
                    earned: p.earned,
                })
                .collect();
            let a = award(r.points, &r.caps, &prior, e.earned, zone);
            out.push(Planned {
                kind: RuleKind::Event,
                rule_id: r.id.clone(),
                rule_name: r.name.clone(),
                model: r.model,
                source_key: e.event.event_id.clone(),
                event_kind: Some(e.event.kind.clone()),
                points: r.points,
                delta: a.delta,
                capped: a.capped,
                earned: e.earned,
            });
        }
    }
    for r in c.state_rules.iter().filter(|r| wanted(r.model)) {
        if rules::evaluate(&r.condition, facts, ctx) {
            out.push(Planned {
                kind: RuleKind::State,
                rule_id: r.id.clone(),
                rule_name: r.name.clone(),
                model: r.model,
                source_key: String::new(),
                event_kind: None,
                points: r.points,
                delta: r.points,
                capped: None,
                earned: ctx.now,
            });
        }
    }
    out
}
