//! What operators define, as the API takes and stores it: score models (dimensions) with their
//! decay, point and state rules with caps, the stage machine, and threshold triggers — with
//! validation whose errors name the field or the condition node at fault.
//!
//! Conditions (a rule's `condition`, a stage's `entry` and `guard`, a transition's `condition`, a
//! trigger's `condition`) are documents of the `rules` crate's language. Besides the profile's
//! properties, tags, behaviour and WeChat state they can read:
//! - `score.<model>` (number): the profile's current score in that dimension;
//! - `lead.stage` (string), `lead.stage_entered_at` and `lead.last_activity_at` (datetimes),
//!   `lead.owner` (string, the owning rep's userid).

use proto::condition::ConditionDoc;
use rules::{Expanded, Limits, NoRules};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::decay::Decay;
use super::{join, DefError};

/// Longest name of a model, rule, stage or trigger, in characters.
pub const MAX_NAME: usize = 128;
/// Largest |points| of a rule.
pub const MAX_POINTS: f64 = 1_000_000.0;

fn yes() -> bool {
    true
}

/// Is `k` a key of a model or stage: `[a-z][a-z0-9_]*`, at most 64 bytes?
pub fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn name_ok(path: &str, name: &str, errors: &mut Vec<DefError>) {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        errors.push(DefError::new(
            path,
            "invalid_name",
            format!("must be 1..={MAX_NAME} characters without control characters"),
        ));
    }
}

/// Parses a typed spec from JSON; a shape error names the field.
pub fn from_json<T: serde::de::DeserializeOwned>(
    v: &Value,
    base: &str,
) -> Result<T, Vec<DefError>> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let p = e.path().to_string();
        let path = if p == "." {
            base.to_string()
        } else {
            join(base, &p)
        };
        vec![DefError::new(path, "syntax", e.inner().to_string())]
    })
}

/// Validates and expands a condition document; errors are under `path`.
pub fn condition(doc: &Value, path: &str, errors: &mut Vec<DefError>) -> Option<Expanded> {
    match rules::parse_expanded(doc, &Limits::default(), &NoRules) {
        Ok((_, x)) => Some(x),
        Err(es) => {
            errors.extend(
                es.into_iter()
                    .map(|e| DefError::new(join(path, &e.path), e.code.as_str(), e.message)),
            );
            None
        }
    }
}

/// A score model: one dimension of a tenant's leads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// `[a-z][a-z0-9_]*`, unique per tenant; conditions read the score as `score.<key>`.
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub decay: Decay,
}

impl ModelSpec {
    pub fn validate(&self) -> Vec<DefError> {
        let mut e = Vec::new();
        if !valid_key(&self.key) {
            e.push(DefError::new(
                "key",
                "invalid_key",
                "must be [a-z][a-z0-9_]*, at most 64 characters",
            ));
        }
        name_ok("name", &self.name, &mut e);
        if self.description.chars().count() > 1000 {
            e.push(DefError::new(
                "description",
                "too_long",
                "at most 1000 characters",
            ));
        }
        self.decay.validate("decay", &mut e);
        e
    }
}

/// Whether a rule awards points per event or holds them while a condition matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Event,
    State,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Event => "event",
            RuleKind::State => "state",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RuleKind::Event, RuleKind::State]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Limits on what one event rule awards one profile, in points (absolute values for negative
/// rules). An award that would pass a cap is cut to what is left (possibly 0, recorded with the
/// cap's name).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    /// Per calendar day in the tenant's time zone (the day the event happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<f64>,
    /// Within any `days` long window around the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowCap>,
    /// Over the profile's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<f64>,
    /// Awarded at most once per profile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
}

/// A rolling-window cap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowCap {
    pub days: u32,
    pub max: f64,
}

