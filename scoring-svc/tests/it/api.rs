//! scoring-svc's internal API on MariaDB and SQLite, called as the gateway calls it (with the
//! service credential naming the tenant and the actor): definitions validated with errors naming
//! the field or condition node and recorded with the credential's actor; a rep's manual moves —
//! allowed forward, refused backwards with 409 and the reason, refused by a guard — and the stage
//! history showing every move with who or what made it; scores, the ledger page by page, the
//! leaderboard, a dry run, a recompute job with its progress, a manual adjustment and a contact
//! meeting the SLA. A `tenant_id`, `operator` or `actor` a caller still sends is ignored.
//!
//! Tenants are isolated: every model, rule, trigger, job and lead of one tenant answers 404
//! through another tenant's credential (reads and writes alike, nothing changes), and lists
//! never show another tenant's. A move, contact or adjustment on a profile scoring has no lead
//! for answers 404 naming it and creates no lead. Every route refuses a request without a
//! credential or with one signed under another key (401).

use crate::fixtures::{resolved, start, tracked, updated, ScoringDb};
use actix_web::{test, web, App};
use proto::auth::Role;
use proto::sdk::TrackKind;
use scoring_svc::api::{routes, ApiState};
use scoring_svc::store::schedule::Scheduler;
use serde_json::{json, Value};
use test_support::auth;
use test_support::db::Backend;
use test_support::pages;

const T: &str = "t-api";
/// Another tenant of the same deployment.
const B: &str = "t-api-b";
/// A rep of tenant [`T`] as the gateway names them.
const REP: &str = "rep:corp-1:rep-1";

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

/// The service's routes in a test `App` that verifies credentials under the test key.
macro_rules! app {
    ($s:expr) => {{
        let state = ApiState {
            scorer: $s.scorer.clone(),
            relay: None,
            dry_run_max_sample: 100,
        };
        let r = routes(state);
        test::init_service(
            App::new()
                .app_data(platform::http::json_config())
                .app_data(platform::http::query_config())
                .app_data(web::Data::new(auth::key()))
                .configure(move |c| r(c)),
        )
        .await
    }};
}

/// A request of `tenant`'s operator `user:test`.
fn req(method: &str, uri: &str, tenant: &str) -> test::TestRequest {
    as_actor(method, uri, tenant, "user:test", Role::Operator)
}

/// A request of `actor` with `role` in `tenant`.
fn as_actor(method: &str, uri: &str, tenant: &str, actor: &str, role: Role) -> test::TestRequest {
    let r = match method {
        "GET" => test::TestRequest::get(),
        "POST" => test::TestRequest::post(),
        "PUT" => test::TestRequest::put(),
        "PATCH" => test::TestRequest::patch(),
        "DELETE" => test::TestRequest::delete(),
        m => panic!("method {m}"),
    };
    r.uri(uri).insert_header(auth::header_with(
        auth::TEST_INTERNAL_KEY,
        tenant,
        actor,
        role,
    ))
}

