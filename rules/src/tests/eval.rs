use chrono::{Days, Duration};
use serde_json::{json, Value};

use super::support::*;
use crate::{evaluate, EventFact, FactValue, ProfileFacts, RelationKind};

fn holds(root: Value, p: &ProfileFacts) -> bool {
    evaluate(&cond(root), p, &ctx())
}

fn with(key: &str, values: Value) -> ProfileFacts {
    let mut p = ProfileFacts::new("p");
    p.set_property_json(key, &values);
    p
}

#[test]
fn multi_valued_properties_match_on_any_value() {
    let p = with("contact.city", json!(["Shanghai", "Beijing", 3]));
    let city = |op, v| holds(prop("contact.city", "string", op, v), &p);
    assert!(city("eq", json!("Beijing")));
    assert!(!city("ne", json!("Beijing")), "ne is NOT eq");
    assert!(city("ne", json!("Tianjin")));
    assert!(city("in", json!(["Tianjin", "Shanghai"])));
    assert!(!city("not_in", json!(["Shanghai"])));
    assert!(city("exists", Value::Null));
    assert!(!city("missing", Value::Null));
    // The number 3 is not a string: string ops never see it.
    assert!(!city("eq", json!("3")) && city("ne", json!("3")));
    assert!(holds(prop("contact.city", "number", "eq", json!(3)), &p));
    assert!(!holds(prop("contact.city", "number", "gt", json!(3)), &p));
}

#[test]
fn profiles_without_the_key() {
    let p = ProfileFacts::new("p");
    let k = |op, v| holds(prop("contact.city", "string", op, v), &p);
    assert!(!k("eq", json!("x")) && !k("contains", json!("")) && !k("exists", Value::Null));
    assert!(k("ne", json!("x")) && k("not_in", json!(["x"])) && k("missing", Value::Null));
}

#[test]
fn strings_compare_exactly_and_fold_for_substrings() {
    let p = with("k", json!(["Ärger", "a\t", "50%_off"]));
    let s = |op, v| holds(prop("k", "string", op, v), &p);
    assert!(!s("eq", json!("ärger")), "eq is case-sensitive");
    assert!(
        s("contains", json!("RGE"))
            && s("starts_with", json!("äR"))
            && s("ends_with", json!("GER"))
    );
    assert!(!s("ends_with", json!("ärg")));
    assert!(s("contains", json!("%_")) && !s("contains", json!("%x")));
    // Byte order, trailing spaces and control characters included: 'Z' < 'a' < 'a\t' < 'a '.
    let p = with("k", json!("a\t"));
    let s = |op, v| holds(prop("k", "string", op, v), &p);
    assert!(s("lt", json!("a ")) && !s("lt", json!("a")) && s("gt", json!("a")));
    assert!(s("gt", json!("Zzz")) && !s("eq", json!("a")) && !s("eq", json!("a\t ")));
    assert!(s("between", json!(["a", "a\t"])));
    let p = with("k", json!("İstanbul"));
    assert!(
        holds(prop("k", "string", "contains", json!("i̇stan")), &p),
        "İ folds to i + dot"
    );
    assert!(!holds(prop("k", "string", "contains", json!("istan")), &p));
}

#[test]
fn numbers_and_bools() {
    let p = with("n", json!([2.5, -1]));
    let n = |op, v| holds(prop("n", "number", op, v), &p);
    assert!(n("between", json!([2.5, 3])) && n("between", json!([-1, -1])));
    assert!(!n("between", json!([0, 2])));
    assert!(n("lt", json!(0)) && n("gte", json!(2.5)) && !n("gt", json!(2.5)));
    assert!(n("in", json!([7, -1])) && !n("not_in", json!([-1])));
    let p = with("b", json!(true));
    assert!(holds(prop("b", "bool", "eq", json!(true)), &p));
    assert!(holds(prop("b", "bool", "ne", json!(false)), &p));
    assert!(
        !holds(prop("b", "number", "eq", json!(1)), &p),
        "a bool is not the number 1"
    );
}

