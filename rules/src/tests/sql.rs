use sea_query::Value;
use serde_json::{json, Value as Json};

use super::support::*;
use crate::sql::{
    build, compile, count_statement, sample_statement, Backend, CompileCtx, IdRange, Restrict,
};

fn render(root: Json, ctx: &CompileCtx, backend: Backend) -> (String, Vec<Value>) {
    let (sql, values) = build(&compile(&cond(root), ctx), backend);
    (sql, values.0)
}

fn sqlite(root: Json) -> String {
    render(root, &CompileCtx::new("t1", &ctx()), Backend::Sqlite).0
}

fn tag(t: &str) -> Json {
    json!({"type": "tag", "op": "has", "tags": [t]})
}

#[test]
fn a_single_leaf_is_one_distinct_index_scan() {
    let sql = sqlite(prop("contact.city", "string", "eq", json!("x")));
    assert!(
        sql.starts_with("SELECT DISTINCT \"facts_property\".\"profile_id\""),
        "{sql}"
    );
    assert!(!sql.contains("UNION") && !sql.contains("EXCEPT") && !sql.contains("facts_profile"));
}

#[test]
fn negation_is_pushed_into_except() {
    // a AND NOT b: no scan of the universe.
    let sql =
        sqlite(json!({"type": "and", "children": [tag("a"), {"type": "not", "child": tag("b")}]}));
    assert!(!sql.contains("facts_profile"), "{sql}");
    assert!(sql.contains(" EXCEPT SELECT "), "{sql}");
    // NOT a alone: the universe minus a.
    let sql = sqlite(json!({"type": "not", "child": tag("a")}));
    assert!(
        sql.starts_with("SELECT \"facts_profile\".\"profile_id\""),
        "{sql}"
    );
    // NOT NOT a = a (one tag: the key makes each profile appear once, no DISTINCT).
    let sql = sqlite(json!({"type": "not", "child": {"type": "not", "child": tag("a")}}));
    assert!(sql.starts_with("SELECT \"facts_tag\""), "{sql}");
    // Any of two tags can repeat a profile: DISTINCT.
    let sql = sqlite(json!({"type": "tag", "op": "has_any", "tags": ["a", "b"]}));
    assert!(sql.starts_with("SELECT DISTINCT \"facts_tag\""), "{sql}");
    // a OR NOT b = U − (b − a).
    let sql =
        sqlite(json!({"type": "or", "children": [tag("a"), {"type": "not", "child": tag("b")}]}));
    assert!(sql.starts_with("SELECT \"facts_profile\""), "{sql}");
}

#[test]
fn compound_members_are_derived_tables_on_both_dialects() {
    let root = json!({"type": "and", "children": [
        {"type": "or", "children": [tag("a"), tag("b")]},
        {"type": "or", "children": [tag("c"), {"type": "and", "children": [tag("d"), tag("e")]}]},
        {"type": "not", "child": {"type": "or", "children": [tag("f"), tag("g")]}},
    ]});
    let sql = sqlite(root.clone());
    for op in ["UNION", "INTERSECT", "EXCEPT"] {
        assert!(
            !sql.contains(&format!("{op} (")),
            "SQLite rejects parenthesised members: {sql}"
        );
    }
    assert_eq!(sql.matches(" AS \"t").count(), 4, "{sql}");
    let (mysql, _) = render(root, &CompileCtx::new("t1", &ctx()), Backend::MySql);
    assert!(mysql.contains("INTERSECT (SELECT `t"), "{mysql}");
}

#[test]
fn rolling_counters_only_when_fresh() {
    let leaf = json!({"type": "behaviour", "event": "track.page_view", "window": {"type": "last", "days": 30}});
    let mut c = CompileCtx::new("t1", &ctx());
    assert!(render(leaf.clone(), &c, Backend::Sqlite)
        .0
        .contains("facts_behaviour_daily"));
    c.rolling_as_of = Some(ctx().today - chrono::Days::new(1));
    assert!(render(leaf.clone(), &c, Backend::Sqlite)
        .0
        .contains("facts_behaviour_daily"));
    c.rolling_as_of = Some(ctx().today);
    let (sql, _) = render(leaf, &c, Backend::Sqlite);
    assert!(
        sql.contains("\"facts_behaviour_rolling\".\"last30\" >= ?"),
        "{sql}"
    );
    let odd = json!({"type": "behaviour", "event": "track.page_view", "window": {"type": "last", "days": 14}});
    assert!(render(odd, &c, Backend::Sqlite)
        .0
        .contains("facts_behaviour_daily"));
    let raw = json!({"type": "behaviour", "event": "track.page_view", "content_tag": "x", "window": {"type": "all_time"}});
    let (sql, _) = render(raw, &c, Backend::Sqlite);
    assert!(
        sql.contains("FROM \"facts_event\"") && sql.contains("COUNT(*) >= ?"),
        "{sql}"
    );
}