fn paths(body: &Value) -> Vec<&str> {
    body["details"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect()
}

async fn definitions_moves_and_reads(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let app = app!(s);

    // Models: a bad key and decay are named; then a good one, recorded with the credential's
    // actor in the credential's tenant (a stray `tenant_id` / `operator` is ignored).
    let (st, body) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!({
        "key": "Bad Key", "name": "E", "decay": {"kind": "half_life", "days": 0}}))
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("invalid_definition")),
        "{body}"
    );
    assert_eq!(paths(&body), vec!["key", "decay.days"]);
    // A body that does not read as a model is refused naming the field: of the wrong type, or
    // missing (the credential's fields a caller still sends are not what is missing).
    let (st, body) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!({"key": "fit", "name": 5}))
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("invalid_definition")),
        "{body}"
    );
    assert_eq!(paths(&body), vec!["name"]);
    assert!(
        body["message"].as_str().unwrap().contains("`name`"),
        "{body}"
    );
    let (st, body) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!({"tenant_id": B, "actor": "x", "key": "fit"}))
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("invalid_definition")),
        "{body}"
    );
    assert!(
        body["details"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `name`"),
        "{body}"
    );
    let (st, body) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!(["key", "name"]))
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    let (st, model) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!({
        "tenant_id": B, "operator": "someone-typed", "key": "engagement", "name": "Engagement",
        "decay": {"kind": "half_life", "days": 30}}))
    );
    assert_eq!(st, 201, "{model}");
    assert_eq!(
        (
            model["tenant_id"].as_str(),
            model["created_by"].as_str(),
            model["updated_by"].as_str()
        ),
        (Some(T), Some("user:test"), Some("user:test")),
        "{model}"
    );
    let mid = model["id"].as_str().unwrap().to_string();
    let (st, body) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!({"key": "engagement", "name": "Again"}))
    );
    assert_eq!((st, body["code"].as_str()), (409, Some("duplicate_key")));
    let (st, body) = call!(
        app,
        as_actor(
            "PATCH",
            &format!("/v1/models/{mid}"),
            T,
            "user:7",
            Role::Admin
        )
        .set_json(json!({"description": "web and WeChat", "operator": "ignored"}))
    );
    assert_eq!(
        (st, body["updated_by"].as_str(), body["created_by"].as_str()),
        (200, Some("user:7"), Some("user:test")),
        "{body}"
    );

    // Rules: a filter without its value and a condition node with a bad operator are named.
    let (st, body) = call!(app, req("POST", &format!("/v1/models/{mid}/rules"), T).set_json(json!({
        "kind": "event", "name": "Views", "event": "track.page_view", "points": 10,
        "filters": [{"key": "content.tags", "value_type": "string", "op": "eq"}],
        "condition": {"version": 1, "root": {"type": "and", "children": [
            {"type": "property", "key": "contact.city", "value_type": "bool", "op": "gt", "value": true}]}}})));
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        paths(&body),
        vec!["condition.root.children[0].op", "filters[0].value"],
        "{body}"
    );
    for rule in [
        json!({"kind": "event", "name": "Views", "event": "track.page_view", "points": 10, "caps": {"per_day": 30}}),
        json!({"operator": "ops", "kind": "event", "name": "Form", "event": "track.form_submit", "points": 25}),
    ] {
        let (st, body) = call!(
            app,
            req("POST", &format!("/v1/models/{mid}/rules"), T).set_json(rule)
        );
        assert_eq!(st, 201, "{body}");
        assert_eq!(body["created_by"], "user:test", "{body}");
    }

    // The machine: SQL needs a phone (guard); MQL at 30 points with a 24 h SLA.
    let mut machine =
        serde_json::to_value(scoring_svc::domain::defs::MachineSpec::default_machine()).unwrap();
    machine["stages"][1]["entry"] = json!({"version": 1, "root": {"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte", "value": 30}});
    machine["stages"][1]["sla"] = json!({"hours": 24});
    machine["stages"][3]["guard"] = json!({"version": 1, "root": {"type": "property", "key": "contact.phone", "value_type": "string", "op": "exists"}});
    let mut bad = machine.clone();
    bad["transitions"][0]["to"] = json!("won");
    let (st, body) = call!(app, req("PUT", "/v1/stage-machine", T).set_json(bad));
    assert_eq!(
        (st, body["details"]["errors"][0]["path"].as_str()),
        (400, Some("transitions[0].to"))
    );
    let (st, body) = call!(app, req("PUT", "/v1/stage-machine", T).set_json(machine));
    assert_eq!(
        (
            st,
            body["is_default"].as_bool(),
            body["updated_by"].as_str(),
            body["tenant_id"].as_str()
        ),
        (200, Some(false), Some("user:test"), Some(T)),
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
    // A stray `tenant_id` naming another tenant changes nothing.
    let (st, lead) = call!(
        app,
        req("GET", &format!("/v1/profiles/p1/scores?tenant_id={B}"), T)
    );
    assert_eq!(st, 200, "{lead}");
    assert_eq!(
        (lead["stage"].as_str(), lead["scores"][0]["score"].as_f64()),
        (Some("mql"), Some(55.0))
    );
    assert_eq!(lead["owner"]["user_id"], "rep-1");

    // Manual moves as the credential's actor: forward to sql; back to new is refused with the
    // reason; opportunity's guard. An `actor` in the body is not who moved it.
    let mv = |stage: &str, actor: &str| {
        as_actor("POST", "/v1/profiles/p1/stage", T, actor, Role::Rep).set_json(json!({
            "tenant_id": B, "stage": stage, "actor": "typed-by-caller",
            "reason": format!("moving to {stage}")}))
    };
    let (st, body) = call!(app, mv("sql", REP));
    assert_eq!((st, body["stage"].as_str()), (200, Some("sql")), "{body}");
    let (st, body) = call!(app, mv("new", REP));
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
    let (st, body) = call!(app, mv("opportunity", REP));
    assert_eq!(
        (st, body["code"].as_str()),
        (409, Some("guard_failed")),
        "{body}"
    );
    let (st, body) = call!(app, mv("won", REP));
    assert_eq!(
        (st, body["code"].as_str(), body["details"]["field"].as_str()),
        (400, Some("unknown_stage"), Some("stage"))
    );
    let (st, body) = call!(
        app,
        req("POST", "/v1/profiles/p1/stage", T).set_json(json!({"reason": "no stage"}))
    );
    assert_eq!(
        (st, body["code"].as_str(), body["details"]["field"].as_str()),
        (400, Some("missing_field"), Some("stage")),
        "{body}"
    );
    let (st, body) = call!(
        app,
        req("POST", "/v1/profiles/p1/stage", T).set_json(json!({"stage": 5, "reason": "typed"}))
    );
    assert_eq!(
        (st, body["code"].as_str(), body["details"]["field"].as_str()),
        (400, Some("invalid_json"), Some("stage")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("`stage`"),
        "{body}"
    );
    let (st, body) = call!(
        app,
        req("POST", "/v1/profiles/p1/stage", T).set_json(json!({"stage": "lost"}))
    );
    assert_eq!(
        (st, body["details"]["field"].as_str()),
        (400, Some("reason")),
        "{body}"
    );
    let (st, _) = call!(app, mv("lost", "user:manager-2"));
    assert_eq!(st, 200);
    let (st, body) = call!(app, req("GET", "/v1/profiles/p1/stage-history", T));
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
                REP.into(),
                "moving to sql".into()
            ),
            (
                "lost".into(),
                "user".into(),
                "user:manager-2".into(),
                "moving to lost".into()
            ),
        ]
    );
    // The MQL SLA closed when the lead left mql.
    let (_, slas) = call!(app, req("GET", "/v1/profiles/p1/slas", T));
    assert_eq!(slas["items"][0]["status"], "closed");

    // Ledger, page by page, with the rule's name and each entry's worth now.
    let (st, page) = call!(
        app,
        req("GET", "/v1/profiles/p1/ledger?model=engagement&limit=3", T)
    );
    assert_eq!(st, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["items"][0]["rule"], "Form");
    assert_eq!(page["items"][1]["capped"], "per_day");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = call!(
        app,
        req(
            "GET",
            &format!("/v1/profiles/p1/ledger?cursor={cursor}&limit=3"),
            T
        )
    );
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["next_cursor"].is_null(), "{rest}");
    let (st, body) = call!(app, req("GET", "/v1/profiles/p1/ledger?limit=0", T));
    assert_eq!((st, body["code"].as_str()), (400, Some("invalid_limit")));

    // Another lead, a leaderboard, a manual adjustment recorded with the actor.
    s.handle(&resolved(
        "p2",
        &tracked(T, TrackKind::PageView, start(), "p2v", &[], json!({})),
    ))
    .await;
    let (st, adj) = call!(
        app,
        req("POST", "/v1/profiles/p2/adjustments", T).set_json(json!({
        "tenant_id": B, "actor": "typed", "model": "engagement", "delta": 100,
        "reason": "met at the fair"}))
    );
    assert_eq!(
        (st, adj["scores"][0]["score"].as_f64()),
        (200, Some(110.0)),
        "{adj}"
    );
    let (_, page) = call!(app, req("GET", "/v1/profiles/p2/ledger", T));
    let manual = &page["items"][0];
    assert_eq!(
        (
            manual["kind"].as_str(),
            manual["cause_id"].as_str(),
            manual["note"].as_str()
        ),
        (Some("adjust"), Some("user:test"), Some("met at the fair")),
        "{page}"
    );
    for (body, field) in [
        (
            json!({"model": "engagement", "delta": 0, "reason": "x"}),
            "delta",
        ),
        (json!({"model": "engagement", "delta": 5}), "reason"),
        (json!({"delta": 5, "reason": "x"}), "model"),
        (json!({"model": "fit", "delta": 5, "reason": "x"}), "model"),
    ] {
        let (st, err) = call!(
            app,
            req("POST", "/v1/profiles/p2/adjustments", T).set_json(body.clone())
        );
        assert_eq!(
            (st, err["details"]["field"].as_str()),
            (400, Some(field)),
            "{body} → {err}"
        );
    }
    let (_, board) = call!(
        app,
        req("GET", "/v1/leaderboard?model=engagement&limit=5", T)
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
        req("GET", "/v1/leaderboard?model=engagement&stage=lost", T)
    );
    assert_eq!(board["items"].as_array().unwrap().len(), 1);
    let (st, body) = call!(app, req("GET", "/v1/leaderboard", T));
    assert_eq!(
        (st, body["details"]["field"].as_str()),
        (400, Some("model"))
    );

    // Dry run: forms worth 50 now.
    let dry = json!({"tenant_id": B, "model": {"key": "engagement", "name": "E2"},
        "rules": [{"kind": "event", "name": "Form", "event": "track.form_submit", "points": 50}]});
    let mut one = dry.clone();
    one["profile_id"] = json!("p1");
    let (st, body) = call!(app, req("POST", "/v1/dry-run", T).set_json(one));
    assert_eq!(
        (st, body["score"].as_f64(), body["current"].as_f64()),
        (200, Some(50.0), Some(55.0)),
        "{body}"
    );
    let mut sample = dry.clone();
    sample["sample"] = json!(10);
    let (st, body) = call!(app, req("POST", "/v1/dry-run", T).set_json(sample));
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
    let (st, body) = call!(app, req("POST", "/v1/dry-run", T).set_json(bad));
    assert_eq!(
        (st, body["details"]["errors"][0]["path"].as_str()),
        (400, Some("rules[0].points"))
    );

    // Recompute with progress (no body needed), recorded with the actor.
    let (st, body) = call!(
        app,
        req("POST", &format!("/v1/models/{mid}/recompute"), T)
            .set_json(json!({"fire_triggers": "yes"}))
    );
    assert_eq!(
        (st, body["details"]["field"].as_str()),
        (400, Some("fire_triggers")),
        "{body}"
    );
    let (st, job) = call!(app, req("POST", &format!("/v1/models/{mid}/recompute"), T));
    assert_eq!(
        (
            st,
            job["status"].as_str(),
            job["total"].as_i64(),
            job["created_by"].as_str()
        ),
        (202, Some("queued"), Some(2), Some("user:test")),
        "{job}"
    );
    let jid = job["id"].as_str().unwrap().to_string();
    let sched = Scheduler::new(s.scorer.clone(), 10, 1, None);
    sched.tick().await.unwrap();
    let (_, j) = call!(app, req("GET", &format!("/v1/jobs/{jid}"), T));
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
    let (_, j) = call!(app, req("GET", &format!("/v1/jobs/{jid}"), T));
    assert_eq!(
        (j["status"].as_str(), j["done"].as_i64()),
        (Some("done"), Some(2)),
        "{j}"
    );
    let (_, lead) = call!(app, req("GET", "/v1/profiles/p2/scores", T));
    assert_eq!(
        lead["scores"][0]["score"].as_f64(),
        Some(110.0),
        "adjustments survive a recompute"
    );

    // A contact meets the open MQL SLA of a third lead, settled by the rep who made it.
    for (i, kind) in [TrackKind::PageView, TrackKind::FormSubmit]
        .into_iter()
        .enumerate()
    {
        s.handle(&resolved(
            "p3",
            &tracked(T, kind, start(), &format!("p3-{i}"), &[], json!({})),
        ))
        .await;
    }
    let (st, body) = call!(
        app,
        as_actor("POST", "/v1/profiles/p3/contacted", T, REP, Role::Rep)
            .set_json(json!({"tenant_id": B, "actor": "typed"}))
    );
    assert_eq!((st, body["slas_met"].as_u64()), (200, Some(1)), "{body}");
    let (_, slas) = call!(app, req("GET", "/v1/profiles/p3/slas", T));
    assert_eq!(
        (
            slas["items"][0]["stage"].as_str(),
            slas["items"][0]["status"].as_str(),
            slas["items"][0]["settled_by"].as_str()
        ),
        (Some("mql"), Some("met"), Some(REP)),
        "{slas}"
    );
    let (st, body) = call!(app, req("POST", "/v1/profiles/p3/contacted", T));
    assert_eq!((st, body["slas_met"].as_u64()), (200, Some(0)), "{body}");

    // Rules and triggers are changed and deleted as the actor.
    let (_, m) = call!(app, req("GET", &format!("/v1/models/{mid}"), T));
    let rid = m["rules"][0]["id"].as_str().unwrap().to_string();
    let (st, body) = call!(
        app,
        req("PUT", &format!("/v1/rules/{rid}"), T).set_json(json!({
            "kind": "event", "name": "Views", "event": "track.page_view", "points": 5}))
    );
    assert_eq!(
        (st, body["points"].as_f64(), body["updated_by"].as_str()),
        (200, Some(5.0), Some("user:test")),
        "{body}"
    );
    let (st, _) = call!(app, req("DELETE", &format!("/v1/rules/{rid}"), T));
    assert_eq!(st, 204);
    let (_, body) = call!(app, req("GET", &format!("/v1/rules/{rid}"), T));
    assert_eq!(
        (body["status"].as_str(), body["updated_by"].as_str()),
        (Some("deleted"), Some("user:test"))
    );
    s.cleanup().await;
}

