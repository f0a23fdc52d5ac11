//! Real-time saved segments for one profile, decided without I/O: once its rules have settled,
//! each segment its change may affect is evaluated on the profile's facts (its tags as settling
//! left them); a match makes it a member, a non-match takes it out (a segment is always
//! `add_remove`), and a windowed or time-relative segment gets the time its result must be
//! looked at again, as a rule does ([`super::settle::Schedule`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use proto::tagging::{TagChange, TagChanged};
use rules::ProfileFacts;

use super::settle::{self, Action, Schedule};
use super::{At, RuleEntry};

/// One evaluation of one segment for the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentVerdict {
    pub segment_id: String,
    pub matched: bool,
    /// `Add`: it enters; `Remove`: it leaves; `None`: its membership stands.
    pub change: Option<Action>,
    pub schedule: Schedule,
}

/// The facts after settling: `changes` (of the profile's tag set, in order) applied to the tags
/// the facts were loaded with.
pub fn with_changes(facts: &mut ProfileFacts, changes: &[TagChanged]) {
    for c in changes {
        match c.change {
            TagChange::Added => facts.tags.insert(c.tag_id.clone()),
            TagChange::Removed => facts.tags.remove(&c.tag_id),
        };
    }
}

/// Decides each segment's membership for the profile: `held` are the segments it is a member of
/// now. A segment whose condition no longer expands is not evaluated.
pub fn decide(
    segments: &[Arc<RuleEntry>],
    facts: &ProfileFacts,
    held: &BTreeSet<String>,
    at: &At,
) -> Vec<SegmentVerdict> {
    let ctx = at.eval();
    segments
        .iter()
        .filter_map(|s| {
            let cond = s.expanded.as_ref()?;
            let matched = rules::evaluate(cond, facts, &ctx);
            let change = match (matched, held.contains(&s.id)) {
                (true, false) => Some(Action::Add),
                (false, true) => Some(Action::Remove),
                _ => None,
            };
            Some(SegmentVerdict {
                segment_id: s.id.clone(),
                matched,
                change,
                schedule: settle::schedule(s, facts, at),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Mode;
    use chrono::{NaiveDate, TimeZone, Utc};
    use rules::{Limits, NoRules};

    fn entry(id: &str, root: serde_json::Value) -> Arc<RuleEntry> {
        let limits = Limits::default();
        let doc = rules::parse(
            &serde_json::json!({"version": 1, "root": root}),
            &limits,
            &NoRules,
        )
        .unwrap();
        let expanded = rules::expand(&doc.root, &limits, &NoRules).unwrap();
        Arc::new(RuleEntry {
            id: id.into(),
            tag_id: String::new(),
            mode: Mode::AddRemove,
            live: true,
            deps: expanded.dependencies(),
            expanded: Some(expanded),
            version: 1,
        })
    }

    fn at() -> At {
        At {
            now: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
            today: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            zone: chrono_tz::UTC,
        }
    }

    #[test]
    fn members_enter_and_leave_with_the_condition() {
        let vip = entry(
            "s-vip",
            serde_json::json!({"type": "tag", "op": "has", "tags": ["t-vip"]}),
        );
        let not_vip = entry(
            "s-other",
            serde_json::json!({"type": "not", "child": {"type": "tag", "op": "has", "tags": ["t-vip"]}}),
        );
        let segs = [vip, not_vip];
        let mut facts = ProfileFacts::default();
        let held = BTreeSet::from(["s-vip".to_string()]);
        let v = decide(&segs, &facts, &held, &at());
        assert_eq!(
            v.iter()
                .map(|v| (v.segment_id.as_str(), v.change))
                .collect::<Vec<_>>(),
            [
                ("s-vip", Some(Action::Remove)),
                ("s-other", Some(Action::Add))
            ]
        );
        assert!(v.iter().all(|v| v.schedule == Schedule::Untouched));

        // Settling's own changes are seen: the tag it added makes the profile a member.
        with_changes(
            &mut facts,
            &[TagChanged {
                profile_id: "p".into(),
                tag_id: "t-vip".into(),
                tag_name: "VIP".into(),
                group_id: None,
                change: TagChange::Added,
                source: proto::tagging::TagSource::Rule,
                rule_id: None,
                actor: None,
                at: at().now,
            }],
        );
        let v = decide(&segs, &facts, &held, &at());
        assert_eq!(
            v.iter()
                .map(|v| (v.segment_id.as_str(), v.change))
                .collect::<Vec<_>>(),
            [("s-vip", None), ("s-other", None)]
        );
        assert!(v[0].matched && !v[1].matched);
    }
}