#[test]
fn dates_and_datetimes_absolute_and_relative() {
    // Today is 2024-06-15; now is 10:00 UTC.
    let p = with("d", json!(["2024-05-16", "not a date"]));
    let d = |op, v| holds(prop("d", "date", op, v), &p);
    assert!(d("eq", json!({"days_ago": 30})) && !d("eq", json!({"days_ago": 29})));
    assert!(d("gte", json!({"days_ago": 30})) && !d("gt", json!({"days_ago": 30})));
    assert!(d("between", json!(["2024-05-01", {"days_ago": 0}])));
    assert!(d("lt", json!({"days_ago": -1})), "negative = future");
    assert!(
        holds(prop("d", "datetime", "exists", Value::Null), &p),
        "exists ignores the type"
    );
    assert!(
        !holds(prop("d", "datetime", "lt", json!({"days_ago": 0})), &p),
        "no datetime value"
    );
    // An instant given with an offset is compared in UTC.
    let p = with("t", json!("2024-06-14T18:00:00+08:00"));
    let t = |op, v| holds(prop("t", "datetime", op, v), &p);
    assert!(t("eq", json!("2024-06-14T10:00:00Z")));
    assert!(t("eq", json!({"days_ago": 1})), "now − 86 400 s");
    assert!(t("lt", json!("2024-06-14T10:00:01Z")) && !t("lt", json!("2024-06-14T10:00:00Z")));
    assert!(
        !holds(prop("t", "date", "eq", json!("2024-06-14")), &p),
        "a datetime is not a date"
    );
}

fn buckets(p: &mut ProfileFacts, metric: &str, days_ago: &[(i64, i64)]) {
    for (ago, n) in days_ago {
        p.add_count(metric, ctx().today - Duration::days(*ago), *n);
    }
}

