//! Parsing and validation: every error kind with its exact path.

use serde_json::json;

use super::support::*;
use crate::ErrorCode as E;
use crate::{parse, Condition, Limits, NoRules};

fn at(path: &str, code: E) -> (String, E) {
    (path.to_string(), code)
}

#[test]
fn a_valid_document_parses_as_written() {
    let root = json!({"type": "and", "children": [
        prop("contact.city", "string", "in", json!(["上海", "Beijing"])),
        {"type": "not", "child": {"type": "tag", "op": "has", "tags": ["vip"]}},
        {"type": "behaviour", "event": "track.page_view", "content_tag": "case_study",
         "filters": [{"key": "page", "value_type": "string", "op": "starts_with", "value": "/cases"}],
         "count": {"op": "gte", "value": 3}, "window": {"type": "last", "days": 30}},
        {"type": "wechat", "state": "in_group_chat", "corp_id": "ww1"},
        {"type": "source", "touch": "latest", "field": "level", "level": 3, "op": "exists"},
        prop("contact.birthday", "date", "between", json!([{"days_ago": 30}, "2030-01-01"])),
    ]});
    let parsed = parse(&doc(root.clone()), &Limits::default(), &NoRules).unwrap();
    let direct: Condition = serde_json::from_value(root).unwrap();
    assert_eq!(parsed.root, direct);
    assert_eq!(parsed.version, 1);
}

#[test]
fn the_document_itself() {
    let e = errors_of(
        &json!({"root": prop("a", "bool", "exists", json!(null))}),
        &NoRules,
    );
    assert_eq!(e, vec![at("version", E::Syntax)]);
    let e = errors_of(
        &json!({"version": 2, "root": prop("a", "bool", "exists", json!(null))}),
        &NoRules,
    );
    assert_eq!(e, vec![at("version", E::UnsupportedVersion)]);
    let e = errors_of(&json!({"version": 1}), &NoRules);
    assert_eq!(e, vec![at("root", E::Syntax)]);
    let e = errors_of(&json!([1]), &NoRules);
    assert_eq!(e, vec![at("", E::Syntax)]);
    let e = errors_of(
        &json!({"version": 1, "root": {"type": "tag", "op": "has", "tags": ["a"]}, "x": 1}),
        &NoRules,
    );
    assert_eq!(e, vec![at("x", E::Syntax)]);
}

#[test]
fn structure_errors_point_at_the_node() {
    assert_eq!(
        one_error(
            json!({"type": "or", "children": [prop("a", "bool", "exists", json!(null)), {"type": "nand"}]})
        ),
        at("root.children[1].type", E::Syntax)
    );
    assert_eq!(
        one_error(json!({"type": "and", "children": []})),
        at("root.children", E::EmptyChildren)
    );
    assert_eq!(
        one_error(json!({"type": "and", "children": {}})),
        at("root.children", E::Syntax)
    );
    assert_eq!(
        one_error(
            json!({"type": "not", "child": prop("a", "bool", "exists", json!(null)), "children": []})
        ),
        at("root.children", E::Syntax)
    );
    assert_eq!(one_error(json!({"type": "not"})), at("root", E::Syntax));
    assert_eq!(one_error(json!("and")), at("root", E::Syntax));
    assert_eq!(
        one_error(json!({"kind": "and"})),
        at("root.type", E::Syntax)
    );
}

