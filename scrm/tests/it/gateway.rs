//! The gateway end to end, in one process with the fake WeChat server: every OA, WeCom and
//! mini-program callback reaches the bus as its typed event exactly once (even sent three times),
//! forged or malformed callbacks are refused with a reason, mini-program login / phone / tracking
//! publish identity and behaviour events, and with RabbitMQ unreachable callbacks get a non-200
//! answer — nothing answered 200 is missing from the queue.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use fake_wechat::{CallbackMode, FakeHandle, FakeWechat};
use platform::bus::{Bus, Delivery, GroupSpec, Subscription};
use proto::callback::CallbackReceived;
use scrm::up::Running;
use serde_json::{json, Value};
use test_support::proxy::TcpProxy;
use test_support::servers::{amqp_url, unique};

use crate::common;

use crate::common::{TENANT, WRITE_KEY};

async fn start(fake: &FakeHandle, bus: Option<Value>) -> (Running, std::path::PathBuf) {
    common::start_up(fake, bus.map(|bus| json!({ "bus": bus }))).await
}

fn observer_spec() -> GroupSpec {
    GroupSpec::new(
        "e2e-observer",
        &["channel.#"],
        &platform::config::BusConfig::memory(),
    )
}

/// Subscribes as a consumer group of its own bound to every channel event (identity-svc, running
/// in the same process, consumes its own copy).
async fn observe(running: &Running) -> Subscription {
    running.deps.bus.subscribe(&observer_spec()).await.unwrap()
}

async fn next(sub: &mut Subscription, within: Duration) -> Option<Delivery> {
    tokio::time::timeout(within, sub.recv())
        .await
        .ok()
        .flatten()
}

/// Receives until nothing more arrives for `quiet`; acks all.
async fn drain(sub: &mut Subscription, quiet: Duration) -> Vec<proto::Envelope> {
    let mut out = Vec::new();
    while let Some(d) = next(sub, quiet).await {
        out.push(d.envelope.clone());
        d.ack().await.unwrap();
    }
    out
}