fn behaviour(extra: Value) -> Value {
    let mut v = json!({"type": "behaviour", "event": "track.page_view"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn last_windows_are_calendar_days_up_to_today() {
    let mut p = ProfileFacts::new("p");
    buckets(
        &mut p,
        "e:track.page_view",
        &[(0, 1), (6, 2), (7, 4), (-1, 8)],
    );
    let count = |w: Value, op: &str, n: u64| {
        holds(
            behaviour(json!({"window": w, "count": {"op": op, "value": n}})),
            &p,
        )
    };
    assert!(
        count(json!({"type": "last", "days": 7}), "eq", 3),
        "today and 6 days ago, not 7, not tomorrow"
    );
    assert!(count(json!({"type": "last", "days": 8}), "eq", 7));
    assert!(count(json!({"type": "last", "days": 1}), "eq", 1));
    assert!(count(json!({"type": "all_time"}), "eq", 15));
    assert!(count(
        json!({"type": "range", "from": "2024-06-09", "to": "2024-06-16"}),
        "eq",
        11
    ));
    assert!(count(
        json!({"type": "range", "from": "2024-06-08", "to": "2024-06-16"}),
        "eq",
        15
    ));
    assert!(count(
        json!({"type": "range", "from": "2024-06-09", "to": "2024-06-09"}),
        "eq",
        2
    ));
    // Default window: last 30 days; default count: at least once.
    assert!(holds(behaviour(json!({})), &p));
    assert!(!holds(
        json!({"type": "behaviour", "event": "oa.subscribe"}),
        &p
    ));
}

#[test]
fn did_not_do_and_zero_counts() {
    let none = ProfileFacts::new("p");
    let did_not = behaviour(json!({"count": {"op": "eq", "value": 0}}));
    assert!(holds(did_not.clone(), &none), "no events at all");
    assert!(holds(
        behaviour(json!({"count": {"op": "lt", "value": 3}})),
        &none
    ));
    let mut p = ProfileFacts::new("p");
    buckets(&mut p, "e:track.page_view", &[(40, 5)]);
    assert!(holds(did_not.clone(), &p), "outside the window");
    buckets(&mut p, "e:track.page_view", &[(3, 2)]);
    assert!(!holds(did_not, &p));
    assert!(holds(
        behaviour(json!({"count": {"op": "between", "value": [2, 2]}})),
        &p
    ));
    assert!(holds(
        behaviour(json!({"count": {"op": "ne", "value": 0}})),
        &p
    ));
}

#[test]
fn content_tags_and_filters_use_raw_events() {
    let day = ctx().today - Days::new(2);
    let mut p = ProfileFacts::new("p");
    // Metrics only say 'c:case_study' was seen once; the raw events say more.
    p.add_count("c:case_study", day, 1);
    p.push_event(
        EventFact::new("e1", "track.page_view", day)
            .with_content_tag("case_study")
            .with_prop_json("page", &json!("/Cases/One")),
    );
    p.push_event(
        EventFact::new("e2", "track.page_view", day)
            .with_content_tag("pricing")
            .with_prop_json("page", &json!("/cases/two")),
    );
    p.push_event(EventFact::new("e3", "oa.message.text", day).with_content_tag("case_study"));
    p.push_event(
        EventFact::new("e4", "track.page_view", day - Days::new(40)).with_content_tag("case_study"),
    );
    let n = |leaf: Value, count: u64| {
        let mut leaf = leaf;
        leaf["type"] = json!("behaviour");
        leaf["count"] = json!({"op": "eq", "value": count});
        holds(leaf, &p)
    };
    assert!(n(json!({"content_tag": "case_study"}), 1), "metric path");
    assert!(n(
        json!({"content_tag": "case_study", "window": {"type": "all_time"}}),
        1
    ));
    assert!(
        n(
            json!({"event": "track.page_view", "content_tag": "case_study"}),
            1
        ),
        "raw path"
    );
    assert!(n(
        json!({"event": "track.page_view", "content_tag": "case_study", "window": {"type": "all_time"}}),
        2
    ));
    let page =
        |op: &str, v: Value| json!([{"key": "page", "value_type": "string", "op": op, "value": v}]);
    assert!(n(
        json!({"event": "track.page_view", "filters": page("starts_with", json!("/cases"))}),
        2
    ));
    assert!(n(
        json!({"event": "track.page_view", "filters": page("eq", json!("/cases/two"))}),
        1
    ));
    assert!(
        n(
            json!({"content_tag": "case_study", "filters": page("ne", json!("/Cases/One"))}),
            1
        ),
        "the message has no page: ne matches it"
    );
    let missing = json!([{"key": "page", "value_type": "string", "op": "missing"}]);
    assert!(n(
        json!({"content_tag": "case_study", "filters": missing}),
        1
    ));
}

#[test]
fn tags_and_wechat_state() {
    let mut p = ProfileFacts::new("p");
    p.add_tag("vip").add_tag("lead");
    p.add_relation(RelationKind::Oa, "wxA", "");
    p.add_relation(RelationKind::Follow, "ww1", "rep1");
    p.add_relation(RelationKind::Group, "ww1", "chat9");
    let t = |op: &str, tags: Value| holds(json!({"type": "tag", "op": op, "tags": tags}), &p);
    assert!(t("has", json!(["vip"])) && !t("has", json!(["VIP"])));
    assert!(t("has_any", json!(["x", "lead"])) && !t("has_any", json!(["x"])));
    assert!(t("has_all", json!(["vip", "lead", "vip"])) && !t("has_all", json!(["vip", "x"])));
    assert!(t("has_none", json!(["x", "y"])) && !t("has_none", json!(["x", "vip"])));
    let w = |v: Value| holds(v, &p);
    assert!(w(json!({"type": "wechat", "state": "oa_subscribed"})));
    assert!(w(
        json!({"type": "wechat", "state": "oa_subscribed", "app_id": "wxA"})
    ));
    assert!(!w(
        json!({"type": "wechat", "state": "oa_subscribed", "app_id": "wxB"})
    ));
    assert!(w(
        json!({"type": "wechat", "state": "wecom_followed", "user_id": "rep1"})
    ));
    assert!(!w(
        json!({"type": "wechat", "state": "wecom_followed", "corp_id": "ww2"})
    ));
    assert!(w(
        json!({"type": "wechat", "state": "in_group_chat", "corp_id": "ww1", "chat_id": "chat9"})
    ));
    assert!(!w(
        json!({"type": "wechat", "state": "in_group_chat", "chat_id": "rep1"})
    ));
}

#[test]
fn source_sugar_and_compound_nodes() {
    let mut p = with("source.first.level2", json!("WeChat Ads"));
    p.add_tag("vip");
    let src = json!({"type": "source", "touch": "first", "field": "level", "level": 2, "op": "contains", "value": "wechat"});
    assert!(holds(src.clone(), &p));
    let other =
        json!({"type": "source", "touch": "latest", "field": "level", "level": 2, "op": "exists"});
    assert!(!holds(other.clone(), &p));
    let tag = json!({"type": "tag", "op": "has", "tags": ["vip"]});
    assert!(holds(
        json!({"type": "and", "children": [src, tag.clone()]}),
        &p
    ));
    assert!(holds(
        json!({"type": "or", "children": [other.clone(), tag.clone()]}),
        &p
    ));
    assert!(!holds(json!({"type": "not", "child": tag}), &p));
    assert!(holds(
        json!({"type": "not", "child": {"type": "not", "child": {"type": "not", "child": other}}}),
        &p
    ));
}

#[test]
fn rule_references_evaluate_the_referenced_condition() {
    let rules = catalogue(&[
        ("vip", json!({"type": "tag", "op": "has", "tags": ["vip"]})),
        (
            "vip_in_sh",
            json!({"type": "and", "children": [{"type": "rule", "rule_id": "vip"}, prop("city", "string", "eq", json!("Shanghai"))]}),
        ),
    ]);
    let c = cond_with(
        json!({"type": "not", "child": {"type": "rule", "rule_id": "vip_in_sh"}}),
        &rules,
    );
    let mut p = with("city", json!("Shanghai"));
    assert!(evaluate(&c, &p, &ctx()));
    p.add_tag("vip");
    assert!(!evaluate(&c, &p, &ctx()));
    assert_eq!(c.rule_refs().len(), 2);
}

#[test]
fn long_strings_are_cut_like_storage_does() {
    let long = format!("{}X", "a".repeat(255));
    let p = with("k", json!(long));
    assert!(holds(prop("k", "string", "eq", json!("a".repeat(255))), &p));
    assert!(!holds(prop("k", "string", "ends_with", json!("x")), &p));
    assert_eq!(FactValue::Str(long).encode().s.unwrap().len(), 255);
}

#[test]
fn distinct_counts_tags_kinds_and_property_values_in_the_window() {
    let today = ctx().today;
    let ago = |n: u64| today.checked_sub_days(Days::new(n)).unwrap();
    let mut p = ProfileFacts::new("p");
    p.add_count("c:case_study", ago(1), 2)
        .add_count("c:pricing", ago(5), 1)
        .add_count("c:webinar", ago(40), 1)
        .add_count("c:empty", ago(1), 0)
        .add_count("e:track.page_view", ago(2), 3)
        .add_count("e:oa.subscribe", ago(60), 1);
    for (i, (kind, days, source)) in [
        ("track.page_view", 1, "baidu"),
        ("track.page_view", 3, "douyin"),
        ("track.page_view", 4, "baidu"),
        ("track.form_submit", 2, "wechat"),
        ("track.page_view", 100, "xhs"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = EventFact::new(format!("e{i}"), kind, ago(days));
        e.props
            .insert("utm_source".into(), vec![FactValue::Str(source.into())]);
        p.push_event(e);
    }
    let distinct = |of: &str, extra: Value, op: &str, n: u64, days: u32| {
        let mut leaf = json!({"type": "distinct", "of": of, "count": {"op": op, "value": n},
                              "window": {"type": "last", "days": days}});
        if let (Some(l), Some(x)) = (leaf.as_object_mut(), extra.as_object()) {
            l.extend(x.clone());
        }
        holds(leaf, &p)
    };
    // case_study and pricing in 7 days; webinar only in 90; a bucket of 0 counts nothing.
    assert!(distinct("content_tags", json!({}), "eq", 2, 7));
    assert!(distinct("content_tags", json!({}), "eq", 3, 90));
    assert!(distinct("event_kinds", json!({}), "eq", 1, 30));
    assert!(distinct("event_kinds", json!({}), "eq", 2, 90));
    let sources = json!({"property": "utm_source"});
    assert!(distinct("property_values", sources.clone(), "eq", 3, 7));
    assert!(distinct("property_values", sources, "gt", 3, 365));
    let views = json!({"property": "utm_source", "event": "track.page_view"});
    assert!(distinct("property_values", views.clone(), "eq", 2, 7));
    // Nothing in the window: 0, which `lt 1` matches.
    assert!(distinct("property_values", views, "lt", 1, 1));
    assert!(distinct("content_tags", json!({}), "lt", 1, 1));
}

#[test]
fn distinct_leaves_are_checked() {
    let e = errors(json!({"type": "distinct", "of": "property_values"}));
    assert_eq!(
        e,
        vec![("root.property".into(), crate::ErrorCode::MissingValue)]
    );
    let e = errors(json!({"type": "distinct", "of": "content_tags", "event": "track.page_view"}));
    assert_eq!(
        e,
        vec![("root.event".into(), crate::ErrorCode::UnexpectedValue)]
    );
    let e = errors(json!({"type": "distinct", "of": "property_values", "property": "Bad Key"}));
    assert_eq!(
        e,
        vec![("root.property".into(), crate::ErrorCode::InvalidKey)]
    );
    let e = errors(json!({"type": "distinct", "of": "kinds"}));
    assert_eq!(e.len(), 1, "{e:?}");
}
