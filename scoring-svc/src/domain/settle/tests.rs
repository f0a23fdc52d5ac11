use super::*;
use crate::domain::compiled::{ModelDef, RuleDef, TriggerDef};
use crate::domain::decay::Decay;
use crate::domain::defs::{from_json, ModelSpec};
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    "2026-03-01T08:00:00Z".parse().unwrap()
}

fn defs(rules: &[(&str, Value)], triggers: &[(&str, Value)]) -> Compiled {
    let model = ModelDef {
        id: "m1".into(),
        spec: ModelSpec {
            key: "engagement".into(),
            name: "Engagement".into(),
            description: String::new(),
            decay: Decay::None,
        },
        epoch: now(),
        active: true,
    };
    let rules = rules
        .iter()
        .map(|(id, v)| RuleDef {
            id: id.to_string(),
            model_id: "m1".into(),
            spec: from_json(v, "").unwrap(),
        })
        .collect();
    let triggers = triggers
        .iter()
        .map(|(id, v)| TriggerDef {
            id: id.to_string(),
            spec: from_json(v, "").unwrap(),
        })
        .collect();
    Compiled::compile(1, vec![model], rules, None, triggers)
}

fn vip_rule(points: f64) -> (&'static str, Value) {
    (
        "r-vip",
        json!({"kind": "state", "name": "VIP", "points": points,
            "condition": {"version": 1, "root": {"type": "tag", "op": "has", "tags": ["vip"]}}}),
    )
}

fn on_stage(stage: &str, actions: Value) -> Value {
    json!({"name": format!("on {stage}"), "on": {"type": "stage_entered", "stage": stage}, "actions": actions})
}

fn profile(d: &Compiled) -> Profile {
    Profile {
        id: "p".into(),
        lead: LeadState {
            stage: "new".into(),
            stage_entered_at: now(),
            last_activity_at: Some(now()),
            owner: None,
        },
        folds: vec![Fold::zero(now()); d.models.len()],
        before: vec![0.0; d.models.len()],
        facts: ProfileFacts::new("p"),
        held: Some(BTreeMap::new()),
        triggers: Some(HashMap::new()),
        recorded: BTreeSet::new(),
        entered: Vec::new(),
        left: BTreeSet::new(),
    }
}

fn rules_of(d: &Compiled, max_rounds: u32) -> Rules<'_> {
    Rules {
        defs: d,
        ctx: EvalCtx {
            now: now(),
            today: now().date_naive(),
        },
        max_rounds,
        fire_triggers: true,
        force_state: false,
    }
}

fn holds(d: &Decision) -> Vec<(String, f64, &'static str)> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Hold {
                rule_id,
                delta,
                note,
                ..
            } => Some((rule_id.clone(), *delta, *note)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_state_rule_holds_its_points_while_matching_and_releases_them_after() {
    let d = defs(&[vip_rule(10.0)], &[]);
    let mut p = profile(&d);
    p.facts.tags.insert("vip".into());
    let got = decide(&rules_of(&d, 8), &mut p);
    assert_eq!(holds(&got), vec![("r-vip".into(), 10.0, "holds")]);
    assert_eq!(p.folds[0].value(), 10.0);
    assert_eq!(p.held.as_ref().unwrap()["r-vip"], ("m1".to_string(), 10.0));
    assert_eq!((got.rounds, got.cut), (2, false));

    // Still matching: nothing more.
    let again = decide(&rules_of(&d, 8), &mut p);
    assert!(again.effects.is_empty());

    p.facts.tags.remove("vip");
    let got = decide(&rules_of(&d, 8), &mut p);
    assert_eq!(
        holds(&got),
        vec![("r-vip".into(), -10.0, "released: no longer matches")]
    );
    assert_eq!(p.folds[0].value(), 0.0);
}

#[test]
fn points_of_a_deleted_rule_are_released_when_asked() {
    let d = defs(&[], &[]);
    let mut p = profile(&d);
    p.held = Some(BTreeMap::from([(
        "gone".to_string(),
        ("m1".to_string(), 7.0),
    )]));
    p.folds[0].held = 7.0;
    assert!(decide(&rules_of(&d, 8), &mut p).effects.is_empty());
    let mut r = rules_of(&d, 8);
    r.force_state = true;
    let got = decide(&r, &mut p);
    assert_eq!(
        holds(&got),
        vec![("gone".into(), -7.0, "released: rule deleted or disabled")]
    );
    assert_eq!(p.folds[0].value(), 0.0);
}

#[test]
fn a_score_crossing_fires_its_trigger_once() {
    let hot = json!({"name": "Hot", "on": {"type": "score", "model": "engagement", "threshold": 50, "direction": "up"},
        "actions": [{"type": "add_tag", "tag_id": "hot"}]});
    let d = defs(&[vip_rule(60.0)], &[("t-hot", hot)]);
    let mut p = profile(&d);
    p.facts.tags.insert("vip".into());
    let got = decide(&rules_of(&d, 8), &mut p);
    let fired: Vec<&Effect> = got
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Fire { .. }))
        .collect();
    assert_eq!(fired.len(), 1, "{:?}", got.effects);
    match fired[0] {
        Effect::Fire {
            seq,
            kind,
            value,
            results,
            ..
        } => {
            assert_eq!((*seq, *kind, *value), (Seq::Count(1), "up", Some(60.0)));
            assert_eq!(results[0]["result"], "sent");
        }
        _ => unreachable!(),
    }
    assert!(matches!(&got.effects[2], Effect::Tag { add: true, cmd } if cmd.tag_id == "hot"));
    let st = &p.triggers.as_ref().unwrap()["t-hot"];
    assert_eq!((st.above, st.seq, st.changed), (Some(true), 1, true));

    // The same work looked at again: no new crossing.
    let again = decide(&rules_of(&d, 8), &mut p);
    assert!(again.effects.is_empty());
}

