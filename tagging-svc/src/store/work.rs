//! What tagging-svc acts on from the bus, decoded: the profile events it reads (resolved
//! events, profile states, merges, un-merges), what scoring says of leads (scores, stages) and
//! the tag commands other services send it.

use proto::identity::{
    IdentityUnmerged, IDENTITY_MERGED, IDENTITY_UNMERGED, PROFILE_RESOLVED, PROFILE_UPDATED,
};
use proto::profile::ProfileEvent;
use proto::scoring::{ScoreChanged, StageChanged};
use proto::tagging::{TagCommand, COMMAND_TAG_ADD, COMMAND_TAG_REMOVE};
use proto::{Envelope, Event};

use super::tagger::HandleError;

/// The profile events tagging reads (`tag.*` are its own announcements).
pub(super) const PROFILE_KINDS: &[&str] = &[
    PROFILE_RESOLVED,
    PROFILE_UPDATED,
    IDENTITY_MERGED,
    IDENTITY_UNMERGED,
];

/// A decoded event this service acts on.
pub(super) enum Work {
    /// A profile event of [`PROFILE_KINDS`] but `identity.unmerged`.
    Profile(ProfileEvent),
    /// With the message's id (the `tag.unmerged` it leads to is named after it).
    Unmerged(IdentityUnmerged, uuid::Uuid),
    Command {
        add: bool,
        cmd: TagCommand,
    },
    /// A lead's score of one model changed (`score.<model>`).
    Score(ScoreChanged),
    /// A lead moved to another stage (`lead.stage`, `lead.stage_entered_at`).
    Stage(StageChanged),
}

impl Work {
    /// The profile whose row the work locks first.
    pub(super) fn profile(&self) -> &str {
        match self {
            Work::Profile(p) => p.profile_id(),
            Work::Unmerged(u, _) => &u.survivor,
            Work::Command { cmd, .. } => &cmd.profile_id,
            Work::Score(c) => &c.profile_id,
            Work::Stage(c) => &c.profile_id,
        }
    }
}

/// Decodes `env` into the work it asks for; `None` for a type tagging does not act on.
pub(super) fn decode(env: &Envelope) -> Result<Option<Work>, HandleError> {
    let invalid = |e: proto::DecodeError| HandleError::Invalid(e.to_string());
    let add = match env.kind.as_str() {
        ScoreChanged::TYPE => return Ok(Some(Work::Score(env.decode().map_err(invalid)?))),
        StageChanged::TYPE => return Ok(Some(Work::Stage(env.decode().map_err(invalid)?))),
        COMMAND_TAG_ADD => true,
        COMMAND_TAG_REMOVE => false,
        _ => {
            let p = ProfileEvent::decode_of(env, PROFILE_KINDS)
                .map_err(|e| HandleError::Invalid(e.to_string()))?;
            return Ok(p.map(|p| match p {
                ProfileEvent::Unmerged(u) => Work::Unmerged(u, env.id),
                p => Work::Profile(p),
            }));
        }
    };
    // One payload under two routing keys: not a typed event.
    let cmd = env
        .payload_as()
        .map_err(|e| HandleError::Invalid(format!("{}: {e}", env.kind)))?;
    Ok(Some(Work::Command { add, cmd }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(kind: &str, payload: serde_json::Value) -> Envelope {
        Envelope::builder(kind, "t", payload).build()
    }

    #[test]
    fn reads_its_profile_events_and_commands_only() {
        // tagging's own announcements and other types stay ignored, whatever they carry.
        for kind in [
            "tag.changed",
            "tag.unmerged",
            "lead.notify",
            "channel.oa.subscribe",
        ] {
            assert!(
                matches!(decode(&env(kind, json!({"x": 1}))), Ok(None)),
                "{kind}"
            );
        }
        for kind in PROFILE_KINDS.iter().chain(&[
            COMMAND_TAG_ADD,
            COMMAND_TAG_REMOVE,
            ScoreChanged::TYPE,
            StageChanged::TYPE,
        ]) {
            let got = decode(&env(kind, json!({"x": 1})));
            assert!(matches!(got, Err(HandleError::Invalid(_))), "{kind}");
        }
        let cmd = json!({"profile_id": "p", "tag_id": "t", "actor": "a"});
        let Ok(Some(Work::Command { add: false, cmd })) = decode(&env(COMMAND_TAG_REMOVE, cmd))
        else {
            panic!("a remove command");
        };
        assert_eq!(cmd.profile_id, "p");
    }

    #[test]
    fn an_unmerge_keeps_its_message_id() {
        let u = json!({"kind": "unmerge", "survivor": "p1", "restored": ["p2"],
                       "identifiers": [], "operator": "op", "reason": "r"});
        let e = env(IDENTITY_UNMERGED, u);
        let Ok(Some(w @ Work::Unmerged(_, id))) = decode(&e) else {
            panic!("an un-merge");
        };
        assert_eq!((id, w.profile()), (e.id, "p1"));
    }
}
