//! WeChat lookups are off the event path, in `scrm up`: with WeChat unreachable, an Official
//! Account follow's profile is readable within a second (on what the callback carries); once
//! WeChat answers again, the lookup beside it adds the unionid and the profile merges with the
//! person's mini-program profile.
//!
//! Two fake WeChat servers of the same seed hold the same apps and people: one is the WeChat the
//! deployment calls (stopped, then started again on its port), the other only signs and posts
//! the callbacks.

use crate::common;

use std::time::{Duration, Instant};

use fake_wechat::{CallbackMode, FakeWechat};
use proto::auth::Role;
use scrm::up::Running;
use serde_json::{json, Value};

use crate::common::{INTERNAL_KEY, TENANT};

const SEED: u64 = 33;

fn url(running: &Running, role: &str) -> String {
    format!("http://{}", running.addrs[role])
}

/// The identity API's answer for the profile holding `openid` of the OA `app`, if any.
async fn by_openid(
    http: &reqwest::Client,
    identity: &str,
    app: &str,
    openid: &str,
) -> Option<Value> {
    let (name, value) =
        test_support::auth::header_with(INTERNAL_KEY, TENANT, "user:test", Role::Operator);
    let r = http
        .get(format!("{identity}/v1/profiles/by-identifier"))
        .header(name, value)
        .query(&[("kind", "oa_openid"), ("namespace", app), ("value", openid)])
        .send()
        .await
        .unwrap();
    if r.status().is_success() {
        Some(r.json().await.unwrap())
    } else {
        assert_eq!(r.status().as_u16(), 404);
        None
    }
}

fn kinds(p: &Value) -> Vec<String> {
    let mut k: Vec<String> = p["identifiers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["kind"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_resolves_at_once_while_wechat_is_down_and_merges_once_it_answers() {
    let wechat = FakeWechat::start(0, SEED).unwrap();
    let port = wechat.addr.port();
    let sender = FakeWechat::start(0, SEED).unwrap();
    // Lookups that fail are retried every 300 ms for a while before being parked.
    let extra = json!({"identity": {"wechat": {"retry_delays_ms": [300], "max_attempts": 100}}});
    let (running, dir) = common::start_up(&wechat, Some(extra)).await;
    let gw = url(&running, "gateway");
    let identity = url(&running, "identity");
    let apps = wechat.apps().clone();
    let user = wechat
        .population()
        .users
        .iter()
        .find(|u| u.unionid.is_some() && u.oa.subscribed)
        .expect("a user with a unionid and an OA follow")
        .clone();
    let http = reqwest::Client::new();

    // The person's mini-program profile, with the unionid WeChat gave at login.
    let code = wechat.issue_login_code(&user);
    let r = http
        .post(format!("{gw}/mp/{}/session", apps.mp.appid))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // WeChat goes away; the person follows the Official Account.
    wechat.stop().await;
    let xml = sender.callbacks(&apps.oa).subscribe(&user.oa_openid);
    let r = sender
        .send_oa(&gw, &apps.oa, &xml, CallbackMode::Safe)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let accepted = Instant::now();
    let profile = loop {
        if let Some(p) = by_openid(&http, &identity, &apps.oa.appid, &user.oa_openid).await {
            break p;
        }
        assert!(
            accepted.elapsed() < Duration::from_secs(10),
            "the follow never resolved"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let readable_after = accepted.elapsed();
    assert!(
        readable_after < Duration::from_secs(1),
        "the profile was readable only after {readable_after:?}"
    );
    assert_eq!(kinds(&profile), ["oa_openid"], "{profile:#}");
    assert_eq!(
        profile["relations"]["oa_subscriptions"][0]["app_id"],
        json!(apps.oa.appid)
    );

    // WeChat is back on its address: the lookup's retry finds the unionid and the two profiles
    // become one.
    let wechat = FakeWechat::start(port, SEED).expect("the fake WeChat starts again on its port");
    let deadline = Instant::now() + Duration::from_secs(30);
    let merged = loop {
        let p = by_openid(&http, &identity, &apps.oa.appid, &user.oa_openid)
            .await
            .expect("the profile stays");
        if kinds(&p) == ["mp_openid", "oa_openid", "unionid"] {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the unionid never arrived: {p:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let unionid = merged["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "unionid")
        .unwrap()["value"]
        .clone();
    assert_eq!(unionid, json!(user.unionid));
    assert!(wechat.calls("/cgi-bin/user/info") >= 1);

    running.stop().await.unwrap();
    wechat.stop().await;
    sender.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
