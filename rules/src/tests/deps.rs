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
        }
    );
    assert!(d.event_may_affect("track.page_view", &[]));
    assert!(d.event_may_affect("oa.subscribe", &["pricing"]));
    assert!(!d.event_may_affect("oa.subscribe", &["other"]));
    assert!(d.properties_may_affect(["contact.city"]));
    assert!(d.time_driven());
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