fn gateway(running: &Running) -> String {
    running.url(scrm::roles::Role::Gateway)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_callback_reaches_the_bus_exactly_once() {
    let fake = FakeWechat::start(0, 11).unwrap();
    let (running, dir) = start(&fake, None).await;
    let mut sub = observe(&running).await;
    let gw = gateway(&running);
    let apps = fake.apps();
    let user = fake.population().typical_user().unwrap().clone();
    let rep = user.follows[0].userid.clone();
    let (oa, mp, wecom) = (
        fake.callbacks(&apps.oa),
        fake.callbacks(&apps.mp),
        fake.callbacks(&apps.wecom),
    );

    // (what is sent, how, the routing key expected)
    let oa_msgs = [
        (
            oa.subscribe_with_scene(&user.oa_openid, "spring_campaign"),
            CallbackMode::Safe,
            "channel.oa.subscribe",
        ),
        (
            oa.text(&user.oa_openid, "你好，想了解产品价格"),
            CallbackMode::Compatible,
            "channel.oa.message.text",
        ),
        (
            oa.click(&user.oa_openid, "MENU_CASES"),
            CallbackMode::Plaintext,
            "channel.oa.click",
        ),
        (
            oa.scan(&user.oa_openid, "booth_7"),
            CallbackMode::Safe,
            "channel.oa.scan",
        ),
    ];
    let mp_msgs = [
        (
            mp.text_json(&user.mp_openid, "客服你好"),
            CallbackMode::Safe,
            "channel.mp.message.text",
        ),
        (
            mp.user_enter_tempsession(&user.mp_openid, "product_page"),
            CallbackMode::Safe,
            "channel.mp.user_enter_tempsession",
        ),
    ];
    let wecom_msgs = [
        (
            wecom.add_external_contact(&rep, &user.external_userid, Some("qr_expo")),
            "channel.wecom.external_contact.add_external_contact",
        ),
        (
            wecom.external_chat_create("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"),
            "channel.wecom.external_chat.create",
        ),
    ];
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for _attempt in 0..3 {
        for (xml, mode, _) in &oa_msgs {
            let r = fake.send_oa(&gw, &apps.oa, xml, *mode).await.unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, "success"), "{xml}");
        }
        for (body, mode, _) in &mp_msgs {
            let r = fake.send_mp(&gw, &apps.mp, body, *mode).await.unwrap();
            assert_eq!(r.status, 200, "{body}: {}", r.body);
        }
        for (xml, _) in &wecom_msgs {
            let r = fake.send_wecom(&gw, &apps.wecom, xml).await.unwrap();
            assert_eq!(r.status, 200, "{xml}: {}", r.body);
        }
    }
    for (_, _, t) in &oa_msgs {
        *expected.entry(t.to_string()).or_default() += 1;
    }
    for (_, _, t) in &mp_msgs {
        *expected.entry(t.to_string()).or_default() += 1;
    }
    for (_, t) in &wecom_msgs {
        *expected.entry(t.to_string()).or_default() += 1;
    }

    let got = drain(&mut sub, Duration::from_millis(700)).await;
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for e in &got {
        *by_type.entry(e.kind.clone()).or_default() += 1;
        assert_eq!(e.tenant_id, TENANT);
        let cb: CallbackReceived = e.payload_as().expect("typed callback payload");
        assert_eq!(cb.event.event_type(), e.kind);
    }
    assert_eq!(
        by_type, expected,
        "each callback once, each as its typed event"
    );
    let ids: HashSet<_> = got.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), got.len());

    // The subscribe carries the scene without the qrscene_ prefix and the app it came through.
    let sub_evt = got
        .iter()
        .find(|e| e.kind == "channel.oa.subscribe")
        .unwrap();
    let payload = serde_json::to_string(&sub_evt.payload).unwrap();
    assert!(
        payload.contains("spring_campaign") && !payload.contains("qrscene_"),
        "{payload}"
    );
    assert!(payload.contains(&apps.oa.appid), "{payload}");

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_callbacks_are_refused_with_a_reason() {
    let fake = FakeWechat::start(0, 12).unwrap();
    let (running, dir) = start(&fake, None).await;
    let mut sub = observe(&running).await;
    let gw = gateway(&running);
    let apps = fake.apps();
    let user = fake.population().typical_user().unwrap().clone();
    let http = reqwest::Client::new();
    let xml = fake.callbacks(&apps.oa).subscribe(&user.oa_openid);

    // A good safe-mode callback, then variations of it.
    let good = fake_wechat::prepare_oa(&gw, &apps.oa, &xml, CallbackMode::Safe).unwrap();
    let post = |query: Vec<(String, String)>, body: String, url: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(url)
                .query(&query)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let with = |name: &str, value: &str| {
        let mut q = good.query.clone();
        for (k, v) in q.iter_mut() {
            if k == name {
                *v = value.to_string();
            }
        }
        q
    };

    let (s, b) = post(
        with("msg_signature", "0000"),
        good.body.clone(),
        good.url.clone(),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("bad_signature")), "{b}");
    let (s, b) = post(
        with("signature", "0000"),
        good.body.clone(),
        good.url.clone(),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("bad_signature")), "{b}");
    let (s, b) = post(
        with("timestamp", "1409735669"),
        good.body.clone(),
        good.url.clone(),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (403, Some("stale_timestamp")),
        "{b}"
    );

    // Tampered ciphertext with a valid signature over it: 400 with the decrypt reason, never 500.
    let encrypt = good
        .body
        .split("<Encrypt><![CDATA[")
        .nth(1)
        .unwrap()
        .split("]]>")
        .next()
        .unwrap()
        .to_string();
    let mut bytes: Vec<char> = encrypt.chars().collect();
    bytes[30] = if bytes[30] == 'A' { 'B' } else { 'A' };
    let tampered: String = bytes.into_iter().collect();
    let ts = good.param("timestamp").unwrap().to_string();
    let nonce = good.param("nonce").unwrap().to_string();
    let sig = apps.oa.crypto().msg_signature(&ts, &nonce, &tampered);
    let (s, b) = post(
        with("msg_signature", &sig),
        good.body.replace(&encrypt, &tampered),
        good.url.clone(),
    )
    .await;
    assert!(s == 400 || s == 403, "{s} {b}");
    assert!(b["code"].is_string() && b["message"].is_string(), "{b}");

    // Encrypted for another app (the mini-program), signed with the OA token: receive-id check.
    let other = wechat::crypto::MsgCrypto::new(
        apps.oa.token.clone(),
        &apps.oa.encoding_aes_key,
        apps.mp.appid.clone(),
    )
    .unwrap();
    let foreign = other.encrypt(&xml, None).unwrap();
    let sig = other.msg_signature(&ts, &nonce, &foreign);
    let (s, b) = post(
        with("msg_signature", &sig),
        good.body.replace(&encrypt, &foreign),
        good.url.clone(),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (403, Some("receive_id_mismatch")),
        "{b}"
    );

    // XXE attempt in plaintext mode.
    let plain = fake_wechat::prepare_oa(&gw, &apps.oa, &xml, CallbackMode::Plaintext).unwrap();
    let xxe = format!(
        "<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
        plain
            .body
            .replacen("<xml>", "<xml><Content>&x;</Content>", 1)
    );
    let (s, b) = post(plain.query.clone(), xxe, plain.url.clone()).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("malformed_body")),
        "{b}"
    );
    let (s, b) = post(
        plain.query.clone(),
        "<xml><ToUserName>x</ToUserName>".into(),
        plain.url.clone(),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("malformed_body")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().len() > 10, "a reason: {b}");

    // Unknown app; body over the limit.
    let (s, b) = post(
        plain.query.clone(),
        plain.body.clone(),
        format!("{gw}/wechat/oa/wxnotregistered"),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("unknown_app")), "{b}");
    let huge = format!("<xml>{}</xml>", "a".repeat(600 * 1024));
    let r = http
        .post(&plain.url)
        .query(&plain.query)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    // None of it reached the bus.
    assert!(drain(&mut sub, Duration::from_millis(300)).await.is_empty());

    // URL verification: OA echoes, WeCom decrypts.
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = wechat::signature::signature(&apps.oa.token, &ts, "n1");
    let r = http
        .get(format!("{gw}/wechat/oa/{}", apps.oa.appid))
        .query(&[
            ("signature", sig.as_str()),
            ("timestamp", &ts),
            ("nonce", "n1"),
            ("echostr", "8812345"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "8812345".to_string())
    );
    let echo = apps
        .wecom
        .crypto()
        .encrypt("1616140317555161061", None)
        .unwrap();
    let msig = apps.wecom.crypto().msg_signature(&ts, "n2", &echo);
    let r = http
        .get(format!("{gw}/wechat/wecom/{}", apps.wecom.appid))
        .query(&[
            ("msg_signature", msig.as_str()),
            ("timestamp", &ts),
            ("nonce", "n2"),
            ("echostr", &echo),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "1616140317555161061".to_string())
    );

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mini_program_login_phone_and_tracking() {
    let fake = FakeWechat::start(0, 13).unwrap();
    let (running, dir) = start(&fake, None).await;
    let mut sub = observe(&running).await;
    let gw = gateway(&running);
    let apps = fake.apps();
    let user = fake
        .population()
        .users
        .iter()
        .find(|u| u.unionid.is_some())
        .unwrap()
        .clone();
    let http = reqwest::Client::new();
    let mp = &apps.mp.appid;

    // Login.
    let code = fake.issue_login_code(&user);
    let r = http
        .post(format!("{gw}/mp/{mp}/session"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let login: Value = r.json().await.unwrap();
    assert_eq!(login["openid"], json!(user.mp_openid));
    assert!(
        login.get("session_key").is_none(),
        "the session key stays on the server"
    );
    let token = login["session_token"].as_str().unwrap().to_string();
    let e = next(&mut sub, Duration::from_secs(3))
        .await
        .expect("session event");
    assert_eq!(e.envelope.kind, "channel.mp.session");
    let s: proto::sdk::MpSessionStarted = e.envelope.decode().unwrap();
    assert_eq!(
        (s.openid.as_str(), s.unionid.as_deref()),
        (user.mp_openid.as_str(), user.unionid.as_deref())
    );
    e.ack().await.unwrap();

    // The code is single-use.
    let r = http
        .post(format!("{gw}/mp/{mp}/session"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_code");

    // Phone.
    let pcode = fake.issue_phone_code(&user);
    let r = http
        .post(format!("{gw}/mp/{mp}/phone"))
        .json(&json!({"code": pcode}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "needs the session token");
    let r = http
        .post(format!("{gw}/mp/{mp}/phone"))
        .bearer_auth(&token)
        .json(&json!({"code": pcode}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        !body.to_string().contains(&user.phone),
        "masked in answers: {body}"
    );
    let e = next(&mut sub, Duration::from_secs(3))
        .await
        .expect("phone event");
    assert_eq!(e.envelope.kind, "channel.mp.phone");
    let p: proto::sdk::MpPhoneVerified = e.envelope.decode().unwrap();
    assert_eq!(p.phone_e164, format!("+86{}", user.phone));
    assert_eq!(p.openid, user.mp_openid);
    e.ack().await.unwrap();

    // Tracking with the session token: one bad event among three.
    let ts = chrono::Utc::now().timestamp_millis();
    let batch = json!({"events": [
        {"type": "page_view", "page": "/cases/retail", "event_id": "ev-1", "ts": ts, "content": {"id": "case-42", "tags": ["retail"]}},
        {"type": "teleport"},
        {"type": "form_submit", "name": "demo_request", "properties": {"company_size": "50-200"}},
    ]});
    let r = http
        .post(format!("{gw}/track"))
        .bearer_auth(&token)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert!(body["rejected"][0]["message"]
        .as_str()
        .unwrap()
        .contains("events[1].type"));
    let got = drain(&mut sub, Duration::from_millis(500)).await;
    let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["channel.track.page_view", "channel.track.form_submit"]
    );
    let t: proto::sdk::Tracked = got[0].payload_as().unwrap();
    assert_eq!(t.subject.openid.as_deref(), Some(user.mp_openid.as_str()));

    // The same batch again: event ids make the page view the same message.
    let r = http
        .post(format!("{gw}/track"))
        .bearer_auth(&token)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let again = drain(&mut sub, Duration::from_millis(500)).await;
    assert_eq!(
        again[0].id, got[0].id,
        "client event_id gives a stable message id"
    );

    // Without credentials; with a write key and an anonymous visitor.
    let r = http
        .post(format!("{gw}/track"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(format!("{gw}/track"))
        .header("X-Write-Key", WRITE_KEY)
        .json(&json!({"events": [{"type": "download", "name": "whitepaper", "anonymous_id": "h5-visitor-9"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let got = drain(&mut sub, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tenant_id, TENANT);
    // A write key cannot claim a WeChat identity: a victim's unionid (or openid) in the subject
    // is refused, and nothing reaches the bus.
    for subject in [
        json!({"unionid": "oVICTIM-unionid", "anonymous_id": "attacker-cookie"}),
        json!({"mp_app_id": apps.mp.appid, "openid": "oVICTIM"}),
    ] {
        let r = http
            .post(format!("{gw}/track"))
            .header("X-Write-Key", WRITE_KEY)
            .json(
                &json!({"subject": subject, "events": [{"type": "form_submit",
                "anonymous_id": "attacker-cookie",
                "properties": {"phone": "13800000000", "city": "Nowhere"}}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid_subject", "{body}");
        assert!(
            body["details"]["field"]
                .as_str()
                .unwrap()
                .starts_with("subject."),
            "{body}"
        );
    }
    assert!(drain(&mut sub, Duration::from_millis(300)).await.is_empty());
    let r = http
        .post(format!("{gw}/track"))
        .header("X-Write-Key", "not-a-key-0123456789")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// With RabbitMQ unreachable, callbacks get a non-200 answer within WeChat's 5 s; once it is back,
/// the retried callbacks are accepted, and every callback answered 200 is in the queue.
/// The published `encryptedData` vector (wechat-protocol.md §F6): its mini-program, session key,
/// IV and ciphertext (a user-info payload watermarked in 2016).
const F6_APPID: &str = "wx4f4bc4dec97d474b";
const F6_SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const F6_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const F6_ENCRYPTED_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

/// Older clients' phone button: `{encrypted_data, iv}` decrypted with the session key the
/// gateway kept at login. The mini-program is the published vector's and the fake hands its
/// session key out, so the vector itself goes through the endpoint: it decrypts and carries this
/// app's watermark, and is refused for its 2016 watermark, outside the session. A phone answer
/// the fake encrypts now under the same key is verified and published; one watermarked before
/// the login, for another app, without its IV or without a session is refused with its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_encrypted_phone_path() {
    let fake = FakeWechat::start_with(fake_wechat::FakeOptions {
        seed: 13,
        mp_appid: Some(F6_APPID.to_string()),
        ..fake_wechat::FakeOptions::default()
    })
    .unwrap();
    let (running, dir) = start(&fake, None).await;
    let mut sub = observe(&running).await;
    let gw = gateway(&running);
    let user = fake.population().users[0].clone();
    fake.set_session_key(&user, F6_SESSION_KEY);
    let http = reqwest::Client::new();
    let phone = |body: Value, token: Option<String>| {
        let mut r = http.post(format!("{gw}/mp/{F6_APPID}/phone")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (data, iv) = (F6_ENCRYPTED_DATA, F6_IV);
    let (status, _) = phone(json!({"encrypted_data": data, "iv": iv}), None).await;
    assert_eq!(status, 401, "needs the session token");

    let r = http
        .post(format!("{gw}/mp/{F6_APPID}/session"))
        .json(&json!({"code": fake.issue_login_code(&user)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let token = r.json::<Value>().await.unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_string();
    let login = next(&mut sub, Duration::from_secs(3)).await.expect("login");
    login.ack().await.unwrap();
    let t = || Some(token.clone());

    // The published vector: decrypted under the kept key, this app's watermark, from 2016.
    let (status, body) = phone(json!({"encrypted_data": data, "iv": iv}), t()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("stale_encrypted_data")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("1477314187"),
        "{body}"
    );
    // Its bytes changed: no longer this session's.
    let flipped = if &data[40..41] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &data[..40], &data[41..]);
    let (status, body) = phone(json!({"encrypted_data": tampered, "iv": iv}), t()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("undecryptable")),
        "{body}"
    );
    let (status, body) = phone(json!({"encrypted_data": data}), t()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_iv")),
        "{body}"
    );
    let (status, body) = phone(json!({"code": "c", "encrypted_data": data, "iv": iv}), t()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_body")),
        "{body}"
    );

    // A phone answer of now, of before the login, for another app.
    let now = chrono::Utc::now().timestamp();
    let (old, old_iv) = fake
        .encrypted_phone_at(&user, F6_APPID, now - 3 * 86_400)
        .unwrap();
    let (status, body) = phone(json!({"encrypted_data": old, "iv": old_iv}), t()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("stale_encrypted_data")),
        "{body}"
    );
    let (other, other_iv) = fake.encrypted_phone(&user, "wx0000000000000000").unwrap();
    let (status, body) = phone(json!({"encrypted_data": other, "iv": other_iv}), t()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("wrong_app")),
        "{body}"
    );
    assert!(
        next(&mut sub, Duration::from_millis(300)).await.is_none(),
        "nothing refused is published"
    );
    let (fresh, fresh_iv) = fake.encrypted_phone(&user, F6_APPID).unwrap();
    let (status, body) = phone(json!({"encrypted_data": fresh, "iv": fresh_iv}), t()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"], true);
    assert!(!body.to_string().contains(&user.phone), "masked: {body}");
    let e = next(&mut sub, Duration::from_secs(3))
        .await
        .expect("phone event");
    assert_eq!(e.envelope.kind, "channel.mp.phone");
    let p: proto::sdk::MpPhoneVerified = e.envelope.decode().unwrap();
    assert_eq!(p.phone_e164, format!("+86{}", user.phone));
    assert_eq!(
        (p.app_id.as_str(), p.openid.as_str()),
        (F6_APPID, user.mp_openid.as_str())
    );
    e.ack().await.unwrap();

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_never_answers_200_for_a_lost_callback() {
    let fake = FakeWechat::start(0, 14).unwrap();
    let target = "127.0.0.1:5672".parse().unwrap();
    let _ = amqp_url(); // fails naming RabbitMQ when it is down
    let proxy = TcpProxy::start(target).await.unwrap();
    let exchange = unique("gwtest");
    let (running, dir) = start(
        &fake,
        Some(json!({"kind": "amqp", "url": proxy.rewrite_url(&amqp_url()), "exchange": exchange, "publish_timeout_ms": 1000})),
    )
    .await;
    running.deps.bus.declare(&observer_spec()).await.unwrap();
    let gw = gateway(&running);
    let apps = fake.apps();
    let users = fake.population().users.clone();
    let oa = fake.callbacks(&apps.oa);

    let mut answered_200 = HashSet::new();
    let mut refused = Vec::new();
    for (i, u) in users.iter().enumerate().take(12) {
        if i == 4 {
            proxy.set_accepting(false);
            proxy.kill_all();
        }
        if i == 8 {
            proxy.set_accepting(true);
        }
        let xml = oa.text(&u.oa_openid, &format!("message {i}"));
        let started = Instant::now();
        let r = fake
            .send_oa(&gw, &apps.oa, &xml, CallbackMode::Safe)
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered within WeChat's 5 s"
        );
        if r.status == 200 {
            answered_200.insert(u.oa_openid.clone());
        } else {
            assert_eq!(r.status, 503, "{}", r.body);
            refused.push((u.oa_openid.clone(), xml));
        }
    }
    assert!(!refused.is_empty(), "the outage was noticed");
    // WeChat retries the refused ones after the broker is back.
    for (openid, xml) in &refused {
        let mut ok = false;
        for _ in 0..20 {
            if fake
                .send_oa(&gw, &apps.oa, xml, CallbackMode::Safe)
                .await
                .unwrap()
                .status
                == 200
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(ok, "retry accepted once the broker is back");
        answered_200.insert(openid.clone());
    }
    let mut sub = observe(&running).await;
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.len() < answered_200.len() && Instant::now() < deadline {
        if let Some(d) = next(&mut sub, Duration::from_secs(2)).await {
            let cb: CallbackReceived = d.envelope.payload_as().unwrap();
            seen.insert(cb.event.from_user_name.clone());
            d.ack().await.unwrap();
        }
    }
    assert_eq!(
        seen, answered_200,
        "every callback answered 200 is in the queue"
    );
    drop(sub);
    running.stop().await.unwrap();
    let mut cfg = platform::config::BusConfig::amqp(amqp_url());
    cfg.exchange = exchange;
    let bus = platform::bus::AmqpBus::connect(&cfg).await.unwrap();
    // Every group the system declared (each process declares them all), then the observer's:
    // declared here, they are deleted with the exchange.
    for def in proto::routing::GROUPS {
        bus.declare(&platform::bus::group_spec(&bus, *def, 1))
            .await
            .unwrap();
    }
    bus.declare(&observer_spec()).await.unwrap();
    bus.destroy().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