#[test]
fn serde_errors_carry_their_path() {
    let e = parse(
        &doc(prop("a", "string", "like", json!("x"))),
        &Limits::default(),
        &NoRules,
    )
    .unwrap_err();
    assert_eq!((e[0].path.as_str(), e[0].code), ("root.op", E::Syntax));
    assert!(
        e[0].message.contains("unknown variant `like`"),
        "{}",
        e[0].message
    );
    let e = parse(
        &doc(json!({"type": "property", "value_type": "string", "op": "exists"})),
        &Limits::default(),
        &NoRules,
    )
    .unwrap_err();
    assert_eq!(
        (e[0].path.as_str(), e[0].message.as_str()),
        ("root", "missing field `key`")
    );
    assert_eq!(
        one_error(json!({"type": "behaviour", "event": "a.b",
            "filters": [filter("page", "string", "eq", json!("x")), {"key": "p", "value_type": "strin", "op": "eq"}]})),
        at("root.filters[1].value_type", E::Syntax)
    );
    let e = parse(
        &doc(json!({"type": "behaviour", "event": "a.b", "count": {"op": "gte", "value": -1}})),
        &Limits::default(),
        &NoRules,
    )
    .unwrap_err();
    assert_eq!(e[0].path, "root.count.value");
    assert_eq!(
        e[0].message,
        "must be a count (a non-negative integer) or [lo, hi]"
    );
    assert_eq!(
        one_error(
            json!({"type": "behaviour", "event": "a.b", "window": {"type": "last", "days": "7"}})
        ),
        at("root.window.days", E::Syntax)
    );
    assert_eq!(
        one_error(
            json!({"type": "behaviour", "event": "a.b", "window": {"type": "next", "days": 7}})
        ),
        at("root.window.type", E::Syntax)
    );
    assert_eq!(
        one_error(json!({"type": "wechat", "state": "oa_subscribed", "app_id": 7})),
        at("root.app_id", E::Syntax)
    );
    assert_eq!(
        one_error(json!({"type": "wechat", "state": "blocked"})),
        at("root.state", E::Syntax)
    );
    assert_eq!(
        one_error(json!({"type": "tag", "op": "has", "tags": ["a"], "tag": "b"})),
        at("root.tag", E::Syntax)
    );
}

#[test]
fn limits_of_size() {
    let mut deep = prop("a", "bool", "exists", json!(null));
    for _ in 0..10 {
        deep = json!({"type": "not", "child": deep});
    }
    // 11 levels: the 11th node is reported where it is.
    let path = format!("root{}", ".child".repeat(10));
    assert_eq!(one_error(deep), at(&path, E::TooDeep));
    let wide: Vec<_> = (0..200)
        .map(|_| prop("a", "bool", "exists", json!(null)))
        .collect();
    assert_eq!(
        one_error(json!({"type": "or", "children": wide})),
        at("root", E::TooManyNodes)
    );
    let ok: Vec<_> = (0..199)
        .map(|_| prop("a", "bool", "exists", json!(null)))
        .collect();
    assert!(parse(
        &doc(json!({"type": "or", "children": ok})),
        &Limits::default(),
        &NoRules
    )
    .is_ok());
}