/// Tenant `T`'s model, rule, trigger, job and lead are not found through a credential for `B`
/// — reads and writes alike, nothing of `T` changes — and `B`'s lists never show them.
async fn tenants_do_not_see_each_other(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let app = app!(s);

    // Tenant T: a model with a rule, a trigger, a lead with points, a recompute job.
    let (st, model) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!({
        "key": "engagement", "name": "Engagement of T"}))
    );
    assert_eq!(st, 201, "{model}");
    let mid = model["id"].as_str().unwrap().to_string();
    let (st, rule) = call!(
        app,
        req("POST", &format!("/v1/models/{mid}/rules"), T).set_json(json!({
            "kind": "event", "name": "Views", "event": "track.page_view", "points": 10}))
    );
    assert_eq!(st, 201, "{rule}");
    let rid = rule["id"].as_str().unwrap().to_string();
    let trigger = json!({"name": "Hot", "on": {"type": "score", "model": "engagement", "threshold": 50, "direction": "up"},
        "actions": [{"type": "notify", "message": "hot lead"}]});
    let (st, trig) = call!(
        app,
        req("POST", "/v1/triggers", T).set_json(trigger.clone())
    );
    assert_eq!(st, 201, "{trig}");
    let tid = trig["id"].as_str().unwrap().to_string();
    s.handle(&resolved(
        "pa",
        &tracked(T, TrackKind::PageView, start(), "a-v1", &[], json!({})),
    ))
    .await;
    let (st, job) = call!(app, req("POST", &format!("/v1/models/{mid}/recompute"), T));
    assert_eq!(st, 202, "{job}");
    let jid = job["id"].as_str().unwrap().to_string();

    // Tenant B: its own model with the same key and a lead of its own.
    let (st, bm) = call!(
        app,
        req("POST", "/v1/models", B).set_json(json!({
        "key": "engagement", "name": "Engagement of B"}))
    );
    assert_eq!(st, 201, "{bm}");
    let bmid = bm["id"].as_str().unwrap().to_string();
    let (st, _) = call!(
        app,
        req("POST", &format!("/v1/models/{bmid}/rules"), B).set_json(json!({
            "kind": "event", "name": "Views", "event": "track.page_view", "points": 3}))
    );
    assert_eq!(st, 201);
    s.handle(&resolved(
        "pb",
        &tracked(B, TrackKind::PageView, start(), "b-v1", &[], json!({})),
    ))
    .await;

    // Every by-id route on T's resources through B's credential: 404 like an unknown id.
    let rule_body =
        json!({"kind": "event", "name": "Hijack", "event": "track.page_view", "points": 99});
    let not_found: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/models/{mid}"), None),
        (
            "PATCH",
            format!("/v1/models/{mid}"),
            Some(json!({"name": "Hijacked", "status": "archived"})),
        ),
        (
            "POST",
            format!("/v1/models/{mid}/rules"),
            Some(rule_body.clone()),
        ),
        ("POST", format!("/v1/models/{mid}/recompute"), None),
        ("GET", format!("/v1/rules/{rid}"), None),
        ("PUT", format!("/v1/rules/{rid}"), Some(rule_body)),
        ("DELETE", format!("/v1/rules/{rid}"), None),
        ("GET", format!("/v1/triggers/{tid}"), None),
        ("PUT", format!("/v1/triggers/{tid}"), Some(trigger)),
        ("DELETE", format!("/v1/triggers/{tid}"), None),
        ("GET", format!("/v1/jobs/{jid}"), None),
        ("GET", "/v1/profiles/pa/scores".into(), None),
        ("GET", "/v1/profiles/pa/ledger".into(), None),
        ("GET", "/v1/profiles/pa/stage-history".into(), None),
        ("GET", "/v1/profiles/pa/firings".into(), None),
        ("GET", "/v1/profiles/pa/slas".into(), None),
        (
            "POST",
            "/v1/profiles/pa/stage".into(),
            Some(json!({"stage": "lost", "reason": "x"})),
        ),
        ("POST", "/v1/profiles/pa/contacted".into(), None),
        (
            "POST",
            "/v1/profiles/pa/adjustments".into(),
            Some(json!({"model": "engagement", "delta": 50, "reason": "x"})),
        ),
        (
            "POST",
            "/v1/dry-run".into(),
            Some(
                json!({"model": {"key": "engagement", "name": "E"}, "profile_id": "pa",
                "rules": [{"kind": "event", "name": "V", "event": "track.page_view", "points": 1}]}),
            ),
        ),
    ];
    for (method, uri, body) in &not_found {
        // The stray `tenant_id` naming the owner does not help.
        let uri = if uri.contains('?') {
            format!("{uri}&tenant_id={T}")
        } else {
            format!("{uri}?tenant_id={T}")
        };
        let mut r = req(method, &uri, B);
        if let Some(b) = body {
            let mut b = b.clone();
            b["tenant_id"] = json!(T);
            r = r.set_json(b);
        }
        let (st, err) = call!(app, r);
        assert_eq!(
            (st, err["code"].as_str()),
            (404, Some("not_found")),
            "{method} {uri} through B: {err}"
        );
    }

    // Nothing of T changed; B's writes went nowhere.
    let (_, m) = call!(app, req("GET", &format!("/v1/models/{mid}"), T));
    assert_eq!(
        (
            m["name"].as_str(),
            m["status"].as_str(),
            m["rules"].as_array().map(Vec::len)
        ),
        (Some("Engagement of T"), Some("active"), Some(1)),
        "{m}"
    );
    let (_, r) = call!(app, req("GET", &format!("/v1/rules/{rid}"), T));
    assert_eq!(
        (r["status"].as_str(), r["points"].as_f64()),
        (Some("active"), Some(10.0))
    );
    let (_, t) = call!(app, req("GET", &format!("/v1/triggers/{tid}"), T));
    assert_eq!(t["status"], "active", "{t}");
    let (st, j) = call!(app, req("GET", &format!("/v1/jobs/{jid}"), T));
    assert_eq!((st, j["tenant_id"].as_str()), (200, Some(T)));
    let (_, a) = call!(app, req("GET", "/v1/profiles/pa/scores", T));
    assert_eq!(
        (a["stage"].as_str(), a["scores"][0]["score"].as_f64()),
        (Some("new"), Some(10.0)),
        "{a}"
    );
    let jobs_of_b = s
        .count(
            "SELECT COUNT(*) FROM scoring_jobs WHERE tenant_id = ?",
            vec![B.into()],
        )
        .await;
    assert_eq!(jobs_of_b, 0, "B's recompute of T's model queued nothing");
    let leads_of_b = s
        .count(
            "SELECT COUNT(*) FROM leads WHERE tenant_id = ?",
            vec![B.into()],
        )
        .await;
    assert_eq!(leads_of_b, 1, "only B's own lead");

    // B's lists: its own model and no trigger; its leaderboard only its own lead; its machine
    // the default one (a stray `tenant_id` naming T changes nothing).
    let (_, models) = call!(app, req("GET", &format!("/v1/models?tenant_id={T}"), B));
    let ids: Vec<&str> = models["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![bmid.as_str()]);
    let (_, triggers) = call!(app, req("GET", &format!("/v1/triggers?tenant_id={T}"), B));
    assert_eq!(triggers["items"], json!([]), "{triggers}");
    let (_, board) = call!(
        app,
        req(
            "GET",
            &format!("/v1/leaderboard?model=engagement&tenant_id={T}"),
            B
        )
    );
    let rows: Vec<(&str, f64)> = board["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["profile_id"].as_str().unwrap(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, vec![("pb", 3.0)]);
    let (_, board) = call!(app, req("GET", "/v1/leaderboard?model=engagement", T));
    let rows: Vec<&str> = board["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["profile_id"].as_str().unwrap())
        .collect();
    assert_eq!(rows, vec!["pa"]);
    let (_, machine) = call!(app, req("GET", "/v1/stage-machine", B));
    assert_eq!(machine["is_default"], true);
    // B's dry-run sample covers B's leads only.
    let (_, dry) = call!(
        app,
        req("POST", "/v1/dry-run", B).set_json(json!({
        "model": {"key": "engagement", "name": "E"}, "sample": 10,
        "rules": [{"kind": "event", "name": "V", "event": "track.page_view", "points": 1}]}))
    );
    assert_eq!(dry["distribution"]["profiles"], 1, "{dry}");
    assert_eq!(dry["top"][0]["profile_id"], "pb", "{dry}");
    s.cleanup().await;
}

/// A move, a contact or an adjustment on a profile the tenant has no lead for answers 404
/// naming it, and creates no lead: the leaderboard stays as it was.
async fn unknown_profiles_are_not_found_and_get_no_lead(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let app = app!(s);
    let (st, model) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!({
        "key": "engagement", "name": "Engagement"}))
    );
    assert_eq!(st, 201, "{model}");
    let mid = model["id"].as_str().unwrap();
    let (st, rule) = call!(
        app,
        req("POST", &format!("/v1/models/{mid}/rules"), T).set_json(json!({
            "kind": "event", "name": "Views", "event": "track.page_view", "points": 10}))
    );
    assert_eq!(st, 201, "{rule}");
    s.handle(&resolved(
        "known",
        &tracked(T, TrackKind::PageView, start(), "k-v1", &[], json!({})),
    ))
    .await;
    let board = || req("GET", "/v1/leaderboard?model=engagement", T);
    let (st, before) = call!(app, board());
    assert_eq!(st, 200, "{before}");
    assert_eq!(before["items"].as_array().unwrap().len(), 1, "{before}");

    for (uri, body) in [
        (
            "/v1/profiles/ghost/adjustments",
            Some(json!({"model": "engagement", "delta": 500, "reason": "phantom"})),
        ),
        (
            "/v1/profiles/ghost/stage",
            Some(json!({"stage": "sql", "reason": "phantom"})),
        ),
        ("/v1/profiles/ghost/contacted", None),
    ] {
        let mut r = req("POST", uri, T);
        if let Some(b) = body {
            r = r.set_json(b);
        }
        let (st, err) = call!(app, r);
        assert_eq!(
            (
                st,
                err["code"].as_str(),
                err["details"]["profile_id"].as_str()
            ),
            (404, Some("not_found"), Some("ghost")),
            "{uri}: {err}"
        );
        assert!(
            err["message"].as_str().unwrap().contains("`ghost`"),
            "{err}"
        );
    }
    let (st, _) = call!(app, req("GET", "/v1/profiles/ghost/scores", T));
    assert_eq!(st, 404);
    let (_, after) = call!(app, board());
    assert_eq!(after["items"], before["items"], "leaderboard unchanged");
    for table in [
        "leads",
        "score_ledger",
        "profile_scores",
        "lead_stage_history",
    ] {
        let n = s
            .count(
                &format!("SELECT COUNT(*) FROM {table} WHERE profile_id = ?"),
                vec!["ghost".into()],
            )
            .await;
        assert_eq!(n, 0, "{table} has no row of the unknown profile");
    }
    s.cleanup().await;
}

