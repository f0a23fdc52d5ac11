//! A tag rule working end to end in `scrm up` with the fake WeChat server: an operator builds
//! "follows the Official Account and viewed two case studies in 30 days" through the tagging API;
//! a customer follows the OA and, logged in to the mini-program, views two case-study pages; the
//! events cross the bus through identity-svc (which merges the OA follower and the mini-program
//! user by unionid) to tagging-svc, and the profile carries the tag and `tag.changed` is on the
//! bus.

mod common;

use std::time::{Duration, Instant};

use platform::bus::GroupSpec;
use proto::tagging::{TagChange, TagChanged};
use scrm::roles::Role;
use serde_json::{json, Value};
use wechat::fake::{CallbackMode, FakeWechat};

use common::TENANT;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_and_two_case_studies_tag_the_customer() {
    let fake = FakeWechat::start(0, 33).unwrap();
    let (running, dir) = common::start_up(&fake, None).await;
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
            let r = http.post(url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    let g = post(
        format!("{tagging}/v1/tag-groups"),
        json!({"tenant_id": TENANT, "name": "interest", "operator": "ops"}),
    )
    .await;
    let tag = post(
        format!("{tagging}/v1/tags"),
        json!({"tenant_id": TENANT, "group_id": g["id"], "name": "case-study reader", "operator": "ops"}),
    )
    .await;
    let rule = json!({"version": 1, "root": {"type": "and", "children": [
        {"type": "wechat", "state": "oa_subscribed"},
        {"type": "behaviour", "content_tag": "case_study", "count": {"op": "gte", "value": 2},
         "window": {"type": "last", "days": 30}}]}});
    post(
        format!("{tagging}/v1/tag-rules"),
        json!({"tenant_id": TENANT, "tag_id": tag["id"], "name": "reads case studies",
               "condition": rule, "operator": "ops"}),
    )
    .await;

    // The customer: follows the OA, logs in, views two case studies.
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
    let deadline = Instant::now() + Duration::from_secs(20);
    let profile = loop {
        let r = http
            .get(format!("{identity}/v1/profiles/by-identifier"))
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
                .query(&[("tenant_id", TENANT)])
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
    let c: TagChanged = d.envelope.payload_as().unwrap();
    d.ack().await.unwrap();
    assert_eq!(
        (c.profile_id.as_str(), c.change),
        (profile.as_str(), TagChange::Added)
    );
    assert_eq!(c.tag_id, tag["id"].as_str().unwrap());

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
