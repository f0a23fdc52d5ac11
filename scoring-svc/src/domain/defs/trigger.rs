//! Threshold and stage triggers: what a trigger watches, its direction, its actions, and the
//! check against the tenant's models and stages.

use rules::Expanded;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{condition, name_ok, yes};
use crate::domain::{join, DefError};

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