impl Caps {
    fn validate(&self, path: &str, e: &mut Vec<DefError>) {
        let amount = |v: f64| v.is_finite() && (0.0..=1e9).contains(&v);
        if self.per_day.is_some_and(|v| !amount(v)) {
            e.push(DefError::new(
                join(path, "per_day"),
                "out_of_range",
                "must be 0..=1e9 points",
            ));
        }
        if self.lifetime.is_some_and(|v| !amount(v)) {
            e.push(DefError::new(
                join(path, "lifetime"),
                "out_of_range",
                "must be 0..=1e9 points",
            ));
        }
        if let Some(w) = &self.window {
            if !(1..=365).contains(&w.days) {
                e.push(DefError::new(
                    join(path, "window.days"),
                    "out_of_range",
                    "must be 1..=365",
                ));
            }
            if !amount(w.max) {
                e.push(DefError::new(
                    join(path, "window.max"),
                    "out_of_range",
                    "must be 0..=1e9 points",
                ));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.per_day.is_none() && self.window.is_none() && self.lifetime.is_none() && !self.once
    }
}

/// A point rule (`kind: event`) or a state rule (`kind: state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub kind: RuleKind,
    pub name: String,
    /// Event rules: the behaviour kind, e.g. `track.page_view`, `oa.subscribe`,
    /// `wecom.external_contact.add_external_contact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Event rules: predicates over the event's properties (the `rules` language's behaviour
    /// filters, e.g. `{"key": "content.tags", "value_type": "string", "op": "eq", "value": "article"}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Value>,
    /// Event rules: the profile must match it when the event happens (optional). State rules:
    /// the points are held while the profile matches it (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
    /// Points per event, or held while matching; negative allowed.
    pub points: f64,
    /// Event rules only.
    #[serde(default, skip_serializing_if = "Caps::is_empty")]
    pub caps: Caps,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A rule's parts, checked and compiled.
#[derive(Debug, Clone)]
pub struct RuleParts {
    /// Event rules: the event's filters as one condition over its properties.
    pub filter: Option<Expanded>,
    pub condition: Option<Expanded>,
}

impl RuleSpec {
    /// Validates; on success the compiled filter and condition.
    pub fn check(&self, base: &str) -> Result<RuleParts, Vec<DefError>> {
        let mut e = Vec::new();
        name_ok(&join(base, "name"), &self.name, &mut e);
        if !(self.points.is_finite() && self.points != 0.0 && self.points.abs() <= MAX_POINTS) {
            e.push(DefError::new(
                join(base, "points"),
                "out_of_range",
                "must be a non-zero number of at most 1 000 000 in absolute value",
            ));
        }
        let condition = self
            .condition
            .as_ref()
            .and_then(|c| condition(c, &join(base, "condition"), &mut e));
        let mut filter = None;
        match self.kind {
            RuleKind::Event => {
                self.caps.validate(&join(base, "caps"), &mut e);
                match &self.event {
                    None => e.push(DefError::new(
                        join(base, "event"),
                        "missing_field",
                        "an event rule needs the event kind it scores",
                    )),
                    Some(ev) => filter = self.filters(ev, base, &mut e),
                }
            }
            RuleKind::State => {
                if self.condition.is_none() {
                    e.push(DefError::new(
                        join(base, "condition"),
                        "missing_field",
                        "a state rule holds its points while its condition matches",
                    ));
                }
                for (field, set) in [
                    ("event", self.event.is_some()),
                    ("filters", !self.filters.is_empty()),
                    ("caps", !self.caps.is_empty()),
                ] {
                    if set {
                        e.push(DefError::new(
                            join(base, field),
                            "not_allowed",
                            "only event rules have this",
                        ));
                    }
                }
            }
        }
        if e.is_empty() {
            Ok(RuleParts { filter, condition })
        } else {
            Err(e)
        }
    }

    /// Checks the event kind and filters as a behaviour leaf of the `rules` language, and
    /// compiles the filters into one condition over the event's properties.
    fn filters(&self, event: &str, base: &str, e: &mut Vec<DefError>) -> Option<Expanded> {
        let leaf = json!({"version": 1, "root": {"type": "behaviour", "event": event, "filters": self.filters}});
        if let Err(es) = rules::parse_expanded(&leaf, &Limits::default(), &NoRules) {
            for x in es {
                let p = x.path.strip_prefix("root.").unwrap_or(&x.path);
                e.push(DefError::new(join(base, p), x.code.as_str(), x.message));
            }
            return None;
        }
        if self.filters.is_empty() {
            return None;
        }
        let children: Vec<Value> = self
            .filters
            .iter()
            .map(|f| {
                let mut f = f.clone();
                if let Some(o) = f.as_object_mut() {
                    o.insert("type".into(), json!("property"));
                }
                f
            })
            .collect();
        let doc = json!({"version": 1, "root": {"type": "and", "children": children}});
        condition(&doc, &join(base, "filters"), e)
    }
}

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

/// What a trigger watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerOn {
    /// A dimension's score crossing `threshold` (reaching it going `up`, falling below it going
    /// `down`).
    Score {
        model: String,
        threshold: f64,
        direction: Direction,
    },
    /// The lead entering a stage.
    StageEntered { stage: String },
}

/// Which way a score crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// What a trigger does when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    /// Move the lead (the transition must be allowed; a refused move is recorded on the firing).
    MoveStage { stage: String },
    /// Ask tagging-svc to add a tag (`command.tag.add`).
    AddTag { tag_id: String },
    /// Ask tagging-svc to remove a tag (`command.tag.remove`).
    RemoveTag { tag_id: String },
    /// Publish `lead.notify` for the owning rep.
    Notify {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// A threshold trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    pub name: String,
    pub on: TriggerOn,
    pub actions: Vec<ActionSpec>,
    /// Fires only when the profile also matches this (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl TriggerSpec {
    /// Validates against the tenant's model keys and stage keys; on success the compiled
    /// condition.
    pub fn check(
        &self,
        models: &[String],
        stages: &[String],
    ) -> Result<Option<Expanded>, Vec<DefError>> {
        let mut e = Vec::new();
        name_ok("name", &self.name, &mut e);
        match &self.on {
            TriggerOn::Score {
                model, threshold, ..
            } => {
                if !models.contains(model) {
                    e.push(DefError::new(
                        "on.model",
                        "unknown_model",
                        format!("no active model `{model}`"),
                    ));
                }
                if !threshold.is_finite() || threshold.abs() > 1e12 {
                    e.push(DefError::new(
                        "on.threshold",
                        "out_of_range",
                        "must be a finite number",
                    ));
                }
            }
            TriggerOn::StageEntered { stage } => {
                if !stages.contains(stage) {
                    e.push(DefError::new(
                        "on.stage",
                        "unknown_stage",
                        format!("no stage `{stage}` in the machine"),
                    ));
                }
            }
        }
        if self.actions.is_empty() || self.actions.len() > 10 {
            e.push(DefError::new(
                "actions",
                "out_of_range",
                "a trigger has 1..=10 actions",
            ));
        }
        for (i, a) in self.actions.iter().enumerate() {
            let p = format!("actions[{i}]");
            match a {
                ActionSpec::MoveStage { stage } if !stages.contains(stage) => {
                    e.push(DefError::new(
                        join(&p, "stage"),
                        "unknown_stage",
                        format!("no stage `{stage}` in the machine"),
                    ));
                }
                ActionSpec::AddTag { tag_id } | ActionSpec::RemoveTag { tag_id }
                    if !rules::valid_id(tag_id, rules::MAX_ID_CHARS) =>
                {
                    e.push(DefError::new(
                        join(&p, "tag_id"),
                        "invalid_id",
                        "must be 1..=64 characters",
                    ));
                }
                ActionSpec::Notify { message: Some(m) } if m.chars().count() > 1000 => {
                    e.push(DefError::new(
                        join(&p, "message"),
                        "too_long",
                        "at most 1000 characters",
                    ));
                }
                _ => {}
            }
        }
        let c = self
            .condition
            .as_ref()
            .and_then(|c| condition(c, "condition", &mut e));
        if e.is_empty() {
            Ok(c)
        } else {
            Err(e)
        }
    }
}

/// A condition document as stored (for echoing back).
pub fn doc_of(x: &Expanded) -> ConditionDoc {
    ConditionDoc::new(x.root().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> RuleSpec {
        from_json(&v, "").unwrap()
    }

    #[test]
    fn rule_errors_name_the_field_or_node() {
        let r = rule(
            json!({"kind": "event", "name": "Views", "event": "track.page_view", "points": 0,
            "filters": [{"key": "content.tags", "value_type": "string", "op": "gt"}],
            "condition": {"version": 1, "root": {"type": "and", "children": []}}}),
        );
        let e = r.check("rules[0]").unwrap_err();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"rules[0].points"), "{paths:?}");
        assert!(paths.contains(&"rules[0].filters[0].value"), "{paths:?}");
        assert!(
            paths.contains(&"rules[0].condition.root.children"),
            "{paths:?}"
        );
        let s = rule(json!({"kind": "state", "name": "Fit", "points": 5, "event": "x.y"}));
        let e = s.check("").unwrap_err();
        assert!(e
            .iter()
            .any(|e| e.path == "condition" && e.code == "missing_field"));
        assert!(e
            .iter()
            .any(|e| e.path == "event" && e.code == "not_allowed"));
        let bad: Result<RuleSpec, _> = from_json(
            &json!({"kind": "event", "name": "x", "points": 1, "cap": {}}),
            "rules[2]",
        );
        let e = bad.unwrap_err();
        assert!(e[0].message.contains("unknown field `cap`"), "{e:?}");
        let bad: Result<RuleSpec, _> = from_json(
            &json!({"kind": "event", "name": "x", "points": "ten"}),
            "rules[2]",
        );
        assert_eq!(bad.unwrap_err()[0].path, "rules[2].points");
    }

