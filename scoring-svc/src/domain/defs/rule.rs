//! Rules of a model: per-event point rules (with their event filters) and state rules held
//! while a condition matches, and the caps that limit what event rules award.

use rules::{Expanded, Limits, NoRules};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{condition, name_ok, yes, MAX_POINTS};
use crate::domain::{join, DefError};

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
