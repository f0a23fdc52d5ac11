//! The WeCom sidebar end to end in `scrm up` with the fake WeChat: a rep signs in through WeCom's
//! OAuth (the `state` bound to the browser that started it); the JS-SDK signatures verify
//! against WeCom's tickets; the card of a customer the rep follows shows the rep's follow,
//! scores, stage and timeline; a tag of a WeCom-synced group added there reaches WeCom
//! (`mark_tag`); a note lands in the timeline and in the audit log with the rep as actor; a stage
//! move the machine forbids is 409; a body that does not read is 400 naming the field; another
//! rep of the corp is refused (403) and a customer of no one is 404.

use crate::common;
use crate::common::sidebar;

use std::time::Duration;

use fake_wechat::FakeWechat;
use reqwest::redirect::Policy;
use scrm::roles::Role as ProcessRole;
use serde_json::{json, Value};
use wechat::api::TicketKind;

/// Polls `f` until `done` holds (15 s at most).
async fn until<T, F, Fut>(what: &str, mut f: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v = f().await;
        if done(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Http {
    c: reqwest::Client,
    base: String,
}

impl Http {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.c.request(m, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rep_signs_in_reads_the_card_tags_notes_and_moves_the_stage() {
    let fake = FakeWechat::start(0, 47).unwrap();
    let apps = fake.apps().clone();
    let agent = apps.wecom_agent.clone();
    let agent_id = agent.agent_id.expect("an AgentID");
    let (running, dir) = common::start_up(
        &fake,
        Some(json!({"gateway": {
            "apps": [common::app_seed(&apps.oa, "oa"), common::app_seed(&apps.mp, "mp"),
                     common::app_seed(&apps.wecom, "wecom"),
                     {"tenant_id": common::TENANT, "kind": "wecom_agent", "app_id": agent.appid,
                      "agent_id": agent_id, "secret": agent.secret}],
            "wechat_api": {"open_base_url": fake.base_url()},
        }})),
    )
    .await;
    let gw = running.url(ProcessRole::Gateway);
    let dir_s = dir.display().to_string();
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
    let owner = common::scrm_cli(&[
        "user",
        "add",
        "--tenant",
        common::TENANT,
        "--email",
        "owner@e2e.test",
        "--role",
        "owner",
        "--token",
        "--data-dir",
        &dir_s,
    ])
    .lines()
    .find_map(|l| l.strip_prefix("API token (shown only now): "))
    .expect("a token")
    .trim()
    .to_string();
    let http = Http {
        c: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
        base: gw.clone(),
    };
    let corp = apps.wecom.appid.clone();
    let pop = fake.population().clone();
    let user = pop.users[0].clone();
    let rep = user.follows[0].userid.clone();
    let stranger = pop
        .reps
        .iter()
        .find(|r| !user.follows.iter().any(|f| f.userid == r.userid))
        .expect("a rep who does not follow the customer")
        .userid
        .clone();

    // The rep adds the customer.
    let wecom = fake.callbacks(&apps.wecom);
    let r = fake
        .send_wecom(
            &gw,
            &apps.wecom,
            &wecom.add_external_contact(&rep, &user.external_userid, Some("booth_7")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // Sign-in, who am I, and the JS-SDK signatures.
    let session = sidebar::sign_in(&http.c, &gw, &corp, agent_id, &rep).await;
    let (s, me) = http
        .send("GET", "/sidebar/v1/me", Some(&session), None)
        .await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(
        (
            me["userid"].as_str(),
            me["corp_id"].as_str(),
            me["role"].as_str()
        ),
        (Some(rep.as_str()), Some(corp.as_str()), Some("rep"))
    );
    let page = format!("{gw}/sidebar/?external_userid={}#top", user.external_userid);
    let (s, sig) = http
        .send(
            "POST",
            "/sidebar/v1/jssdk",
            Some(&session),
            Some(json!({"url": page})),
        )
        .await;
    assert_eq!(s, 200, "{sig}");
    for (part, kind) in [("corp", TicketKind::Corp), ("agent", TicketKind::Agent)] {
        let ticket = fake
            .current_ticket(&agent, kind)
            .expect("a ticket was fetched");
        let ts = sig[part]["timestamp"].as_i64().unwrap().to_string();
        let nonce = sig[part]["nonceStr"].as_str().unwrap();
        let expected = wechat::signature::jsapi_signature(&ticket, nonce, &ts, &page);
        assert_eq!(sig[part]["signature"], json!(expected), "{part}: {sig}");
    }
    assert_eq!(sig["agent"]["agentid"], json!(agent_id));
    let (s, b) = http
        .send(
            "POST",
            "/sidebar/v1/jssdk",
            Some(&session),
            Some(json!({"url": "https://evil.example/sidebar/"})),
        )
        .await;
    assert_eq!(
        (s, b["details"]["field"].as_str()),
        (400, Some("url")),
        "{b}"
    );

    // The card, once identity and scoring have the customer.
    let card_path = format!("/sidebar/v1/customers/{}", user.external_userid);
    let (_, card) = until(
        "the card with a stage",
        || http.send("GET", &card_path, Some(&session), None),
        |(s, c)| *s == 200 && c["stage"]["key"].is_string(),
    )
    .await;
    assert_eq!(card["follow"]["state"], "booth_7", "{card}");
    assert!(
        card["timeline"].as_array().is_some_and(|t| !t.is_empty()),
        "{card}"
    );
    let profile_id = card["profile_id"].as_str().unwrap().to_string();

    // A tag of a group synced to WeCom, added from the sidebar, reaches WeCom.
    let (s, b) = http
        .send(
            "POST",
            &format!("/admin/v1/wecom/{corp}/corp-tags/sync"),
            Some(&owner),
            None,
        )
        .await;
    assert!([200, 202].contains(&s), "{b}");
    let lib = fake.corp_tag_groups();
    let mirror = format!("/admin/v1/wecom/{corp}/corp-tags");
    until(
        "the corp tag mirror",
        || http.send("GET", &mirror, Some(&owner), None),
        |(_, m)| m["items"].as_array().is_some_and(|g| g.len() == lib.len()),
    )
    .await;
    let (s, group) = http
        .send(
            "POST",
            &format!(
                "/admin/v1/wecom/{corp}/corp-tag-groups/{}/link",
                lib[0].group_id
            ),
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 201, "{group}");
    let before = fake.corp_tags_of(&user, &rep);
    let target = lib[0]
        .tags
        .iter()
        .find(|t| !before.contains(&t.id))
        .expect("a corp tag the customer lacks")
        .clone();
    let local = group["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["wecom_tag_id"] == json!(target.id))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = http
        .send(
            "POST",
            &format!("{card_path}/tags"),
            Some(&session),
            Some(json!({"add": [local]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    until(
        "the tag in WeCom",
        || async { fake.corp_tags_of(&user, &rep) },
        |t| t.contains(&target.id),
    )
    .await;
    let (s, b) = http
        .send(
            "POST",
            &format!("{card_path}/tags"),
            Some(&session),
            Some(json!({"add": ["no-such-tag"]})),
        )
        .await;
    assert!(s == 400 || s == 404, "{s} {b}");

    // A note, in the card's timeline and the audit log with the rep as actor.
    let (s, note) = http
        .send(
            "POST",
            &format!("{card_path}/notes"),
            Some(&session),
            Some(json!({"type": "call", "text": "Wants a demo next week"})),
        )
        .await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(note["author"], json!(format!("rep:{corp}:{rep}")));
    let (_, card) = http.send("GET", &card_path, Some(&session), None).await;
    assert!(
        card["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "note.added" && e["summary"]["text"] == "Wants a demo next week"),
        "{card}"
    );
    let (_, log) = http
        .send("GET", "/admin/v1/audit?limit=100", Some(&owner), None)
        .await;
    assert!(
        log["items"].as_array().unwrap().iter().any(|e| e["action"]
            == "POST /sidebar/v1/customers/{external_userid}/notes"
            && e["actor"] == json!(format!("rep:{corp}:{rep}"))),
        "{log}"
    );

    // A move the machine forbids, and one it allows.
    let stage = card["stage"]["key"].as_str().unwrap().to_string();
    let allowed: Vec<String> = card["stage"]["allowed_moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let (_, machine) = http
        .send("GET", "/admin/v1/stage-machine", Some(&owner), None)
        .await;
    let forbidden = machine["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"].as_str())
        .find(|k| *k != stage && !allowed.iter().any(|a| a == k))
        .expect("a stage the machine does not allow from here")
        .to_string();
    let (s, b) = http
        .send(
            "POST",
            &format!("{card_path}/stage"),
            Some(&session),
            Some(json!({"stage": forbidden, "reason": "skip ahead"})),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    if let Some(next) = allowed.first() {
        let (s, b) = http
            .send(
                "POST",
                &format!("{card_path}/stage"),
                Some(&session),
                Some(json!({"stage": next, "reason": "qualified on the call"})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    // A body that does not read is refused naming the field: a wrong type (by the gateway), a
    // missing field (by the service the write goes to), a field a note does not have.
    let stage_path = format!("{card_path}/stage");
    let tags_path = format!("{card_path}/tags");
    let notes_path = format!("{card_path}/notes");
    let note_path = format!("/sidebar/v1/notes/{}", note["id"].as_str().unwrap());
    for (method, path, body, code, field) in [
        (
            "POST",
            &stage_path,
            json!({"stage": 5, "reason": "x"}),
            "invalid_json",
            "stage",
        ),
        (
            "POST",
            &stage_path,
            json!({"reason": "x"}),
            "missing_field",
            "stage",
        ),
        (
            "POST",
            &tags_path,
            json!({"add": [7]}),
            "invalid_json",
            "add[0]",
        ),
        (
            "POST",
            &notes_path,
            json!({"type": "call", "text": 5}),
            "invalid_field",
            "text",
        ),
        (
            "POST",
            &notes_path,
            json!({"type": "call"}),
            "missing_field",
            "text",
        ),
        (
            "POST",
            &notes_path,
            json!({"type": "call", "text": "x", "author": "me"}),
            "invalid_field",
            "author",
        ),
        (
            "PATCH",
            &note_path,
            json!({"text": null}),
            "invalid_field",
            "text",
        ),
    ] {
        let (s, b) = http.send(method, path, Some(&session), Some(body)).await;
        assert_eq!(
            (s, b["code"].as_str(), b["details"]["field"].as_str()),
            (400, Some(code), Some(field)),
            "{method} {path}: {b}"
        );
        assert!(
            b["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("`{field}`")),
            "{method} {path}: {b}"
        );
    }
    // An edit passes on what it leaves out, clears and changes.
    let (s, b) = http
        .send(
            "PATCH",
            &note_path,
            Some(&session),
            Some(json!({"text": "Wants a demo on Monday", "next_follow_up_at": null})),
        )
        .await;
    assert_eq!(
        (s, b["text"].as_str(), b["type"].as_str()),
        (200, Some("Wants a demo on Monday"), Some("call")),
        "{b}"
    );
    let (s, leads) = http
        .send("GET", "/sidebar/v1/leads", Some(&session), None)
        .await;
    assert_eq!(s, 200, "{leads}");

    // Another rep of the corp: not theirs. A customer of no one: unknown.
    let other = sidebar::sign_in(&http.c, &gw, &corp, agent_id, &stranger).await;
    let (s, b) = http.send("GET", &card_path, Some(&other), None).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (403, Some("not_your_customer")),
        "{b}"
    );
    let (s, _) = http
        .send(
            "POST",
            &format!("{card_path}/contacted"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = http
        .send(
            "GET",
            "/sidebar/v1/customers/wm-nobody",
            Some(&session),
            None,
        )
        .await;
    assert_eq!(s, 404);
    // Every declared route: without a session, or with a bad one, 401.
    for r in gateway::api::sidebar::ROUTES {
        if r.access == gateway::api::sidebar::Access::Public {
            continue;
        }
        let path = r
            .path
            .replace("{external_userid}", &user.external_userid)
            .replace("{id}", "n1");
        let body = (r.method != "GET" && r.method != "DELETE").then(|| json!({}));
        for token in [None, Some("scrm_sidebar_nope")] {
            let (s, b) = http.send(r.method, &path, token, body.clone()).await;
            assert_eq!(s, 401, "{} {} with {token:?}: {b}", r.method, r.path);
        }
    }
    // No session, a bad one, an admin token (not a sidebar session).
    let (s, _) = http.send("GET", &card_path, None, None).await;
    assert_eq!(s, 401);
    let (s, _) = http
        .send("GET", &card_path, Some("scrm_sidebar_nope"), None)
        .await;
    assert_eq!(s, 401);
    let (s, b) = http.send("GET", &card_path, Some(&owner), None).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (403, Some("not_a_sidebar_session")),
        "{b}"
    );
    // A rep's session opens no admin route.
    let (s, _) = http
        .send(
            "GET",
            &format!("/admin/v1/customers/{profile_id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(s, 403);

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
    fake.stop().await;
}
