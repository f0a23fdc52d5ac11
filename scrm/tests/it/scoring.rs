//! Lead scoring end to end, in `scrm up` with the fake WeChat server. The scoring model, its
//! rules, the stage machine and a trigger are created through the scoring API (as the gateway
//! calls it: with the service credential naming the tenant and the actor); then a rep adds a
//! customer on WeCom, the customer follows the Official Account, logs in to the mini-program,
//! reads three articles and submits a form. identity-svc resolves every door to one profile;
//! scoring-svc scores it (follow 10, articles 3 × 10, form 30), moves it from `new` to `mql`
//! at 60 points and publishes `lead.stage_changed` and `lead.notify` for the rep; tagging hears
//! both and tags the lead by a rule on `score.engagement` and `lead.stage`. Another tenant's
//! credential finds none of it.
//!
//! The real server refuses every scoring route without a credential, with one signed under
//! another key, expired or malformed (401), and keeps health and metrics open.

use crate::common;

use std::time::{Duration, Instant};

use fake_wechat::{CallbackMode, FakeWechat};
use platform::bus::{GroupSpec, Subscription};
use platform::http::{Principal, ServiceKey, PRINCIPAL_HEADER};
use proto::auth::Role;
use scrm::up::Running;
use serde_json::{json, Value};

use crate::common::{INTERNAL_KEY, TENANT};

fn url(running: &Running, role: &str) -> String {
    format!("http://{}", running.addrs[role])
}

/// The credential of `tenant`'s operator `user:test` under the deployment's key.
fn operator(tenant: &str) -> (&'static str, String) {
    test_support::auth::header_with(INTERNAL_KEY, tenant, "user:test", Role::Operator)
}

/// A POST as [`TENANT`]'s operator; panics unless 2xx.
async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let (h, v) = operator(TENANT);
    let r = http
        .post(&url)
        .header(h, v)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert!((200..300).contains(&status), "{url}: {status} {v}");
    v
}

/// Polls identity until the profile holding the OA openid has `kinds`.
async fn profile_with(
    http: &reqwest::Client,
    identity: &str,
    oa_app: &str,
    openid: &str,
    kinds: &[&str],
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let (h, v) = operator(TENANT);
        // The credential names the tenant; a `tenant_id` is ignored once identity-svc takes it
        // from there.
        let r = http
            .get(format!("{identity}/v1/profiles/by-identifier"))
            .header(h, v)
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
            let have: Vec<&str> = last["identifiers"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i["kind"].as_str()).collect())
                .unwrap_or_default();
            if kinds.iter().all(|k| have.contains(k)) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("profile never had {kinds:?}; last seen: {last:#}");
}

