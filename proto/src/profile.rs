//! The events about one customer profile that projections read (tagging and scoring): what
//! identity-svc announces (resolved events, profile states, merges, un-merges) and what
//! tagging-svc announces (tag changes, un-merges as it applied them), in one enum decoded from an
//! envelope by its type.

use crate::envelope::Envelope;
use crate::event::{DecodeError, Event};
use crate::identity::{IdentityMerged, IdentityUnmerged, ProfileResolved, ProfileUpdated};
use crate::tagging::{TagChanged, TagsUnmerged};

/// A bus event about one customer profile.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileEvent {
    /// `profile.resolved`: a channel event and its profile.
    Resolved(ProfileResolved),
    /// `profile.updated`: the profile's whole derived state.
    Updated(ProfileUpdated),
    /// `identity.merged`: profiles absorbed into a survivor.
    Merged(IdentityMerged),
    /// `identity.unmerged`: an operator separated profiles.
    Unmerged(IdentityUnmerged),
    /// `tag.changed`: a profile gained or lost a tag.
    TagChanged(TagChanged),
    /// `tag.unmerged`: an un-merge as tagging applied it, with both sides' tags.
    TagsUnmerged(TagsUnmerged),
}

impl ProfileEvent {
    /// Every type the enum covers.
    pub const TYPES: [&'static str; 6] = [
        ProfileResolved::TYPE,
        ProfileUpdated::TYPE,
        IdentityMerged::TYPE,
        IdentityUnmerged::TYPE,
        TagChanged::TYPE,
        TagsUnmerged::TYPE,
    ];

    /// Decodes `env`: `None` for a type the enum does not cover, an error for a covered type
    /// whose payload does not decode.
    pub fn decode(env: &Envelope) -> Result<Option<Self>, DecodeError> {
        Ok(Some(match env.kind.as_str() {
            ProfileResolved::TYPE => ProfileEvent::Resolved(env.decode()?),
            ProfileUpdated::TYPE => ProfileEvent::Updated(env.decode()?),
            IdentityMerged::TYPE => ProfileEvent::Merged(env.decode()?),
            IdentityUnmerged::TYPE => ProfileEvent::Unmerged(env.decode()?),
            TagChanged::TYPE => ProfileEvent::TagChanged(env.decode()?),
            TagsUnmerged::TYPE => ProfileEvent::TagsUnmerged(env.decode()?),
            _ => return Ok(None),
        }))
    }

    /// [`ProfileEvent::decode`] for a consumer that reads only the types in `kinds`: any other
    /// type is `None`, its payload not looked at.
    pub fn decode_of(env: &Envelope, kinds: &[&str]) -> Result<Option<Self>, DecodeError> {
        if kinds.contains(&env.kind.as_str()) {
            Self::decode(env)
        } else {
            Ok(None)
        }
    }

    /// The profile the event is about: the resolved, updated or tagged profile; the survivor of
    /// a merge or an un-merge.
    pub fn profile_id(&self) -> &str {
        match self {
            ProfileEvent::Resolved(r) => &r.profile_id,
            ProfileEvent::Updated(u) => &u.profile_id,
            ProfileEvent::Merged(m) => &m.survivor,
            ProfileEvent::Unmerged(u) => &u.survivor,
            ProfileEvent::TagChanged(t) => &t.profile_id,
            ProfileEvent::TagsUnmerged(t) => &t.unmerged.survivor,
        }
    }

