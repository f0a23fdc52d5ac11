//! A profile's memberships followed in memory, by the rules `store::members` keeps them by in
//! the database: the profile holds a tag while it has at least one reason (source, origin) for
//! it; a rule adds its own reason (`rule`, its id) to an active tag and takes back only that one;
//! the first reason of a tag in a single-select group drops the group's other tags with every
//! reason they are held for. Each change returns the changes of the tag set, as the store's would.

use std::collections::{BTreeMap, BTreeSet};

use proto::tagging::{TagChange, TagSource};

use super::Tag;

/// A change of the tag set: the tag and whether it came or went.
pub type TagSetChange = (String, TagChange);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    /// Its group; `None` when the catalogue does not know the tag.
    group: Option<String>,
    /// (source, origin) of each reason.
    reasons: BTreeSet<(String, String)>,
}

/// Every reason a profile holds each of its tags for, and each held tag's group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    tags: BTreeMap<String, Held>,
}

fn rule_reason(rule_id: &str) -> (String, String) {
    (TagSource::Rule.as_str().to_string(), rule_id.to_string())
}

impl Holdings {
    /// Records a membership as loaded: the profile holds `tag_id` (of `group`; `None` when the
    /// catalogue does not know the tag) for `source` and `origin`.
    pub fn hold(&mut self, tag_id: &str, group: Option<&str>, source: &str, origin: &str) {
        self.tags
            .entry(tag_id.to_string())
            .or_insert_with(|| Held {
                group: group.map(str::to_string),
                reasons: BTreeSet::new(),
            })
            .reasons
            .insert((source.to_string(), origin.to_string()));
    }

    /// Does the profile hold the tag (for any reason)?
    pub fn holds(&self, tag_id: &str) -> bool {
        self.tags.contains_key(tag_id)
    }

    /// Does the profile hold the tag for the rule?
    pub fn held_for_rule(&self, tag_id: &str, rule_id: &str) -> bool {
        self.tags
            .get(tag_id)
            .is_some_and(|h| h.reasons.contains(&rule_reason(rule_id)))
    }

    /// Gives the tag for the rule: nothing when the tag is retired or the reason is there
    /// already; the tag set changes when it is the tag's first reason (and, in a single-select
    /// group, the group's other tags go).
    pub fn add_rule(&mut self, tag: &Tag, rule_id: &str) -> Vec<TagSetChange> {
        if !tag.active || self.held_for_rule(&tag.id, rule_id) {
            return Vec::new();
        }
        let was_held = self.holds(&tag.id);
        self.hold(&tag.id, Some(&tag.group), TagSource::Rule.as_str(), rule_id);
        if was_held {
            return Vec::new();
        }
        let mut changes = vec![(tag.id.clone(), TagChange::Added)];
        if tag.single {
            let others: Vec<String> = self
                .tags
                .iter()
                .filter(|(id, h)| **id != tag.id && h.group.as_deref() == Some(tag.group.as_str()))
                .map(|(id, _)| id.clone())
                .collect();
            for other in others {
                self.tags.remove(&other);
                changes.push((other, TagChange::Removed));
            }
        }
        changes
    }

    /// Takes back the rule's reason for the tag: the tag set changes when it was the last one.
    pub fn remove_rule(&mut self, tag_id: &str, rule_id: &str) -> Vec<TagSetChange> {
        let Some(h) = self.tags.get_mut(tag_id) else {
            return Vec::new();
        };
        if !h.reasons.remove(&rule_reason(rule_id)) || !h.reasons.is_empty() {
            return Vec::new();
        }
        self.tags.remove(tag_id);
        vec![(tag_id.to_string(), TagChange::Removed)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(id: &str, group: &str, single: bool) -> Tag {
        Tag {
            id: id.into(),
            group: group.into(),
            single,
            active: true,
        }
    }

    #[test]
    fn a_tag_held_for_another_reason_does_not_change_the_set() {
        let mut h = Holdings::default();
        h.hold("t", Some("g"), "manual", "");
        assert!(h.add_rule(&tag("t", "g", false), "r").is_empty());
        assert!(h.held_for_rule("t", "r"));
        assert!(h.remove_rule("t", "r").is_empty());
        assert!(h.holds("t"));
        assert!(h.remove_rule("t", "r").is_empty());
    }

    #[test]
    fn the_last_reason_going_removes_the_tag() {
        let mut h = Holdings::default();
        let t = tag("t", "g", false);
        assert_eq!(h.add_rule(&t, "r"), vec![("t".into(), TagChange::Added)]);
        assert!(h.add_rule(&t, "r").is_empty());
        assert_eq!(
            h.remove_rule("t", "r"),
            vec![("t".into(), TagChange::Removed)]
        );
        assert!(!h.holds("t"));
    }

    #[test]
    fn a_retired_tag_is_not_given() {
        let mut h = Holdings::default();
        let t = Tag {
            active: false,
            ..tag("t", "g", false)
        };
        assert!(h.add_rule(&t, "r").is_empty());
        assert!(!h.holds("t"));
    }

    #[test]
    fn a_single_select_group_keeps_one_tag() {
        let mut h = Holdings::default();
        h.hold("a", Some("g"), "manual", "");
        h.hold("a", Some("g"), "rule", "x");
        h.hold("b", Some("other"), "manual", "");
        h.hold("c", None, "manual", "");
        assert_eq!(
            h.add_rule(&tag("d", "g", true), "r"),
            vec![
                ("d".into(), TagChange::Added),
                ("a".into(), TagChange::Removed)
            ]
        );
        assert!(!h.holds("a") && h.holds("b") && h.holds("c") && h.holds("d"));
    }
}