#[test]
fn did_not_do_selects_the_failing_profiles_and_subtracts_them() {
    let leaf = json!({"type": "behaviour", "event": "a.b", "count": {"op": "lt", "value": 3}});
    let (sql, values) = render(leaf, &CompileCtx::new("t1", &ctx()), Backend::Sqlite);
    assert!(
        sql.starts_with("SELECT \"facts_profile\".\"profile_id\""),
        "{sql}"
    );
    assert!(
        sql.contains("EXCEPT SELECT")
            && sql.contains("SUM(\"facts_behaviour_daily\".\"cnt\") >= ?"),
        "{sql}"
    );
    assert_eq!(values.last(), Some(&Value::BigInt(Some(3))));
}

#[test]
fn like_patterns_are_escaped_and_bound() {
    let (sql, values) = render(
        prop("k", "string", "contains", json!("50%_OFF!")),
        &CompileCtx::new("t1", &ctx()),
        Backend::MySql,
    );
    assert!(sql.contains("`s_fold` LIKE ? ESCAPE '!'"), "{sql}");
    assert!(
        values.contains(&Value::String(Some(Box::new("%50!%!_off!!%".into())))),
        "{values:?}"
    );
}

#[test]
fn relative_values_and_windows_are_bound_literals() {
    let root = json!({"type": "and", "children": [
        prop("d", "date", "gte", json!({"days_ago": 30})),
        prop("t", "datetime", "lt", json!({"days_ago": 1})),
        {"type": "behaviour", "event": "a.b", "window": {"type": "last", "days": 7}},
    ]});
    let (_, values) = render(root, &CompileCtx::new("t1", &ctx()), Backend::Sqlite);
    let s = |x: &str| Value::String(Some(Box::new(x.to_string())));
    assert!(values.contains(&s("2024-05-16")), "{values:?}");
    assert!(values.contains(&s("2024-06-14T10:00:00Z")), "{values:?}");
    assert!(
        values.contains(&Value::ChronoDate(Some(Box::new(day("2024-06-09"))))),
        "{values:?}"
    );
    assert!(
        values.contains(&Value::ChronoDate(Some(Box::new(day("2024-06-15"))))),
        "{values:?}"
    );
}

#[test]
fn restriction_reaches_every_scan() {
    let root = json!({"type": "or", "children": [tag("a"), {"type": "not", "child": tag("b")}]});
    let mut c = CompileCtx::new("t1", &ctx());
    c.restrict = Restrict::Range(IdRange {
        after: Some("p10".into()),
        until: None,
    });
    let (sql, _) = render(root.clone(), &c, Backend::Sqlite);
    assert_eq!(sql.matches("\"profile_id\" > ?").count(), 3, "{sql}");
    c.restrict = Restrict::Ids(vec!["p1".into(), "p2".into()]);
    let (sql, _) = render(root, &c, Backend::Sqlite);
    assert_eq!(sql.matches("\"profile_id\" IN (?, ?)").count(), 3, "{sql}");
}

#[test]
fn count_and_sample_wrap_the_query() {
    let q = compile(
        &cond(json!({"type": "tag", "op": "has_any", "tags": ["a", "b"]})),
        &CompileCtx::new("t1", &ctx()),
    );
    let (count, _) = build(&count_statement(&q), Backend::MySql);
    assert!(
        count.starts_with("SELECT COUNT(*) FROM (SELECT DISTINCT"),
        "{count}"
    );
    let (sample, values) = build(&sample_statement(&q, 20), Backend::Sqlite);
    assert!(
        sample.ends_with("AS \"m\" ORDER BY \"m\".\"profile_id\" ASC LIMIT ?"),
        "{sample}"
    );
    assert_eq!(values.0.last(), Some(&Value::BigUnsigned(Some(20))));
}

#[test]
fn everyone_except_a_broad_set_is_counted_by_subtraction() {
    use crate::sql::count_query;
    let c = CompileCtx::new("t1", &ctx());
    // b OR NOT a = U − (a − b): |U| − (|a| − |a ∩ b|), no EXCEPT at all.
    let root = json!({"type": "or", "children": [tag("b"), {"type": "not", "child": tag("a")}]});
    let (sql, _) = build(&count_query(&cond(root), &c), Backend::Sqlite);
    assert!(!sql.contains("EXCEPT"), "{sql}");
    assert_eq!(sql.matches("COUNT(*)").count(), 3, "{sql}");
    assert_eq!(sql.matches(" - ").count(), 2, "{sql}");
    assert!(sql.contains(" INTERSECT "), "{sql}");
    // NOT a: |U| − |a|.
    let (sql, _) = build(
        &count_query(&cond(json!({"type": "not", "child": tag("a")})), &c),
        Backend::MySql,
    );
    assert!(
        !sql.contains("EXCEPT") && sql.matches("COUNT(*)").count() == 2,
        "{sql}"
    );
    // A positive condition is counted as compiled.
    let (sql, _) = build(&count_query(&cond(tag("a")), &c), Backend::MySql);
    assert_eq!(sql.matches("COUNT(*)").count(), 1, "{sql}");
}
