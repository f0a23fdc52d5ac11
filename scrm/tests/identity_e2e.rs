//! One person through every door, in `scrm up` with the fake WeChat server: they follow the
//! Official Account, log in to the mini-program and are added by a WeCom rep. The OA and WeCom
//! callbacks carry no unionid; identity-svc asks WeChat (through the gateway's token keeper) and
//! merges the three into one profile, with WeCom's name, gender and the rep's follow details.

mod common;

use std::time::{Duration, Instant};

use scrm::up::Running;
use serde_json::{json, Value};
use wechat::fake::{CallbackMode, FakeWechat};

use common::TENANT;

fn url(running: &Running, role: &str) -> String {
    format!("http://{}", running.addrs[role])
}

/// Polls the identity API until `check` accepts the profile holding the OA openid.
async fn profile_until(
    http: &reqwest::Client,
    identity: &str,
    oa_app: &str,
    openid: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let r = http
            .get(format!("{identity}/v1/profiles/by-identifier"))
            .query(&[
                ("tenant_id", TENANT),
                ("kind", "oa_openid"),
                ("namespace", oa_app),
                ("value", openid),
            ])
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            last = r.json().await.unwrap();
            if check(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("profile never satisfied the check; last seen: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_person_through_oa_mini_program_and_wecom_is_one_profile() {
    let fake = FakeWechat::start(0, 21).unwrap();
    let (running, dir) = common::start_up(&fake, None).await;
    let gw = url(&running, "gateway");
    let identity = url(&running, "identity");
    let apps = fake.apps();
    let user = fake
        .population()
        .users
        .iter()
        .find(|u| u.unionid.is_some() && !u.follows.is_empty() && u.oa.subscribed)
        .expect("a user with a unionid, a rep and an OA follow")
        .clone();
    let rep = user.follows[0].userid.clone();
    let http = reqwest::Client::new();

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
    assert_eq!(r.status, 200, "{}", r.body);
    let code = fake.issue_login_code(&user);
    let r = http
        .post(format!("{gw}/mp/{}/session", apps.mp.appid))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let wecom = fake.callbacks(&apps.wecom);
    let r = fake
        .send_wecom(
            &gw,
            &apps.wecom,
            &wecom.add_external_contact(&rep, &user.external_userid, Some("expo")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    let kinds = |p: &Value| -> Vec<String> {
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
    };
    let p = profile_until(&http, &identity, &apps.oa.appid, &user.oa_openid, |p| {
        kinds(p) == ["mp_openid", "oa_openid", "unionid", "wecom_external_userid"]
            && p["relations"]["wecom_follows"][0]["remark"].is_string()
    })
    .await;
    let unionid = p["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "unionid")
        .unwrap()["value"]
        .clone();
    assert_eq!(unionid, json!(user.unionid));
    assert_eq!(p["fields"]["contact.name"], json!(user.name));
    let follow = &p["relations"]["wecom_follows"][0];
    assert_eq!(follow["user_id"], json!(rep));
    assert_eq!(follow["external_userid"], json!(user.external_userid));
    assert_eq!(follow["remark"], json!(user.follows[0].remark));
    assert_eq!(
        p["relations"]["reachable"],
        json!({"oa": true, "wecom": true})
    );
    assert_eq!(
        p["relations"]["oa_subscriptions"][0]["app_id"],
        json!(apps.oa.appid)
    );
    // Only one profile is active for the person: the other two were merged into it.
    let merges: Value = http
        .get(format!(
            "{identity}/v1/profiles/{}/merges",
            p["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules: Vec<&str> = merges["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rule"].as_str().unwrap())
        .collect();
    assert!(rules.iter().all(|r| *r == "unionid"), "{rules:?}");
    assert!(fake.calls("/cgi-bin/user/info") >= 1);
    assert!(fake.calls("/cgi-bin/externalcontact/get") >= 1);

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
