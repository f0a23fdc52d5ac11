//! The lead-stage machine: which moves are allowed (forward along the path by default, explicit
//! transitions otherwise), which automatic move applies now (a forward stage's entry condition,
//! an automatic transition's condition, inactivity or renewed activity), and when time alone could
//! make one apply (inactivity deadlines, time-driven conditions).

use platform::clock::{local_midnight, Tz};
use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rules::{EvalCtx, Expanded, ProfileFacts};

use super::defs::{MachineParts, MachineSpec, SlaSpec};

/// A stage, compiled.
#[derive(Debug, Clone)]
pub struct Stage {
    pub key: String,
    pub name: String,
    /// Position on the forward path; `None` for side stages.
    pub forward: Option<usize>,
    pub entry: Option<Expanded>,
    pub guard: Option<Expanded>,
    pub sla: Option<SlaSpec>,
}

/// An explicit transition, compiled.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: Vec<String>,
    pub to: String,
    pub manual: bool,
    pub auto: bool,
    pub condition: Option<Expanded>,
    pub inactive_days: Option<u32>,
    pub on_activity: bool,
}

impl Transition {
    fn leaves(&self, from: &str) -> bool {
        self.from.iter().any(|f| f == "*" || f == from)
    }
}

/// A tenant's machine, compiled.
#[derive(Debug, Clone)]
pub struct Machine {
    pub stages: Vec<Stage>,
    pub transitions: Vec<Transition>,
    pub forward_only: bool,
    pub initial: String,
    /// The spec it was compiled from (for the API).
    pub spec: MachineSpec,
}

/// Where an un-merge takes the survivor of the merge: back to `before`, the stage it was in when
/// the merge was applied, when only the machine (entry conditions, transitions, triggers) or the
/// merge itself moved it since — those moves may have come from the other person's facts, and the
/// stage machine moves it forward again from its own. A person's move since (`User`) stands.
/// `None` when it stays where it is.
pub fn stage_after_unmerge<'a>(
    before: &'a str,
    moves_since: &[Option<proto::scoring::ActorKind>],
    current: &str,
) -> Option<&'a str> {
    let by_hand = moves_since
        .iter()
        .any(|k| matches!(k, Some(proto::scoring::ActorKind::User) | None));
    (!by_hand && before != current).then_some(before)
}

/// Why a move is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `unknown_stage`, `same_stage`, `transition_not_allowed`, `guard_failed`.
    pub code: &'static str,
    pub message: String,
}

/// What the machine sees of a lead.
pub struct LeadView<'a> {
    pub stage: &'a str,
    pub entered_at: DateTime<Utc>,
    pub last_activity: Option<DateTime<Utc>>,
    pub facts: &'a ProfileFacts,
    pub ctx: &'a EvalCtx,
}

impl LeadView<'_> {
    fn holds(&self, c: &Option<Expanded>) -> bool {
        c.as_ref()
            .is_none_or(|c| rules::evaluate(c, self.facts, self.ctx))
    }

    /// Since when nothing happened: the later of the last activity and entering the stage.
    fn quiet_since(&self) -> DateTime<Utc> {
        self.last_activity
            .map_or(self.entered_at, |a| a.max(self.entered_at))
    }
}

/// An automatic move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoMove {
    pub to: String,
    /// `entry:<stage>` or `transition:<from>-><to>`.
    pub actor: String,
    pub reason: String,
}

impl Machine {
    /// Compiles a validated spec.
    pub fn new(spec: MachineSpec, parts: MachineParts) -> Self {
        let mut pos = 0;
        let stages: Vec<Stage> = spec
            .stages
            .iter()
            .zip(parts.stages)
            .map(|(s, (entry, guard))| Stage {
                key: s.key.clone(),
                name: s.name.clone(),
                forward: s.forward.then(|| {
                    pos += 1;
                    pos - 1
                }),
                entry,
                guard,
                sla: s.sla.clone(),
            })
            .collect();
        let initial = spec
            .stages
            .iter()
            .find(|s| s.initial)
            .or(spec.stages.first())
            .map(|s| s.key.clone())
            .unwrap_or_default();
        let transitions = spec
            .transitions
            .iter()
            .zip(parts.transitions)
            .map(|(t, condition)| Transition {
                from: t.from.clone(),
                to: t.to.clone(),
                manual: t.manual,
                auto: t.auto,
                condition,
                inactive_days: t.inactive_days,
                on_activity: t.on_activity,
            })
            .collect();
        Machine {
            stages,
            transitions,
            forward_only: spec.forward_only,
            initial,
            spec,
        }
    }

    /// The default machine, compiled.
    pub fn default_machine() -> Self {
        let spec = MachineSpec::default_machine();
        let parts = spec.check().unwrap_or(MachineParts {
            stages: vec![(None, None); spec.stages.len()],
            transitions: vec![None; spec.transitions.len()],
        });
        Machine::new(spec, parts)
    }

