//! The stage machine: stages (with entry conditions, guards and SLAs), transitions, the default
//! machine, and the check that compiles every condition and names the node at fault.

use rules::Expanded;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{condition, name_ok, valid_key, yes};
use crate::domain::{join, DefError};

/// An SLA on a stage: the owner must contact the lead within `hours` of its entering the stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaSpec {
    pub hours: u32,
    /// Behaviour kinds that count as contact (e.g. `wecom.external_contact.add_external_contact`,
    /// `wecom.message.text`); a rep can also mark the lead contacted through the API.
    #[serde(default)]
    pub met_by: Vec<String>,
}

/// A stage of the lead-stage machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// `[a-z][a-z0-9_]*`, unique in the machine.
    pub key: String,
    pub name: String,
    /// On the forward path (new → … → customer), ordered as listed; side stages (lost,
    /// recycled) are reached only through explicit transitions.
    #[serde(default = "yes")]
    pub forward: bool,
    /// Where new leads start (default: the first stage).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initial: bool,
    /// Leads enter automatically when they match it (forward stages from an earlier one, or
    /// through an automatic transition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Value>,
    /// Must hold for any entry, automatic or manual (a manual move is refused with its reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaSpec>,
}

/// An explicit transition (regressions, side stages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionSpec {
    /// Stage keys it leaves from; `["*"]` for any.
    pub from: Vec<String>,
    pub to: String,
    /// A rep or operator may take it.
    #[serde(default = "yes")]
    pub manual: bool,
    /// Taken automatically when its conditions hold (`condition`, `inactive_days`,
    /// `on_activity`, and the target's `entry`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
    /// No behaviour for this many days since the later of the last activity and entering the
    /// current stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_days: Option<u32>,
    /// Only after behaviour since entering the current stage (a recycled lead re-engaging).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_activity: bool,
}

/// A tenant's lead-stage machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    pub stages: Vec<StageSpec>,
    #[serde(default)]
    pub transitions: Vec<TransitionSpec>,
    /// Leads move only forward along the path unless a transition allows otherwise; `false`
    /// lets reps move leads back along the path by hand too.
    #[serde(default = "yes")]
    pub forward_only: bool,
}

/// The parts of a machine, compiled.
#[derive(Debug, Clone)]
pub struct MachineParts {
    /// Per stage: (entry, guard).
    pub stages: Vec<(Option<Expanded>, Option<Expanded>)>,
    pub transitions: Vec<Option<Expanded>>,
}

impl MachineSpec {
    /// new → mql → sql → opportunity → customer, plus lost (any stage, by hand) and recycled
    /// (after 60 days without activity in mql/sql/lost; back to mql when the lead is active
    /// again). Entry conditions are the tenant's to set: a default cannot know its models.
    pub fn default_machine() -> Self {
        let stage = |key: &str, name: &str, forward: bool| StageSpec {
            key: key.into(),
            name: name.into(),
            forward,
            initial: key == "new",
            entry: None,
            guard: None,
            sla: None,
        };
        let t = |from: &[&str], to: &str, auto: bool| TransitionSpec {
            from: from.iter().map(|s| s.to_string()).collect(),
            to: to.into(),
            manual: true,
            auto,
            condition: None,
            inactive_days: None,
            on_activity: false,
        };
        MachineSpec {
            stages: vec![
                stage("new", "New", true),
                stage("mql", "Marketing qualified", true),
                stage("sql", "Sales qualified", true),
                stage("opportunity", "Opportunity", true),
                stage("customer", "Customer", true),
                stage("lost", "Lost", false),
                stage("recycled", "Recycled", false),
            ],
            transitions: vec![
                t(&["*"], "lost", false),
                TransitionSpec {
                    inactive_days: Some(60),
                    ..t(&["mql", "sql", "lost"], "recycled", true)
                },
                TransitionSpec {
                    on_activity: true,
                    ..t(&["recycled"], "mql", true)
                },
                t(&["recycled", "lost"], "new", false),
            ],
            forward_only: true,
        }
    }