#[test]
fn property_errors_are_named() {
    let p = |ty, op, v| one_error(prop("contact.city", ty, op, v));
    assert_eq!(
        one_error(prop("Contact.City", "string", "exists", json!(null))),
        at("root.key", E::InvalidKey)
    );
    assert_eq!(
        one_error(prop("a..b", "string", "exists", json!(null))),
        at("root.key", E::InvalidKey)
    );
    assert_eq!(
        p("number", "contains", json!("1")),
        at("root.op", E::OpNotAllowed)
    );
    assert_eq!(p("bool", "lt", json!(true)), at("root.op", E::OpNotAllowed));
    assert_eq!(
        p("date", "in", json!(["2024-01-01"])),
        at("root.op", E::OpNotAllowed)
    );
    assert_eq!(
        p("number", "eq", json!("3")),
        at("root.value", E::TypeMismatch)
    );
    assert_eq!(p("bool", "eq", json!(1)), at("root.value", E::TypeMismatch));
    assert_eq!(
        p("string", "eq", json!(3)),
        at("root.value", E::TypeMismatch)
    );
    assert_eq!(
        p("string", "eq", json!("2024-01-01")),
        at("root.value", E::TypeMismatch)
    );
    assert_eq!(
        p("string", "eq", json!(null)),
        at("root.value", E::MissingValue)
    );
    assert_eq!(
        p("string", "missing", json!("x")),
        at("root.value", E::UnexpectedValue)
    );
    assert_eq!(
        p("number", "between", json!([1, 2, 3])),
        at("root.value", E::BetweenShape)
    );
    assert_eq!(
        p("number", "between", json!(1)),
        at("root.value", E::BetweenShape)
    );
    assert_eq!(
        p("number", "between", json!([5, 1])),
        at("root.value", E::BetweenOrder)
    );
    assert_eq!(
        p("string", "between", json!(["b", "a"])),
        at("root.value", E::BetweenOrder)
    );
    assert_eq!(
        p(
            "date",
            "between",
            json!([{"days_ago": 0}, {"days_ago": 30}])
        ),
        at("root.value", E::BetweenOrder)
    );
    assert_eq!(
        p(
            "datetime",
            "between",
            json!(["2024-01-01T09:00:00+08:00", "2024-01-01T00:30:00Z"])
        ),
        at("root.value", E::BetweenOrder)
    );
    assert_eq!(p("number", "in", json!(1)), at("root.value", E::ValueShape));
    assert_eq!(
        p("number", "eq", json!([1])),
        at("root.value", E::ValueShape)
    );
    assert_eq!(p("number", "in", json!([])), at("root.value", E::EmptyList));
    let long: Vec<_> = (0..1001).collect();
    assert_eq!(
        p("number", "not_in", json!(long)),
        at("root.value", E::ListTooLong)
    );
    assert_eq!(
        p("string", "eq", json!("é".repeat(256))),
        at("root.value", E::StringTooLong)
    );
    assert!(parse(
        &doc(prop("a", "string", "eq", json!("é".repeat(255)))),
        &Limits::default(),
        &NoRules
    )
    .is_ok());
    assert_eq!(
        p("string", "eq", json!({"days_ago": 1})),
        at("root.value", E::RelativeNotAllowed)
    );
    assert_eq!(
        p("number", "in", json!([1, {"days_ago": 1}])),
        at("root.value[1]", E::RelativeNotAllowed)
    );
    assert_eq!(
        p("date", "lt", json!({"days_ago": 36501})),
        at("root.value.days_ago", E::OutOfRange)
    );
    assert_eq!(
        p("date", "lt", json!("2024-02-30")),
        at("root.value", E::InvalidDate)
    );
    assert_eq!(
        p("date", "lt", json!("2024-2-3")),
        at("root.value", E::InvalidDate)
    );
    assert_eq!(
        p(
            "datetime",
            "between",
            json!(["2024-01-01T00:00:00Z", "yesterday"])
        ),
        at("root.value[1]", E::InvalidDatetime)
    );
    assert_eq!(
        p("string", "eq", json!({"days": 1})),
        at("root.value", E::Syntax)
    );
}