    #[test]
    fn a_good_event_rule_compiles_its_filters() {
        let r = rule(
            json!({"kind": "event", "name": "Articles", "event": "track.page_view", "points": 10,
            "filters": [{"key": "content.tags", "value_type": "string", "op": "eq", "value": "article"}],
            "caps": {"per_day": 30, "window": {"days": 7, "max": 100}, "lifetime": 500}}),
        );
        let parts = r.check("").unwrap();
        assert!(parts.filter.is_some() && parts.condition.is_none());
    }

    #[test]
    fn the_default_machine_is_valid_and_machine_errors_name_the_node() {
        MachineSpec::default_machine().check().unwrap();
        let mut m = MachineSpec::default_machine();
        m.stages[1].entry = Some(
            json!({"version": 1, "root": {"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte"}}),
        );
        m.transitions[0].to = "nowhere".into();
        m.stages.push(m.stages[0].clone());
        let e = m.check().unwrap_err();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"stages[1].entry.root.value"), "{paths:?}");
        assert!(paths.contains(&"transitions[0].to"), "{paths:?}");
        assert!(paths.contains(&"stages[7].key"), "{paths:?}");
    }

    #[test]
    fn triggers_check_models_and_stages() {
        let t: TriggerSpec = from_json(&json!({"name": "Hot", "on": {"type": "score", "model": "fit", "threshold": 50, "direction": "up"},
            "actions": [{"type": "move_stage", "stage": "sq"}, {"type": "notify"}]}), "").unwrap();
        let e = t
            .check(&["engagement".into()], &["new".into(), "sql".into()])
            .unwrap_err();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["on.model", "actions[0].stage"]);
    }
}
