//! Settling decided on facts built by hand: no database.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use proto::tagging::TagChange;
use rules::{Limits, NoRules, ProfileFacts};
use serde_json::{json, Value};

use super::*;
use crate::domain::{Holdings, Tag};

/// 2024-06-15, 10:00 UTC, in UTC.
fn at() -> At {
    At {
        now: Utc.with_ymd_and_hms(2024, 6, 15, 10, 0, 0).unwrap(),
        today: NaiveDate::from_ymd_opt(2024, 6, 15).unwrap(),
        zone: chrono_tz::UTC,
    }
}

fn rule(id: &str, tag: &str, mode: Mode, root: Value) -> Arc<RuleEntry> {
    let limits = Limits::default();
    let doc = rules::parse(&json!({"version": 1, "root": root}), &limits, &NoRules).unwrap();
    let expanded = rules::expand(&doc.root, &limits, &NoRules).unwrap();
    Arc::new(RuleEntry {
        id: id.into(),
        tag_id: tag.into(),
        mode,
        live: true,
        deps: expanded.dependencies(),
        expanded: Some(expanded),
        version: 1,
    })
}

/// Page views: at least `n` in the last `days` days (`None`: ever).
fn views(n: u64, days: Option<u32>) -> Value {
    let window = match days {
        Some(d) => json!({"type": "last", "days": d}),
        None => json!({"type": "all_time"}),
    };
    json!({"type": "behaviour", "event": "track.page_view",
           "count": {"op": "gte", "value": n}, "window": window})
}

fn has(tag: &str) -> Value {
    json!({"type": "tag", "op": "has", "tags": [tag]})
}

/// A profile with one page view `days_ago` days ago.
fn viewed(days_ago: i64) -> ProfileFacts {
    let mut f = ProfileFacts::new("p");
    f.add_count(
        "e:track.page_view",
        at().today - Duration::days(days_ago),
        1,
    );
    f
}

struct Set {
    rules: Vec<Arc<RuleEntry>>,
    tags: HashMap<String, Tag>,
}

impl Set {
    fn of(rules: &[&Arc<RuleEntry>]) -> Self {
        let tags = rules
            .iter()
            .map(|r| {
                let t = Tag {
                    id: r.tag_id.clone(),
                    group: format!("g-{}", r.tag_id),
                    single: false,
                    active: true,
                };
                (r.tag_id.clone(), t)
            })
            .collect();
        Set {
            rules: rules.iter().map(|r| Arc::clone(r)).collect(),
            tags,
        }
    }
}

impl RuleSet for Set {
    fn tag(&self, id: &str) -> Option<Tag> {
        self.tags.get(id).cloned()
    }

    fn reading_tags(&self, tags: &BTreeSet<String>) -> Vec<Arc<RuleEntry>> {
        self.rules
            .iter()
            .filter(|r| r.deps.tags.iter().any(|t| tags.contains(t)))
            .cloned()
            .collect()
    }
}

fn settle(set: &Set, first: &[&Arc<RuleEntry>], held: Holdings, facts: ProfileFacts) -> Decision {
    let mut facts = facts;
    let cands = first.iter().map(|r| Arc::clone(r)).collect();
    decide(set, cands, held, &mut facts, 8, &at())
}

fn changes(d: &Decision) -> Vec<(String, String, TagChange)> {
    d.verdicts
        .iter()
        .flat_map(|v| {
            v.changes
                .iter()
                .map(|(t, c)| (v.rule_id.clone(), t.clone(), *c))
        })
        .collect()
}

fn held_for(tag: &str, rule: &str) -> Holdings {
    let mut h = Holdings::default();
    h.hold(tag, Some(&format!("g-{tag}")), "rule", rule);
    h
}

#[test]
fn a_match_adds_the_rules_reason() {
    let r = rule("r", "hot", Mode::AddOnly, views(1, None));
    let d = settle(&Set::of(&[&r]), &[&r], Holdings::default(), viewed(3));
    assert_eq!(d.verdicts.len(), 1);
    let v = &d.verdicts[0];
    assert!(v.matched);
    assert_eq!(v.action, Some(Action::Add));
    assert_eq!(v.schedule, Schedule::Untouched);
    assert_eq!(changes(&d), [("r".into(), "hot".into(), TagChange::Added)]);
    assert!(!d.cut);
}

#[test]
fn a_match_already_held_for_the_rule_changes_nothing() {
    let r = rule("r", "hot", Mode::AddRemove, views(1, None));
    let d = settle(&Set::of(&[&r]), &[&r], held_for("hot", "r"), viewed(3));
    assert!(d.verdicts[0].matched);
    assert_eq!(d.verdicts[0].action, Some(Action::Add));
    assert!(changes(&d).is_empty());
    assert_eq!(d.rounds, 1);
}

#[test]
fn a_non_match_removes_only_in_add_remove_mode() {
    let r = rule("r", "hot", Mode::AddRemove, views(1, None));
    let d = settle(
        &Set::of(&[&r]),
        &[&r],
        held_for("hot", "r"),
        ProfileFacts::new("p"),
    );
    assert_eq!(d.verdicts[0].action, Some(Action::Remove));
    assert_eq!(
        changes(&d),
        [("r".into(), "hot".into(), TagChange::Removed)]
    );
    // Not held for the rule: nothing to take back.
    let d = settle(
        &Set::of(&[&r]),
        &[&r],
        Holdings::default(),
        ProfileFacts::new("p"),
    );
    assert_eq!(d.verdicts[0].action, Some(Action::Remove));
    assert!(changes(&d).is_empty());
}