/// Receives lead events until `done` accepts what was seen (or 20 s pass).
async fn lead_events(
    sub: &mut Subscription,
    done: impl Fn(&[proto::Envelope]) -> bool,
) -> Vec<proto::Envelope> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sub.recv()).await {
            Ok(Some(d)) => {
                seen.push(d.envelope.clone());
                d.ack().await.unwrap();
            }
            _ => panic!(
                "lead events never complete; seen: {:#?}",
                seen.iter()
                    .map(|e| (&e.kind, &e.payload))
                    .collect::<Vec<_>>()
            ),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follow_three_articles_and_a_form_make_an_mql() {
    let fake = FakeWechat::start(0, 31).unwrap();
    let (running, dir) = common::start_up(&fake, None).await;
    let spec = GroupSpec::new(
        "e2e-leads",
        &["lead.#"],
        &platform::config::BusConfig::memory(),
    );
    let mut sub = running.deps.bus.subscribe(&spec).await.unwrap();
    let (gw, identity, scoring) = (
        url(&running, "gateway"),
        url(&running, "identity"),
        url(&running, "scoring"),
    );
    let http = reqwest::Client::new();

    let (auth_name, auth) = operator(TENANT);

    // The model, its rules, the machine and a trigger, through the scoring API.
    let model = post(
        &http,
        format!("{scoring}/v1/models"),
        json!({"key": "engagement", "name": "Engagement", "decay": {"kind": "half_life", "days": 30}}),
    )
    .await;
    assert_eq!(
        (model["tenant_id"].as_str(), model["created_by"].as_str()),
        (Some(TENANT), Some("user:test")),
        "{model}"
    );
    let mid = model["id"].as_str().unwrap();
    for rule in [
        json!({"kind": "event", "name": "Follow", "event": "oa.subscribe", "points": 10, "caps": {"once": true}}),
        json!({"kind": "event", "name": "Article", "event": "track.page_view", "points": 10, "caps": {"per_day": 50},
               "filters": [{"key": "content.tags", "value_type": "string", "op": "eq", "value": "article"}]}),
        json!({"kind": "event", "name": "Form", "event": "track.form_submit", "points": 30}),
    ] {
        post(&http, format!("{scoring}/v1/models/{mid}/rules"), rule).await;
    }
    let machine: Value = http
        .get(format!("{scoring}/v1/stage-machine"))
        .header(auth_name, &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(machine["is_default"], true);
    let mut m = machine.clone();
    m["stages"][1]["entry"] = json!({"version": 1, "root": {"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte", "value": 60}});
    m["stages"][1]["sla"] = json!({"hours": 24, "met_by": ["wecom.message.text"]});
    // The machine as read, back (its `tenant_id` is ignored).
    m.as_object_mut().unwrap().remove("is_default");
    let r = http
        .put(format!("{scoring}/v1/stage-machine"))
        .header(auth_name, &auth)
        .json(&m)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    post(
        &http,
        format!("{scoring}/v1/triggers"),
        json!({"name": "New MQL",
        "on": {"type": "stage_entered", "stage": "mql"},
        "actions": [{"type": "notify", "message": "A new MQL: contact within 24 hours"}]}),
    )
    .await;

    // A tag rule on what scoring says of the lead, in tagging.
    let tagging = url(&running, "tagging");
    let group = post(
        &http,
        format!("{tagging}/v1/tag-groups"),
        json!({"name": "sales"}),
    )
    .await;
    let ready = post(
        &http,
        format!("{tagging}/v1/tags"),
        json!({"group_id": group["id"], "name": "engaged MQL"}),
    )
    .await;
    let on_lead = json!({"version": 1, "root": {"type": "and", "children": [
        {"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte", "value": 60},
        {"type": "property", "key": "lead.stage", "value_type": "string", "op": "eq", "value": "mql"}]}});
    post(
        &http,
        format!("{tagging}/v1/tag-rules"),
        json!({"tag_id": ready["id"], "name": "engaged MQL", "condition": on_lead.clone()}),
    )
    .await;

    // The person: a rep adds them, they follow the OA, log in to the mini-program.
    let apps = fake.apps();
    let user = fake
        .population()
        .users
        .iter()
        .find(|u| u.unionid.is_some() && !u.follows.is_empty() && u.oa.subscribed)
        .expect("a user with a unionid, a rep and an OA follow")
        .clone();
    let rep = user.follows[0].userid.clone();
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
    profile_with(
        &http,
        &identity,
        &apps.oa.appid,
        &user.oa_openid,
        &["oa_openid", "wecom_external_userid"],
    )
    .await;
    let login = post(
        &http,
        format!("{gw}/mp/{}/session", apps.mp.appid),
        json!({"code": fake.issue_login_code(&user)}),
    )
    .await;
    let token = login["session_token"].as_str().unwrap().to_string();
    let profile = profile_with(
        &http,
        &identity,
        &apps.oa.appid,
        &user.oa_openid,
        &["mp_openid", "oa_openid", "unionid", "wecom_external_userid"],
    )
    .await;
    let pid = profile["id"].as_str().unwrap().to_string();

    // Three articles and a form.
    let ts = chrono::Utc::now().timestamp_millis();
    let events: Vec<Value> = (0..3)
        .map(|i| json!({"type": "page_view", "page": format!("/articles/{i}"), "event_id": format!("art-{i}"), "ts": ts,
                        "content": {"id": format!("article-{i}"), "tags": ["article", "retail"]}}))
        .chain([json!({"type": "form_submit", "name": "demo_request", "event_id": "form-1", "ts": ts, "properties": {"company_size": "50-200"}})])
        .collect();
    let r = http
        .post(format!("{gw}/track"))
        .bearer_auth(&token)
        .json(&json!({"events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // lead.stage_changed to mql and lead.notify for the rep are published.
    let seen = lead_events(&mut sub, |seen| {
        seen.iter()
            .any(|e| e.kind == "lead.stage_changed" && e.payload["to"] == "mql")
            && seen.iter().any(|e| e.kind == "lead.notify")
            && seen.iter().any(|e| {
                e.kind == "lead.score_changed"
                    && e.payload["new"]
                        .as_f64()
                        .is_some_and(|v| (v - 70.0).abs() < 0.01)
            })
    })
    .await;
    let mql = seen
        .iter()
        .find(|e| e.kind == "lead.stage_changed" && e.payload["to"] == "mql")
        .unwrap();
    assert_eq!(mql.payload["profile_id"], json!(pid));
    assert_eq!(mql.payload["from"], "new");
    assert_eq!(mql.payload["actor_kind"], "rule");
    let notify = seen.iter().find(|e| e.kind == "lead.notify").unwrap();
    assert_eq!(
        notify.payload["owner"]["user_id"],
        json!(rep),
        "{:#}",
        notify.payload
    );
    assert_eq!(
        notify.payload["owner"]["external_userid"],
        json!(user.external_userid)
    );
    assert_eq!(
        notify.payload["reason"],
        json!({"kind": "stage_entered", "stage": "mql"})
    );
    // The follow is scored at once on the follower's own profile (WeChat's unionid comes beside
    // the event), and its points move in with the merge: five changes on the person's lead, and
    // the one of the follower's profile before it was merged.
    let (mine, others): (Vec<&proto::Envelope>, Vec<&proto::Envelope>) = seen
        .iter()
        .filter(|e| e.kind == "lead.score_changed")
        .partition(|e| e.payload["profile_id"] == json!(pid));
    assert_eq!(
        mine.len(),
        5,
        "the follow, three articles, the form: {mine:#?}"
    );
    assert_eq!(others.len(), 1, "{others:#?}");
    // Ten points, decayed (30-day half-life) over the moment between the follow and its scoring.
    let new = others[0].payload["new"].as_f64().unwrap_or_default();
    assert!((new - 10.0).abs() < 1e-3, "{others:#?}");
    // With the fold that says how it decays from then on: all of it, halving every 30 days.
    let fold = &others[0].payload["fold"];
    assert_eq!(fold["half_life_days"], 30.0, "{fold}");
    assert_eq!(fold["held"], 0.0, "{fold}");
    assert!((fold["decaying"].as_f64().unwrap_or_default() - new).abs() < 1e-9);

    // Tagging heard scoring: the lead carries the tag, and a preview of the same condition
    // counts it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tags: Value = http
            .get(format!("{tagging}/v1/profiles/{pid}/tags"))
            .header(auth_name, &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = tags["items"].as_array().cloned().unwrap_or_default();
        if items.iter().any(|t| t["tag_id"] == ready["id"]) {
            break;
        }
        assert!(Instant::now() < deadline, "never tagged: {tags:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let preview = post(
        &http,
        format!("{tagging}/v1/segments/preview"),
        json!({"condition": on_lead, "sample": 5}),
    )
    .await;
    assert_eq!(preview["count"], 1, "{preview:#}");
    assert_eq!(
        preview["sample"][0]["profile_id"],
        json!(pid),
        "{preview:#}"
    );

    // The lead as the console sees it.
    let lead: Value = http
        .get(format!("{scoring}/v1/profiles/{pid}/scores"))
        .header(auth_name, &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lead["stage"], "mql", "{lead:#}");
    assert!(
        (lead["scores"][0]["score"].as_f64().unwrap() - 70.0).abs() < 0.01,
        "{lead:#}"
    );
    let ledger: Value = http
        .get(format!("{scoring}/v1/profiles/{pid}/ledger"))
        .header(auth_name, &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut rules: Vec<&str> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        vec!["Article", "Article", "Article", "Follow", "Form"]
    );
    let history: Value = http
        .get(format!("{scoring}/v1/profiles/{pid}/stage-history"))
        .header(auth_name, &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tos: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(tos.last(), Some(&"mql"));
    // The rep, as the gateway names them, may not move the lead back.
    let (st, refusal) = {
        let (h, v) = test_support::auth::header_with(
            INTERNAL_KEY,
            TENANT,
            &format!("rep:{}:{rep}", apps.wecom.appid),
            Role::Rep,
        );
        let r = http
            .post(format!("{scoring}/v1/profiles/{pid}/stage"))
            .header(h, v)
            .json(&json!({"stage": "new", "reason": "try"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (st, refusal["code"].as_str()),
        (409, Some("transition_not_allowed"))
    );

    // Another tenant's credential finds none of it.
    let (other_name, other) = operator("t-e2e-other");
    for path in [
        format!("/v1/models/{mid}"),
        format!("/v1/profiles/{pid}/scores"),
        format!("/v1/profiles/{pid}/ledger"),
    ] {
        let r = http
            .get(format!("{scoring}{path}?tenant_id={TENANT}"))
            .header(other_name, &other)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    let models: Value = http
        .get(format!("{scoring}/v1/models"))
        .header(other_name, &other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["items"], json!([]), "{models}");
    let r = http
        .post(format!("{scoring}/v1/profiles/{pid}/adjustments"))
        .header(other_name, &other)
        .json(&json!({"tenant_id": TENANT, "model": "engagement", "delta": 5, "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "the other tenant has no model `engagement`"
    );

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Every route of the scoring API with a plausible method and path.
const SCORING_ROUTES: &[(&str, &str)] = scrm_tests::scoring::API_ROUTES;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scoring_api_refuses_requests_without_a_valid_credential() {
    let fake = FakeWechat::start(0, 32).unwrap();
    let (running, dir) = common::start_up(&fake, None).await;
    let scoring = url(&running, "scoring");
    let http = reqwest::Client::new();

    // A tenant's model exists, so a refusal is not a 404 in disguise.
    let (auth_name, auth) = operator(TENANT);
    let r = http
        .post(format!("{scoring}/v1/models"))
        .header(auth_name, &auth)
        .json(&json!({"key": "engagement", "name": "Engagement"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let forged = test_support::auth::header_with(
        "another-internal-key-0123456789abcdef",
        TENANT,
        "user:test",
        Role::Owner,
    )
    .1;
    let key = ServiceKey::derive(INTERNAL_KEY);
    let expired = key.sign(&Principal {
        tenant: TENANT.into(),
        actor: "user:test".into(),
        role: Role::Owner,
        expires: chrono::Utc::now().timestamp() - 5,
    });
    // The right signature moved onto another tenant's payload.
    let swapped = {
        let good = key.sign(&Principal::new(TENANT, "user:test", Role::Owner));
        let other = key.sign(&Principal::new("t-e2e-other", "user:test", Role::Owner));
        let (_, mac) = good.rsplit_once('.').unwrap();
        let (payload, _) = other.rsplit_once('.').unwrap();
        format!("{payload}.{mac}")
    };
    let cases: [(Option<&str>, &str); 5] = [
        (None, "unauthenticated"),
        (Some(&forged), "invalid_credential"),
        (Some(&swapped), "invalid_credential"),
        (Some(&expired), "expired_credential"),
        (Some("not-a-credential"), "malformed_credential"),
    ];
    for (method, path) in SCORING_ROUTES {
        for (credential, code) in &cases {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            // A caller naming the tenant and the actor itself gets nowhere either.
            let mut r = http
                .request(m, format!("{scoring}{path}?tenant_id={TENANT}"))
                .json(&json!({"tenant_id": TENANT, "operator": "ops", "actor": "ops"}));
            if let Some(c) = credential {
                r = r.header(PRINCIPAL_HEADER, *c);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, body["code"].as_str()),
                (401, Some(*code)),
                "{method} {path} with {credential:?}: {body}"
            );
        }
    }

    // The same deployment's credential is accepted; health and metrics stay open.
    let r = http
        .get(format!("{scoring}/v1/models"))
        .header(auth_name, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["items"][0]["key"], "engagement", "{v}");
    for open in ["/healthz", "/metrics"] {
        let r = http.get(format!("{scoring}{open}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{open}");
    }

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
