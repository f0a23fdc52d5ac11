//! Shared helpers: contexts, documents, expansion.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::Value;

use crate::{expand, parse, Condition, EvalCtx, Expanded, Limits, NoRules, RuleLookup};

/// 2024-06-15, 10:00 UTC.
pub fn ctx() -> EvalCtx {
    EvalCtx {
        now: now(),
        today: day("2024-06-15"),
    }
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 15, 10, 0, 0).unwrap()
}

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// `{"version": 1, "root": root}`.
pub fn doc(root: Value) -> Value {
    serde_json::json!({"version": 1, "root": root})
}

/// Parses and expands a root node without rule references; panics with the errors.
pub fn cond(root: Value) -> Expanded {
    cond_with(root, &NoRules)
}

pub fn cond_with(root: Value, rules: &dyn RuleLookup) -> Expanded {
    let limits = Limits::default();
    let d = parse(&doc(root), &limits, rules).unwrap_or_else(|e| panic!("invalid: {e:?}"));
    expand(&d.root, &limits, rules).unwrap()
}

/// A rule catalogue from (id, root JSON) pairs.
pub fn catalogue(rules: &[(&str, Value)]) -> BTreeMap<String, Condition> {
    rules
        .iter()
        .map(|(id, v)| (id.to_string(), serde_json::from_value(v.clone()).unwrap()))
        .collect()
}

/// The (path, code) pairs of the errors of a document with `root`.
pub fn errors(root: Value) -> Vec<(String, crate::ErrorCode)> {
    errors_of(&doc(root), &NoRules)
}

pub fn errors_of(document: &Value, rules: &dyn RuleLookup) -> Vec<(String, crate::ErrorCode)> {
    match parse(document, &Limits::default(), rules) {
        Ok(d) => panic!("expected errors, parsed {d:?}"),
        Err(e) => e.into_iter().map(|e| (e.path, e.code)).collect(),
    }
}

/// One error expected: its (path, code).
pub fn one_error(root: Value) -> (String, crate::ErrorCode) {
    let e = errors(root);
    assert_eq!(e.len(), 1, "{e:?}");
    e.into_iter().next().unwrap()
}

/// A property leaf.
pub fn prop(key: &str, ty: &str, op: &str, value: Value) -> Value {
    let mut v = serde_json::json!({"type": "property", "key": key, "value_type": ty, "op": op});
    if !value.is_null() {
        v["value"] = value;
    }
    v
}

/// An event filter (a property predicate without `type`).
pub fn filter(key: &str, ty: &str, op: &str, value: Value) -> Value {
    let mut v = prop(key, ty, op, value);
    if let Some(o) = v.as_object_mut() {
        o.remove("type");
    }
    v
}