#[test]
fn an_add_only_rule_never_removes() {
    let r = rule("r", "hot", Mode::AddOnly, views(1, None));
    let d = settle(
        &Set::of(&[&r]),
        &[&r],
        held_for("hot", "r"),
        ProfileFacts::new("p"),
    );
    assert!(!d.verdicts[0].matched);
    assert_eq!(d.verdicts[0].action, None);
    assert!(changes(&d).is_empty());
}

#[test]
fn a_rule_does_not_remove_another_reason() {
    let r = rule("r", "hot", Mode::AddRemove, views(1, None));
    let mut held = held_for("hot", "r");
    held.hold("hot", Some("g-hot"), "manual", "");
    let d = settle(&Set::of(&[&r]), &[&r], held, ProfileFacts::new("p"));
    assert_eq!(d.verdicts[0].action, Some(Action::Remove));
    assert!(
        changes(&d).is_empty(),
        "the operator's reason keeps the tag"
    );
}

#[test]
fn a_windowed_rule_gets_a_due_time() {
    let r = rule("r", "recent", Mode::AddRemove, views(1, Some(7)));
    let d = settle(&Set::of(&[&r]), &[&r], Holdings::default(), viewed(2));
    // The view leaves the last 7 days on today + 5: looked at just after that midnight.
    let exit = Utc.with_ymd_and_hms(2024, 6, 20, 0, 0, 1).unwrap();
    assert_eq!(d.verdicts[0].schedule, Schedule::At(exit));
    assert_eq!(d.verdicts[0].action, Some(Action::Add));
    // No view in the window and none to come: nothing to look at later.
    let d = settle(
        &Set::of(&[&r]),
        &[&r],
        Holdings::default(),
        ProfileFacts::new("p"),
    );
    assert_eq!(d.verdicts[0].schedule, Schedule::Clear);
}

#[test]
fn a_chain_of_two_rules_settles() {
    let hot = rule("r1", "hot", Mode::AddRemove, views(1, None));
    let vip = rule("r2", "vip", Mode::AddRemove, has("hot"));
    let set = Set::of(&[&hot, &vip]);
    let d = settle(&set, &[&hot], Holdings::default(), viewed(1));
    assert_eq!(
        changes(&d),
        [
            ("r1".into(), "hot".into(), TagChange::Added),
            ("r2".into(), "vip".into(), TagChange::Added)
        ]
    );
    assert_eq!((d.rounds, d.cut), (2, false));
    // Back: the first rule's tag goes, and the second's with it.
    let mut held = held_for("hot", "r1");
    held.hold("vip", Some("g-vip"), "rule", "r2");
    let d = settle(&set, &[&hot], held, ProfileFacts::new("p"));
    assert_eq!(
        changes(&d),
        [
            ("r1".into(), "hot".into(), TagChange::Removed),
            ("r2".into(), "vip".into(), TagChange::Removed)
        ]
    );
}

#[test]
fn a_round_reads_the_tags_as_they_stood_when_it_began() {
    let hot = rule("r1", "hot", Mode::AddRemove, views(1, None));
    let vip = rule("r2", "vip", Mode::AddRemove, has("hot"));
    let set = Set::of(&[&hot, &vip]);
    // Both candidates of the first round: the second sees `hot` only in the next round.
    let d = settle(&set, &[&hot, &vip], Holdings::default(), viewed(1));
    let matched: Vec<(String, bool)> = d
        .verdicts
        .iter()
        .map(|v| (v.rule_id.clone(), v.matched))
        .collect();
    assert_eq!(
        matched,
        [
            ("r1".into(), true),
            ("r2".into(), false),
            ("r2".into(), true)
        ]
    );
}

#[test]
fn the_round_bound_cuts_a_cycle() {
    // Sets its tag when the profile does not hold it: flips every round.
    let flip = rule(
        "r",
        "odd",
        Mode::AddRemove,
        json!({"type": "not", "child": has("odd")}),
    );
    let set = Set::of(&[&flip]);
    let mut facts = ProfileFacts::new("p");
    let d = decide(
        &set,
        vec![flip.clone()],
        Holdings::default(),
        &mut facts,
        4,
        &at(),
    );
    assert_eq!((d.rounds, d.cut), (4, true));
    let flips: Vec<TagChange> = changes(&d).into_iter().map(|(_, _, c)| c).collect();
    use TagChange::{Added, Removed};
    assert_eq!(flips, [Added, Removed, Added, Removed]);
}

#[test]
fn a_single_select_group_drops_its_other_tag_and_its_readers_follow() {
    let hot = rule("r1", "hot", Mode::AddOnly, views(1, None));
    let reads_cold = rule("r2", "was-cold", Mode::AddRemove, has("cold"));
    let mut set = Set::of(&[&hot, &reads_cold]);
    for (id, t) in set.tags.iter_mut() {
        if id == "hot" {
            t.group = "temperature".into();
            t.single = true;
        }
    }
    let mut held = Holdings::default();
    held.hold("cold", Some("temperature"), "manual", "");
    held.hold("was-cold", Some("g-was-cold"), "rule", "r2");
    let d = settle(&set, &[&hot], held, viewed(1));
    assert_eq!(
        changes(&d),
        [
            ("r1".into(), "hot".into(), TagChange::Added),
            ("r1".into(), "cold".into(), TagChange::Removed),
            ("r2".into(), "was-cold".into(), TagChange::Removed)
        ]
    );
}

#[test]
fn a_batch_adds_new_matches_and_removes_stale_ones_by_mode() {
    let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let (matched, held) = (set(&["a", "b"]), set(&["b", "c"]));
    assert_eq!(
        batch(Mode::AddRemove, &matched, &held),
        (vec!["a".to_string()], vec!["c".to_string()])
    );
    assert_eq!(
        batch(Mode::AddOnly, &matched, &held),
        (vec!["a".to_string()], vec![])
    );
}
