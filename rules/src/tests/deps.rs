use serde_json::json;

use super::support::*;
use crate::{Condition, ConditionExt, Dependencies};

#[test]
fn dependencies_of_every_leaf_kind() {
    let root = json!({"type": "and", "children": [
        prop("contact.city", "string", "eq", json!("x")),
        prop("contact.birthday", "date", "lt", json!({"days_ago": 30})),
        {"type": "source", "touch": "first", "field": "channel", "op": "exists"},
        {"type": "not", "child": {"type": "tag", "op": "has_any", "tags": ["a", "b"]}},
        {"type": "behaviour", "event": "track.page_view", "content_tag": "case",
         "filters": [{"key": "page", "value_type": "string", "op": "exists"}]},
        {"type": "behaviour", "content_tag": "pricing", "window": {"type": "all_time"}},
        {"type": "wechat", "state": "oa_subscribed"},
        {"type": "rule", "rule_id": "r1"},
    ]});
    let written: Condition = serde_json::from_value(root).unwrap();
    let d = written.dependencies();
    let set = |xs: &[&str]| {
        xs.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        d,
        Dependencies {
            event_kinds: set(&["track.page_view"]),
            content_tags: set(&["case", "pricing"]),
            property_keys: set(&["contact.birthday", "contact.city", "source.first.channel"]),
            event_property_keys: set(&["page"]),
            tags: set(&["a", "b"]),
            relations: true,
            windowed: true,
            time_relative: true,
            rule_refs: set(&["r1"]),
            ..Dependencies::default()
        }
    );
    assert!(d.event_may_affect("track.page_view", &[]));
    assert!(d.event_may_affect("oa.subscribe", &["pricing"]));
    assert!(!d.event_may_affect("oa.subscribe", &["other"]));
    assert!(d.properties_may_affect(["contact.city"]));
    assert!(d.time_driven());
}

#[test]
fn distinct_counts_depend_on_every_event_they_may_count() {
    let leaf = |v: serde_json::Value| cond(v).dependencies();
    let tags = leaf(json!({"type": "distinct", "of": "content_tags"}));
    assert!(tags.any_content_tag && !tags.any_event && tags.windowed);
    assert!(tags.event_may_affect("track.page_view", &["anything"]));
    assert!(!tags.event_may_affect("track.page_view", &[]));
    let kinds = leaf(json!({"type": "distinct", "of": "event_kinds",
                            "window": {"type": "all_time"}}));
    assert!(kinds.any_event && !kinds.windowed);
    assert!(kinds.event_may_affect("oa.click", &[]));
    let values = leaf(json!({"type": "distinct", "of": "property_values",
                             "property": "utm_source", "event": "track.page_view"}));
    assert!(!values.any_event);
    assert!(values.event_may_affect("track.page_view", &[]));
    assert!(!values.event_may_affect("oa.click", &[]));
    assert!(values.event_property_keys.contains("utm_source"));
}

#[test]
fn scores_may_change_with_time() {
    let d = cond(prop("score.engagement", "number", "gte", json!(50))).dependencies();
    assert!(d.reads_scores && d.time_driven());
    let d = cond(prop("lead.stage", "string", "eq", json!("sql"))).dependencies();
    assert!(!d.reads_scores && !d.time_driven());
}

#[test]
fn expanded_dependencies_follow_references() {
    let rules = catalogue(&[
        (
            "outer",
            json!({"type": "or", "children": [{"type": "rule", "rule_id": "inner"}, {"type": "tag", "op": "has", "tags": ["t"]}]}),
        ),
        (
            "inner",
            json!({"type": "behaviour", "event": "oa.subscribe", "window": {"type": "all_time"}}),
        ),
    ]);
    let e = cond_with(json!({"type": "rule", "rule_id": "outer"}), &rules);
    let d = e.dependencies();
    assert!(d.event_kinds.contains("oa.subscribe") && d.tags.contains("t"));
    assert_eq!(d.rule_refs.len(), 2);
    assert!(!d.time_driven());
    let mut merged = Dependencies::default();
    merged.merge(d.clone());
    assert_eq!(merged, d);
}
