//! Contracts of scoring-svc on the bus: what it announces about leads through its outbox.
//!
//! | routing key | payload | when |
//! |---|---|---|
//! | [`LEAD_SCORE_CHANGED`] | [`ScoreChanged`] | a dimension's score of a profile changed by a write (event points, a state rule starting or stopping to hold, a merge, an un-merge, a recompute, a manual adjustment) or by decay crossing a threshold or a step |
//! | [`LEAD_STAGE_CHANGED`] | [`StageChanged`] | a lead moved from one stage to another (automatically, by a trigger, by a merge, or by a rep) |
//! | [`LEAD_SLA_BREACHED`] | [`SlaBreached`] | a lead stayed in a stage with an SLA past its due time without being contacted |
//! | [`LEAD_NOTIFY`] | [`LeadNotify`] | a trigger asks that the owning rep be told (the gateway's `notify` group sends it as a WeCom app message) |
//!
//! Every message id is derived from what caused it, so a retried transaction publishes the same
//! ids. Scoring also sends `command.tag.add` / `command.tag.remove`
//! ([`crate::tagging::TagCommand`]) to tagging-svc when a trigger adds or removes a tag.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Routing key of [`ScoreChanged`].
pub const LEAD_SCORE_CHANGED: &str = ScoreChanged::TYPE;
/// Routing key of [`StageChanged`].
pub const LEAD_STAGE_CHANGED: &str = StageChanged::TYPE;
/// Routing key of [`SlaBreached`].
pub const LEAD_SLA_BREACHED: &str = SlaBreached::TYPE;
/// Routing key of [`LeadNotify`].
pub const LEAD_NOTIFY: &str = LeadNotify::TYPE;

/// The rep who owns a lead: the WeCom user that follows the customer (the earliest active
/// follow of `profile.updated`'s `relations.wecom_follows`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub corp_id: String,
    /// The rep's WeCom userid.
    pub user_id: String,
    /// The customer's external_userid in the corp, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_userid: Option<String>,
}

/// What changed a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreCause {
    /// Points of an event (`rule_id`, `event_id` set).
    Event,
    /// A state rule started or stopped holding (property, tag or relationship change).
    State,
    /// Profiles were merged: the survivor holds both ledgers.
    Merge,
    /// A merge was undone: each side holds its own entries again.
    Unmerge,
    /// Decay crossed a threshold or a step.
    Decay,
    /// The ledger was rebuilt after the model changed.
    Recompute,
    /// An operator adjusted the score by hand.
    Adjustment,
}

impl ScoreCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreCause::Event => "event",
            ScoreCause::State => "state",
            ScoreCause::Merge => "merge",
            ScoreCause::Unmerge => "unmerge",
            ScoreCause::Decay => "decay",
            ScoreCause::Recompute => "recompute",
            ScoreCause::Adjustment => "adjustment",
        }
    }
}

/// Why a score changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreReason {
    pub cause: ScoreCause,
    /// The point or state rules whose entries changed the score (event and state causes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_ids: Vec<String>,
    /// The behaviour event that scored (event cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The event kind, e.g. `track.page_view` (event cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_kind: Option<String>,
    /// Message id of the bus message, job or request that caused the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause_id: Option<String>,
}

/// `lead.score_changed`: one dimension of one profile moved from `old` to `new` (both exact at
/// `at`, decay applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreChanged {
    pub profile_id: String,
    pub model_id: String,
    /// The dimension's key, e.g. `engagement`.
    pub model: String,
    pub old: f64,
    pub new: f64,
    pub reason: ScoreReason,
    pub at: DateTime<Utc>,
    /// How `new` changes with time from `at` on until the next change is published (absent from
    /// publishers older than this field: then `new` holds until the next change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<ScoreFold>,
}

/// A score split into the part that keeps its value and the part that decays: `held + decaying`
/// is the score at the event's `at`; with a half-life the decaying part halves every
/// `half_life_days` from then on. Exact until the next `lead.score_changed` of the dimension
/// (step decays and expiries are published when they happen).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreFold {
    pub held: f64,
    pub decaying: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_days: Option<f64>,
}

impl Event for ScoreChanged {
    const TYPE: &'static str = "lead.score_changed";
}

/// Who or what moved a lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A rep or operator, by hand (`actor` is their id).
    User,
    /// The stage machine: an entry condition or an automatic transition (`actor` names it).
    Rule,
    /// A threshold trigger (`actor` is the trigger id).
    Trigger,
    /// A merge took the more advanced stage of the merged profiles.
    Merge,
    /// The service itself (a new lead entering the initial stage).
    System,
}

impl ActorKind {
    pub const ALL: [ActorKind; 5] = [
        ActorKind::User,
        ActorKind::Rule,
        ActorKind::Trigger,
        ActorKind::Merge,
        ActorKind::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Rule => "rule",
            ActorKind::Trigger => "trigger",
            ActorKind::Merge => "merge",
            ActorKind::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// `lead.stage_changed`: a lead left `from` (none for a new lead) and entered `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageChanged {
    pub profile_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    pub actor_kind: ActorKind,
    /// The user, transition, trigger or survivor that moved it.
    pub actor: String,
    pub reason: String,
    /// The stage-history entry of this move.
    pub history_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub at: DateTime<Utc>,
}

impl Event for StageChanged {
    const TYPE: &'static str = "lead.stage_changed";
}

/// `lead.sla_breached`: the lead entered `stage` at `entered_at` and was not contacted by
/// `due_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaBreached {
    pub profile_id: String,
    pub stage: String,
    /// The stage-history entry the SLA belongs to.
    pub history_id: i64,
    pub entered_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub at: DateTime<Utc>,
}

impl Event for SlaBreached {
    const TYPE: &'static str = "lead.sla_breached";
}

/// What made a trigger fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotifyReason {
    /// A dimension crossed a threshold.
    ScoreCrossed {
        model: String,
        threshold: f64,
        /// `up` or `down`.
        direction: String,
        score: f64,
    },
    /// The lead entered a stage.
    StageEntered { stage: String },
}

/// `lead.notify`: tell the owning rep about a lead (the gateway delivers it as a WeCom
/// application message to `owner.user_id`; the envelope id is the notification's id). `owner`
/// is absent when no rep follows the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadNotify {
    pub profile_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub trigger_id: String,
    pub trigger_name: String,
    pub reason: NotifyReason,
    /// The trigger's message for the rep, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The lead's stage when the trigger fired.
    pub stage: String,
    pub at: DateTime<Utc>,
}

impl Event for LeadNotify {
    const TYPE: &'static str = "lead.notify";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        for k in ActorKind::ALL {
            assert_eq!(ActorKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(
            serde_json::to_value(ScoreCause::Recompute).unwrap(),
            ScoreCause::Recompute.as_str()
        );
        let r = NotifyReason::ScoreCrossed {
            model: "engagement".into(),
            threshold: 50.0,
            direction: "up".into(),
            score: 55.0,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["kind"], "score_crossed");
        assert_eq!(serde_json::from_value::<NotifyReason>(v).unwrap(), r);
    }
}
