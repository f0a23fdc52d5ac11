use super::*;
use serde_json::json;

fn rule(v: Value) -> RuleSpec {
    from_json(&v, "").unwrap()
}

#[test]
fn rule_errors_name_the_field_or_node() {
    let r = rule(
        json!({"kind": "event", "name": "Views", "event": "track.page_view", "points": 0,
            "filters": [{"key": "content.tags", "value_type": "string", "op": "gt"}],
            "condition": {"version": 1, "root": {"type": "and", "children": []}}}),
    );
    let e = r.check("rules[0]").unwrap_err();
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"rules[0].points"), "{paths:?}");
    assert!(paths.contains(&"rules[0].filters[0].value"), "{paths:?}");
    assert!(
        paths.contains(&"rules[0].condition.root.children"),
        "{paths:?}"
    );
    let s = rule(json!({"kind": "state", "name": "Fit", "points": 5, "event": "x.y"}));
    let e = s.check("").unwrap_err();
    assert!(e
        .iter()
        .any(|e| e.path == "condition" && e.code == "missing_field"));
    assert!(e
        .iter()
        .any(|e| e.path == "event" && e.code == "not_allowed"));
    let bad: Result<RuleSpec, _> = from_json(
        &json!({"kind": "event", "name": "x", "points": 1, "cap": {}}),
        "rules[2]",
    );
    let e = bad.unwrap_err();
    assert!(e[0].message.contains("unknown field `cap`"), "{e:?}");
    let bad: Result<RuleSpec, _> = from_json(
        &json!({"kind": "event", "name": "x", "points": "ten"}),
        "rules[2]",
    );
    assert_eq!(bad.unwrap_err()[0].path, "rules[2].points");
}

#[test]
fn a_good_event_rule_compiles_its_filters() {
    let r = rule(
        json!({"kind": "event", "name": "Articles", "event": "track.page_view", "points": 10,
            "filters": [{"key": "content.tags", "value_type": "string", "op": "eq", "value": "article"}],
            "caps": {"per_day": 30, "window": {"days": 7, "max": 100}, "lifetime": 500}}),
    );
    let parts = r.check("").unwrap();
    assert!(parts.filter.is_some() && parts.condition.is_none());
}

#[test]
fn the_default_machine_is_valid_and_machine_errors_name_the_node() {
    MachineSpec::default_machine().check().unwrap();
    let mut m = MachineSpec::default_machine();
    m.stages[1].entry = Some(
        json!({"version": 1, "root": {"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte"}}),
    );
    m.transitions[0].to = "nowhere".into();
    m.stages.push(m.stages[0].clone());
    let e = m.check().unwrap_err();
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"stages[1].entry.root.value"), "{paths:?}");
    assert!(paths.contains(&"transitions[0].to"), "{paths:?}");
    assert!(paths.contains(&"stages[7].key"), "{paths:?}");
}

#[test]
fn triggers_check_models_and_stages() {
    let t: TriggerSpec = from_json(&json!({"name": "Hot", "on": {"type": "score", "model": "fit", "threshold": 50, "direction": "up"},
            "actions": [{"type": "move_stage", "stage": "sq"}, {"type": "notify"}]}), "").unwrap();
    let e = t
        .check(&["engagement".into()], &["new".into(), "sql".into()])
        .unwrap_err();
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, vec!["on.model", "actions[0].stage"]);
}
