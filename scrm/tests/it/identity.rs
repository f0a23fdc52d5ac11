//! One person through every door, in `scrm up` with the fake WeChat server: they follow the
//! Official Account, log in to the mini-program and are added by a WeCom rep. The OA and WeCom
//! callbacks carry no unionid; identity-svc asks WeChat (through the gateway's token keeper) and
//! merges the three into one profile, with WeCom's name, gender and the rep's follow details.
//! The identity API of the real server serves only requests carrying the gateway's service
//! credential (every route: 401 without one, with a forged or expired one), scoped to its tenant.

use crate::common;

use std::time::{Duration, Instant};

use fake_wechat::{CallbackMode, FakeWechat};
use platform::http::{Principal, ServiceKey, PRINCIPAL_HEADER};
use proto::auth::Role;
use scrm::up::Running;
use serde_json::{json, Value};

use crate::common::{INTERNAL_KEY, TENANT};

fn url(running: &Running, role: &str) -> String {
    format!("http://{}", running.addrs[role])
}

/// The credential the gateway of this deployment sends for an operator of `tenant`.
fn credential(tenant: &str) -> (&'static str, String) {
    test_support::auth::header_with(INTERNAL_KEY, tenant, "user:test", Role::Operator)
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
            .header(credential(TENANT).0, credential(TENANT).1)
            .query(&[
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
    let (name, value) = credential(TENANT);
    let merges: Value = http
        .get(format!(
            "{identity}/v1/profiles/{}/merges",
            p["id"].as_str().unwrap()
        ))
        .header(name, value)
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
    // Through a credential of another tenant the profile does not exist.
    let (name, value) = credential("t-other");
    for uri in [
        format!("{identity}/v1/profiles/{}", p["id"].as_str().unwrap()),
        format!(
            "{identity}/v1/profiles/by-identifier?kind=oa_openid&namespace={}&value={}&tenant_id={TENANT}",
            apps.oa.appid, user.oa_openid
        ),
    ] {
        let r = http.get(&uri).header(name, &value).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{uri}");
    }

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Every route of the identity API, with a plausible path and body.
fn identity_routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        (
            "GET",
            "/v1/profiles/00000000-0000-7000-8000-000000000000",
            None,
        ),
        (
            "GET",
            "/v1/profiles/by-identifier?kind=phone&value=13912345678",
            None,
        ),
        ("GET", "/v1/profiles/search?phone=13912345678", None),
        ("GET", "/v1/profiles/p1/timeline?limit=10", None),
        ("GET", "/v1/profiles/p1/merges", None),
        ("GET", "/v1/profiles/p1/edges", None),
        (
            "PATCH",
            "/v1/profiles/p1/fields",
            Some(json!({"fields": {"contact.city": "Hangzhou"}})),
        ),
        (
            "POST",
            "/v1/profiles/p1/binding-token",
            Some(json!({"ttl_days": 7})),
        ),
        (
            "POST",
            "/v1/profiles/merge",
            Some(json!({"survivor": "p1", "absorbed": "p2", "reason": "same person"})),
        ),
        (
            "POST",
            "/v1/merges/1/unmerge",
            Some(json!({"reason": "not the same person"})),
        ),
        (
            "POST",
            "/v1/profiles/p1/split",
            Some(
                json!({"identifier": {"kind": "phone", "value": "13912345678"},
                        "reason": "shared phone"}),
            ),
        ),
        ("GET", "/v1/merge-refusals?limit=5", None),
        ("GET", "/v1/data-quality?profile_id=p1", None),
        ("GET", "/v1/reps/rep1/customers?corp_id=ww1", None),
        ("GET", "/v1/custom-fields", None),
        (
            "PUT",
            "/v1/custom-fields/vip",
            Some(json!({"value_type": "bool", "label": "VIP"})),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_identity_api_serves_only_the_gateways_credential() {
    let fake = FakeWechat::start(0, 22).unwrap();
    let (running, dir) = common::start_up(&fake, None).await;
    let identity = url(&running, "identity");
    let http = reqwest::Client::new();

    let key = ServiceKey::derive(INTERNAL_KEY);
    let expired = key.sign(&Principal {
        expires: chrono::Utc::now().timestamp() - 1,
        ..Principal::new(TENANT, "user:test", Role::Operator)
    });
    let (_, genuine) = credential(TENANT);
    let (_, other_tenant) = credential("t-other");
    // Another tenant in the payload of a genuine credential: the signature no longer matches.
    let forged = format!(
        "{}.{}",
        other_tenant.rsplit_once('.').unwrap().0,
        genuine.rsplit_once('.').unwrap().1
    );
    let refused: Vec<(Option<String>, &str)> = vec![
        (None, "unauthenticated"),
        (
            Some(
                test_support::auth::header_with(
                    "another-deployment-key-0123456789abcdef",
                    TENANT,
                    "user:test",
                    Role::Owner,
                )
                .1,
            ),
            "invalid_credential",
        ),
        (Some(forged), "invalid_credential"),
        (Some(expired), "expired_credential"),
        (Some("not-a-credential".into()), "malformed_credential"),
    ];
    let send = |method: &str, path: &str, body: &Option<Value>, header: Option<&str>| {
        let mut req = http.request(method.parse().unwrap(), format!("{identity}{path}"));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(h) = header {
            req = req.header(PRINCIPAL_HEADER, h);
        }
        req.send()
    };
    for (method, path, body) in identity_routes() {
        for (header, code) in &refused {
            let r = send(method, path, &body, header.as_deref()).await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} ({code})");
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["code"], *code, "{method} {path}: {b}");
        }
        // With the gateway's credential the route is served: not refused, and a route it is.
        let r = send(method, path, &body, Some(&credential(TENANT).1))
            .await
            .unwrap();
        let status = r.status().as_u16();
        let b: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            status != 401 && status != 405,
            "{method} {path}: {status} {b}"
        );
        assert!(
            !b["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("no route"),
            "{method} {path}: {b}"
        );
    }
    // Health, readiness and metrics stay open.
    for path in ["/healthz", "/metrics"] {
        let r = http.get(format!("{identity}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
