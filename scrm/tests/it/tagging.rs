//! A tag rule working end to end in `scrm up` with the fake WeChat server: an operator builds
//! "follows the Official Account and viewed two case studies in 30 days" through the tagging API
//! (called as the gateway calls it, with a service credential); a customer follows the OA and,
//! logged in to the mini-program, views two case-study pages; the events cross the bus through
//! identity-svc (which merges the OA follower and the mini-program user by unionid) to
//! tagging-svc, and the profile carries the tag and `tag.changed` is on the bus. Another
//! tenant's credential neither sees nor tags that profile.
//!
//! And: every route of the tagging API refuses a request without a valid credential (none,
//! signed under another deployment's key, tampered, expired) with 401, while health stays open.

use crate::common;

use std::time::{Duration, Instant};

use fake_wechat::{CallbackMode, FakeWechat};
use platform::bus::GroupSpec;
use platform::http::{Principal, ServiceKey, PRINCIPAL_HEADER};
use proto::auth::Role as AuthRole;
use proto::tagging::{TagChange, TagChanged};
use reqwest::Method;
use scrm::roles::Role;
use serde_json::{json, Value};

use crate::common::TENANT;

/// Another tenant of the deployment.
const OTHER: &str = "t-e2e-other";

/// The credential the gateway would send for an operator of `tenant`.
fn credential(tenant: &str) -> (&'static str, String) {
    test_support::auth::header_with(
        common::INTERNAL_KEY,
        tenant,
        "user:test",
        AuthRole::Operator,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_and_two_case_studies_tag_the_customer() {
    let fake = FakeWechat::start(0, 33).unwrap();
    let (running, dir) = common::start_up(
        &fake,
        // A WeChat lookup that fails is tried again soon.
        Some(json!({"identity": {"wechat": {"retry_delays_ms": [200, 500, 1000]}}})),
    )
    .await;
    let (gw, identity, tagging) = (
        running.url(Role::Gateway),
        running.url(Role::Identity),
        running.url(Role::Tagging),
    );
    let mut changes = running
        .deps
        .bus
        .subscribe(&GroupSpec::new(
            "e2e-tag-observer",
            &["tag.changed"],
            &platform::config::BusConfig::memory(),
        ))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let apps = fake.apps();
    let user = fake
        .population()
        .users
        .iter()
        .find(|u| u.unionid.is_some() && u.oa.subscribed)
        .unwrap()
        .clone();

    // The operator's rule.
    let post = |url: String, body: Value| {
        let http = http.clone();
        async move {
            let r = http
                .post(url)
                .header(PRINCIPAL_HEADER, credential(TENANT).1)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    let g = post(
        format!("{tagging}/v1/tag-groups"),
        json!({"name": "interest"}),
    )
    .await;
    let tag = post(
        format!("{tagging}/v1/tags"),
        json!({"group_id": g["id"], "name": "case-study reader"}),
    )
    .await;
    let rule = json!({"version": 1, "root": {"type": "and", "children": [
        {"type": "wechat", "state": "oa_subscribed"},
        {"type": "behaviour", "content_tag": "case_study", "count": {"op": "gte", "value": 2},
         "window": {"type": "last", "days": 30}}]}});
    let saved = post(
        format!("{tagging}/v1/tag-rules"),
        json!({"tag_id": tag["id"], "name": "reads case studies", "condition": rule}),
    )
    .await;
    assert_eq!(saved["rule"]["updated_by"], "user:test");

    // The customer: follows the OA, logs in, views two case studies. WeChat's user info (the
    // unionid that makes the follower and the mini-program user one person) comes only after
    // the views, as it may when WeChat is slow.
    fake.fail_next("/cgi-bin/user/info", -1, 1);
    let oa = fake.callbacks(&apps.oa);
    let r = fake
        .send_oa(
            &gw,
            &apps.oa,
            &oa.subscribe(&user.oa_openid),
            CallbackMode::Safe,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let login = post(
        format!("{gw}/mp/{}/session", apps.mp.appid),
        json!({"code": fake.issue_login_code(&user)}),
    )
    .await;
    let token = login["session_token"].as_str().unwrap().to_string();
    for (i, page) in ["/cases/retail", "/cases/finance"].iter().enumerate() {
        let r = http
            .post(format!("{gw}/track"))
            .bearer_auth(&token)
            .json(&json!({"events": [{"type": "page_view", "page": page, "event_id": format!("pv-{i}"),
                                      "ts": chrono::Utc::now().timestamp_millis(),
                                      "content": {"id": format!("case-{i}"), "tags": ["case_study"]}}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    // One profile for the person, carrying the tag.
    let deadline = Instant::now() + Duration::from_secs(30);
    let profile = loop {
        let r = http
            .get(format!("{identity}/v1/profiles/by-identifier"))
            .header(PRINCIPAL_HEADER, credential(TENANT).1)
            .query(&[
                ("tenant_id", TENANT),
                ("kind", "mp_openid"),
                ("namespace", apps.mp.appid.as_str()),
                ("value", user.mp_openid.as_str()),
            ])
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            let p: Value = r.json().await.unwrap();
            let id = p["id"].as_str().unwrap().to_string();
            let tags: Value = http
                .get(format!("{tagging}/v1/profiles/{id}/tags"))
                .header(PRINCIPAL_HEADER, credential(TENANT).1)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if tags["items"].as_array().is_some_and(|t| !t.is_empty()) {
                assert_eq!(tags["items"][0]["tag_id"], tag["id"]);
                assert_eq!(tags["items"][0]["source"], "rule");
                break id;
            }
        }
        assert!(Instant::now() < deadline, "the profile never got the tag");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("tag.changed on the bus")
        .unwrap();
    let c: TagChanged = d.envelope.decode().unwrap();
    d.ack().await.unwrap();
    assert_eq!(
        (c.profile_id.as_str(), c.change),
        (profile.as_str(), TagChange::Added)
    );
    assert_eq!(c.tag_id, tag["id"].as_str().unwrap());

    // Another tenant's credential: the profile and the tag do not exist for it.
    let other = credential(OTHER).1;
    let r = http
        .get(format!("{tagging}/v1/profiles/{profile}/tags"))
        .header(PRINCIPAL_HEADER, other.clone())
        .query(&[("tenant_id", TENANT)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .post(format!("{tagging}/v1/profiles/{profile}/tags"))
        .header(PRINCIPAL_HEADER, other.clone())
        .json(&json!({"tenant_id": TENANT, "tag_id": tag["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(format!("{tagging}/v1/tags/{}", tag["id"].as_str().unwrap()))
        .header(PRINCIPAL_HEADER, other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Every route of the tagging API with a plausible method, path and body.
fn routes() -> Vec<(Method, &'static str, Option<Value>)> {
    let cond = json!({"version": 1, "root": {"type": "wechat", "state": "oa_subscribed"}});
    vec![
        (Method::GET, "/v1/tag-groups", None),
        (Method::POST, "/v1/tag-groups", Some(json!({"name": "g"}))),
        (Method::GET, "/v1/tag-groups/g1", None),
        (
            Method::PATCH,
            "/v1/tag-groups/g1/wecom",
            Some(json!({"sync_wecom": false})),
        ),
        (Method::POST, "/v1/tag-groups/g1/wecom/push", None),
        (
            Method::POST,
            "/v1/tags",
            Some(json!({"group_id": "g1", "name": "t"})),
        ),
        (Method::GET, "/v1/tags/t1", None),
        (Method::PATCH, "/v1/tags/t1", Some(json!({"name": "t2"}))),
        (
            Method::POST,
            "/v1/tag-rules",
            Some(json!({"tag_id": "t1", "name": "r", "condition": cond.clone()})),
        ),
        (Method::GET, "/v1/tag-rules", None),
        (Method::GET, "/v1/tag-rules/r1", None),
        (
            Method::PUT,
            "/v1/tag-rules/r1",
            Some(json!({"name": "r", "condition": cond.clone()})),
        ),
        (Method::DELETE, "/v1/tag-rules/r1", None),
        (Method::POST, "/v1/tag-rules/r1/backfill", None),
        (
            Method::POST,
            "/v1/conditions/validate",
            Some(json!({"condition": cond.clone()})),
        ),
        (
            Method::POST,
            "/v1/segments/preview",
            Some(json!({"condition": cond.clone()})),
        ),
        (
            Method::POST,
            "/v1/segments/export",
            Some(json!({"condition": cond, "fields": ["contact.name"]})),
        ),
        (
            Method::POST,
            "/v1/analytics",
            Some(json!({"dimensions": [{"kind": "stage"}]})),
        ),
        (Method::GET, "/v1/personas", None),
        (
            Method::POST,
            "/v1/personas",
            Some(json!({"name": "p", "segment_id": "s1"})),
        ),
        (Method::GET, "/v1/personas/x1", None),
        (Method::PATCH, "/v1/personas/x1", Some(json!({"name": "q"}))),
        (Method::DELETE, "/v1/personas/x1", None),
        (Method::GET, "/v1/personas/x1/report", None),
        (
            Method::POST,
            "/v1/personas/x1/validate",
            Some(
                json!({"response": {"event": "track.form_submit", "from": "2026-11-01", "days": 7}}),
            ),
        ),
        (Method::GET, "/v1/jobs/j1", None),
        (Method::GET, "/v1/profiles/p1/tags", None),
        (
            Method::POST,
            "/v1/profiles/p1/tags",
            Some(json!({"tag_id": "t1"})),
        ),
        (Method::DELETE, "/v1/profiles/p1/tags/t1", None),
        (Method::GET, "/v1/wecom/wwNope/corp-tags", None),
        (Method::POST, "/v1/wecom/wwNope/corp-tags/sync", None),
        (
            Method::POST,
            "/v1/wecom/wwNope/corp-tag-groups/etG1/link",
            Some(json!({})),
        ),
        (Method::GET, "/v1/wecom/sync-queue", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_tagging_route_needs_the_gateways_credential() {
    let fake = FakeWechat::start(0, 34).unwrap();
    let (running, dir) = common::start_up(&fake, None).await;
    let tagging = running.url(Role::Tagging);
    let http = reqwest::Client::new();

    let (_, valid) = credential(TENANT);
    let (_, foreign_key) = test_support::auth::header_with(
        "a-different-deployment-key-0123456789abcdef",
        TENANT,
        "user:test",
        AuthRole::Owner,
    );
    // The other tenant's payload under this credential's MAC.
    let (_, other) = credential(OTHER);
    let payload = |c: &str| c.split('.').nth(1).unwrap().to_string();
    let mac = |c: &str| c.rsplit('.').next().unwrap().to_string();
    let tampered = format!("v1.{}.{}", payload(&other), mac(&valid));
    let expired = ServiceKey::derive(common::INTERNAL_KEY).sign(&Principal {
        expires: chrono::Utc::now().timestamp() - 1,
        ..Principal::new(TENANT, "user:test", AuthRole::Operator)
    });
    let refused: [(Option<&str>, &str); 5] = [
        (None, "unauthenticated"),
        (Some(&foreign_key), "invalid_credential"),
        (Some(&tampered), "invalid_credential"),
        (Some("v1.e30"), "malformed_credential"),
        (Some(&expired), "expired_credential"),
    ];
    let send = |method: Method, path: &str, body: &Option<Value>, c: Option<&str>| {
        let mut r = http
            .request(method, format!("{tagging}{path}"))
            .query(&[("tenant_id", TENANT)]);
        if let Some(c) = c {
            r = r.header(PRINCIPAL_HEADER, c);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        r.send()
    };
    let mut unknown = routes();
    unknown.push((Method::GET, "/v1/no-such-route", None));
    for (method, path, body) in &unknown {
        for (c, code) in &refused {
            let r = send(method.clone(), path, body, *c).await.unwrap();
            let status = r.status().as_u16();
            let e: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, e["code"].as_str()),
                (401, Some(*code)),
                "{method} {path} with {c:?}: {e}"
            );
        }
    }
    // With the credential each of them is a route of the service (never 401, never "no
    // route"): the list above is the API.
    for (method, path, body) in routes() {
        let r = send(method.clone(), path, &body, Some(&valid))
            .await
            .unwrap();
        let status = r.status().as_u16();
        let e: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 401, "{method} {path}: {e}");
        assert!(
            !e["message"].as_str().unwrap_or("").starts_with("no route"),
            "{method} {path}: {e}"
        );
    }
    // A corp the gateway's keeper does not know for the tenant is not the tenant's: 404.
    let r = send(
        Method::POST,
        "/v1/wecom/wwNope/corp-tags/sync",
        &None,
        Some(&valid),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 404, "{:?}", r.text().await);
    // Health, readiness and metrics stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = http.get(format!("{tagging}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