    /// Validates; on success the compiled conditions.
    pub fn check(&self) -> Result<MachineParts, Vec<DefError>> {
        let mut e = Vec::new();
        if self.stages.is_empty() || self.stages.len() > 50 {
            e.push(DefError::new(
                "stages",
                "out_of_range",
                "a machine has 1..=50 stages",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut parts = MachineParts {
            stages: Vec::new(),
            transitions: Vec::new(),
        };
        for (i, s) in self.stages.iter().enumerate() {
            let p = format!("stages[{i}]");
            if !valid_key(&s.key) {
                e.push(DefError::new(
                    join(&p, "key"),
                    "invalid_key",
                    "must be [a-z][a-z0-9_]*, at most 64 characters",
                ));
            } else if !seen.insert(s.key.as_str()) {
                e.push(DefError::new(
                    join(&p, "key"),
                    "duplicate_key",
                    format!("stage `{}` is listed twice", s.key),
                ));
            }
            name_ok(&join(&p, "name"), &s.name, &mut e);
            if let Some(sla) = &s.sla {
                if !(1..=24 * 365).contains(&sla.hours) {
                    e.push(DefError::new(
                        join(&p, "sla.hours"),
                        "out_of_range",
                        "must be 1..=8760",
                    ));
                }
                for (j, k) in sla.met_by.iter().enumerate() {
                    if !rules::valid_key(k) {
                        e.push(DefError::new(
                            format!("{p}.sla.met_by[{j}]"),
                            "invalid_key",
                            "must be an event kind such as `wecom.message.text`",
                        ));
                    }
                }
            }
            let entry = s
                .entry
                .as_ref()
                .and_then(|c| condition(c, &join(&p, "entry"), &mut e));
            let guard = s
                .guard
                .as_ref()
                .and_then(|c| condition(c, &join(&p, "guard"), &mut e));
            parts.stages.push((entry, guard));
        }
        if self.stages.iter().filter(|s| s.initial).count() > 1 {
            e.push(DefError::new(
                "stages",
                "several_initial",
                "at most one stage is `initial`",
            ));
        }
        let known = |k: &str| self.stages.iter().any(|s| s.key == k);
        for (i, t) in self.transitions.iter().enumerate() {
            let p = format!("transitions[{i}]");
            if t.from.is_empty() {
                e.push(DefError::new(
                    join(&p, "from"),
                    "missing_field",
                    "name the stages it leaves from, or `*`",
                ));
            }
            for (j, f) in t.from.iter().enumerate() {
                if f != "*" && !known(f) {
                    e.push(DefError::new(
                        format!("{p}.from[{j}]"),
                        "unknown_stage",
                        format!("no stage `{f}`"),
                    ));
                }
            }
            if !known(&t.to) {
                e.push(DefError::new(
                    join(&p, "to"),
                    "unknown_stage",
                    format!("no stage `{}`", t.to),
                ));
            }
            if !t.manual && !t.auto {
                e.push(DefError::new(
                    join(&p, "auto"),
                    "unreachable",
                    "a transition is manual, automatic or both",
                ));
            }
            if t.inactive_days.is_some_and(|d| !(1..=3650).contains(&d)) {
                e.push(DefError::new(
                    join(&p, "inactive_days"),
                    "out_of_range",
                    "must be 1..=3650",
                ));
            }
            let target_entry = self
                .stages
                .iter()
                .find(|s| s.key == t.to)
                .is_some_and(|s| s.entry.is_some());
            if t.auto
                && t.condition.is_none()
                && t.inactive_days.is_none()
                && !t.on_activity
                && !target_entry
            {
                e.push(DefError::new(
                    join(&p, "auto"),
                    "missing_condition",
                    "an automatic transition needs a condition, inactive_days, on_activity or a target with an entry condition",
                ));
            }
            let c = t
                .condition
                .as_ref()
                .and_then(|c| condition(c, &join(&p, "condition"), &mut e));
            parts.transitions.push(c);
        }
        if e.is_empty() {
            Ok(parts)
        } else {
            Err(e)
        }
    }
}
