//! Channel codes end to end in `scrm up` with the fake WeChat server: an operator builds the
//! source "offline > expo > booth 7" in the registry, makes a WeCom contact-me code for a rep
//! and an Official Account QR code under it, and customers arriving through them — a contact
//! added through the code, a new follower scanning the QR code — carry that first-touch source
//! on their profile. Refusals name their field (WeChat's own with its errcode, the key's binding
//! undone); an analyst may read but not make codes; retiring a contact-me code deletes it at
//! WeChat.

use std::time::Duration;

use fake_wechat::{CallbackMode, FakeWechat};
use scrm::roles::Role;
use serde_json::{json, Value};

use crate::common;
use crate::common::leads::eventually;

/// [`common::admin_call`] with the answer as JSON (null when it is none).
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, text) = common::admin_call(http, method, url, token, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_through_a_channel_code_carry_its_source() {
    use reqwest::Method as M;
    let fake = FakeWechat::start(0, 101).expect("fake starts");
    let (running, dir) = common::start_up(&fake, None).await;
    let dir_s = dir.display().to_string();
    let gw = running.url(Role::Gateway);
    let http = reqwest::Client::new();
    let apps = fake.apps().clone();
    common::scrm_cli(&[
        "tenant",
        "add",
        "--id",
        common::TENANT,
        "--name",
        "E2E",
        "--data-dir",
        &dir_s,
    ]);
    let ops = common::cli_token(&dir_s, common::TENANT, "ops@e2e.test", "operator");
    let analyst = common::cli_token(&dir_s, common::TENANT, "analyst@e2e.test", "analyst");

    // The source tree.
    let mut parent: Option<String> = None;
    let mut nodes = Vec::new();
    for name in ["offline", "expo", "booth 7"] {
        let (s, n) = call(
            &http,
            M::POST,
            format!("{gw}/admin/v1/sources"),
            &ops,
            Some(json!({"name": name, "parent_id": parent})),
        )
        .await;
        assert_eq!(s, 201, "{n}");
        parent = n["id"].as_str().map(str::to_string);
        nodes.push(parent.clone().unwrap());
    }
    let booth = nodes[2].clone();
    let (s, g) = call(
        &http,
        M::POST,
        format!("{gw}/admin/v1/tag-groups"),
        &ops,
        Some(json!({"name": "Events", "selection": "multi"})),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    let (s, expo) = call(
        &http,
        M::POST,
        format!("{gw}/admin/v1/tags"),
        &ops,
        Some(json!({"group_id": g["id"], "name": "expo"})),
    )
    .await;
    assert_eq!(s, 201, "{expo}");
    let expo = expo["id"].as_str().unwrap().to_string();
    let rep = fake.population().reps[0].userid.clone();
    let codes = format!("{gw}/admin/v1/channel-codes");
    let contact_code = json!({"kind": "wecom_contact_way", "app_id": apps.wecom.appid,
        "name": "Expo booth 7", "source_id": booth, "key": "booth_7", "reps": [rep],
        "tags": [expo]});
    let (s, e) = call(
        &http,
        M::POST,
        codes.clone(),
        &analyst,
        Some(contact_code.clone()),
    )
    .await;
    assert_eq!(s, 403, "an analyst makes no codes: {e}");
    let (s, code) = call(
        &http,
        M::POST,
        codes.clone(),
        &ops,
        Some(contact_code.clone()),
    )
    .await;
    assert_eq!(s, 201, "{code}");
    let config_id = code["wechat_ref"].as_str().unwrap().to_string();
    assert_eq!(code["tags"], json!([expo]));
    assert_eq!(
        code["tag_rules"].as_array().map(Vec::len),
        Some(1),
        "{code}"
    );
    assert!(
        code["image_url"].as_str().unwrap().contains(&config_id),
        "{code}"
    );
    let made = fake.contact_ways();
    assert_eq!(made.len(), 1);
    assert_eq!(
        (made[0].state.as_str(), &made[0].users),
        ("booth_7", &vec![rep.clone()])
    );
    let (s, e) = call(&http, M::POST, codes.clone(), &ops, Some(contact_code)).await;
    assert_eq!((s, &e["code"]), (409, &json!("key_in_use")), "{e}");
    // WeChat refuses a rep it does not know: its errcode, and the key is not left bound.
    let (s, e) = call(
        &http,
        M::POST,
        codes.clone(),
        &ops,
        Some(
            json!({"kind": "wecom_contact_way", "app_id": apps.wecom.appid, "name": "x",
            "source_id": booth, "key": "ghost", "reps": ["nobody"]}),
        ),
    )
    .await;
    assert_eq!(
        (s, &e["code"], &e["details"]["errcode"]),
        (422, &json!("wechat_refused"), &json!(60111)),
        "{e}"
    );
    let (s, e) = call(
        &http,
        M::POST,
        codes.clone(),
        &ops,
        Some(json!({"kind": "oa_qrcode", "app_id": apps.oa.appid, "name": "x", "reps": [rep]})),
    )
    .await;
    assert_eq!((s, &e["details"]["field"]), (400, &json!("reps")), "{e}");
    // An unknown default tag: tagging's refusal, and no code made.
    let (s, e) = call(
        &http,
        M::POST,
        codes.clone(),
        &ops,
        Some(
            json!({"kind": "wecom_contact_way", "app_id": apps.wecom.appid, "name": "x",
            "source_id": booth, "key": "tagless", "reps": [rep], "tags": [expo, "no-such-tag"]}),
        ),
    )
    .await;
    assert!((400..500).contains(&s), "{s} {e}");
    assert_eq!(fake.contact_ways().len(), 1, "nothing made at WeChat");
    let (_, rules) = call(
        &http,
        M::GET,
        format!("{gw}/admin/v1/tag-rules"),
        &ops,
        None,
    )
    .await;
    assert_eq!(
        rules["items"].as_array().map(Vec::len),
        Some(1),
        "the refused code's rule is gone: {rules}"
    );
    let (_, n) = call(
        &http,
        M::GET,
        format!("{gw}/admin/v1/sources/{booth}"),
        &analyst,
        None,
    )
    .await;
    assert_eq!(
        n["bindings"],
        json!([{"kind": "wecom_state", "value": "booth_7"}]),
        "{n}"
    );

    // A customer added through the contact-me code.
    let users = fake.population().users.clone();
    let added = &users[0];
    let (to, xml) = fake.add_through_contact_way(&config_id, added).unwrap();
    assert_eq!(to, rep);
    let r = fake.send_wecom(&gw, &apps.wecom, &xml).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let profile_of = |kind: &'static str, ns: String, value: String| {
        let (http, gw, ops) = (http.clone(), gw.clone(), ops.clone());
        async move {
            let url = format!(
                "{gw}/admin/v1/customers/by-identifier?kind={kind}&namespace={ns}&value={value}"
            );
            eventually("the customer is resolved", 30, || {
                let (http, url, ops) = (http.clone(), url.clone(), ops.clone());
                async move {
                    let (s, p) = call(&http, M::GET, url, &ops, None).await;
                    (s == 200).then_some(p)
                }
            })
            .await
        }
    };
    let p = profile_of(
        "wecom_external_userid",
        apps.wecom.appid.clone(),
        added.external_userid.clone(),
    )
    .await;
    let f = &p["fields"];
    assert_eq!(
        (
            &f["source.first.level1"],
            &f["source.first.level2"],
            &f["source.first.level3"]
        ),
        (&json!("offline"), &json!("expo"), &json!("booth 7")),
        "{p}"
    );
    assert_eq!(f["source.first.node"], json!(booth));
    assert_eq!(f["source.first.campaign"], json!("booth_7"));
    // And the code's tag.
    let pid = p["id"].as_str().unwrap().to_string();
    eventually("the customer gets the code's tag", 30, || {
        let (http, url, ops, expo) = (
            http.clone(),
            format!("{gw}/admin/v1/customers/{pid}/tags"),
            ops.clone(),
            expo.clone(),
        );
        async move {
            let (_, t) = call(&http, M::GET, url, &ops, None).await;
            t.to_string().contains(&expo).then_some(())
        }
    })
    .await;

    // An OA QR code under its own source, scanned by a new follower.
    let (s, qr_node) = call(
        &http,
        M::POST,
        format!("{gw}/admin/v1/sources"),
        &ops,
        Some(json!({"name": "booth 7 poster", "parent_id": nodes[1]})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, qr) = call(
        &http,
        M::POST,
        codes.clone(),
        &ops,
        Some(
            json!({"kind": "oa_qrcode", "app_id": apps.oa.appid, "name": "Expo poster",
            "source_id": qr_node["id"], "temporary": true, "expires_in": 86400}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{qr}");
    let scene = qr["key"].as_str().unwrap();
    assert!(scene.starts_with("cc_"), "a generated scene: {qr}");
    assert!(
        qr["image_url"]
            .as_str()
            .unwrap()
            .contains("showqrcode?ticket="),
        "{qr}"
    );
    let follower = users.iter().find(|u| u.index != added.index).unwrap();
    let xml = fake
        .scan_qrcode(qr["wechat_ref"].as_str().unwrap(), follower, true)
        .unwrap();
    let r = fake
        .send_oa(&gw, &apps.oa, &xml, CallbackMode::Safe)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let p = profile_of(
        "oa_openid",
        apps.oa.appid.clone(),
        follower.oa_openid.clone(),
    )
    .await;
    assert_eq!(
        (
            &p["fields"]["source.first.level3"],
            &p["fields"]["source.first.node"]
        ),
        (&json!("booth 7 poster"), &qr_node["id"]),
        "{p}"
    );

    // Another rep takes the code over: WeChat is told; a single-rep code keeps one rep.
    let other_rep = fake.population().reps[1].userid.clone();
    let one = format!("{codes}/{}", code["id"].as_str().unwrap());
    let (s, c) = call(
        &http,
        M::PATCH,
        one.clone(),
        &ops,
        Some(json!({"reps": [other_rep]})),
    )
    .await;
    assert_eq!((s, &c["reps"]), (200, &json!([other_rep])), "{c}");
    assert_eq!(fake.contact_ways()[0].users, vec![other_rep.clone()]);
    assert_eq!(fake.contact_ways()[0].state, "booth_7", "the key stays");
    let (s, e) = call(
        &http,
        M::PATCH,
        one.clone(),
        &ops,
        Some(json!({"reps": [rep, other_rep]})),
    )
    .await;
    assert_eq!((s, &e["details"]["field"]), (400, &json!("reps")), "{e}");
    let (s, _) = call(
        &http,
        M::PATCH,
        one.clone(),
        &analyst,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(s, 403);

    // Listed for analysts; retired: deleted at WeChat, its key unbound.
    let (s, l) = call(&http, M::GET, codes.clone(), &analyst, None).await;
    assert_eq!(
        (s, l["items"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{l}"
    );
    let id = code["id"].as_str().unwrap();
    let (s, r) = call(&http, M::POST, format!("{codes}/{id}/retire"), &ops, None).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["retired_at"].is_string());
    assert!(fake.contact_ways()[0].deleted);
    let (s, e) = call(&http, M::PATCH, one, &ops, Some(json!({"name": "again"}))).await;
    assert_eq!((s, &e["code"]), (409, &json!("code_retired")), "{e}");
    let (_, n) = call(
        &http,
        M::GET,
        format!("{gw}/admin/v1/sources/{booth}"),
        &analyst,
        None,
    )
    .await;
    assert_eq!(n["bindings"], json!([]), "{n}");
    let (s, _) = call(&http, M::GET, format!("{codes}/{id}"), &analyst, None).await;
    assert_eq!(s, 200);

    tokio::time::sleep(Duration::from_millis(10)).await;
    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