#[test]
fn behaviour_errors_are_named() {
    let b = |extra: serde_json::Value| {
        let mut v = json!({"type": "behaviour", "event": "track.page_view"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        json!({"type": "and", "children": [prop("a", "bool", "exists", json!(null)), prop("b", "bool", "exists", json!(null)), v]})
    };
    assert_eq!(
        one_error(b(json!({"window": {"type": "last", "days": 400}}))),
        at("root.children[2].window.days", E::OutOfRange)
    );
    assert_eq!(
        one_error(b(json!({"window": {"type": "last", "days": 0}}))),
        at("root.children[2].window.days", E::OutOfRange)
    );
    assert_eq!(
        one_error(b(
            json!({"window": {"type": "range", "from": "2024-02-01", "to": "2024-01-31"}})
        )),
        at("root.children[2].window.to", E::InvalidWindow)
    );
    assert_eq!(
        one_error(b(
            json!({"window": {"type": "range", "from": "2024-2-1", "to": "2024-03-01"}})
        )),
        at("root.children[2].window.from", E::InvalidDate)
    );
    assert_eq!(
        one_error(b(
            json!({"window": {"type": "range", "from": "0999-12-31", "to": "2024-03-01"}})
        )),
        at("root.children[2].window.from", E::OutOfRange)
    );
    assert_eq!(
        one_error(b(json!({"count": {"op": "between", "value": [5, 2]}}))),
        at("root.children[2].count.value", E::BetweenOrder)
    );
    assert_eq!(
        one_error(b(json!({"count": {"op": "between", "value": 5}}))),
        at("root.children[2].count.value", E::BetweenShape)
    );
    assert_eq!(
        one_error(b(json!({"count": {"op": "gt", "value": [1, 2]}}))),
        at("root.children[2].count.value", E::ValueShape)
    );
    assert_eq!(
        one_error(b(json!({"count": {"op": "gt", "value": 2_000_000_000u64}}))),
        at("root.children[2].count.value", E::OutOfRange)
    );
    assert_eq!(
        one_error(b(json!({"event": "Track.PageView"}))),
        at("root.children[2].event", E::InvalidKey)
    );
    assert_eq!(
        one_error(b(json!({"content_tag": " case"}))),
        at("root.children[2].content_tag", E::InvalidId)
    );
    let filters: Vec<_> = (0..11)
        .map(|_| filter("page", "string", "exists", json!(null)))
        .collect();
    assert_eq!(
        one_error(b(json!({"filters": filters}))),
        at("root.children[2].filters", E::TooManyFilters)
    );
    assert_eq!(
        one_error(b(
            json!({"filters": [filter("page", "string", "exists", json!(null)), filter("n", "number", "starts_with", json!("1"))]})
        )),
        at("root.children[2].filters[1].op", E::OpNotAllowed)
    );
    assert_eq!(
        one_error(json!({"type": "behaviour", "window": {"type": "all_time"}})),
        at("root", E::MissingEventOrTag)
    );
}

#[test]
fn tag_wechat_and_source_errors_are_named() {
    assert_eq!(
        one_error(json!({"type": "tag", "op": "has", "tags": ["a", "b"]})),
        at("root.tags", E::TagCount)
    );
    assert_eq!(
        one_error(json!({"type": "tag", "op": "has_any", "tags": []})),
        at("root.tags", E::TagCount)
    );
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    assert_eq!(
        one_error(json!({"type": "tag", "op": "has_all", "tags": many})),
        at("root.tags", E::TagCount)
    );
    assert_eq!(
        one_error(json!({"type": "tag", "op": "has_none", "tags": ["a", "b\n"]})),
        at("root.tags[1]", E::InvalidId)
    );
    assert_eq!(
        one_error(json!({"type": "wechat", "state": "wecom_followed", "user_id": ""})),
        at("root.user_id", E::InvalidId)
    );
    let src = |field: &str, level: Option<u8>| {
        let mut v =
            json!({"type": "source", "touch": "first", "field": field, "op": "eq", "value": "x"});
        if let Some(l) = level {
            v["level"] = json!(l);
        }
        v
    };
    assert_eq!(
        one_error(src("level", None)),
        at("root.level", E::InvalidLevel)
    );
    assert_eq!(
        one_error(src("level", Some(11))),
        at("root.level", E::InvalidLevel)
    );
    assert_eq!(
        one_error(src("channel", Some(1))),
        at("root.level", E::InvalidLevel)
    );
    let mut bad_op = src("media", None);
    bad_op["op"] = json!("between");
    assert_eq!(one_error(bad_op), at("root.value", E::BetweenShape));
}

#[test]
fn every_error_is_reported() {
    let e = errors(json!({"type": "or", "children": [
        prop("contact.age", "number", "eq", json!("x")),
        {"type": "and", "children": [
            {"type": "behaviour", "event": "a", "window": {"type": "last", "days": 366}},
            {"type": "tag", "op": "has", "tags": []},
        ]},
        {"type": "mystery"},
        prop("BAD", "string", "contains", json!(1)),
    ]}));
    assert_eq!(
        e,
        vec![
            at("root.children[0].value", E::TypeMismatch),
            at("root.children[1].children[0].window.days", E::OutOfRange),
            at("root.children[1].children[1].tags", E::TagCount),
            at("root.children[2].type", E::Syntax),
            at("root.children[3].key", E::InvalidKey),
            at("root.children[3].value", E::TypeMismatch),
        ]
    );
}

#[test]
fn custom_limits() {
    let limits = Limits {
        max_list: 2,
        max_string: 3,
        ..Limits::default()
    };
    let e = parse(
        &doc(prop("a", "string", "in", json!(["abc", "abcd", "x"]))),
        &limits,
        &NoRules,
    )
    .unwrap_err();
    let got: Vec<_> = e.iter().map(|e| (e.path.as_str(), e.code)).collect();
    assert_eq!(
        got,
        vec![
            ("root.value", E::ListTooLong),
            ("root.value[1]", E::StringTooLong)
        ]
    );
}
