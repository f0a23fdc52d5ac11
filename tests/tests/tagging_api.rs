//! tagging-svc's internal API on MariaDB and SQLite: a condition that does not validate is
//! refused naming the node; a preview counts and samples an unsaved condition; saving a rule
//! backfills every profile (progress in its job) and changing or deleting it brings profiles back
//! in line; a segment exports as CSV; tags by hand.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{test as atest, web, App};
use chrono::{DateTime, Utc};
use proto::identity::{ProfileResolved, ProfileUpdated};
use proto::Envelope;
use scrm_tests::db::{Backend, TestDb};
use sea_orm_migration::MigratorTrait;
use serde_json::{json, Value};
use tagging_svc::clock::ManualClock;
use tagging_svc::store::tagger::Tagger;

const T: &str = "t-api";

/// Polls a job until it is done (macro: the test service's type cannot be named).
macro_rules! wait_job {
    ($app:expr, $id:expr) => {{
        let id: &str = $id;
        let mut last = Value::Null;
        for _ in 0..200 {
            last = atest::call_and_read_body_json(
                $app,
                atest::TestRequest::get()
                    .uri(&format!("/v1/jobs/{id}"))
                    .to_request(),
            )
            .await;
            if last["status"] == "done" || last["status"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last["status"], "done", "{last}");
        last
    }};
}

fn now() -> DateTime<Utc> {
    "2026-06-10T02:00:00Z".parse().unwrap()
}

async fn setup(backend: Backend) -> (TestDb, Tagger) {
    let db = TestDb::new(backend).await;
    tagging_svc::store::Migrator::up(&db.conn, None)
        .await
        .unwrap();
    let mut cfg = tagging_svc::Config::new(
        platform::config::HttpConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
        },
        db.cfg.clone(),
    );
    cfg.backfill_batch = 100;
    let tagger = tagging_svc::tagger(db.conn.clone(), cfg, Arc::new(ManualClock::new(now())));
    (db, tagger)
}

/// Profiles p00..p(n-1): the even ones live in Hangzhou, every third visited 3 times.
async fn population(tagger: &Tagger, n: usize) {
    for i in 0..n {
        let id = format!("p{i:02}");
        let fields: BTreeMap<String, Value> = [
            ("contact.name".to_string(), json!(format!("Name, \"{i}\""))),
            (
                "contact.city".to_string(),
                json!(if i % 2 == 0 { "Hangzhou" } else { "Ningbo" }),
            ),
        ]
        .into();
        let u = ProfileUpdated {
            profile_id: id.clone(),
            version: 1,
            changed: fields.keys().cloned().collect(),
            fields,
            relations: Default::default(),
            cause_event: None,
        };
        tagger
            .handle(&Envelope::builder(proto::identity::PROFILE_UPDATED, T, json!(u)).build())
            .await
            .unwrap();
        if i % 3 == 0 {
            for _ in 0..3 {
                let event = Envelope::builder(
                    "channel.track.page_view",
                    T,
                    json!({"subject": {"anonymous_id": "a"}, "kind": "page_view"}),
                )
                .occurred_at(now())
                .build();
                let p = ProfileResolved {
                    profile_id: id.clone(),
                    created: false,
                    event,
                    identifiers: vec![],
                };
                tagger
                    .handle(
                        &Envelope::builder(proto::identity::PROFILE_RESOLVED, T, json!(p)).build(),
                    )
                    .await
                    .unwrap();
            }
        }
    }
}

