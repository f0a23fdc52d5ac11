//! Rule references: resolution, unknown ids, cycles, limits after expansion.

use serde_json::json;

use super::support::*;
use crate::ErrorCode as E;
use crate::{parse, parse_rule, Condition, Limits, ValueType};

fn at(path: &str, code: E) -> (String, E) {
    (path.to_string(), code)
}

#[test]
fn rule_references_are_checked_through_the_lookup() {
    let rules = catalogue(&[
        ("vip", json!({"type": "tag", "op": "has", "tags": ["vip"]})),
        (
            "a",
            json!({"type": "or", "children": [{"type": "rule", "rule_id": "b"}]}),
        ),
        (
            "b",
            json!({"type": "not", "child": {"type": "rule", "rule_id": "a"}}),
        ),
        (
            "bad",
            json!({"type": "and", "children": [prop("x", "number", "eq", json!("1"))]}),
        ),
        ("uses_new", json!({"type": "rule", "rule_id": "new"})),
    ]);
    let root = json!({"type": "and", "children": [
        {"type": "rule", "rule_id": "vip"},
        {"type": "rule", "rule_id": "ghost"},
        {"type": "rule", "rule_id": "a"},
        {"type": "rule", "rule_id": "bad"},
    ]});
    let e = parse(&doc(root), &Limits::default(), &rules).unwrap_err();
    let got: Vec<_> = e
        .iter()
        .map(|e| (e.path.as_str(), e.code, e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "root.children[1]",
                E::UnknownRule,
                "rule `ghost` does not exist"
            ),
            (
                "root.children[2]@a.children[0]@b.child",
                E::RuleCycle,
                "rule cycle: a -> b -> a"
            ),
            (
                "root.children[3]@bad.children[0].value",
                E::TypeMismatch,
                "must be a number value"
            ),
        ]
    );
    // Written as is: the reference stays a reference.
    let ok = parse(
        &doc(json!({"type": "rule", "rule_id": "vip"})),
        &Limits::default(),
        &rules,
    )
    .unwrap();
    assert_eq!(
        ok.root,
        Condition::Rule {
            rule_id: "vip".into()
        }
    );
    // Saving rule `new` so that it refers to a rule that refers back to it.
    let e = parse_rule(
        &doc(json!({"type": "rule", "rule_id": "uses_new"})),
        "new",
        &Limits::default(),
        &rules,
    )
    .unwrap_err();
    assert_eq!(e[0].code, E::RuleCycle);
    assert_eq!(e[0].message, "rule cycle: new -> uses_new -> new");
    let e = parse_rule(
        &doc(json!({"type": "rule", "rule_id": "new"})),
        "new",
        &Limits::default(),
        &rules,
    )
    .unwrap_err();
    assert_eq!(
        (e[0].path.as_str(), e[0].message.as_str()),
        ("root", "rule cycle: new -> new")
    );
}

#[test]
fn limits_apply_after_expansion() {
    let wide: Vec<_> = (0..150)
        .map(|_| prop("a", "bool", "exists", json!(null)))
        .collect();
    let rules = catalogue(&[("wide", json!({"type": "or", "children": wide}))]);
    let root = json!({"type": "and", "children": [{"type": "rule", "rule_id": "wide"}, {"type": "rule", "rule_id": "wide"}]});
    let e = errors_of(&doc(root), &rules);
    assert_eq!(e, vec![at("root", E::TooManyNodes)]);
    let mut deep = prop("a", "bool", "exists", json!(null));
    for _ in 0..6 {
        deep = json!({"type": "not", "child": deep});
    }
    let rules = catalogue(&[("deep", deep)]);
    let mut root = json!({"type": "rule", "rule_id": "deep"});
    for _ in 0..4 {
        root = json!({"type": "not", "child": root});
    }
    let e = errors_of(&doc(root), &rules);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].1, E::TooDeep);
    assert!(
        e[0].0.starts_with("root.child.child.child.child@deep."),
        "{}",
        e[0].0
    );
}

#[test]
fn expansion_removes_references_and_sugar() {
    let rules = catalogue(&[(
        "r",
        json!({"type": "source", "touch": "first", "field": "level", "level": 2, "op": "eq", "value": "wechat"}),
    )]);
    let e = cond_with(
        json!({"type": "not", "child": {"type": "rule", "rule_id": "r"}}),
        &rules,
    );
    let Condition::Not { child } = e.root() else {
        panic!("{e:?}")
    };
    let Condition::Property(p) = child.as_ref() else {
        panic!("{child:?}")
    };
    assert_eq!(
        (p.key.as_str(), p.value_type),
        ("source.first.level2", ValueType::String)
    );
    assert_eq!(e.rule_refs().iter().collect::<Vec<_>>(), vec!["r"]);
}

#[test]
fn references_are_checked_even_when_other_nodes_do_not_parse() {
    let root = json!({"type": "or", "children": [
        {"type": "rule", "rule_id": "ghost"},
        {"type": "nope"},
    ]});
    let e = errors_of(&doc(root), &crate::NoRules);
    assert_eq!(
        e,
        vec![
            at("root.children[1].type", E::Syntax),
            at("root.children[0]", E::UnknownRule)
        ]
    );
}

#[test]
fn bound_values_are_limited_in_all() {
    let list: Vec<u32> = (0..1000).collect();
    let rule = |_| prop("n", "number", "in", json!(list));
    let wide: Vec<_> = (0..6).map(rule).collect();
    let rules = catalogue(&[("six_thousand", json!({"type": "or", "children": wide}))]);
    let root = json!({"type": "and", "children": [
        {"type": "rule", "rule_id": "six_thousand"},
        {"type": "not", "child": {"type": "rule", "rule_id": "six_thousand"}},
    ]});
    assert_eq!(
        errors_of(&doc(root), &rules),
        vec![at("root", E::TooManyValues)]
    );
    let once = json!({"type": "rule", "rule_id": "six_thousand"});
    assert!(parse(&doc(once), &Limits::default(), &rules).is_ok());
}