    pub fn stage(&self, key: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.key == key)
    }

    fn forward_of(&self, key: &str) -> Option<usize> {
        self.stage(key).and_then(|s| s.forward)
    }

    /// Is `from → to` allowed for a rep (regardless of guards)?
    pub fn manual_allowed(&self, from: &str, to: &str) -> bool {
        if from == to || self.stage(to).is_none() {
            return false;
        }
        if self
            .transitions
            .iter()
            .any(|t| t.manual && t.to == to && t.leaves(from))
        {
            return true;
        }
        match (self.forward_of(from), self.forward_of(to)) {
            (Some(a), Some(b)) => b > a || !self.forward_only,
            // A lead in a stage the machine no longer has may be put anywhere on the path.
            (None, Some(_)) => self.stage(from).is_none(),
            _ => false,
        }
    }

    /// Stages a rep may move a lead in `from` to.
    pub fn manual_targets(&self, from: &str) -> Vec<String> {
        self.stages
            .iter()
            .filter(|s| self.manual_allowed(from, &s.key))
            .map(|s| s.key.clone())
            .collect()
    }

    /// Checks a manual move of the lead `v` to `to`.
    pub fn check_manual(&self, v: &LeadView<'_>, to: &str) -> Result<(), Refusal> {
        let from = v.stage;
        let Some(target) = self.stage(to) else {
            return Err(Refusal {
                code: "unknown_stage",
                message: format!("the stage machine has no stage `{to}`"),
            });
        };
        if from == to {
            return Err(Refusal {
                code: "same_stage",
                message: format!("the lead is in `{to}` already"),
            });
        }
        if !self.manual_allowed(from, to) {
            let backwards = matches!(
                (self.forward_of(from), self.forward_of(to)),
                (Some(a), Some(b)) if b < a
            );
            let message = if backwards {
                format!(
                    "moving from `{from}` back to `{to}` is not allowed: stages move forward only and no transition leads from `{from}` to `{to}`"
                )
            } else {
                format!("no transition leads from `{from}` to `{to}`")
            };
            return Err(Refusal {
                code: "transition_not_allowed",
                message,
            });
        }
        if !v.holds(&target.guard) {
            return Err(Refusal {
                code: "guard_failed",
                message: format!("the lead does not meet the guard condition of `{to}`"),
            });
        }
        Ok(())
    }

    /// The automatic move that applies now, if any: the furthest forward stage whose entry
    /// condition the lead matches, else the first automatic transition whose conditions hold.
    /// Stages in `skip` (left during this evaluation) are not entered again.
    pub fn next_auto(&self, v: &LeadView<'_>, skip: &BTreeSet<String>) -> Option<AutoMove> {
        if let Some(i) = self.forward_of(v.stage) {
            let ahead = self
                .stages
                .iter()
                .filter(|s| s.forward.is_some_and(|j| j > i))
                .rev();
            for s in ahead {
                if s.entry.is_some()
                    && v.holds(&s.entry)
                    && v.holds(&s.guard)
                    && !skip.contains(&s.key)
                {
                    return Some(AutoMove {
                        to: s.key.clone(),
                        actor: format!("entry:{}", s.key),
                        reason: format!("matches the entry condition of `{}`", s.key),
                    });
                }
            }
        }
        for t in self
            .transitions
            .iter()
            .filter(|t| t.auto && t.leaves(v.stage))
        {
            let Some(target) = self.stage(&t.to) else {
                continue;
            };
            if t.to == v.stage || skip.contains(&t.to) {
                continue;
            }
            let mut why = Vec::new();
            if let Some(d) = t.inactive_days {
                if v.ctx.now - v.quiet_since() < Duration::days(i64::from(d)) {
                    continue;
                }
                why.push(format!("no activity for {d} days"));
            }
            if t.on_activity {
                if v.last_activity.is_none_or(|a| a < v.entered_at) {
                    continue;
                }
                why.push("active again".to_string());
            }
            if t.condition.is_some() {
                if !v.holds(&t.condition) {
                    continue;
                }
                why.push("matches the transition's condition".to_string());
            }
            if target.entry.is_some() {
                if !v.holds(&target.entry) {
                    continue;
                }
                why.push(format!("matches the entry condition of `{}`", t.to));
            }
            if !v.holds(&target.guard) {
                continue;
            }
            return Some(AutoMove {
                to: t.to.clone(),
                actor: format!("transition:{}->{}", v.stage, t.to),
                reason: why.join("; "),
            });
        }
        None
    }

    /// When passing time alone could make an automatic move apply: an inactivity deadline, or
    /// the day a time-driven condition can change (local midnight in `zone`).
    pub fn next_time_check(&self, v: &LeadView<'_>, zone: Tz) -> Option<DateTime<Utc>> {
        let mut due: Option<DateTime<Utc>> = None;
        let mut at = |t: DateTime<Utc>| due = Some(due.map_or(t, |d| d.min(t)));
        let day_start = |d: NaiveDate| Some(local_midnight(d, zone));
        let mut conds: Vec<&Expanded> = Vec::new();
        if let Some(i) = self.forward_of(v.stage) {
            for s in self
                .stages
                .iter()
                .filter(|s| s.forward.is_some_and(|j| j > i))
            {
                conds.extend(s.entry.iter());
            }
        }
        for t in self
            .transitions
            .iter()
            .filter(|t| t.auto && t.leaves(v.stage))
        {
            if let Some(d) = t.inactive_days {
                let deadline = v.quiet_since() + Duration::days(i64::from(d));
                if deadline > v.ctx.now {
                    at(deadline);
                }
            }
            conds.extend(t.condition.iter());
            if let Some(s) = self.stage(&t.to) {
                conds.extend(s.entry.iter());
            }
        }
        for c in conds {
            if !c.dependencies().time_driven() {
                continue;
            }
            if let Some(day) = rules::next_expiry(c, v.facts, v.ctx) {
                match day_start(day).filter(|t| *t > v.ctx.now) {
                    Some(t) => at(t),
                    // A datetime comparison may flip today: look again in an hour.
                    None => at(v.ctx.now + Duration::hours(1)),
                }
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine(entry_mql: serde_json::Value) -> Machine {
        let mut spec = MachineSpec::default_machine();
        spec.stages[1].entry = Some(json!({"version": 1, "root": entry_mql}));
        spec.stages[2].guard = Some(
            json!({"version": 1, "root": {"type": "tag", "op": "has", "tags": ["qualified"]}}),
        );
        let parts = spec.check().unwrap();
        Machine::new(spec, parts)
    }

    fn now() -> DateTime<Utc> {
        "2026-03-01T00:00:00Z".parse().unwrap()
    }

    fn view<'a>(
        stage: &'a str,
        facts: &'a ProfileFacts,
        ctx: &'a EvalCtx,
        last: Option<DateTime<Utc>>,
    ) -> LeadView<'a> {
        LeadView {
            stage,
            entered_at: now() - Duration::days(90),
            last_activity: last,
            facts,
            ctx,
        }
    }

    #[test]
    fn manual_moves_go_forward_or_through_transitions() {
        let m = machine(
            json!({"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte", "value": 50}),
        );
        let f = ProfileFacts::new("p");
        let ctx = EvalCtx {
            now: now(),
            today: now().date_naive(),
        };
        let v = view("mql", &f, &ctx, None);
        let e = m.check_manual(&v, "new").unwrap_err();
        assert_eq!(e.code, "transition_not_allowed");
        assert!(e.message.contains("forward only"), "{}", e.message);
        assert_eq!(m.check_manual(&v, "sql").unwrap_err().code, "guard_failed");
        assert!(m.check_manual(&v, "opportunity").is_ok());
        assert!(m.check_manual(&v, "lost").is_ok());
        assert_eq!(m.check_manual(&v, "mql").unwrap_err().code, "same_stage");
        assert_eq!(m.check_manual(&v, "won").unwrap_err().code, "unknown_stage");
        assert_eq!(
            m.manual_targets("lost"),
            vec!["new".to_string(), "recycled".to_string()]
        );
    }

    #[test]
    fn automatic_moves_entry_inactivity_and_reengagement() {
        let m = machine(
            json!({"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte", "value": 50}),
        );
        let mut f = ProfileFacts::new("p");
        f.set_property("score.engagement", vec![rules::FactValue::Num(60.0)]);
        let ctx = EvalCtx {
            now: now(),
            today: now().date_naive(),
        };
        let skip = BTreeSet::new();
        let v = view("new", &f, &ctx, Some(now()));
        assert_eq!(m.next_auto(&v, &skip).unwrap().to, "mql");
        // In mql, quiet for 70 days: recycled.
        let quiet = view("mql", &f, &ctx, Some(now() - Duration::days(70)));
        let mv = m.next_auto(&quiet, &skip).unwrap();
        assert_eq!(
            (mv.to.as_str(), mv.actor.as_str()),
            ("recycled", "transition:mql->recycled")
        );
        // Quiet for 30 days: due in 30 more.
        let half = view("mql", &f, &ctx, Some(now() - Duration::days(30)));
        assert!(m.next_auto(&half, &skip).is_none());
        assert_eq!(
            m.next_time_check(&half, chrono_tz::Asia::Shanghai),
            Some(now() + Duration::days(30))
        );
        // Recycled and active again with a high score: back to mql.
        let back = LeadView {
            entered_at: now() - Duration::days(5),
            ..view("recycled", &f, &ctx, Some(now()))
        };
        assert_eq!(m.next_auto(&back, &skip).unwrap().to, "mql");
        let mut left = BTreeSet::new();
        left.insert("mql".to_string());
        assert!(
            m.next_auto(&back, &left).is_none(),
            "no ping-pong within one evaluation"
        );
    }
}