fn condition() -> Value {
    json!({"version": 1, "root": {"type": "and", "children": [
        {"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "Hangzhou"},
        {"type": "behaviour", "event": "track.page_view", "count": {"op": "gte", "value": 3},
         "window": {"type": "last", "days": 30}}]}})
}

async fn rules_preview_backfill_export(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    population(&tagger, 30).await;
    let routes = tagging_svc::api::wecom::routes(
        tagging_svc::api::routes(tagger.clone()),
        db.conn.clone(),
        None,
    );
    let app = atest::init_service(
        App::new()
            .app_data(platform::http::query_config())
            .app_data(platform::http::json_config())
            .configure(move |c: &mut web::ServiceConfig| routes(c)),
    )
    .await;
    let post = |uri: &str, body: Value| {
        atest::TestRequest::post()
            .uri(uri)
            .set_json(body)
            .to_request()
    };
    let get = |uri: String| atest::TestRequest::get().uri(&uri).to_request();

    let g: Value = atest::call_and_read_body_json(
        &app,
        post(
            "/v1/tag-groups",
            json!({"tenant_id": T, "name": "intent", "operator": "ops"}),
        ),
    )
    .await;
    let t: Value = atest::call_and_read_body_json(
        &app,
        post("/v1/tags", json!({"tenant_id": T, "group_id": g["id"], "name": "engaged locals", "operator": "ops"})),
    )
    .await;
    let tag = t["id"].as_str().unwrap().to_string();

    // Pushing a group to WeCom: the tenant is required; with WeCom access off, 503.
    let push = format!("/v1/tag-groups/{}/wecom/push", g["id"].as_str().unwrap());
    let res = atest::call_service(&app, post(&push, json!({}))).await;
    assert_eq!(res.status(), 400);
    let res = atest::call_service(&app, post(&push, json!({"tenant_id": T}))).await;
    assert_eq!(res.status(), 503);
    let body: Value = atest::read_body_json(res).await;
    assert_eq!(body["code"], "wecom_sync_off", "{body}");

    // A bad condition: every error, each naming its node.
    let bad = json!({"version": 1, "root": {"type": "and", "children": [
        {"type": "property", "key": "contact.city", "value_type": "string", "op": "gt"},
        {"type": "behaviour", "event": "track.page_view", "window": {"type": "last", "days": 400}}]}});
    let res = atest::call_service(
        &app,
        post("/v1/tag-rules", json!({"tenant_id": T, "tag_id": tag, "name": "r", "condition": bad, "operator": "ops"})),
    )
    .await;
    assert_eq!(res.status(), 400);
    let e: Value = atest::read_body_json(res).await;
    assert_eq!(e["code"], "invalid_condition");
    let paths: Vec<&str> = e["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"root.children[1].window.days"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("root.children[0]")),
        "{paths:?}"
    );

    // 10 000 nodes, wide or deep: refused by the limits with a 400, never a stack overflow. The
    // bodies are written as text (a 10 000-deep value would be built, serialised and dropped
    // recursively by the test itself).
    let leaf = r#"{"type":"property","key":"a","value_type":"bool","op":"exists"}"#;
    let wide = format!(
        r#"{{"type":"or","children":[{}]}}"#,
        vec![leaf; 10_000].join(",")
    );
    let deep = format!(
        "{}{leaf}{}",
        r#"{"type":"not","child":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    // Wide: the rule parser's node limit names the node; deep: the JSON reader's depth limit
    // refuses the body before a tree is built.
    for (name, tree, code) in [
        (
            "wide",
            wide,
            r#""code":"too_many_nodes","message":"must have at most 200 nodes","path":"root""#,
        ),
        ("deep", deep, "recursion limit exceeded"),
    ] {
        let body = format!(
            r#"{{"tenant_id":"{T}","tag_id":"{tag}","name":"r","operator":"ops","condition":{{"version":1,"root":{tree}}}}}"#
        );
        let req = atest::TestRequest::post()
            .uri("/v1/tag-rules")
            .insert_header(actix_web::http::header::ContentType::json())
            .set_payload(body)
            .to_request();
        let res = atest::call_service(&app, req).await;
        assert_eq!(res.status(), 400, "{name}");
        let e: Value = atest::read_body_json(res).await;
        assert!(
            e["code"].is_string() && e["message"].is_string(),
            "{name}: {e}"
        );
        assert!(e.to_string().contains(code), "{name}: {e}");
    }

    // Preview of the unsaved condition: p00, p06, p12, p18, p24 (even and every third).
    let p: Value = atest::call_and_read_body_json(
        &app,
        post(
            "/v1/segments/preview",
            json!({"tenant_id": T, "condition": condition(), "sample": 3}),
        ),
    )
    .await;
    assert_eq!(p["count"], 5);
    assert_eq!(p["sample"].as_array().unwrap().len(), 3);
    assert_eq!(p["sample"][0]["profile_id"], "p00");
    assert_eq!(p["sample"][0]["fields"]["contact.city"], "Hangzhou");

    // Saving backfills (batches of 100 profiles here).
    let created: Value = atest::call_and_read_body_json(
        &app,
        post(
            "/v1/tag-rules",
            json!({"tenant_id": T, "tag_id": tag, "name": "engaged locals",
                                      "condition": condition(), "operator": "ops"}),
        ),
    )
    .await;
    let job_id = created["job"]["id"].as_str().unwrap().to_string();
    let job = wait_job!(&app, &job_id);
    assert_eq!(
        (job["total"].as_i64(), job["added"].as_i64()),
        (Some(30), Some(5))
    );
    let tags: Value =
        atest::call_and_read_body_json(&app, get(format!("/v1/profiles/p06/tags?tenant_id={T}")))
            .await;
    assert_eq!(tags["items"][0]["source"], "rule");

    // The segment as CSV (quotes and commas escaped).
    let req = post(
        "/v1/segments/export",
        json!({"tenant_id": T, "condition": condition(), "fields": ["contact.name", "contact.city"]}),
    );
    let body = atest::call_and_read_body(&app, req).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "profile_id,contact.name,contact.city");
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(lines[1], "p00,\"Name, \"\"0\"\"\",Hangzhou");

    // Narrowing the rule removes the stale tags; deleting it takes back the rest.
    let rid = created["rule"]["id"].as_str().unwrap().to_string();
    let narrower = json!({"version": 1, "root": {"type": "property", "key": "contact.name", "value_type": "string", "op": "starts_with", "value": "Name, \"1"}});
    let updated: Value = atest::call_and_read_body_json(
        &app,
        atest::TestRequest::put()
            .uri(&format!("/v1/tag-rules/{rid}"))
            .set_json(json!({"name": "narrower", "condition": narrower, "mode": "add_remove", "operator": "ops"}))
            .to_request(),
    )
    .await;
    let job = wait_job!(&app, updated["job"]["id"].as_str().unwrap());
    // p1, p10..p19 gain it; p00, p06, p24 lose it (p12 and p18 keep it).
    assert_eq!(
        (job["added"].as_i64(), job["removed"].as_i64()),
        (Some(9), Some(3))
    );
    let deleted: Value = atest::call_and_read_body_json(
        &app,
        atest::TestRequest::delete()
            .uri(&format!("/v1/tag-rules/{rid}?operator=ops"))
            .to_request(),
    )
    .await;
    let job = wait_job!(&app, deleted["job"]["id"].as_str().unwrap());
    assert_eq!(job["removed"].as_i64(), Some(11));
    let tags: Value =
        atest::call_and_read_body_json(&app, get(format!("/v1/profiles/p12/tags?tenant_id={T}")))
            .await;
    assert_eq!(tags["items"], json!([]));

    // By hand.
    let c: Value = atest::call_and_read_body_json(
        &app,
        post(
            "/v1/profiles/p03/tags",
            json!({"tenant_id": T, "tag_id": tag, "operator": "rep7"}),
        ),
    )
    .await;
    assert_eq!(c["changes"][0]["change"], "added");
    let res = atest::call_service(
        &app,
        post(
            "/v1/profiles/p03/tags",
            json!({"tenant_id": T, "tag_id": "nope", "operator": "rep7"}),
        ),
    )
    .await;
    assert_eq!(res.status(), 400);
    db.cleanup().await;
}

scrm_tests::on_both_backends!(rules_preview_backfill_export);
