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
//!
//! Here: models and the checks every definition shares (names, keys, conditions). Rules and
//! their caps are in `rule`, the stage machine in `machine`, triggers in `trigger`.

mod machine;
mod rule;
mod trigger;

use proto::condition::ConditionDoc;
use rules::{Expanded, Limits, NoRules};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decay::Decay;
use super::{join, DefError};

pub use machine::{MachineParts, MachineSpec, SlaSpec, StageSpec, TransitionSpec};
pub use rule::{Caps, RuleKind, RuleParts, RuleSpec, WindowCap};
pub use trigger::{ActionSpec, Direction, TriggerOn, TriggerSpec};

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

/// A condition document as stored (for echoing back).
pub fn doc_of(x: &Expanded) -> ConditionDoc {
    ConditionDoc::new(x.root().clone())
}

#[cfg(test)]
mod tests;
