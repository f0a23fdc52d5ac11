//! No input makes validation, evaluation or compilation panic.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::support::*;
use crate::sql::{compile, CompileCtx};
use crate::{evaluate, expand, parse, Limits, NoRules, ProfileFacts};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "and",
            "or",
            "not",
            "property",
            "behaviour",
            "distinct",
            "content_tags",
            "property_values",
            "tag",
            "wechat",
            "source",
            "rule",
            "eq",
            "between",
            "in",
            "contains",
            "string",
            "number",
            "date",
            "datetime",
            "bool",
            "last",
            "range",
            "all_time",
            "has",
            "has_all",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "a.b",
            "oa_subscribed",
            "first",
            "level",
            "days_ago",
            "",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        let keys = prop::sample::select(vec![
            "type",
            "children",
            "child",
            "key",
            "value_type",
            "op",
            "value",
            "event",
            "content_tag",
            "filters",
            "count",
            "window",
            "days",
            "from",
            "to",
            "tags",
            "state",
            "app_id",
            "corp_id",
            "rule_id",
            "touch",
            "field",
            "level",
            "days_ago",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// Nodes shaped like the language with values drawn from valid and invalid ones, so that many
/// documents get past validation and reach evaluation and compilation.
fn near_valid() -> impl Strategy<Value = Value> {
    let any_of = |xs: Vec<Value>| prop::sample::select(xs);
    let value = prop_oneof![
        json_value(),
        any_of(vec![
            json!("x"),
            json!(1.5),
            json!(true),
            json!("2024-06-01"),
            json!("2024-06-01T00:00:00Z"),
            json!({"days_ago": 3}),
            json!({"days_ago": -400000}),
            json!(["a", "b"]),
            json!([1, 2]),
            json!([{"days_ago": 9}, {"days_ago": 1}])
        ]),
    ];
    let leaf = prop_oneof![
        (any_of(vec![json!("a.b"), json!("k")]),
         any_of(vec![json!("string"), json!("number"), json!("bool"), json!("date"), json!("datetime")]),
         any_of(["eq","ne","lt","lte","gt","gte","between","in","not_in","contains","starts_with",
                 "ends_with","exists","missing"].iter().map(|s| json!(s)).collect()),
         prop::option::of(value.clone()))
            .prop_map(|(k, t, op, v)| {
                let mut o = json!({"type": "property", "key": k, "value_type": t, "op": op});
                if let Some(v) = v { o["value"] = v; }
                o
            }),
        (prop::option::of(any_of(vec![json!("a.b"), json!("c")])),
         prop::option::of(any_of(vec![json!("t"), json!("u")])),
         any_of(vec![json!({"op": "eq", "value": 0}), json!({"op": "between", "value": [1, 9]}),
                     json!({"op": "lt", "value": 18446744073709551615u64})]),
         any_of(vec![json!({"type": "last", "days": 365}), json!({"type": "all_time"}),
                     json!({"type": "range", "from": "1000-01-01", "to": "9999-12-31"})]))
            .prop_map(|(e, t, c, w)| json!({"type": "behaviour", "event": e, "content_tag": t, "count": c, "window": w})),
        any_of(vec![json!({"type": "tag", "op": "has_all", "tags": ["a", "a"]}),
                    json!({"type": "wechat", "state": "wecom_followed", "user_id": "u"}),
                    json!({"type": "source", "touch": "first", "field": "level", "level": 10, "op": "exists"}),
                    json!({"type": "distinct", "of": "property_values", "property": "a.b",
                           "count": {"op": "lt", "value": 3}, "window": {"type": "last", "days": 1}}),
                    json!({"type": "distinct", "of": "content_tags", "window": {"type": "all_time"}}),
                    json!({"type": "property", "key": "score.a", "value_type": "number", "op": "between",
                           "value": [1, 2]})]),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|c| json!({"type": "and", "children": c})),
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|c| json!({"type": "or", "children": c})),
            inner.prop_map(|c| json!({"type": "not", "child": c})),
        ]
    })
}

fn exercise(root: Value) -> bool {
    let limits = Limits::default();
    let Ok(d) = parse(&doc(root), &limits, &NoRules) else {
        return false;
    };
    let e = expand(&d.root, &limits, &NoRules).unwrap();
    let mut facts = ProfileFacts::new("p");
    facts.set_property_json(
        "a.b",
        &json!(["x", 1.5, "2024-06-01", "2024-06-01T00:00:00Z", true]),
    );
    facts.add_count("e:a.b", ctx().today, 2);
    let _ = evaluate(&e, &facts, &ctx());
    let _ = crate::next_expiry(&e, &facts, &ctx());
    let _ = compile(&e, &CompileCtx::new("t", &ctx()));
    true
}

#[test]
fn many_near_valid_documents_are_valid() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let valid = (0..300)
        .filter(|_| exercise(near_valid().new_tree(&mut runner).unwrap().current()))
        .count();
    assert!(
        valid > 60,
        "only {valid} of 300 valid: the fuzzing below would prove little"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_documents_never_panic(root in json_value()) {
        exercise(root);
    }

    #[test]
    fn near_valid_documents_never_panic(root in near_valid()) {
        exercise(root);
    }
}