    /// The event's type (its routing key).
    pub fn kind(&self) -> &'static str {
        match self {
            ProfileEvent::Resolved(_) => ProfileResolved::TYPE,
            ProfileEvent::Updated(_) => ProfileUpdated::TYPE,
            ProfileEvent::Merged(_) => IdentityMerged::TYPE,
            ProfileEvent::Unmerged(_) => IdentityUnmerged::TYPE,
            ProfileEvent::TagChanged(_) => TagChanged::TYPE,
            ProfileEvent::TagsUnmerged(_) => TagsUnmerged::TYPE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{LinkRule, UnmergeKind};
    use crate::tagging::{TagChange, TagSource};
    use chrono::Utc;

    fn unmerged() -> IdentityUnmerged {
        IdentityUnmerged {
            kind: UnmergeKind::Unmerge,
            survivor: "p1".into(),
            restored: vec!["p2".into()],
            identifiers: vec![],
            merge_id: Some(7),
            operator: "op".into(),
            reason: "wrong person".into(),
            moved_events: vec![],
            states: vec![],
        }
    }

    fn every_event() -> Vec<ProfileEvent> {
        let updated = ProfileUpdated {
            profile_id: "p2".into(),
            version: 3,
            changed: vec![],
            fields: Default::default(),
            relations: Default::default(),
            cause_event: None,
        };
        let changed = TagChanged {
            profile_id: "p4".into(),
            tag_id: "t".into(),
            tag_name: "T".into(),
            group_id: None,
            change: TagChange::Added,
            source: TagSource::Manual,
            rule_id: None,
            actor: Some("op".into()),
            at: Utc::now(),
        };
        vec![
            ProfileEvent::Resolved(ProfileResolved {
                profile_id: "p1".into(),
                created: true,
                event: Envelope::builder("channel.oa.subscribe", "t", serde_json::json!({}))
                    .build(),
                identifiers: vec![],
            }),
            ProfileEvent::Updated(updated),
            ProfileEvent::Merged(IdentityMerged {
                survivor: "p3".into(),
                absorbed: vec!["p9".into()],
                rule: LinkRule::Unionid,
                evidence_event: None,
                operator: None,
            }),
            ProfileEvent::Unmerged(unmerged()),
            ProfileEvent::TagChanged(changed.clone()),
            ProfileEvent::TagsUnmerged(TagsUnmerged {
                unmerged: unmerged(),
                tags: Default::default(),
                changes: vec![changed],
                at: Utc::now(),
            }),
        ]
    }

    fn envelope(e: &ProfileEvent) -> Envelope {
        match e {
            ProfileEvent::Resolved(p) => Envelope::of("t", p),
            ProfileEvent::Updated(p) => Envelope::of("t", p),
            ProfileEvent::Merged(p) => Envelope::of("t", p),
            ProfileEvent::Unmerged(p) => Envelope::of("t", p),
            ProfileEvent::TagChanged(p) => Envelope::of("t", p),
            ProfileEvent::TagsUnmerged(p) => Envelope::of("t", p),
        }
        .build()
    }

    #[test]
    fn every_covered_type_decodes_to_its_variant() {
        let events = every_event();
        let kinds: Vec<&str> = events.iter().map(ProfileEvent::kind).collect();
        assert_eq!(kinds, ProfileEvent::TYPES);
        for e in events {
            let env = envelope(&e);
            assert_eq!(env.kind, e.kind());
            assert_eq!(ProfileEvent::decode(&env).unwrap(), Some(e));
        }
    }

    #[test]
    fn profile_is_the_subject_or_the_survivor() {
        let ids: Vec<String> = every_event()
            .iter()
            .map(|e| e.profile_id().to_string())
            .collect();
        assert_eq!(ids, ["p1", "p2", "p3", "p1", "p4", "p1"]);
    }

    #[test]
    fn other_types_are_none_and_bad_payloads_errors() {
        let other = Envelope::builder("command.tag.add", "t", serde_json::json!({})).build();
        assert_eq!(ProfileEvent::decode(&other).unwrap(), None);
        let bad = Envelope::builder("tag.changed", "t", serde_json::json!({"x": 1})).build();
        assert!(matches!(
            ProfileEvent::decode(&bad),
            Err(DecodeError::Payload {
                kind: "tag.changed",
                ..
            })
        ));
        // A consumer that does not read a type never looks at its payload.
        assert_eq!(
            ProfileEvent::decode_of(&bad, &[ProfileResolved::TYPE]).unwrap(),
            None
        );
        assert!(ProfileEvent::decode_of(&bad, &[TagChanged::TYPE]).is_err());
    }
}