/// Every route, without a credential or with one signed under another key, answers 401 (the
/// handler itself requires the principal: a test `App` has no middleware).
async fn every_route_requires_the_credential(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let app = app!(s);
    let forged = auth::header_with(
        "another-internal-key-0123456789abcdef",
        T,
        "user:test",
        Role::Owner,
    );
    for (method, uri) in ROUTES {
        let plain = |m: &str| match m {
            "GET" => test::TestRequest::get(),
            "POST" => test::TestRequest::post(),
            "PUT" => test::TestRequest::put(),
            "PATCH" => test::TestRequest::patch(),
            _ => test::TestRequest::delete(),
        };
        let (st, body) = call!(
            app,
            plain(method)
                .uri(&format!("{uri}?tenant_id={T}"))
                .set_json(json!({"tenant_id": T}))
        );
        assert_eq!(
            (st, body["code"].as_str()),
            (401, Some("unauthenticated")),
            "{method} {uri} without a credential: {body}"
        );
        let (st, body) = call!(
            app,
            plain(method)
                .uri(uri)
                .insert_header(forged.clone())
                .set_json(json!({}))
        );
        assert_eq!(
            (st, body["code"].as_str()),
            (401, Some("invalid_credential")),
            "{method} {uri} with a forged credential: {body}"
        );
    }
    s.cleanup().await;
}