#[test]
fn a_firing_key_recorded_already_fires_nothing() {
    let hot = json!({"name": "Hot", "on": {"type": "score", "model": "engagement", "threshold": 50, "direction": "up"},
        "actions": [{"type": "notify"}]});
    let d = defs(&[vip_rule(60.0)], &[("t-hot", hot)]);
    let mut p = profile(&d);
    p.facts.tags.insert("vip".into());
    p.recorded.insert(("t-hot".into(), 1));
    let got = decide(&rules_of(&d, 8), &mut p);
    assert!(!got.effects.iter().any(|e| matches!(e, Effect::Fire { .. })));
    let st = &p.triggers.as_ref().unwrap()["t-hot"];
    assert_eq!(
        (st.above, st.seq),
        (Some(true), 1),
        "the count still moves on"
    );
}

#[test]
fn a_stage_moved_by_a_trigger_fires_its_own_triggers_in_the_next_round() {
    let d = defs(
        &[],
        &[
            (
                "t-new",
                on_stage("new", json!([{"type": "move_stage", "stage": "mql"}])),
            ),
            (
                "t-mql",
                on_stage("mql", json!([{"type": "notify", "message": "hi"}])),
            ),
        ],
    );
    let mut p = profile(&d);
    p.entered.push(("new".into(), History::Stored(7)));
    let got = decide(&rules_of(&d, 8), &mut p);
    assert_eq!(got.rounds, 3);
    assert!(!got.cut);
    let e = &got.effects;
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(
        matches!(&e[0], Effect::Fire { trigger: 0, seq: Seq::Entered(History::Stored(7)), results, .. }
            if results[0]["result"] == "moved")
    );
    assert!(
        matches!(&e[1], Effect::Move { from, to, kind: ActorKind::Trigger, actor, .. }
        if from == "new" && to == "mql" && actor == "t-new")
    );
    assert!(matches!(
        &e[2],
        Effect::Fire {
            trigger: 1,
            seq: Seq::Entered(History::Move(0)),
            ..
        }
    ));
    assert!(matches!(&e[3], Effect::Notify(n) if n.stage == "mql" && n.trigger_id == "t-mql"));
    assert_eq!(p.lead.stage, "mql");
    assert!(p.left.contains("new"));
}

#[test]
fn the_round_bound_stops_a_cycle() {
    let d = defs(
        &[],
        &[
            (
                "t-new",
                on_stage("new", json!([{"type": "move_stage", "stage": "lost"}])),
            ),
            (
                "t-lost",
                on_stage("lost", json!([{"type": "move_stage", "stage": "new"}])),
            ),
        ],
    );
    let mut p = profile(&d);
    p.entered.push(("new".into(), History::Stored(1)));
    let got = decide(&rules_of(&d, 4), &mut p);
    assert_eq!((got.rounds, got.cut), (4, true));
    let moves = got
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Move { .. }))
        .count();
    assert_eq!(moves, 4);
    assert_eq!(p.lead.stage, "new");
    assert_eq!(p.entered, vec![("new".to_string(), History::Move(3))]);
}

#[test]
fn without_firing_the_sides_are_still_recorded() {
    let hot = json!({"name": "Hot", "on": {"type": "score", "model": "engagement", "threshold": 50, "direction": "up"},
        "actions": [{"type": "notify"}]});
    let d = defs(&[vip_rule(60.0)], &[("t-hot", hot)]);
    let mut p = profile(&d);
    p.facts.tags.insert("vip".into());
    let mut r = rules_of(&d, 8);
    r.fire_triggers = false;
    let got = decide(&r, &mut p);
    assert_eq!(got.effects.len(), 1);
    let st = &p.triggers.as_ref().unwrap()["t-hot"];
    assert_eq!((st.above, st.seq, st.changed), (Some(true), 0, true));
}
