//! scoring-svc's internal API on MariaDB and SQLite: definitions validated with errors naming
//! the field or condition node; a rep's manual moves — allowed forward, refused backwards with
//! 409 and the reason, refused by a guard — and the stage history showing every move with who
//! or what made it; scores, the ledger page by page, the leaderboard, a dry run, a recompute
//! job with its progress, a manual adjustment and a contact meeting the SLA.

use actix_web::{test, App};
use proto::sdk::TrackKind;
use scoring_svc::api::{routes, ApiState};
use scoring_svc::store::schedule::Scheduler;
use scrm_tests::db::Backend;
use scrm_tests::scoring::{resolved, start, tracked, updated, ScoringDb};
use serde_json::{json, Value};

const T: &str = "t-api";

macro_rules! call {
    ($app:expr, $req:expr) => {{
        let resp = test::call_service(&$app, $req.to_request()).await;
        let status = resp.status().as_u16();
        let bytes = test::read_body(resp).await;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (status, body)
    }};
}

async fn definitions_moves_and_reads(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let state = ApiState {
        scorer: s.scorer.clone(),
        relay: None,
        dry_run_max_sample: 100,
    };
    let r = routes(state);
    let app = test::init_service(
        App::new()
            .app_data(platform::http::json_config())
            .app_data(platform::http::query_config())
            .configure(move |c| r(c)),
    )
    .await;

    // Models: a bad key and decay are named; then a good one.
    let (st, body) = call!(app, test::TestRequest::post().uri("/v1/models").set_json(json!({
        "tenant_id": T, "operator": "ops", "key": "Bad Key", "name": "E", "decay": {"kind": "half_life", "days": 0}})));
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("invalid_definition")),
        "{body}"
    );
    let paths: Vec<&str> = body["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["key", "decay.days"]);
    let (st, model) = call!(app, test::TestRequest::post().uri("/v1/models").set_json(json!({
        "tenant_id": T, "operator": "ops", "key": "engagement", "name": "Engagement", "decay": {"kind": "half_life", "days": 30}})));
    assert_eq!(st, 201, "{model}");
    let mid = model["id"].as_str().unwrap().to_string();
    let (st, body) = call!(
        app,
        test::TestRequest::post().uri("/v1/models").set_json(json!({
        "tenant_id": T, "operator": "ops", "key": "engagement", "name": "Again"}))
    );
    assert_eq!((st, body["code"].as_str()), (409, Some("duplicate_key")));

    // Rules: a filter without its value and a condition node with a bad operator are named.
    let (st, body) = call!(app, test::TestRequest::post().uri(&format!("/v1/models/{mid}/rules")).set_json(json!({
        "operator": "ops", "kind": "event", "name": "Views", "event": "track.page_view", "points": 10,
        "filters": [{"key": "content.tags", "value_type": "string", "op": "eq"}],
        "condition": {"version": 1, "root": {"type": "and", "children": [
            {"type": "property", "key": "contact.city", "value_type": "bool", "op": "gt", "value": true}]}}})));
    assert_eq!(st, 400, "{body}");
    let paths: Vec<&str> = body["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec!["condition.root.children[0].op", "filters[0].value"],
        "{body}"
    );
    for rule in [
        json!({"operator": "ops", "kind": "event", "name": "Views", "event": "track.page_view", "points": 10, "caps": {"per_day": 30}}),
        json!({"operator": "ops", "kind": "event", "name": "Form", "event": "track.form_submit", "points": 25}),
    ] {
        let (st, body) = call!(
            app,
            test::TestRequest::post()
                .uri(&format!("/v1/models/{mid}/rules"))
                .set_json(rule)
        );
        assert_eq!(st, 201, "{body}");
    }

    // The machine: SQL needs a phone (guard); MQL at 30 points with a 24 h SLA.
    let mut machine =
        serde_json::to_value(scoring_svc::domain::defs::MachineSpec::default_machine()).unwrap();
    machine["stages"][1]["entry"] = json!({"version": 1, "root": {"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte", "value": 30}});
    machine["stages"][1]["sla"] = json!({"hours": 24});
    machine["stages"][3]["guard"] = json!({"version": 1, "root": {"type": "property", "key": "contact.phone", "value_type": "string", "op": "exists"}});
    machine["tenant_id"] = json!(T);
    machine["operator"] = json!("ops");
    let mut bad = machine.clone();
    bad["transitions"][0]["to"] = json!("won");
    let (st, body) = call!(
        app,
        test::TestRequest::put()
            .uri("/v1/stage-machine")
            .set_json(bad)
    );
    assert_eq!(
        (st, body["details"]["errors"][0]["path"].as_str()),
        (400, Some("transitions[0].to"))
    );
    let (st, body) = call!(
        app,
        test::TestRequest::put()
            .uri("/v1/stage-machine")
            .set_json(machine)
    );
    assert_eq!(
        (st, body["is_default"].as_bool()),
        (200, Some(false)),
        "{body}"
    );

    // A lead: four views and a form.
    s.handle(&updated(
        T,
        "p1",
        1,
        json!({"contact.name": "Li"}),
        Some("rep-1"),
    ))
    .await;
    for i in 0..4 {
        s.handle(&resolved(
            "p1",
            &tracked(
                T,
                TrackKind::PageView,
                start(),
                &format!("v{i}"),
                &[],
                json!({}),
            ),
        ))
        .await;
    }
    s.handle(&resolved(
        "p1",
        &tracked(T, TrackKind::FormSubmit, start(), "f", &[], json!({})),
    ))
    .await;
    let (st, lead) = call!(
        app,
        test::TestRequest::get().uri(&format!("/v1/profiles/p1/scores?tenant_id={T}"))
    );
    assert_eq!(st, 200);
    assert_eq!(
        (lead["stage"].as_str(), lead["scores"][0]["score"].as_f64()),
        (Some("mql"), Some(55.0))
    );
    assert_eq!(lead["owner"]["user_id"], "rep-1");

    // Manual moves: forward to sql; back to new is refused with the reason; opportunity's guard.
    let mv = |stage: &str, actor: &str| {
        test::TestRequest::post().uri("/v1/profiles/p1/stage").set_json(json!({
            "tenant_id": T, "stage": stage, "actor": actor, "reason": format!("moving to {stage}")}))
    };
    let (st, body) = call!(app, mv("sql", "rep-1"));
    assert_eq!((st, body["stage"].as_str()), (200, Some("sql")), "{body}");
    let (st, body) = call!(app, mv("new", "rep-1"));
    assert_eq!(
        (st, body["code"].as_str()),
        (409, Some("transition_not_allowed")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("forward only"),
        "{body}"
    );
    let allowed: Vec<&str> = body["details"]["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(allowed, vec!["opportunity", "customer", "lost", "recycled"]);
    let (st, body) = call!(app, mv("opportunity", "rep-1"));
    assert_eq!(
        (st, body["code"].as_str()),
        (409, Some("guard_failed")),
        "{body}"
    );
    let (st, body) = call!(app, mv("won", "rep-1"));
    assert_eq!((st, body["code"].as_str()), (400, Some("unknown_stage")));
    let (st, _) = call!(app, mv("lost", "manager-2"));
    assert_eq!(st, 200);
    let (st, body) = call!(
        app,
        test::TestRequest::post()
            .uri("/v1/profiles/nobody/stage")
            .set_json(json!({
        "tenant_id": T, "stage": "sql", "actor": "rep-1", "reason": "x"}))
    );
    assert_eq!((st, body["code"].as_str()), (404, Some("not_found")));
    let (st, body) = call!(
        app,
        test::TestRequest::get().uri(&format!("/v1/profiles/p1/stage-history?tenant_id={T}"))
    );
    assert_eq!(st, 200);
    let moves: Vec<(String, String, String, String)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["to"].as_str().unwrap().to_string(),
                h["actor_kind"].as_str().unwrap().to_string(),
                h["actor"].as_str().unwrap().to_string(),
                h["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            (
                "new".into(),
                "system".into(),
                "scoring".into(),
                "first seen".into()
            ),
            (
                "mql".into(),
                "rule".into(),
                "entry:mql".into(),
                "matches the entry condition of `mql`".into()
            ),
            (
                "sql".into(),
                "user".into(),
                "rep-1".into(),
                "moving to sql".into()
            ),
            (
                "lost".into(),
                "user".into(),
                "manager-2".into(),
                "moving to lost".into()
            ),
        ]
    );
    // The MQL SLA closed when the lead left mql.
    let (_, slas) = call!(
        app,
        test::TestRequest::get().uri(&format!("/v1/profiles/p1/slas?tenant_id={T}"))
    );
    assert_eq!(slas["items"][0]["status"], "closed");

    // Ledger, page by page, with the rule's name and each entry's worth now.
    let (st, page) = call!(
        app,
        test::TestRequest::get().uri(&format!(
            "/v1/profiles/p1/ledger?tenant_id={T}&model=engagement&limit=3"
        ))
    );
    assert_eq!(st, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["items"][0]["rule"], "Form");
    assert_eq!(page["items"][1]["capped"], "per_day");
    let cursor = page["next_cursor"].as_i64().unwrap();
    let (_, rest) = call!(
        app,
        test::TestRequest::get().uri(&format!(
            "/v1/profiles/p1/ledger?tenant_id={T}&cursor={cursor}&limit=3"
        ))
    );
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest.get("next_cursor").is_none());
    let (st, body) = call!(
        app,
        test::TestRequest::get().uri(&format!("/v1/profiles/p1/ledger?tenant_id={T}&limit=0"))
    );
    assert_eq!((st, body["code"].as_str()), (400, Some("invalid_limit")));

    // Another lead, a leaderboard, a manual adjustment.
    s.handle(&resolved(
        "p2",
        &tracked(T, TrackKind::PageView, start(), "p2v", &[], json!({})),
    ))
    .await;
    let (st, adj) = call!(app, test::TestRequest::post().uri("/v1/profiles/p2/adjustments").set_json(json!({
        "tenant_id": T, "model": "engagement", "delta": 100, "actor": "ops", "reason": "met at the fair"})));
    assert_eq!(
        (st, adj["scores"][0]["score"].as_f64()),
        (200, Some(110.0)),
        "{adj}"
    );
    let (_, board) = call!(
        app,
        test::TestRequest::get().uri(&format!(
            "/v1/leaderboard?tenant_id={T}&model=engagement&limit=5"
        ))
    );
    let order: Vec<&str> = board["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["profile_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, vec!["p2", "p1"]);
    let (_, board) = call!(
        app,
        test::TestRequest::get().uri(&format!(
            "/v1/leaderboard?tenant_id={T}&model=engagement&stage=lost"
        ))
    );
    assert_eq!(board["items"].as_array().unwrap().len(), 1);

    // Dry run: forms worth 50 now.
    let dry = json!({"tenant_id": T, "model": {"key": "engagement", "name": "E2"},
        "rules": [{"kind": "event", "name": "Form", "event": "track.form_submit", "points": 50}]});
    let mut one = dry.clone();
    one["profile_id"] = json!("p1");
    let (st, body) = call!(
        app,
        test::TestRequest::post().uri("/v1/dry-run").set_json(one)
    );
    assert_eq!(
        (st, body["score"].as_f64(), body["current"].as_f64()),
        (200, Some(50.0), Some(55.0)),
        "{body}"
    );
    let mut sample = dry.clone();
    sample["sample"] = json!(10);
    let (st, body) = call!(
        app,
        test::TestRequest::post()
            .uri("/v1/dry-run")
            .set_json(sample)
    );
    assert_eq!(
        (
            st,
            body["distribution"]["profiles"].as_u64(),
            body["distribution"]["max"].as_f64()
        ),
        (200, Some(2), Some(50.0))
    );
    let mut bad = dry;
    bad["rules"][0]["points"] = json!(0);
    let (st, body) = call!(
        app,
        test::TestRequest::post().uri("/v1/dry-run").set_json(bad)
    );
    assert_eq!(
        (st, body["details"]["errors"][0]["path"].as_str()),
        (400, Some("rules[0].points"))
    );

    // Recompute with progress.
    let (st, job) = call!(
        app,
        test::TestRequest::post()
            .uri(&format!("/v1/models/{mid}/recompute"))
            .set_json(json!({"operator": "ops"}))
    );
    assert_eq!(
        (st, job["status"].as_str(), job["total"].as_i64()),
        (202, Some("queued"), Some(2))
    );
    let sched = Scheduler::new(s.scorer.clone(), 10, 1, None);
    sched.tick().await.unwrap();
    let (_, j) = call!(
        app,
        test::TestRequest::get().uri(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()))
    );
    assert_eq!(
        (
            j["status"].as_str(),
            j["done"].as_i64(),
            j["progress"].as_f64()
        ),
        (Some("running"), Some(1), Some(0.5))
    );
    sched.tick().await.unwrap();
    sched.tick().await.unwrap();
    let (_, j) = call!(
        app,
        test::TestRequest::get().uri(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()))
    );
    assert_eq!(
        (j["status"].as_str(), j["done"].as_i64()),
        (Some("done"), Some(2)),
        "{j}"
    );
    let (_, lead) = call!(
        app,
        test::TestRequest::get().uri(&format!("/v1/profiles/p2/scores?tenant_id={T}"))
    );
    assert_eq!(
        lead["scores"][0]["score"].as_f64(),
        Some(110.0),
        "adjustments survive a recompute"
    );

    // Missing fields are named.
    let (st, body) = call!(
        app,
        test::TestRequest::post()
            .uri("/v1/profiles/p1/contacted")
            .set_json(json!({"tenant_id": T}))
    );
    assert_eq!(
        (st, body["details"]["field"].as_str()),
        (400, Some("actor"))
    );
    s.cleanup().await;
}

scrm_tests::on_both_backends!(definitions_moves_and_reads);