/// Every list of the API pages by cursor: walked two at a time, each gives the items of one
/// large page, once and in order (definitions as created, the ledger newest first, a lead's
/// history, firings and SLAs oldest first, the leaderboard by score then profile id); limits out
/// of range and cursors a list did not give — another list's among them — are 400 naming the
/// parameter. The stage machine is read whole: it is not a list.
async fn every_list_pages_by_cursor(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let app = app!(s);
    let get = |uri: String| {
        let app = &app;
        async move { call!(app, req("GET", &uri, T)) }
    };
    let id = |v: &Value| v["id"].clone();
    let post = |uri: &str, body: Value| req("POST", uri, T).set_json(body);

    // Five models, five rules of the first, five triggers on entering stages.
    let mut models = Vec::new();
    for key in ["engagement", "fit", "intent", "loyalty", "reach"] {
        let (st, m) = call!(app, post("/v1/models", json!({"key": key, "name": key})));
        assert_eq!(st, 201, "{m}");
        models.push(m["id"].clone());
    }
    let mid = models[0].as_str().unwrap().to_string();
    let mut rules = Vec::new();
    for (name, event) in [
        ("Views", "track.page_view"),
        ("Forms", "track.form_submit"),
        ("Downloads", "track.download"),
        ("Sessions", "mp.session"),
        ("Follows", "oa.subscribe"),
    ] {
        let (st, r) = call!(
            app,
            post(
                &format!("/v1/models/{mid}/rules"),
                json!({"kind": "event", "name": name, "event": event, "points": 10})
            )
        );
        assert_eq!(st, 201, "{r}");
        rules.push(r["id"].clone());
    }
    let mut machine =
        serde_json::to_value(scoring_svc::domain::defs::MachineSpec::default_machine()).unwrap();
    for stage in 1..=3 {
        machine["stages"][stage]["sla"] = json!({"hours": 24});
    }
    let (st, body) = call!(app, req("PUT", "/v1/stage-machine", T).set_json(machine));
    assert_eq!(st, 200, "{body}");
    let mut triggers = Vec::new();
    for stage in ["mql", "sql", "opportunity", "customer", "lost"] {
        let (st, t) = call!(
            app,
            post(
                "/v1/triggers",
                json!({"name": stage, "on": {"type": "stage_entered", "stage": stage},
                       "actions": [{"type": "notify"}]})
            )
        );
        assert_eq!(st, 201, "{t}");
        triggers.push(t["id"].clone());
    }
    // Leads: p1 with five views, moved up to customer; p5 with two; p2..p4 with one each.
    for (p, views) in [("p1", 5), ("p2", 1), ("p3", 1), ("p4", 1), ("p5", 2)] {
        for i in 0..views {
            s.handle(&resolved(
                p,
                &tracked(
                    T,
                    TrackKind::PageView,
                    start(),
                    &format!("{p}-v{i}"),
                    &[],
                    json!({}),
                ),
            ))
            .await;
        }
    }
    for stage in ["mql", "sql", "opportunity", "customer"] {
        let (st, body) = call!(
            app,
            post(
                "/v1/profiles/p1/stage",
                json!({"stage": stage, "reason": "qualified"})
            )
        );
        assert_eq!(st, 200, "{body}");
    }

    let listed = pages::check(&get, "/v1/models", 2, id).await;
    assert_eq!(
        listed.items.iter().map(id).collect::<Vec<_>>(),
        models,
        "as created"
    );
    let listed = pages::check(&get, &format!("/v1/models/{mid}/rules"), 2, id).await;
    assert_eq!(
        listed.items.iter().map(id).collect::<Vec<_>>(),
        rules,
        "as created"
    );
    let listed = pages::check(&get, "/v1/triggers", 2, id).await;
    assert_eq!(
        listed.items.iter().map(id).collect::<Vec<_>>(),
        triggers,
        "as created"
    );

    let ledger = pages::check(&get, "/v1/profiles/p1/ledger", 2, id).await;
    assert_eq!(ledger.items.len(), 5);
    assert!(descending(&ledger.items, "id"), "newest first");
    let history = pages::check(&get, "/v1/profiles/p1/stage-history", 2, id).await;
    let stages: Vec<&str> = history
        .items
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["new", "mql", "sql", "opportunity", "customer"]);
    let (_, page) = get("/v1/profiles/p1/stage-history?limit=1".into()).await;
    assert_eq!(page["stage"], "customer", "{page}");
    let firings = pages::check(&get, "/v1/profiles/p1/firings", 2, id).await;
    let fired: Vec<&Value> = firings.items.iter().map(|f| &f["trigger_id"]).collect();
    assert_eq!(
        fired,
        triggers[..4].iter().collect::<Vec<_>>(),
        "oldest first"
    );
    let slas = pages::check(&get, "/v1/profiles/p1/slas", 2, |v| v["history_id"].clone()).await;
    let stages: Vec<&str> = slas
        .items
        .iter()
        .map(|a| a["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["mql", "sql", "opportunity"]);

    // The leaderboard: by score, ties by profile id.
    let board = pages::check(&get, "/v1/leaderboard?model=engagement", 2, |v| {
        v["profile_id"].clone()
    })
    .await;
    let order: Vec<&str> = board
        .items
        .iter()
        .map(|r| r["profile_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["p1", "p5", "p2", "p3", "p4"]);
    let (_, page) = get("/v1/leaderboard?model=engagement&limit=1".into()).await;
    assert_eq!(
        (page["model"].as_str(), page["as_of"].is_string()),
        (Some("engagement"), true)
    );
    // A filter narrows the walk.
    let fresh = pages::walk(&get, "/v1/leaderboard?model=engagement&stage=new", 2).await;
    let order: Vec<&str> = fresh
        .items
        .iter()
        .map(|r| r["profile_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["p5", "p2", "p3", "p4"]);

    // A cursor of one list is not a cursor of another, even where both are row ids.
    let foreign = firings.first_cursor.unwrap();
    pages::refused(
        &get,
        &format!("/v1/profiles/p1/slas?cursor={foreign}"),
        "invalid_cursor",
        "cursor",
    )
    .await;
    s.cleanup().await;
}

/// The customer browse: every lead of the tenant, by last activity (default), creation, stage
/// (the machine's order, each by last activity) or score, page by page with cursors of their own
/// sort; filtered by stage, owner, tags (all of them), first-touch channel, a score range
/// (unscored = 0) and a condition of the rule language; bad parameters are 400 naming them; the
/// other tenant sees none of it.
async fn customers_browse(backend: Backend) {
    use crate::fixtures::tag_changed;
    let s = ScoringDb::new(backend).await;
    let app = app!(s);
    let get = |uri: String| {
        let app = &app;
        async move { call!(app, req("GET", &uri, T)) }
    };
    let ids = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|v| v["profile_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (st, m) = call!(
        app,
        req("POST", "/v1/models", T).set_json(json!({"key": "engagement", "name": "E"}))
    );
    assert_eq!(st, 201, "{m}");
    let mid = m["id"].as_str().unwrap().to_string();
    let (st, r) = call!(
        app,
        req("POST", &format!("/v1/models/{mid}/rules"), T).set_json(
            json!({"kind": "event", "name": "Views", "event": "track.page_view", "points": 10})
        )
    );
    assert_eq!(st, 201, "{r}");
    // c1..c5 created in this order; views: c1 ×1 (latest), c2 ×3, c3 ×2, c4 ×1 (earliest);
    // c5 only has a profile update (never active).
    let views = [("c4", 1, 1), ("c2", 3, 2), ("c3", 2, 3), ("c1", 1, 4)];
    for (i, p) in ["c1", "c2", "c3", "c4", "c5"].iter().enumerate() {
        let (source, rep) = if i % 2 == 0 {
            ("ads", Some("rep-a"))
        } else {
            ("expo", None)
        };
        s.clock.set(start() + chrono::Duration::minutes(i as i64));
        s.handle(&updated(
            T,
            p,
            1,
            json!({"contact.name": format!("Name {p}"), "contact.city": if i < 2 { "Shanghai" } else { "Beijing" },
                   "source.first.channel": source}),
            rep,
        ))
        .await;
    }
    for (p, n, hour) in views {
        for k in 0..n {
            let at = start() + chrono::Duration::hours(hour) + chrono::Duration::minutes(k);
            s.clock.set(at);
            s.handle(&resolved(
                p,
                &tracked(
                    T,
                    TrackKind::PageView,
                    at,
                    &format!("{p}-{k}"),
                    &[],
                    json!({}),
                ),
            ))
            .await;
        }
    }
    for p in ["c2", "c3"] {
        s.handle(&tag_changed(T, p, "hot", true, start())).await;
    }
    s.handle(&tag_changed(T, "c3", "vip", true, start())).await;
    let (st, body) = call!(
        app,
        req("POST", "/v1/profiles/c4/stage", T).set_json(json!({"stage": "mql", "reason": "call"}))
    );
    assert_eq!(st, 200, "{body}");

    // Last activity, most recent first; never active last. Every page of two is the same walk.
    let walk = pages::check(&get, "/v1/customers", 2, |v| v["profile_id"].clone()).await;
    assert_eq!(ids(&walk.items), ["c1", "c3", "c2", "c4", "c5"]);
    let first = &walk.items[0];
    assert_eq!(
        (
            first["name"].as_str(),
            first["stage"].as_str(),
            first["scores"]["engagement"].as_f64()
        ),
        (Some("Name c1"), Some("new"), Some(10.0)),
        "{first}"
    );
    assert_eq!(first["owner"]["user_id"], "rep-a", "{first}");
    let walk = pages::walk(&get, "/v1/customers?order=asc", 2).await;
    assert_eq!(ids(&walk.items), ["c5", "c4", "c2", "c3", "c1"]);
    let walk = pages::walk(&get, "/v1/customers?sort=created&order=asc", 2).await;
    assert_eq!(ids(&walk.items), ["c1", "c2", "c3", "c4", "c5"]);
    let walk = pages::walk(&get, "/v1/customers?sort=score&model=engagement", 2).await;
    assert_eq!(ids(&walk.items), ["c2", "c3", "c1", "c4", "c5"]);
    let walk = pages::walk(&get, "/v1/customers?sort=stage", 2).await;
    assert_eq!(
        ids(&walk.items),
        ["c4", "c1", "c3", "c2", "c5"],
        "mql before new"
    );

    // Filters.
    let list = |q: &str| {
        let get = &get;
        let uri = format!("/v1/customers?limit=500&{q}");
        async move {
            let (st, body) = get(uri).await;
            assert_eq!(st, 200, "{body}");
            ids(body["items"].as_array().unwrap())
        }
    };
    assert_eq!(list("stage=new").await, ["c1", "c3", "c2", "c5"]);
    assert_eq!(list("owner=rep-a").await, ["c1", "c3", "c5"]);
    assert_eq!(
        list("owner=rep-a&owner_corp=wwcorp").await,
        ["c1", "c3", "c5"]
    );
    assert!(
        list("owner=rep-a&owner_corp=ww-other").await.is_empty(),
        "another corp's rep-a"
    );
    assert_eq!(list("tag=hot").await, ["c3", "c2"]);
    assert_eq!(list("tag=hot,vip").await, ["c3"]);
    assert_eq!(list("source=expo").await, ["c2", "c4"]);
    assert_eq!(list("model=engagement&score_min=20").await, ["c3", "c2"]);
    assert_eq!(
        list("model=engagement&score_max=10").await,
        ["c1", "c4", "c5"],
        "unscored counts as 0"
    );
    assert_eq!(
        list("model=engagement&score_min=5&score_max=25&tag=hot").await,
        ["c3"]
    );
    let cond = json!({"version": 1, "root": {"type": "property", "key": "contact.city",
        "value_type": "string", "op": "eq", "value": "Shanghai"}});
    let q = format!("condition={}", urlencode(&cond.to_string()));
    assert_eq!(list(&q).await, ["c1", "c2"]);
    let (st, body) = call!(
        app,
        req("POST", "/v1/customers/query", T).set_json(json!({
            "tenant_id": B, "sort": "score", "model": "engagement", "tags": ["hot"],
            "condition": {"version": 1, "root": {"type": "not", "child":
                {"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "Shanghai"}}}}))
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(ids(body["items"].as_array().unwrap()), ["c3"]);

    // Bad parameters name themselves.
    for (q, code, field) in [
        ("sort=name", "invalid_field", "sort"),
        ("order=up", "invalid_field", "order"),
        ("sort=score", "missing_field", "model"),
        ("sort=score&model=nope", "unknown_model", "model"),
        (
            "sort=score&model=engagement&order=asc",
            "invalid_field",
            "order",
        ),
        (
            "model=engagement&score_min=5&score_max=1",
            "invalid_field",
            "score_min",
        ),
        ("score_min=1", "missing_field", "model"),
        ("condition=%7B", "invalid_field", "condition"),
        ("limit=0", "invalid_limit", "limit"),
    ] {
        pages::refused(&get, &format!("/v1/customers?{q}"), code, field).await;
    }
    let (st, body) = call!(
        app,
        req("POST", "/v1/customers/query", T).set_json(
            json!({"condition": {"version": 1, "root": {"type": "tag", "op": "sometimes"}}})
        )
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("invalid_condition")),
        "{body}"
    );
    // A query that does not read names the field (a wrong type, one the query does not have).
    for (query, field) in [
        (json!({"score_min": "high"}), "score_min"),
        (json!({"tags": ["hot", 1]}), "tags[1]"),
    ] {
        let (st, body) = call!(app, req("POST", "/v1/customers/query", T).set_json(query));
        assert_eq!(
            (st, body["code"].as_str(), body["details"]["field"].as_str()),
            (400, Some("invalid_json"), Some(field)),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{body}"
        );
    }
    let (st, body) = call!(
        app,
        req("POST", "/v1/customers/query", T).set_json(json!({"sorting": "score"}))
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("`sorting`"),
        "{body}"
    );
    let by_score = pages::walk(&get, "/v1/customers?sort=score&model=engagement", 2).await;
    pages::refused(
        &get,
        &format!("/v1/customers?cursor={}", by_score.first_cursor.unwrap()),
        "invalid_cursor",
        "cursor",
    )
    .await;

    // The other tenant has no customers.
    let (st, body) = call!(app, req("GET", "/v1/customers", B));
    assert_eq!(
        (st, body["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{body}"
    );
    s.cleanup().await;
}

/// The stage funnel of a period against a history moved by hand: a lead created before the
/// period counts only for what it did in it; another tenant's leads never count.
async fn stage_funnel_of_a_period(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let app = app!(s);
    let t0 = start();
    let at = |hours: i64| t0 + chrono::Duration::hours(hours);
    let lead = |tenant: &'static str, p: &'static str, hours: i64| {
        s.clock.set(at(hours));
        let env = updated(tenant, p, 1, json!({"contact.city": "Hangzhou"}), None);
        let s = &s;
        async move {
            s.handle(&env).await;
        }
    };
    lead(T, "f4", -24 * 40).await;
    for p in ["f1", "f2", "f3"] {
        lead(T, p, 0).await;
    }
    lead(B, "g1", 0).await;
    for (p, stage, hours, tenant) in [
        ("f1", "mql", 24, T),
        ("f2", "mql", 24, T),
        ("f4", "mql", 24, T),
        ("g1", "mql", 24, B),
        ("f1", "sql", 48, T),
    ] {
        s.clock.set(at(hours));
        let (st, body) = call!(
            app,
            req("POST", &format!("/v1/profiles/{p}/stage"), tenant)
                .set_json(json!({"stage": stage, "reason": "qualified"}))
        );
        assert_eq!(st, 200, "{body}");
    }
    let period = |from: i64, to: i64| {
        format!(
            "/v1/analytics/stages?from={}&to={}",
            urlencode(&at(from).to_rfc3339()),
            urlencode(&at(to).to_rfc3339())
        )
    };
    let (st, f) = call!(app, req("GET", &period(-1, 72), T));
    assert_eq!(st, 200, "{f}");
    assert_eq!(
        f["entered"],
        json!([{"stage": "mql", "leads": 3}, {"stage": "new", "leads": 3}, {"stage": "sql", "leads": 1}])
    );
    assert_eq!(
        f["moves"],
        json!([{"to": "new", "moves": 3}, {"from": "new", "to": "mql", "moves": 3},
               {"from": "mql", "to": "sql", "moves": 1}])
    );
    assert_eq!(
        f["conversion"],
        json!([
            {"from": "mql", "to": "sql", "entered": 3, "reached": 1, "rate": 1.0 / 3.0},
            {"from": "new", "to": "mql", "entered": 3, "reached": 2, "rate": 2.0 / 3.0},
            {"from": "new", "to": "sql", "entered": 3, "reached": 1, "rate": 1.0 / 3.0}
        ])
    );
    // A period ending before the moves: only the new leads.
    let (_, f) = call!(app, req("GET", &period(-1, 12), T));
    assert_eq!(f["entered"], json!([{"stage": "new", "leads": 3}]), "{f}");
    assert_eq!(f["conversion"], json!([]));
    // The other tenant sees its one lead.
    let (_, g) = call!(app, req("GET", &period(-1, 72), B));
    assert_eq!(
        g["entered"],
        json!([{"stage": "mql", "leads": 1}, {"stage": "new", "leads": 1}])
    );
    // Periods that do not read are refused naming the field.
    for (uri, field) in [
        (period(5, 1), "from"),
        ("/v1/analytics/stages?from=yesterday".to_string(), "from"),
        (period(-24 * 400, 0), "from"),
    ] {
        let (st, e) = call!(app, req("GET", &uri, T));
        assert_eq!(
            (st, e["details"]["field"].as_str()),
            (400, Some(field)),
            "{uri}: {e}"
        );
    }
    s.cleanup().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Are the items' `field`s strictly descending integers?
fn descending(items: &[Value], field: &str) -> bool {
    let keys: Vec<i64> = items.iter().map(|v| v[field].as_i64().unwrap()).collect();
    keys.windows(2).all(|w| w[0] > w[1])
}

/// Every route of the API with a plausible method and path.
const ROUTES: &[(&str, &str)] = crate::fixtures::API_ROUTES;

test_support::on_both_backends!(
    definitions_moves_and_reads,
    tenants_do_not_see_each_other,
    unknown_profiles_are_not_found_and_get_no_lead,
    every_route_requires_the_credential,
    every_list_pages_by_cursor,
    customers_browse,
    stage_funnel_of_a_period,
);
